/* schedule.h: fastai's hyper-parameter schedules and the per-group lr rule (callback/schedule.py).
 * Pure C: no Lua, no tensors.
 *
 * A schedule maps training progress pos in [0, 1) to one value per parameter group. fastai
 * builds every schedule with combine_scheds: phases of cosine annealing, each covering a
 * fraction (pct) of training. fastai keeps the cumulative pcts in a float32 tensor, so the
 * phase lookup (pos >= pcts) and the position inside a phase, (pos - pcts[i]) /
 * (pcts[i+1] - pcts[i]), are float32 computations; the cosine itself is double. We do the
 * same, which is what makes our values equal fastai's to the last bit instead of to ~1e-7.
 *
 * Errors (NULL or -1 returns) leave their message in the shim's slot, ft_last_error(), as in
 * every file of runtime/learner (docs/design.md, "Errors").
 */
#ifndef FTL_SCHEDULE_H
#define FTL_SCHEDULE_H

#include <stddef.h>

/* fastai's sched_cos: start + (1 + cos(pi*(1-pos))) * (end-start) / 2 */
double ftf_sched_cos(double start, double end, double pos);

/* fastai's pct_train for batch `iter` of `epoch` (both 0-based): epoch/n_epoch, then
 * 1/(n_iter*n_epoch) added once per batch, as TrainEvalCallback does. It differs from
 * (epoch + iter/n_iter)/n_epoch by rounding only (~1e-16). */
double ftf_train_pos(int epoch, int iter, int n_iter, int n_epoch);

#define FTL_SCHED_MAX_PHASES 64

typedef struct {
    int n_phases, n_groups;
    float cum[FTL_SCHED_MAX_PHASES + 1]; /* 0, p1, p1+p2, ...: fastai's float32 cumsum */
    double *start, *end;                 /* [phase * n_groups + group] */
} ftf_sched;

/* combine_scheds(pcts, [SchedCos(start, end) per phase]) for n_groups values at once.
 * start and end hold n_phases * n_groups values, phase-major. pcts must be >= 0 and sum
 * to 1. NULL on failure (ft_last_error). */
ftf_sched *new_ftl_sched(int n_phases, const double *pcts, const double *start, const double *end,
                         int n_groups);
void free_ftl_sched(ftf_sched *s);
/* The n_groups values at pos. */
void ftf_sched_at(const ftf_sched *s, double pos, double *out);

/* combined_cos(pct, start, middle, end): cosine start -> middle over the first pct of
 * training, then middle -> end. Arrays of n_groups values. */
ftf_sched *new_ftl_combined_cos(double pct, const double *start, const double *middle,
                                const double *end, int n_groups);

/* The schedules of fastai's fit methods. lr arrays hold one value per group, already mapped
 * with ftf_lr_per_group. */
typedef struct {
    double div, div_final, pct_start, moms[3];
} ftf_one_cycle_opts;
/* fit_one_cycle's defaults: div 25, div_final 1e5, pct_start 0.25, moms (0.95, 0.85, 0.95) */
ftf_one_cycle_opts ftf_one_cycle_defaults(void);
/* lr: combined_cos(pct_start, lr_max/div, lr_max, lr_max/div_final) */
ftf_sched *new_ftl_one_cycle_lr(const double *lr_max, int n_groups, const ftf_one_cycle_opts *o);
/* mom: combined_cos(pct_start, moms[0], moms[1], moms[2]), one value for every group */
ftf_sched *new_ftl_one_cycle_mom(const ftf_one_cycle_opts *o);
/* fit_flat_cos: flat at lr, then a cosine to lr/div_final (defaults 1e5 and 0.75). fastai
 * schedules no momentum here: it stays what the optimizer has. */
ftf_sched *new_ftl_flat_cos_lr(const double *lr, int n_groups, double div_final, double pct_start);
/* fit_sgdr: n_cycles cosines from lr_max to 0, cycle i lasting cycle_len*cycle_mult^i epochs;
 * *n_epoch gets the total. fastai divides by cycle_mult-1; cycle_mult 1 (which fastai cannot
 * do) gives n_cycles*cycle_len epochs here. */
ftf_sched *new_ftl_sgdr_lr(const double *lr_max, int n_groups, int n_cycles, int cycle_len,
                           int cycle_mult, int *n_epoch);

/* ---------------------------------------------------------------- lr per parameter group */

/* What a user may pass as lr: a number, slice(lo, hi), slice(hi) or one value per group. */
typedef enum { FTL_LR_NUMBER = 0, FTL_LR_SLICE, FTL_LR_LIST } ftf_lr_kind;
typedef struct {
    ftf_lr_kind kind;
    int has_lo;    /* SLICE: slice(lo, hi) when set, slice(hi) otherwise */
    double lo, hi; /* NUMBER: the value is hi */
    const double *list;
    int n; /* LIST */
} ftf_lr_spec;

/* fastai's set_hyper rule, checked: a number goes to every group; slice(lo, hi) is
 * even_mults(lo, hi, n_groups) (log-spaced); slice(hi) is hi/10 for every group but the
 * last, which gets hi; a list must have one value per group. Every lr must be a positive
 * finite number and lo <= hi. Writes n_groups values; 0 on success, -1 on error. */
int ftf_lr_per_group(const ftf_lr_spec *spec, int n_groups, double *out);
/* fastcore's even_mults: start*step^i with step = (stop/start)^(1/(n-1)); n == 1 gives stop. */
void ftf_even_mults(double start, double stop, int n, double *out);

#endif /* FTL_SCHEDULE_H */
