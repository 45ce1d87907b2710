/* learner_internal.h: what the files of the Learner's C core share (not a public header).
 *
 *   learner.c          the class "ftlua.LearnerCore": construction, options, parameter groups,
 *                      hypers and optimizer state; registers the metatables
 *   learner_fit.c      the fit state, callbacks, schedules, the recorder and core:fit's epochs
 *   learner_step.c     one batch (forward, loss, backward, optimizer step), a training epoch
 *                      and validation
 *   learner_dist.c     data-parallel glue: sharding, gradient and metric all-reduces
 *   learner_predict.c  core:predict (get_preds and friends)
 *
 * Error idiom of a running loop: nothing raises; a step writes fs->err and returns FAIL, the
 * loop unwinds and frees, and only then core:fit or core:predict raises the Lua error.
 */
#ifndef FTL_LEARNER_INTERNAL_H
#define FTL_LEARNER_INTERNAL_H

#include "data/data.h"
#include "dist/dist.h"
#include "learner/learner.h"
#include "learner/lr_find.h"
#include "learner/metrics.h"
#include "learner/progress.h"
#include "learner/schedule.h"

#define CORE_MT "ftlua.LearnerCore"
#define FIT_MT  "ftlua.FitState"
#define PRED_MT "ftlua.PredState"

/* ---------------------------------------------------------------- learner.c: the class */

ftl_learner *ftl_check_core(lua_State *L, int idx);
/* Every parameter and buffer of m (borrowed), in a malloc'ed array: what lr_find snapshots. */
int ftl_model_state_tensors(ftm_module *m, ft_tensor ***out, int *n);

/* ---------------------------------------------------------------- learner_fit.c: fit state */

enum {
    EV_BEFORE_FIT = 0,
    EV_BEFORE_EPOCH,
    EV_BEFORE_TRAIN,
    EV_BEFORE_BATCH,
    EV_AFTER_LOSS,
    EV_AFTER_BATCH,
    EV_AFTER_TRAIN,
    EV_BEFORE_VALIDATE,
    EV_AFTER_VALIDATE,
    EV_AFTER_EPOCH,
    EV_AFTER_FIT,
    NEV
};
extern const char *const ftl_event_names[NEV];

/* What a step of the loop says to do next. */
enum { GO = 0, CANCEL_BATCH, CANCEL_TRAIN, CANCEL_VALID, CANCEL_EPOCH, CANCEL_FIT, FAIL };

/* Everything a fit owns; a userdata whose __gc frees it, so a Lua error cannot leak it. */
typedef struct {
    ftl_learner *ln;
    ft_tensor *x, *y, *pred, *loss;
    ftf_sched *lr_s, *mom_s;
    ftf_smooth_loss smooth;
    ftf_avg vloss, vmet[FTL_MAX_METRICS];
    ftf_tensor_snapshot *wsnap;
    ftf_adam_snapshot *osnap;
    ft_tensor **state; /* lr_find: every param and buffer (borrowed from the model) */
    int n_state;
    ftd_loader *running;
    ftf_pbar bar;
    int bar_on;
    int grad_off;             /* autograd was turned off by us */
    ftd_loader *sharded[2];   /* data parallel: loaders given this rank's shard for the fit */
    ft_dist_reducer *reducer; /* data parallel: all-reduce overlapped with backward, or NULL */
    char err[2048];
} fit_state;

/* The stack of a running fit (absolute indices). */
typedef struct {
    int learn, cbs, fs;
    int has[NEV];
} fit_lua;

typedef enum {
    SCHED_CONST = 0,
    SCHED_ONE_CYCLE,
    SCHED_FLAT_COS,
    SCHED_SGDR,
    SCHED_LR_FIND
} sched_kind;

typedef struct {
    sched_kind kind;
    double *lrs; /* n_groups, from spec.lrs */
    ftf_lr_finder finder;
    int no_logging;
} fit_spec;

int ftl_dvec_push(ftl_dvec *d, double x);
void ftl_dvec_free(ftl_dvec *d);

/* Pushes a new fit state userdata; ftl_fit_state_clear frees what it owns (its __gc,
 * ftl_fit_state_gc, does that too). ftl_fit_batch_free frees the current batch only. */
fit_state *new_ftl_fit_state(lua_State *L, ftl_learner *ln);
void ftl_fit_state_clear(fit_state *fs);
int ftl_fit_state_gc(lua_State *L);
void ftl_fit_batch_free(fit_state *fs);
/* fs->err = the formatted message; returns FAIL. */
__attribute__((format(printf, 2, 3))) int ftl_fit_failf(fit_state *fs, const char *fmt, ...);
/* fs->err = "what: ft_last_error()" (the shim's or the learner's own message); returns FAIL. */
int ftl_fit_shim_fail(fit_state *fs, const char *what);
int ftl_fit_next_batch(fit_state *fs, const ftl_learner *ln, ftd_loader *dl, const char *need_y);
void ftl_fit_set_num(lua_State *L, int t, const char *k, double v);
void ftl_fit_set_int(lua_State *L, int t, const char *k, int64_t v);
int ftl_fit_set_tensor(lua_State *L, int t, const char *k, const ft_tensor *h);
int ftl_run_event(lua_State *L, fit_state *fs, fit_lua *fl, int ev);
int ftl_core_fit(lua_State *L);

/* ---------------------------------------------------------------- learner_step.c */

int ftl_fit_forward(lua_State *L, fit_state *fs, const ft_tensor *x, ft_tensor **out);
int ftl_fit_loss(lua_State *L, fit_state *fs, const ft_tensor *pred, const ft_tensor *y,
                 ft_reduction red, ft_tensor **out);
int ftl_train_epoch(lua_State *L, fit_state *fs, fit_lua *fl, fit_spec *sp, ftd_loader *train,
                    int epoch, int n_epoch, int64_t *train_iter);
int ftl_validate(lua_State *L, fit_state *fs, fit_lua *fl, ftd_loader *valid, int epoch,
                 int n_epoch);

/* ---------------------------------------------------------------- learner_dist.c */

ft_dist *ftl_fit_dist(const ftl_learner *ln);
int ftl_fit_reduce_grads(fit_state *fs, ft_dist *d);
int ftl_fit_reduce_avgs(fit_state *fs, ft_dist *d);
int ftl_fit_shard(fit_state *fs, ft_dist *d, ftd_loader *train, ftd_loader *valid);

/* ---------------------------------------------------------------- learner_predict.c */

int ftl_core_predict(lua_State *L);
int ftl_pred_state_gc(lua_State *L);

#endif /* FTL_LEARNER_INTERNAL_H */
