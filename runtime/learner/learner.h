/* learner.h: the Learner's C side: the training loop, validation and prediction over a model
 * (runtime/model), loaders (runtime/data) and fastai's Adam (optimizer.h).
 *
 *   learner.c        the Lua class "ftlua.LearnerCore" that lua/ftlua/learner_api.lua drives;
 *                    the loop (fit, validate, predict) is in learner_fit.c, learner_step.c,
 *                    learner_dist.c and learner_predict.c (map in learner_internal.h)
 *   learner_lua.c    the entry: luaopen_ftlua_learner (ft.Learner, ft.metrics, ft.slice, ...)
 *   ../../lua/ftlua/learner_api.lua   the Lua half: options, fit_one_cycle/fine_tune/lr_find
 *                    wiring, callbacks, save/load/export, predict, interpretation
 *
 * No Lua runs per batch unless a Lua callback, a Lua loss or a Lua metric asks for it; those
 * are called with lua_pcall, and their errors stop the fit cleanly and name them.
 */
#ifndef FTL_LEARNER_H
#define FTL_LEARNER_H

#include "ftlua.h"
#include "learner/optimizer.h"
#include "model/model.h"

typedef enum { FTL_LOSS_CE = 0, FTL_LOSS_LS, FTL_LOSS_LUA } ftl_loss_kind;
typedef enum {
    FTL_MET_ERROR_RATE = 0,
    FTL_MET_ACCURACY,
    FTL_MET_TOP_K,
    FTL_MET_LUA
} ftl_metric_kind;
#define FTL_MAX_METRICS 16

typedef struct {
    ftl_metric_kind kind;
    int k;   /* top_k_accuracy */
    int ref; /* FTL_MET_LUA: registry ref of the function */
    char name[64];
} ftl_metric;

typedef struct {
    double *v;
    size_t n, cap;
} ftl_dvec;

/* What a fit records (fastai's Recorder), kept in C and copied to learn.recorder at its end. */
typedef struct {
    ftl_dvec lrs, moms; /* per train batch, n_groups values each */
    ftl_dvec losses;    /* per train batch: the smoothed loss */
    ftl_dvec iters;     /* cumulative train batches at each epoch end */
    ftl_dvec values;    /* per epoch: train_loss, valid_loss, metrics (2 + n_metrics) */
} ftl_recorder;

typedef enum { FTL_AMP_OFF = 0, FTL_AMP_BF16, FTL_AMP_FP16 } ftl_amp;

typedef struct {
    ftm_module *model; /* retained */
    ftf_adam *opt;
    int n_groups;
    ftl_loss_kind loss;
    double ls_eps;
    int loss_ref; /* FTL_LOSS_LUA */
    int n_metrics;
    ftl_metric metrics[FTL_MAX_METRICS];
    ftl_amp amp;
    int channels_last;
    double loss_scale; /* FTL_AMP_FP16: dynamic loss scaling */
    int good_steps;
    int64_t data_epoch; /* epochs started on train loaders: each gets new shuffles and draws */
    int dist;           /* data parallel over ft.dist's group (learn:to_distributed()) */
    ftl_recorder rec;
} ftl_learner;

/* learner.c: pushes {new = fn}, the constructor of the C core (metatables registered). */
int ftl_learner_core_class(lua_State *L);

#endif /* FTL_LEARNER_H */
