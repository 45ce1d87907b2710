/* learner_core.h: what the files of ft.learner_core (the Lua bindings of the learner's core)
 * share. Not a public header. `lcore` names this module's helpers.
 *
 *   learner_core.c           the entry (luaopen_ftlua_learner_core) and the helpers below
 *   learner_core_sched.c     slices, the per-group lr rule and the schedules (schedule.h)
 *   learner_core_optim.c     fastai's Adam and SGD, and state snapshots (optimizer.h)
 *   learner_core_metrics.c   the lr finder, metrics, losses and their averages (lr_find.h,
 *                            metrics.h)
 *   learner_core_progress.c  what a fit prints: the table, the bar, the CSV log (progress.h)
 *
 * Conventions: class targets are 1-based in Lua (converted here); parameter indices are
 * 1-based over all groups; fastai's counts (epoch, iter, freeze_to's n) keep fastai's meaning.
 * Every C object lives in a userdata that is created "closed" (NULL) and filled right after,
 * so a Lua error never leaks it; errors are raised only after the C call returned.
 */
#ifndef FTL_LEARNER_CORE_H
#define FTL_LEARNER_CORE_H

#include "ftlua.h"
#include "learner/schedule.h"

/* Raises ft_last_error() as it is when st is not FT_OK (only after the C call returned). */
void ftl_lcore_check(lua_State *L, ft_status st);

/* A userdata holding one pointer to a C object; NULL once freed. */
typedef struct {
    void *p;
} ftl_lcore_box;
/* Pushes a closed box of class mt; returns its slot, to fill once the object exists. */
void **ftl_lcore_new_box(lua_State *L, const char *mt);
/* The object of the box at idx; a freed box is an argument error. */
void *ftl_lcore_check_box(lua_State *L, int idx, const char *mt);
/* The object of the box at idx (NULL when already freed), leaving the box closed: for __gc. */
void *ftl_lcore_take_box(lua_State *L, int idx, const char *mt);

/* A scratch array owned by a userdata pushed on the stack (the GC frees it on any error). */
void *ftl_lcore_scratch(lua_State *L, size_t bytes);
/* Pushes {v[1], ..., v[n]}. */
void ftl_lcore_push_numbers(lua_State *L, const double *v, int n);
/* The numbers of the list at idx, in a scratch array; errors name `what` and the entry. */
double *ftl_lcore_number_list(lua_State *L, int idx, int *n, const char *what);
/* Borrowed handles of the tensors in the list at idx (alive while the list holds them). */
ft_tensor **ftl_lcore_tensor_list(lua_State *L, int idx, int *n, const char *what);

/* learner_core_sched.c: whether the value at idx is a core.slice. */
int ftl_lcore_is_slice(lua_State *L, int idx);
/* The n_groups lrs of the value at idx (number, slice or list), checked by fastai's rule, in a
 * scratch array. */
double *ftl_lcore_lr_values(lua_State *L, int idx, int n_groups);

/* Each part registers its classes and sets its functions into the table on top of the stack. */
void ftl_lcore_open_sched(lua_State *L);
void ftl_lcore_open_optim(lua_State *L);
void ftl_lcore_open_metrics(lua_State *L);
void ftl_lcore_open_progress(lua_State *L);

#endif /* FTL_LEARNER_CORE_H */
