/* learner_core_metrics.c: ft.learner_core's lr finder (its sweep and its suggestions,
 * lr_find.h), fastai's metrics and losses over tensors with 1-based targets, and the running
 * averages of a loss or a metric (metrics.h). */
#include <math.h>
#include <string.h>

#include "learner/learner_core.h"
#include "learner/lr_find.h"
#include "learner/metrics.h"

#define FINDER_MT "ftlua.LRFinder"
#define AVG_MT    "ftlua.AvgMetric"
#define SMOOTH_MT "ftlua.AvgSmoothLoss"

/* ---------------------------------------------------------------- lr_find */

/* core.LRFinder{start_lr=1e-7, end_lr=10, num_it=100, stop_div=true} */
static int l_lr_finder(lua_State *L) {
    static const char *const keys[] = {"start_lr", "end_lr", "num_it", "stop_div", NULL};
    ftl_check_options(L, 1, "LRFinder", keys);
    double start = ftl_opt_number(L, 1, "LRFinder", "start_lr", 1e-7);
    double end = ftl_opt_number(L, 1, "LRFinder", "end_lr", 10);
    int num_it = (int)ftl_opt_integer(L, 1, "LRFinder", "num_it", 100), stop_div = 1;
    if (lua_istable(L, 1) && lua_getfield(L, 1, "stop_div") != LUA_TNIL)
        stop_div = lua_toboolean(L, -1);
    ftf_lr_finder *f = lua_newuserdatauv(L, sizeof *f, 0);
    luaL_setmetatable(L, FINDER_MT);
    if (ftf_lr_finder_init(f, start, end, num_it, stop_div)) luaL_error(L, "%s", ft_last_error());
    return 1;
}

static int finder_lr(lua_State *L) {
    lua_pushnumber(L, ftf_lr_finder_lr(luaL_checkudata(L, 1, FINDER_MT)));
    return 1;
}

/* finder:after_batch(smooth_loss) -> true when the sweep must stop */
static int finder_after_batch(lua_State *L) {
    ftf_lr_finder *f = luaL_checkudata(L, 1, FINDER_MT);
    lua_pushboolean(L, ftf_lr_finder_after_batch(f, luaL_checknumber(L, 2)));
    return 1;
}

static int finder_train_iter(lua_State *L) {
    lua_pushinteger(L, ((ftf_lr_finder *)luaL_checkudata(L, 1, FINDER_MT))->train_iter);
    return 1;
}

static int finder_num_it(lua_State *L) {
    lua_pushinteger(L, ((ftf_lr_finder *)luaL_checkudata(L, 1, FINDER_MT))->num_it);
    return 1;
}

/* core.lr_suggestions(lrs, losses, num_it) -> {minimum, steep, valley, slide, n} (a field is
 * nil when the curve is too short for it) */
static int l_lr_suggestions(lua_State *L) {
    int n, m;
    double *lrs = ftl_lcore_number_list(L, 1, &n, "lrs");
    double *losses = ftl_lcore_number_list(L, 2, &m, "losses");
    int num_it = (int)luaL_checkinteger(L, 3);
    luaL_argcheck(L, n == m, 2, "lrs and losses must have the same length");
    ftf_lr_suggestions sg;
    int used = ftf_lr_suggest(lrs, losses, n, num_it, &sg);
    if (used < 0) luaL_error(L, "%s", ft_last_error());
    lua_createtable(L, 0, 5);
    const char *names[4] = {"minimum", "steep", "valley", "slide"};
    double vals[4] = {sg.minimum, sg.steep, sg.valley, sg.slide};
    for (int i = 0; i < 4; i++) {
        if (isnan(vals[i])) continue;
        lua_pushnumber(L, vals[i]);
        lua_setfield(L, -2, names[i]);
    }
    lua_pushinteger(L, used);
    lua_setfield(L, -2, "n");
    return 1;
}

/* ---------------------------------------------------------------- metrics and losses */

/* targ - 1: Lua's 1-based class indices to the shim's 0-based ones (a new handle). */
static ft_tensor *zero_based(lua_State *L, int idx) {
    ft_tensor *t = ftl_check_tensor(L, idx), *z = NULL;
    ftl_check(L, ft_binary_scalar(FT_SUB, t, 1, &z), "targets");
    return z;
}

typedef ft_status (*metric_fn)(const ft_tensor *, const ft_tensor *, ft_tensor **);

static int run_metric(lua_State *L, metric_fn fn) {
    ft_tensor *pred = ftl_check_tensor(L, 1), *targ = zero_based(L, 2), *out = NULL;
    ft_status st = fn(pred, targ, &out);
    ft_free(targ);
    ftl_lcore_check(L, st);
    ftl_push_tensor(L, out);
    return 1;
}

static int l_accuracy(lua_State *L) { return run_metric(L, ftf_accuracy); }
static int l_error_rate(lua_State *L) { return run_metric(L, ftf_error_rate); }

static int l_top_k_accuracy(lua_State *L) {
    ft_tensor *pred = ftl_check_tensor(L, 1);
    int k = (int)luaL_optinteger(L, 3, 5);
    ft_tensor *targ = zero_based(L, 2), *out = NULL;
    ft_status st = ftf_top_k_accuracy(pred, targ, k, &out);
    ft_free(targ);
    ftl_lcore_check(L, st);
    ftl_push_tensor(L, out);
    return 1;
}

/* The reduction named at opts.reduction (opts a table at idx, or nil), "mean" by default. */
static ft_reduction opt_reduction(lua_State *L, int idx, const char *fn) {
    static const char *const names[] = {"mean", "sum", "none", NULL};
    static const ft_reduction reductions[] = {FT_REDUCE_MEAN, FT_REDUCE_SUM, FT_REDUCE_NONE};
    return reductions[ftl_opt_enum(L, idx, fn, "reduction", names, 0)];
}

/* core.label_smoothing_ce(logits, targ, {eps = 0.1, reduction = "mean"|"sum"|"none"}) */
static int l_label_smoothing_ce(lua_State *L) {
    static const char *const keys[] = {"eps", "reduction", NULL};
    ft_tensor *logits = ftl_check_tensor(L, 1);
    ftl_check_options(L, 3, "label_smoothing_ce", keys);
    double eps = ftl_opt_number(L, 3, "label_smoothing_ce", "eps", 0.1);
    ft_reduction red = opt_reduction(L, 3, "label_smoothing_ce");
    ft_tensor *targ = zero_based(L, 2), *out = NULL;
    ft_status st = ftf_label_smoothing_ce(logits, targ, eps, red, &out);
    ft_free(targ);
    ftl_lcore_check(L, st);
    ftl_push_tensor(L, out);
    return 1;
}

/* 1-based Lua targets as the shim's 0-based int64 classes. */
static ft_tensor *zero_based_long(lua_State *L, int idx) {
    ft_tensor *z = zero_based(L, idx), *l = NULL;
    ft_status st = ft_to(z, FT_INT64, ft_device(z), &l);
    ft_free(z);
    ftl_check(L, st, "targets");
    return l;
}

/* core.cross_entropy(logits [N,C,...], targ (1-based) [N,...], {reduction = "mean",
 * label_smoothing = 0}): torch's F.cross_entropy. */
static int l_cross_entropy(lua_State *L) {
    static const char *const keys[] = {"reduction", "label_smoothing", NULL};
    ft_tensor *logits = ftl_check_tensor(L, 1);
    ftl_check_options(L, 3, "cross_entropy", keys);
    ft_reduction red = opt_reduction(L, 3, "cross_entropy");
    double ls = ftl_opt_number(L, 3, "cross_entropy", "label_smoothing", 0.0);
    ft_tensor *targ = zero_based_long(L, 2), *out = NULL;
    ft_status st = ft_cross_entropy(logits, targ, NULL, red, ls, &out);
    ft_free(targ);
    ftl_check(L, st, "cross_entropy");
    ftl_push_tensor(L, out);
    return 1;
}

/* core.nll_loss(log_probs [N,C], targ (1-based) [N], {reduction = "mean"}): torch's F.nll_loss. */
static int l_nll_loss(lua_State *L) {
    static const char *const keys[] = {"reduction", NULL};
    ft_tensor *lp = ftl_check_tensor(L, 1);
    ftl_check_options(L, 3, "nll_loss", keys);
    ft_reduction red = opt_reduction(L, 3, "nll_loss");
    ft_tensor *targ = zero_based_long(L, 2), *out = NULL;
    ft_status st = ft_nll_loss(lp, targ, red, &out);
    ft_free(targ);
    ftl_check(L, st, "nll_loss");
    ftl_push_tensor(L, out);
    return 1;
}

/* core.AvgMetric(): :accumulate(value (tensor or number), bs), :value(), :reset() */
static int l_avg(lua_State *L) {
    ftf_avg *a = lua_newuserdatauv(L, sizeof *a, 0);
    memset(a, 0, sizeof *a);
    luaL_setmetatable(L, AVG_MT);
    return 1;
}

static int avg_gc(lua_State *L) {
    ftf_avg_reset(luaL_checkudata(L, 1, AVG_MT));
    return 0;
}

static int avg_accumulate(lua_State *L) {
    ftf_avg *a = luaL_checkudata(L, 1, AVG_MT);
    lua_Integer bs = luaL_checkinteger(L, 3);
    luaL_argcheck(L, bs >= 0, 3, "batch size must be non-negative");
    if (lua_type(L, 2) == LUA_TNUMBER)
        ftf_avg_add_number(a, lua_tonumber(L, 2), bs);
    else
        ftl_lcore_check(L, ftf_avg_add(a, ftl_check_tensor(L, 2), bs));
    return 0;
}

static int avg_value(lua_State *L) {
    double v;
    ftl_lcore_check(L, ftf_avg_value(luaL_checkudata(L, 1, AVG_MT), &v));
    if (isnan(v) && ((ftf_avg *)lua_touserdata(L, 1))->count == 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, v);
    return 1;
}

/* core.AvgSmoothLoss([beta = 0.98]): :accumulate(loss), :value(), :reset() */
static int l_smooth(lua_State *L) {
    double beta = luaL_optnumber(L, 1, 0.98);
    ftf_smooth_loss *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    s->beta = beta;
    luaL_setmetatable(L, SMOOTH_MT);
    return 1;
}

static int smooth_gc(lua_State *L) {
    ftf_smooth_loss *s = luaL_checkudata(L, 1, SMOOTH_MT);
    ftf_smooth_reset(s, s->beta);
    return 0;
}

static int smooth_accumulate(lua_State *L) {
    ftl_lcore_check(L, ftf_smooth_add(luaL_checkudata(L, 1, SMOOTH_MT), ftl_check_tensor(L, 2)));
    return 0;
}

static int smooth_value(lua_State *L) {
    ftf_smooth_loss *s = luaL_checkudata(L, 1, SMOOTH_MT);
    double v;
    ftl_lcore_check(L, ftf_smooth_value(s, &v));
    if (s->count == 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, v);
    return 1;
}

/* ---------------------------------------------------------------- registration */

void ftl_lcore_open_metrics(lua_State *L) {
    static const luaL_Reg finder_methods[] = {{"lr", finder_lr},
                                              {"after_batch", finder_after_batch},
                                              {"train_iter", finder_train_iter},
                                              {"num_it", finder_num_it},
                                              {NULL, NULL}};
    ftl_new_class(L, FINDER_MT, finder_methods, NULL);
    static const luaL_Reg avg_methods[] = {
        {"accumulate", avg_accumulate}, {"value", avg_value}, {"reset", avg_gc}, {NULL, NULL}};
    static const luaL_Reg avg_meta[] = {{"__gc", avg_gc}, {"__close", avg_gc}, {NULL, NULL}};
    ftl_new_class(L, AVG_MT, avg_methods, avg_meta);
    static const luaL_Reg smooth_methods[] = {{"accumulate", smooth_accumulate},
                                              {"value", smooth_value},
                                              {"reset", smooth_gc},
                                              {NULL, NULL}};
    static const luaL_Reg smooth_meta[] = {
        {"__gc", smooth_gc}, {"__close", smooth_gc}, {NULL, NULL}};
    ftl_new_class(L, SMOOTH_MT, smooth_methods, smooth_meta);
    static const luaL_Reg funcs[] = {{"LRFinder", l_lr_finder},
                                     {"lr_suggestions", l_lr_suggestions},
                                     {"accuracy", l_accuracy},
                                     {"error_rate", l_error_rate},
                                     {"top_k_accuracy", l_top_k_accuracy},
                                     {"label_smoothing_ce", l_label_smoothing_ce},
                                     {"cross_entropy", l_cross_entropy},
                                     {"nll_loss", l_nll_loss},
                                     {"AvgMetric", l_avg},
                                     {"AvgLoss", l_avg},
                                     {"AvgSmoothLoss", l_smooth},
                                     {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
}
