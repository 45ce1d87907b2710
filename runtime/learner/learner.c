/* learner.c: the Learner's training loop in C (fastai's Learner.fit, callbacks) and the Lua class
 * "ftlua.LearnerCore" behind ft.Learner. See learner.h for the split with the Lua half.
 *
 * One batch, as fastai's _do_one_batch: pred = model(x); loss = loss_func(pred, y);
 * loss.backward(); opt.step(); opt.zero_grad(). Hypers come from the schedule at fastai's
 * pct_train before the batch; the smoothed loss (beta 0.98) is updated after it. Validation
 * runs in eval mode without autograd and keeps sample-weighted means.
 *
 * Everything the loop owns (batch tensors, schedules, accumulators, snapshots) lives in a
 * fit_state userdata whose __gc frees it, so even an unexpected Lua error cannot leak it; the
 * loop itself never raises: failures are written to fs->err, the loop unwinds, frees, and only
 * then raises the Lua error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/data.h"
#include "dist/dist.h"
#include "learner/learner.h"
#include "learner/lr_find.h"
#include "learner/metrics.h"
#include "learner/progress.h"
#include "learner/schedule.h"
#include "base/hooks.h"

#define CORE_MT "ftlua.LearnerCore"
#define FIT_MT "ftlua.FitState"
#define PRED_MT "ftlua.PredState"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- small containers */

static int dvec_push(ftl_dvec *d, double x) {
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 256;
        double *v = realloc(d->v, cap * sizeof *v);
        if (!v) return -1;
        d->v = v;
        d->cap = cap;
    }
    d->v[d->n++] = x;
    return 0;
}

static void dvec_free(ftl_dvec *d) {
    free(d->v);
    memset(d, 0, sizeof *d);
}

static void rec_reset(ftl_recorder *r) {
    r->lrs.n = r->moms.n = r->losses.n = r->iters.n = r->values.n = 0;
}

/* ---------------------------------------------------------------- parameter groups */

typedef struct {
    ft_tensor **t;
    int *group, *is_norm, *is_bias;
    int n, cap, cur_group;
    int failed;
} plist;

static void plist_visit(void *ud, const char *name, ftm_slot *s, ftm_module *owner, int is_buffer) {
    (void)name, (void)is_buffer;
    plist *p = ud;
    if (!s->t || p->failed) return;
    for (int i = 0; i < p->n; i++)
        if (p->t[i] == s->t) return; /* a module shared by two parents: once */
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 64;
        ft_tensor **t = realloc(p->t, sizeof *t * cap);
        if (t) p->t = t;
        int *g = realloc(p->group, sizeof *g * cap);
        if (g) p->group = g;
        int *a = realloc(p->is_norm, sizeof *a * cap);
        if (a) p->is_norm = a;
        int *b = realloc(p->is_bias, sizeof *b * cap);
        if (b) p->is_bias = b;
        if (!t || !g || !a || !b) {
            p->failed = 1;
            return;
        }
        p->cap = cap;
    }
    p->t[p->n] = s->t;
    p->group[p->n] = p->cur_group;
    p->is_norm[p->n] = owner->kind == FTM_BATCHNORM;
    p->is_bias[p->n] = !strcmp(s->name, "bias");
    p->n++;
}

static void plist_free(plist *p) {
    free(p->t);
    free(p->group);
    free(p->is_norm);
    free(p->is_bias);
    memset(p, 0, sizeof *p);
}

/* The parameters of one group's child path, in that group. */
static void collect_path(ftm_module *sub, const char *path, int group, void *ud) {
    plist *p = ud;
    p->cur_group = group;
    ftm_walk(sub, path, 1, 0, plist_visit, p);
}

/* The parameters of m by group, following m->split; with no split, one group. Returns the group
 * count, or -1 with err. */
static int collect_groups(ftm_module *m, plist *p, char *err, size_t errlen) {
    int ng = ftm_each_group_path(m, collect_path, p, err, errlen);
    if (ng > 0 && p->failed) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return ng;
}

/* fastai's create_opt: Adam or SGD (kind, momentum, l2_wd: see optimizer.h) over the splitter's
 * groups, no wd on norm params and biases, norm params forced trainable when frozen (train_bn). */
static ftl_adam *make_opt(ftm_module *m, ftl_opt_kind kind, int momentum, int l2_wd, const ftl_adam_hypers *h,
                          int train_bn, int *n_groups, char *err, size_t errlen) {
    plist p = {0};
    int ng = collect_groups(m, &p, err, errlen);
    ftl_adam *o = ng <= 0 ? NULL : kind == FTL_OPT_SGD ? new_ftl_sgd(momentum, l2_wd) : new_ftl_adam();
    if (o) o->l2_wd = l2_wd;
    if (ng > 0 && !o) snprintf(err, errlen, "out of memory");
    for (int g = 0; o && g < ng; g++) {
        ft_tensor **ts = malloc(sizeof *ts * (size_t)(p.n + 1));
        int k = 0;
        for (int i = 0; ts && i < p.n; i++)
            if (p.group[i] == g) ts[k++] = p.t[i];
        int first = o->n_params;
        ft_status st = ts ? ftl_adam_add_group(o, ts, k, h) : FT_ERR_OOM;
        free(ts);
        if (st != FT_OK) {
            snprintf(err, errlen, "optimizer: %s", ts ? ftl_learn_error() : "out of memory");
            free_ftl_adam(o);
            o = NULL;
            break;
        }
        for (int i = 0, j = first; i < p.n; i++)
            if (p.group[i] == g) {
                o->params[j].do_wd = !(p.is_norm[i] || p.is_bias[i]);
                o->params[j].force_train = train_bn && p.is_norm[i];
                j++;
            }
    }
    plist_free(&p);
    *n_groups = ng;
    return o;
}

/* Every parameter and buffer of the model (what lr_find snapshots). */
static int collect_state(ftm_module *m, plist *p) {
    ftm_walk(m, "", 1, 1, plist_visit, p);
    return p->failed ? -1 : 0;
}

/* The group this learner trains over, or NULL (one process, or no learn:to_distributed()). */
static ft_dist *dist_of(const ftl_learner *ln) { return ln->dist ? ftl_dist_group() : NULL; }

/* ---------------------------------------------------------------- the core userdata */

typedef struct {
    ftl_learner *ln;
} core_box;

static ftl_learner *check_core(lua_State *L, int idx) {
    core_box *b = luaL_checkudata(L, idx, CORE_MT);
    if (!b->ln) luaL_argerror(L, idx, "attempt to use a freed learner");
    return b->ln;
}

static void free_learner(lua_State *L, ftl_learner *ln) {
    if (!ln) return;
    free_ftl_adam(ln->opt);
    if (ln->model) ftm_release(L, ln->model);
    luaL_unref(L, LUA_REGISTRYINDEX, ln->loss_ref);
    for (int i = 0; i < ln->n_metrics; i++) luaL_unref(L, LUA_REGISTRYINDEX, ln->metrics[i].ref);
    dvec_free(&ln->rec.lrs);
    dvec_free(&ln->rec.moms);
    dvec_free(&ln->rec.losses);
    dvec_free(&ln->rec.iters);
    dvec_free(&ln->rec.values);
    free(ln);
}

static int core_gc(lua_State *L) {
    core_box *b = luaL_checkudata(L, 1, CORE_MT);
    free_learner(L, b->ln);
    b->ln = NULL;
    return 0;
}

static double opt_num(lua_State *L, int t, const char *k, double d) {
    double v = d;
    if (lua_getfield(L, t, k) != LUA_TNIL) v = luaL_checknumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static int opt_int(lua_State *L, int t, const char *k, int d) {
    int v = d;
    if (lua_getfield(L, t, k) != LUA_TNIL) v = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Sets loss and metrics from opts (a table at t): loss = "cross_entropy" | "label_smoothing" |
 * function, ls_eps; metrics = list of {kind = "error_rate"|"accuracy"|"top_k_accuracy"|"lua",
 * k =, fn =, name =}. */
static void set_loss_metrics(lua_State *L, ftl_learner *ln, int t) {
    int lt = lua_getfield(L, t, "loss");
    if (lt == LUA_TFUNCTION) {
        luaL_unref(L, LUA_REGISTRYINDEX, ln->loss_ref);
        ln->loss_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        ln->loss = FTL_LOSS_LUA;
    } else {
        const char *s = lt == LUA_TNIL ? "cross_entropy" : luaL_checkstring(L, -1);
        if (!strcmp(s, "cross_entropy")) ln->loss = FTL_LOSS_CE;
        else if (!strcmp(s, "label_smoothing")) ln->loss = FTL_LOSS_LS;
        else luaL_error(L, "Learner: unknown loss '%s'", s);
        lua_pop(L, 1);
    }
    ln->ls_eps = opt_num(L, t, "ls_eps", 0.1);
    if (lua_getfield(L, t, "metrics") == LUA_TTABLE) {
        int mt = lua_gettop(L);
        int n = (int)luaL_len(L, mt);
        if (n > FTL_MAX_METRICS) luaL_error(L, "Learner: at most %d metrics", FTL_MAX_METRICS);
        for (int i = 0; i < ln->n_metrics; i++) luaL_unref(L, LUA_REGISTRYINDEX, ln->metrics[i].ref);
        ln->n_metrics = 0;
        for (int i = 1; i <= n; i++) {
            lua_geti(L, mt, i);
            int e = lua_gettop(L);
            luaL_checktype(L, e, LUA_TTABLE);
            ftl_metric met = {.ref = LUA_NOREF};
            lua_getfield(L, e, "kind");
            const char *k = luaL_checkstring(L, -1);
            if (!strcmp(k, "error_rate")) met.kind = FTL_MET_ERROR_RATE;
            else if (!strcmp(k, "accuracy")) met.kind = FTL_MET_ACCURACY;
            else if (!strcmp(k, "top_k_accuracy")) met.kind = FTL_MET_TOP_K;
            else met.kind = FTL_MET_LUA;
            lua_pop(L, 1);
            met.k = opt_int(L, e, "k", 5);
            lua_getfield(L, e, "name");
            snprintf(met.name, sizeof met.name, "%s", luaL_optstring(L, -1, k));
            lua_pop(L, 1);
            if (met.kind == FTL_MET_LUA) {
                lua_getfield(L, e, "fn");
                luaL_checktype(L, -1, LUA_TFUNCTION);
                met.ref = luaL_ref(L, LUA_REGISTRYINDEX);
            }
            ln->metrics[ln->n_metrics++] = met;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* core.new(model, {lr, wd, train_bn, loss, ls_eps, metrics}) -> core */
static int l_core_new(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    core_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->ln = NULL;
    luaL_setmetatable(L, CORE_MT);
    ftl_learner *ln = calloc(1, sizeof *ln);
    if (!ln) return luaL_error(L, "Learner: out of memory");
    ln->loss_ref = LUA_NOREF;
    ftm_retain(m);
    ln->model = m;
    b->ln = ln; /* owned by the userdata from here on */
    /* opts.opt: "Adam" (default) or "SGD", with opt_func's mom, sqr_mom, eps, decouple_wd */
    lua_getfield(L, 2, "opt");
    const char *kname = luaL_optstring(L, -1, "Adam");
    if (strcmp(kname, "Adam") && strcmp(kname, "SGD"))
        return luaL_error(L, "Learner: unknown optimizer '%s' (Adam or SGD)", kname);
    ftl_opt_kind kind = strcmp(kname, "SGD") ? FTL_OPT_ADAM : FTL_OPT_SGD;
    lua_pop(L, 1);
    ftl_adam_hypers h = kind == FTL_OPT_SGD ? ftl_sgd_defaults() : ftl_adam_defaults();
    h.lr = opt_num(L, 2, "lr", h.lr);
    h.wd = opt_num(L, 2, "wd", h.wd);
    h.mom = opt_num(L, 2, "mom", h.mom);
    h.sqr_mom = opt_num(L, 2, "sqr_mom", h.sqr_mom);
    h.eps = opt_num(L, 2, "eps", h.eps);
    lua_getfield(L, 2, "train_bn");
    int train_bn = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_getfield(L, 2, "decouple_wd");
    int l2_wd = !lua_isnil(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 2);
    char err[512];
    ln->opt = make_opt(m, kind, h.mom != 0, l2_wd, &h, train_bn, &ln->n_groups, err, sizeof err);
    if (!ln->opt) return luaL_error(L, "Learner: %s", err);
    ln->loss_scale = 65536.0;
    set_loss_metrics(L, ln, 2);
    return 1;
}

static int l_core_set_loss_metrics(lua_State *L) {
    ftl_learner *ln = check_core(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    set_loss_metrics(L, ln, 2);
    return 0;
}

static int l_core_n_groups(lua_State *L) {
    lua_pushinteger(L, check_core(L, 1)->n_groups);
    return 1;
}

/* core:freeze_to(n): fastai's Learner.freeze_to (n < 0 counts from the end); clears the
 * optimizer state. Returns fastai's frozen_idx. */
static int l_core_freeze_to(lua_State *L) {
    ftl_learner *ln = check_core(L, 1);
    int n = (int)luaL_checkinteger(L, 2), idx = 0;
    ft_status st = ftl_adam_freeze_to(ln->opt, n, &idx);
    if (st != FT_OK) return luaL_error(L, "freeze_to: %s", ftl_learn_error());
    ftl_adam_clear_state(ln->opt);
    if (idx >= ln->n_groups) {
        char msg[128];
        snprintf(msg, sizeof msg, "Freezing %d groups; model has %d; whole model is frozen.", idx,
                 ln->n_groups);
        ftl_model_warn(L, msg);
    }
    lua_pushinteger(L, idx);
    return 1;
}

/* core:opt_kind() -> "Adam" or "SGD" */
static int l_core_opt_kind(lua_State *L) {
    lua_pushstring(L, ftl_opt_kind_name(check_core(L, 1)->opt->kind));
    return 1;
}

static int l_core_hypers(lua_State *L) {
    ftl_learner *ln = check_core(L, 1);
    lua_createtable(L, ln->n_groups, 0);
    for (int g = 0; g < ln->n_groups; g++) {
        lua_createtable(L, 0, FTL_NHYPERS);
        for (int k = 0; k < FTL_NHYPERS; k++) {
            lua_pushnumber(L, ftl_adam_get_hyper(ln->opt, g, (ftl_hyper)k));
            lua_setfield(L, -2, ftl_hyper_name((ftl_hyper)k));
        }
        lua_rawseti(L, -2, g + 1);
    }
    return 1;
}

/* core:set_hyper(name, {per group} | number) */
static int l_core_set_hyper(lua_State *L) {
    ftl_learner *ln = check_core(L, 1);
    int k = ftl_hyper_from_name(luaL_checkstring(L, 2));
    if (k < 0) return luaL_argerror(L, 2, "unknown hyper-parameter");
    double *v = lua_newuserdatauv(L, sizeof(double) * (size_t)ln->n_groups, 0);
    for (int g = 0; g < ln->n_groups; g++) {
        if (lua_istable(L, 3)) {
            lua_geti(L, 3, g + 1);
            v[g] = luaL_checknumber(L, -1);
            lua_pop(L, 1);
        } else {
            v[g] = luaL_checknumber(L, 3);
        }
    }
    ftl_adam_set_hyper(ln->opt, (ftl_hyper)k, v);
    return 0;
}

/* core:set_amp("off"|"bf16"|"fp16"), core:set_channels_last(bool) */
static int l_core_set_amp(lua_State *L) {
    ftl_learner *ln = check_core(L, 1);
    static const char *const names[] = {"off", "bf16", "fp16", NULL};
    ln->amp = (ftl_amp)luaL_checkoption(L, 2, "off", names);
    ln->loss_scale = 65536.0;
    ln->good_steps = 0;
    return 0;
}

/* core:set_dist(on): train data-parallel over ft.dist's group. Turning it on gives every rank
 * rank 0's weights and buffers, so the ranks start identical. */
static int l_core_set_dist(lua_State *L) {
    ftl_learner *ln = check_core(L, 1);
    ln->dist = lua_toboolean(L, 2);
    ft_dist *d = dist_of(ln);
    if (!d) return 0;
    plist p = {0};
    if (collect_state(ln->model, &p)) {
        plist_free(&p);
        return luaL_error(L, "to_distributed: out of memory");
    }
    ft_status st = ft_dist_broadcast(d, p.t, p.n, 0);
    plist_free(&p);
    ftl_check(L, st, "to_distributed");
    return 0;
}

static int l_core_set_channels_last(lua_State *L) {
    check_core(L, 1)->channels_last = lua_toboolean(L, 2);
    return 0;
}

/* core:opt_state() -> {["<i>.grad_avg"] = t, ["<i>.sqr_avg"] = t, ["<i>.step"] = t} (i 1-based,
 * over all params), for learn:save. Tensors are clones. */
static int l_core_opt_state(lua_State *L) {
    ftl_learner *ln = check_core(L, 1);
    lua_newtable(L);
    for (int i = 0; i < ln->opt->n_params; i++) {
        ftl_adam_param *q = &ln->opt->params[i];
        char key[64];
        ft_tensor *c = NULL;
        if (q->grad_avg) {
            ftl_check(L, ft_clone(q->grad_avg, &c), "opt_state");
            ftl_push_tensor(L, c);
            snprintf(key, sizeof key, "%d.grad_avg", i + 1);
            lua_setfield(L, -2, key);
        }
        if (q->sqr_avg) {
            ftl_check(L, ft_clone(q->sqr_avg, &c), "opt_state");
            ftl_push_tensor(L, c);
            snprintf(key, sizeof key, "%d.sqr_avg", i + 1);
            lua_setfield(L, -2, key);
        }
        int64_t shape[1] = {1};
        double step = (double)q->step;
        ftl_check(L, ft_from_data(&step, FT_FLOAT64, shape, 1, &c), "opt_state");
        ftl_push_tensor(L, c);
        snprintf(key, sizeof key, "%d.step", i + 1);
        lua_setfield(L, -2, key);
    }
    for (int g = 0; g < ln->n_groups; g++) {
        double hv[FTL_NHYPERS];
        for (int k = 0; k < FTL_NHYPERS; k++) hv[k] = ftl_adam_get_hyper(ln->opt, g, (ftl_hyper)k);
        int64_t shape[1] = {FTL_NHYPERS};
        ft_tensor *c = NULL;
        ftl_check(L, ft_from_data(hv, FT_FLOAT64, shape, 1, &c), "opt_state");
        ftl_push_tensor(L, c);
        char key[64];
        snprintf(key, sizeof key, "group%d.hypers", g + 1);
        lua_setfield(L, -2, key);
    }
    return 1;
}

/* core:set_opt_state(t): the inverse of opt_state. The tensors are cloned onto each param's
 * device. Errors name the first entry that does not fit. */
static int l_core_set_opt_state(lua_State *L) {
    ftl_learner *ln = check_core(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    ftl_adam *o = ln->opt;
    for (int i = 0; i < o->n_params; i++) {
        char key[64];
        snprintf(key, sizeof key, "%d.step", i + 1);
        if (lua_getfield(L, 2, key) == LUA_TNIL)
            return luaL_error(L, "load: the optimizer state has no entry '%s' (a different model?)", key);
        double step = 0;
        ftl_check(L, ft_item(ftl_check_tensor(L, -1), &step), "load");
        lua_pop(L, 1);
        ft_tensor *ga = NULL, *sa = NULL;
        for (int w = 0; w < 2; w++) {
            snprintf(key, sizeof key, w ? "%d.sqr_avg" : "%d.grad_avg", i + 1);
            if (lua_getfield(L, 2, key) != LUA_TNIL) {
                ft_tensor *src = ftl_check_tensor(L, -1), *c = NULL;
                ft_status st = ft_numel(src) == ft_numel(o->params[i].p)
                                   ? ft_to(src, ft_get_dtype(o->params[i].p), ft_device(o->params[i].p), &c)
                                   : FT_ERR;
                ft_tensor *v = NULL;
                if (st == FT_OK) {
                    int64_t shape[FT_MAX_DIMS];
                    int nd = ft_dim(o->params[i].p);
                    for (int d = 0; d < nd; d++) shape[d] = ft_size(o->params[i].p, d);
                    st = ft_reshape(c, shape, nd, &v);
                    ft_free(c);
                }
                if (st != FT_OK) {
                    ft_free(ga);
                    return luaL_error(L, "load: optimizer entry '%s' does not fit its parameter", key);
                }
                if (w) sa = v;
                else ga = v;
            }
            lua_pop(L, 1);
        }
        ftl_adam_param *q = &o->params[i];
        ft_free(q->grad_avg);
        ft_free(q->sqr_avg);
        q->grad_avg = ga;
        q->sqr_avg = sa;
        q->step = (int64_t)step;
    }
    for (int g = 0; g < ln->n_groups; g++) {
        char key[64];
        snprintf(key, sizeof key, "group%d.hypers", g + 1);
        if (lua_getfield(L, 2, key) != LUA_TNIL) {
            double hv[FTL_NHYPERS];
            ft_tensor *t = ftl_check_tensor(L, -1);
            if (ft_numel(t) != FTL_NHYPERS) return luaL_error(L, "load: bad '%s'", key);
            ftl_check(L, ft_copy_to_doubles(t, hv, FTL_NHYPERS), "load");
            for (int k = 0; k < FTL_NHYPERS; k++) {
                double *vals = lua_newuserdatauv(L, sizeof(double) * (size_t)ln->n_groups, 0);
                for (int j = 0; j < ln->n_groups; j++) vals[j] = ftl_adam_get_hyper(o, j, (ftl_hyper)k);
                vals[g] = hv[k];
                ftl_adam_set_hyper(o, (ftl_hyper)k, vals);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* ---------------------------------------------------------------- the fit state */

enum {
    EV_BEFORE_FIT = 0, EV_BEFORE_EPOCH, EV_BEFORE_TRAIN, EV_BEFORE_BATCH, EV_AFTER_LOSS,
    EV_AFTER_BATCH, EV_AFTER_TRAIN, EV_BEFORE_VALIDATE, EV_AFTER_VALIDATE, EV_AFTER_EPOCH,
    EV_AFTER_FIT, NEV
};
static const char *const EV_NAMES[NEV] = {
    "before_fit", "before_epoch", "before_train", "before_batch", "after_loss", "after_batch",
    "after_train", "before_validate", "after_validate", "after_epoch", "after_fit"};

/* What a step of the loop says to do next. */
enum { GO = 0, CANCEL_BATCH, CANCEL_TRAIN, CANCEL_VALID, CANCEL_EPOCH, CANCEL_FIT, FAIL };

typedef struct {
    ftl_learner *ln;
    ft_tensor *x, *y, *pred, *loss;
    ftl_sched *lr_s, *mom_s;
    ftl_smooth_loss smooth;
    ftl_avg vloss, vmet[FTL_MAX_METRICS];
    ftl_tensor_snapshot *wsnap;
    ftl_adam_snapshot *osnap;
    ft_tensor **state; /* lr_find: every param and buffer (borrowed from the model) */
    int n_state;
    ftl_loader *running;
    ftl_pbar bar;
    int bar_on;
    int grad_off; /* autograd was turned off by us */
    ftl_loader *sharded[2]; /* data parallel: loaders given this rank's shard for the fit */
    ft_dist_reducer *reducer; /* data parallel: all-reduce overlapped with backward, or NULL */
    char err[2048];
} fit_state;

static void fs_batch_free(fit_state *fs) {
    ft_free(fs->x);
    ft_free(fs->y);
    ft_free(fs->pred);
    ft_free(fs->loss);
    fs->x = fs->y = fs->pred = fs->loss = NULL;
}

static void fs_clear(fit_state *fs) {
    fs_batch_free(fs);
    if (fs->running) ftl_loader_stop(fs->running);
    fs->running = NULL;
    if (fs->bar_on) ftl_pbar_finish(&fs->bar);
    fs->bar_on = 0;
    free_ftl_sched(fs->lr_s);
    free_ftl_sched(fs->mom_s);
    fs->lr_s = fs->mom_s = NULL;
    ftl_smooth_reset(&fs->smooth, 0.98);
    ftl_avg_reset(&fs->vloss);
    for (int i = 0; i < FTL_MAX_METRICS; i++) ftl_avg_reset(&fs->vmet[i]);
    free_ftl_tensor_snapshot(fs->wsnap);
    free_ftl_adam_snapshot(fs->osnap);
    fs->wsnap = NULL;
    fs->osnap = NULL;
    free(fs->state);
    fs->state = NULL;
    if (fs->grad_off) ft_set_grad_enabled(1);
    fs->grad_off = 0;
    for (int i = 0; i < 2; i++) {
        if (fs->sharded[i]) ftl_loader_set_shard(fs->sharded[i], FTL_SHARD_NONE, 0, 1);
        fs->sharded[i] = NULL;
    }
    free_ft_dist_reducer(fs->reducer);
    fs->reducer = NULL;
}

static int fs_gc(lua_State *L) {
    fs_clear(luaL_checkudata(L, 1, FIT_MT));
    return 0;
}

static fit_state *new_fit_state(lua_State *L, ftl_learner *ln) {
    fit_state *fs = lua_newuserdatauv(L, sizeof *fs, 0);
    memset(fs, 0, sizeof *fs);
    fs->ln = ln;
    fs->smooth.beta = 0.98;
    luaL_setmetatable(L, FIT_MT);
    return fs;
}

__attribute__((format(printf, 2, 0))) static int failf(fit_state *fs, const char *fmt, const char *a, const char *b) {
    snprintf(fs->err, sizeof fs->err, fmt, a, b);
    return FAIL;
}

static int shim_fail(fit_state *fs, const char *what) {
    return failf(fs, "%s: %s", what, ft_last_error());
}

static int learn_fail(fit_state *fs, const char *what) {
    return failf(fs, "%s: %s", what, ftl_learn_error());
}

/* The next batch of dl into fs->x / fs->y, laid out channels-last when the learner asks for it.
 * Returns 1 for a batch, 0 at the end of the epoch, FAIL (message in fs->err) on an error.
 * need_y names the phase that needs labels ("training", "validation"), or is NULL. */
static int next_batch(fit_state *fs, const ftl_learner *ln, ftl_loader *dl, const char *need_y) {
    char err[512];
    int got = ftl_loader_next(dl, &fs->x, &fs->y, err, sizeof err);
    if (got < 0) return failf(fs, "loader: %s", err, "");
    if (got == 0) return 0;
    if (need_y && !fs->y) return failf(fs, "%s needs labels", need_y, "");
    if (ln->channels_last) {
        ft_tensor *c = NULL;
        if (ft_contiguous_channels_last(fs->x, &c) != FT_OK) return shim_fail(fs, "channels_last");
        ft_free(fs->x);
        fs->x = c;
    }
    return 1;
}

/* ---------------------------------------------------------------- Lua calls (protected) */

/* The stack of a running fit (absolute indices). */
typedef struct {
    int learn, cbs, fs;
    int has[NEV];
} fit_lua;

static void set_num(lua_State *L, int t, const char *k, double v) {
    lua_pushnumber(L, v);
    lua_setfield(L, t, k);
}

/* Counters (epoch, iter, ...) are Lua integers: CSVLogger and users print them as "0", not "0.0". */
static void set_int(lua_State *L, int t, const char *k, int64_t v) {
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, t, k);
}

/* learn.<k> = a new Lua tensor sharing h (the loop keeps its own handle). */
static int set_tensor(lua_State *L, int t, const char *k, const ft_tensor *h) {
    ft_tensor *c = NULL;
    if (!h || ft_shallow_copy(h, &c) != FT_OK) return -1;
    ftl_push_tensor(L, c);
    lua_setfield(L, t, k);
    return 0;
}

/* Calls cb[ev](cb, learn) for every callback that has it. A returned "cancel_batch",
 * "cancel_train", "cancel_valid", "cancel_epoch" or "cancel_fit" is obeyed (like fastai's
 * Cancel*Exception); an error stops the fit, naming the callback. */
static int run_event(lua_State *L, fit_state *fs, fit_lua *fl, int ev) {
    if (!fl->has[ev]) return GO;
    int result = GO, n = (int)luaL_len(L, fl->cbs);
    for (int i = 1; i <= n && result != FAIL; i++) {
        lua_geti(L, fl->cbs, i);
        int cb = lua_gettop(L);
        if (lua_getfield(L, cb, EV_NAMES[ev]) != LUA_TFUNCTION) {
            lua_settop(L, cb - 1);
            continue;
        }
        lua_pushvalue(L, cb);
        lua_pushvalue(L, fl->learn);
        if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
            const char *msg = lua_tostring(L, -1);
            lua_getfield(L, cb, "name");
            char name[128];
            snprintf(name, sizeof name, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
            snprintf(fs->err, sizeof fs->err, "callback '%s' failed in %s: %s", name, EV_NAMES[ev],
                     msg ? msg : "(error object is not a string)");
            result = FAIL;
        } else if (lua_type(L, -1) == LUA_TSTRING) {
            const char *s = lua_tostring(L, -1);
            int r = !strcmp(s, "cancel_batch") ? CANCEL_BATCH
                  : !strcmp(s, "cancel_train") ? CANCEL_TRAIN
                  : !strcmp(s, "cancel_valid") ? CANCEL_VALID
                  : !strcmp(s, "cancel_epoch") ? CANCEL_EPOCH
                  : !strcmp(s, "cancel_fit")   ? CANCEL_FIT : GO;
            if (r > result) result = r;
        }
        lua_settop(L, cb - 1);
    }
    return result;
}

/* ---------------------------------------------------------------- data parallel */

/* After backward: every rank's gradients, and its batch loss, become their mean over the
 * global batch, sum_r(n_r * g_r) / sum_r(n_r) with n_r the rank's items: what one process's
 * mean loss over the whole batch gives. fs->loss becomes that (detached) global loss, so the
 * smoothed loss, the recorder and lr_find's stop agree on every rank. */
static int dist_reduce_grads(fit_state *fs, ft_dist *d) {
    ftl_adam *o = fs->ln->opt;
    ft_tensor **ts = calloc((size_t)o->n_params + 1, sizeof *ts);
    if (!ts) return failf(fs, "all_reduce: out of memory", "", "");
    int n = 0, r = GO;
    ft_tensor *det = NULL, *loss = NULL;
    ft_status st = ft_detach(fs->loss, &det);
    if (st == FT_OK) st = ft_clone(det, &loss);
    ft_free(det);
    if (st == FT_OK && fs->reducer) { /* the buckets went out during backward */
        free(ts);
        if (ft_dist_reducer_finish(fs->reducer, loss, NULL) != FT_OK) {
            ft_free(loss);
            return shim_fail(fs, "data parallel step");
        }
        ft_free(fs->loss);
        fs->loss = loss;
        return GO;
    }
    for (int i = 0; st == FT_OK && i < o->n_params; i++) {
        ft_tensor *g = NULL;
        st = ft_grad(o->params[i].p, &g);
        if (g) ts[n++] = g;
    }
    if (st != FT_OK) r = shim_fail(fs, "all_reduce");
    else {
        ts[n] = loss;
        if (ft_dist_all_reduce_mean(d, ts, n + 1, (double)ft_size(fs->y, 0), 0, NULL) != FT_OK)
            r = shim_fail(fs, "data parallel step");
    }
    for (int i = 0; i < n; i++) ft_free(ts[i]);
    free(ts);
    if (r == GO) {
        ft_free(fs->loss);
        fs->loss = loss;
    } else {
        ft_free(loss);
    }
    return r;
}

/* After validation: the sums and counts of the loss and every metric, added over the ranks
 * (each validated its own batches), so every rank reports the same numbers. */
static int dist_reduce_avgs(fit_state *fs, ft_dist *d) {
    int k = 1 + fs->ln->n_metrics;
    double v[2 * (FTL_MAX_METRICS + 1)];
    for (int i = 0; i < k; i++) {
        ftl_avg *a = i == 0 ? &fs->vloss : &fs->vmet[i - 1];
        double t = 0;
        if (a->total && ft_item(a->total, &t) != FT_OK) return shim_fail(fs, "valid");
        v[2 * i] = a->dtotal + t;
        v[2 * i + 1] = (double)a->count;
    }
    if (ft_dist_all_reduce_doubles(d, v, 2 * k, FT_DIST_SUM) != FT_OK) return shim_fail(fs, "valid");
    for (int i = 0; i < k; i++) {
        ftl_avg *a = i == 0 ? &fs->vloss : &fs->vmet[i - 1];
        ftl_avg_reset(a);
        a->dtotal = v[2 * i];
        a->count = (int64_t)v[2 * i + 1];
    }
    return GO;
}

/* fit's data-parallel setup: the ranks agree on rank 0's shuffle seed, the train loader gives
 * this rank its part of every global batch, the valid loader every world-th batch. */
static int dist_shard(fit_state *fs, ft_dist *d, ftl_loader *train, ftl_loader *valid) {
    int rank = ft_dist_rank(d), world = ft_dist_world(d);
    if (ftl_loader_config_of(train)->bs < world) {
        snprintf(fs->err, sizeof fs->err, "fit: the batch size (%d) is smaller than the number of ranks (%d)",
                 ftl_loader_config_of(train)->bs, world);
        return FAIL;
    }
    uint64_t seed = ftl_loader_config_of(train)->seed;
    if (ft_dist_broadcast_bytes(d, &seed, sizeof seed, 0) != FT_OK) return shim_fail(fs, "fit");
    ftl_loader_set_seed(train, seed);
    ftl_loader_set_shard(train, FTL_SHARD_SPLIT, rank, world);
    fs->sharded[0] = train;
    if (valid && valid != train) {
        ftl_loader_set_shard(valid, FTL_SHARD_STRIDE, rank, world);
        fs->sharded[1] = valid;
    }
    /* Overlap the all-reduce with backward over the parameters this fit trains (freezing
     * changes them between fits), unless FTLUA_DIST_OVERLAP=0. FTLUA_DIST_BUCKET_MB sets the
     * bucket size (25, DDP's). */
    const char *ov = getenv("FTLUA_DIST_OVERLAP");
    if (ov && !strcmp(ov, "0")) return GO;
    const char *mb = getenv("FTLUA_DIST_BUCKET_MB");
    int64_t bucket = mb && atof(mb) > 0 ? (int64_t)(atof(mb) * 1048576.0) : 0;
    ftl_adam *o = fs->ln->opt;
    ft_tensor **ps = calloc((size_t)o->n_params + 1, sizeof *ps);
    if (!ps) return failf(fs, "fit: out of memory", "", "");
    int n = 0;
    for (int i = 0; i < o->n_params; i++)
        if (ft_requires_grad(o->params[i].p)) ps[n++] = o->params[i].p;
    ft_status st = new_ft_dist_reducer(d, ps, n, bucket, &fs->reducer);
    free(ps);
    return st == FT_OK ? GO : shim_fail(fs, "fit");
}

/* ---------------------------------------------------------------- one batch */

static int forward(lua_State *L, fit_state *fs, const ft_tensor *x, ft_tensor **out) {
    ftl_learner *ln = fs->ln;
    ftm_ctx c;
    memset(&c, 0, sizeof c);
    c.L = L;
    ft_autocast_state saved;
    int amp = ln->amp != FTL_AMP_OFF;
    if (amp && ft_autocast_enter(ln->amp == FTL_AMP_FP16, ln->amp == FTL_AMP_FP16 ? FT_FLOAT16 : FT_BFLOAT16,
                                 &saved) != FT_OK)
        return shim_fail(fs, "autocast");
    ft_tensor *r = NULL;
    ft_status st = ftm_forward(&c, ln->model, x, &r);
    if (amp) ft_autocast_exit(&saved);
    if (st != FT_OK) {
        if (c.lua_error) {
            snprintf(fs->err, sizeof fs->err, "model forward: %s", lua_tostring(L, -1));
            lua_pop(L, 1);
        } else {
            snprintf(fs->err, sizeof fs->err, "model forward%s%s: %s", c.where[0] ? " at " : "",
                     c.where, c.msg);
        }
        return FAIL;
    }
    if (ft_get_dtype(r) != FT_FLOAT32) { /* fastai casts the prediction to float for the loss */
        ft_tensor *f = NULL;
        st = ft_to(r, FT_FLOAT32, ft_device(r), &f);
        ft_free(r);
        if (st != FT_OK) return shim_fail(fs, "model output");
        r = f;
    }
    *out = r;
    return GO;
}

/* y + 1: the shim's 0-based classes to Lua's 1-based ones, as a Lua tensor on the stack. */
static int push_targets(lua_State *L, fit_state *fs, const ft_tensor *y) {
    ft_tensor *t = NULL;
    if (ft_binary_scalar(FT_ADD, y, 1, &t) != FT_OK) return shim_fail(fs, "targets");
    ftl_push_tensor(L, t);
    return GO;
}

/* loss_func(pred, y) with the given reduction ("mean" for training). */
static int compute_loss(lua_State *L, fit_state *fs, const ft_tensor *pred, const ft_tensor *y,
                        ft_reduction red, ft_tensor **out) {
    ftl_learner *ln = fs->ln;
    ft_status st;
    switch (ln->loss) {
    case FTL_LOSS_CE:
        st = ft_cross_entropy(pred, y, NULL, red, 0.0, out);
        return st == FT_OK ? GO : shim_fail(fs, "loss");
    case FTL_LOSS_LS:
        st = ftl_label_smoothing_ce(pred, y, ln->ls_eps, red, out);
        return st == FT_OK ? GO : learn_fail(fs, "loss");
    default: {
        int top = lua_gettop(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, ln->loss_ref);
        ft_tensor *p = NULL;
        if (ft_shallow_copy(pred, &p) != FT_OK) return shim_fail(fs, "loss");
        ftl_push_tensor(L, p);
        if (push_targets(L, fs, y) != GO) return lua_settop(L, top), FAIL;
        lua_pushstring(L, red == FT_REDUCE_NONE ? "none" : red == FT_REDUCE_SUM ? "sum" : "mean");
        if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
            snprintf(fs->err, sizeof fs->err, "loss function failed: %s", lua_tostring(L, -1));
            lua_settop(L, top);
            return FAIL;
        }
        ft_tensor *t = ftl_to_tensor(L, -1);
        int r = GO;
        if (!t) r = failf(fs, "loss function returned a %s, expected a tensor", luaL_typename(L, -1), "");
        else if (ft_shallow_copy(t, out) != FT_OK) r = shim_fail(fs, "loss");
        lua_settop(L, top);
        return r;
    }
    }
}

/* fp16 on CUDA: a step only when every gradient is finite; the scale halves on overflow and
 * doubles after 2000 good steps (torch's GradScaler defaults). Returns 1 when the step should
 * be skipped. Gradients are unscaled in place. */
static int unscale_grads(fit_state *fs, int *skip) {
    ftl_adam *o = fs->ln->opt;
    int finite = 1;
    for (int i = 0; i < o->n_params && finite; i++) {
        ft_tensor *g = NULL;
        if (ft_grad(o->params[i].p, &g) != FT_OK) return shim_fail(fs, "fp16");
        if (!g) continue;
        ft_tensor *ok = NULL, *all = NULL;
        ft_status st = ft_binary_scalar_(FT_MUL, g, 1.0 / fs->ln->loss_scale);
        if (st == FT_OK) st = ft_unary(FT_ISFINITE, g, &ok);
        if (st == FT_OK) st = ft_reduce_all(FT_ALL, ok, &all);
        double v = 1;
        if (st == FT_OK) st = ft_item(all, &v);
        ft_free(g);
        ft_free(ok);
        ft_free(all);
        if (st != FT_OK) return shim_fail(fs, "fp16");
        finite = v != 0;
    }
    ftl_learner *ln = fs->ln;
    if (!finite) {
        ln->loss_scale /= 2;
        ln->good_steps = 0;
    } else if (++ln->good_steps >= 2000) {
        ln->loss_scale *= 2;
        ln->good_steps = 0;
    }
    *skip = !finite;
    return GO;
}

/* ---------------------------------------------------------------- schedules of a fit */

typedef enum { SCHED_CONST = 0, SCHED_ONE_CYCLE, SCHED_FLAT_COS, SCHED_SGDR, SCHED_LR_FIND } sched_kind;

typedef struct {
    sched_kind kind;
    double *lrs; /* n_groups, from spec.lrs */
    ftl_lr_finder finder;
    int no_logging;
} fit_spec;

static void read_lrs(lua_State *L, int spec, ftl_learner *ln, double *lrs) {
    if (lua_getfield(L, spec, "lrs") != LUA_TTABLE) luaL_error(L, "fit: spec.lrs must be a table");
    if ((int)luaL_len(L, -1) != ln->n_groups)
        luaL_error(L, "fit: %d learning rates for %d parameter groups", (int)luaL_len(L, -1), ln->n_groups);
    for (int g = 0; g < ln->n_groups; g++) {
        lua_geti(L, -1, g + 1);
        lrs[g] = luaL_checknumber(L, -1);
        if (!(lrs[g] > 0) || isinf(lrs[g]))
            luaL_error(L, "fit: the learning rate must be a positive finite number, got %f", lrs[g]);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Builds fs's schedules from the spec table; may raise (nothing is owned yet but fs, which
 * is Lua's). Returns the number of epochs (sgdr computes it). */
static int build_spec(lua_State *L, int spec, fit_state *fs, fit_spec *sp, int n_epoch) {
    ftl_learner *ln = fs->ln;
    static const char *const kinds[] = {"const", "one_cycle", "flat_cos", "sgdr", "lr_find", NULL};
    lua_getfield(L, spec, "kind");
    sp->kind = (sched_kind)luaL_checkoption(L, -1, "const", kinds);
    lua_pop(L, 1);
    lua_getfield(L, spec, "no_logging");
    sp->no_logging = lua_toboolean(L, -1);
    lua_pop(L, 1);
    sp->lrs = lua_newuserdatauv(L, sizeof(double) * (size_t)ln->n_groups, 0);
    lua_setfield(L, spec, "_lrs_scratch"); /* kept alive by the spec table */
    if (sp->kind == SCHED_LR_FIND) {
        if (ftl_lr_finder_init(&sp->finder, opt_num(L, spec, "start_lr", 1e-7), opt_num(L, spec, "end_lr", 10),
                               opt_int(L, spec, "num_it", 100), 1))
            luaL_error(L, "lr_find: %s", ftl_learn_error());
        lua_getfield(L, spec, "stop_div");
        sp->finder.stop_div = lua_isnil(L, -1) || lua_toboolean(L, -1);
        lua_pop(L, 1);
        return n_epoch;
    }
    read_lrs(L, spec, ln, sp->lrs);
    if (sp->kind == SCHED_ONE_CYCLE) {
        ftl_one_cycle_opts o = ftl_one_cycle_defaults();
        o.div = opt_num(L, spec, "div", o.div);
        o.div_final = opt_num(L, spec, "div_final", o.div_final);
        o.pct_start = opt_num(L, spec, "pct_start", o.pct_start);
        if (lua_getfield(L, spec, "moms") == LUA_TTABLE)
            for (int i = 0; i < 3; i++) {
                lua_geti(L, -1, i + 1);
                o.moms[i] = luaL_checknumber(L, -1);
                lua_pop(L, 1);
            }
        lua_pop(L, 1);
        if (!(o.pct_start >= 0 && o.pct_start <= 1))
            luaL_error(L, "fit_one_cycle: pct_start must be in [0, 1], got %f", o.pct_start);
        fs->lr_s = new_ftl_one_cycle_lr(sp->lrs, ln->n_groups, &o);
        if (fs->lr_s) fs->mom_s = new_ftl_one_cycle_mom(&o);
        if (!fs->lr_s || !fs->mom_s) luaL_error(L, "fit_one_cycle: %s", ftl_learn_error());
    } else if (sp->kind == SCHED_FLAT_COS) {
        fs->lr_s = new_ftl_flat_cos_lr(sp->lrs, ln->n_groups, opt_num(L, spec, "div_final", 1e5),
                                       opt_num(L, spec, "pct_start", 0.75));
        if (!fs->lr_s) luaL_error(L, "fit_flat_cos: %s", ftl_learn_error());
    } else if (sp->kind == SCHED_SGDR) {
        fs->lr_s = new_ftl_sgdr_lr(sp->lrs, ln->n_groups, opt_int(L, spec, "n_cycles", 1),
                                   opt_int(L, spec, "cycle_len", 1), opt_int(L, spec, "cycle_mult", 2),
                                   &n_epoch);
        if (!fs->lr_s) luaL_error(L, "fit_sgdr: %s", ftl_learn_error());
    }
    return n_epoch;
}

/* ---------------------------------------------------------------- the table */

typedef struct {
    const char *names[FTL_MAX_METRICS + 4];
    int k;
} columns;

static void make_columns(ftl_learner *ln, columns *c) {
    c->k = 0;
    c->names[c->k++] = "epoch";
    c->names[c->k++] = "train_loss";
    c->names[c->k++] = "valid_loss";
    for (int i = 0; i < ln->n_metrics; i++) c->names[c->k++] = ln->metrics[i].name;
    c->names[c->k++] = "time";
}

/* ---------------------------------------------------------------- validation */

static int add_metrics(lua_State *L, fit_state *fs, const ft_tensor *pred, const ft_tensor *y, int64_t bs) {
    ftl_learner *ln = fs->ln;
    for (int i = 0; i < ln->n_metrics; i++) {
        ftl_metric *m = &ln->metrics[i];
        ft_tensor *v = NULL;
        ft_status st = FT_OK;
        if (m->kind == FTL_MET_ERROR_RATE) st = ftl_error_rate(pred, y, &v);
        else if (m->kind == FTL_MET_ACCURACY) st = ftl_accuracy(pred, y, &v);
        else if (m->kind == FTL_MET_TOP_K) st = ftl_top_k_accuracy(pred, y, m->k, &v);
        else {
            int top = lua_gettop(L);
            lua_rawgeti(L, LUA_REGISTRYINDEX, m->ref);
            ft_tensor *p = NULL;
            if (ft_shallow_copy(pred, &p) != FT_OK) return shim_fail(fs, "metric");
            ftl_push_tensor(L, p);
            if (push_targets(L, fs, y) != GO) return lua_settop(L, top), FAIL;
            if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
                snprintf(fs->err, sizeof fs->err, "metric '%s' failed: %s", m->name, lua_tostring(L, -1));
                lua_settop(L, top);
                return FAIL;
            }
            ft_tensor *t = ftl_to_tensor(L, -1);
            if (t) st = ftl_avg_add(&fs->vmet[i], t, bs);
            else if (lua_type(L, -1) == LUA_TNUMBER) ftl_avg_add_number(&fs->vmet[i], lua_tonumber(L, -1), bs);
            else {
                snprintf(fs->err, sizeof fs->err, "metric '%s' returned a %s, expected a number or a tensor",
                         m->name, luaL_typename(L, -1));
                lua_settop(L, top);
                return FAIL;
            }
            lua_settop(L, top);
            if (st != FT_OK) return failf(fs, "metric '%s': %s", m->name, ftl_learn_error());
            continue;
        }
        if (st == FT_OK) st = ftl_avg_add(&fs->vmet[i], v, bs);
        ft_free(v);
        if (st != FT_OK) return failf(fs, "metric '%s': %s", m->name, ftl_learn_error());
    }
    return GO;
}

static int validate(lua_State *L, fit_state *fs, fit_lua *fl, ftl_loader *valid, int epoch, int n_epoch) {
    ftl_learner *ln = fs->ln;
    ftl_avg_reset(&fs->vloss);
    for (int i = 0; i < FTL_MAX_METRICS; i++) ftl_avg_reset(&fs->vmet[i]);
    int r = run_event(L, fs, fl, EV_BEFORE_VALIDATE);
    if (r == FAIL || r >= CANCEL_EPOCH) return r;
    if (r == CANCEL_VALID) return GO;
    ftm_set_training(ln->model, 0);
    char err[512];
    if (ftl_loader_start(valid, 0, -1, err, sizeof err)) return failf(fs, "valid loader: %s", err, "");
    fs->running = valid;
    int64_t total = ftl_loader_len(valid), v = 0;
    if (!fl->has[EV_BEFORE_BATCH] && ftl_dist_is_main()) { /* a valid bar, as fastprogress draws one */
        ftl_pbar_start(&fs->bar, stdout, epoch, n_epoch, (int)total, now_s());
        fs->bar_on = 1;
    }
    ft_set_grad_enabled(0);
    fs->grad_off = 1;
    r = GO;
    for (;;) {
        int got = next_batch(fs, ln, valid, "validation");
        if (got == 0) break;
        if (got != 1) {
            r = got;
            break;
        }
        int64_t bs = ft_size(fs->y, 0);
        if ((r = forward(L, fs, fs->x, &fs->pred)) != GO) break;
        if ((r = compute_loss(L, fs, fs->pred, fs->y, FT_REDUCE_MEAN, &fs->loss)) != GO) break;
        if (ftl_avg_add(&fs->vloss, fs->loss, bs) != FT_OK) { r = learn_fail(fs, "valid loss"); break; }
        if ((r = add_metrics(L, fs, fs->pred, fs->y, bs)) != GO) break;
        fs_batch_free(fs);
        if (fs->bar_on) ftl_pbar_update(&fs->bar, (int)++v, now_s());
        if (ftl_interrupted()) break;
    }
    fs_batch_free(fs);
    ft_set_grad_enabled(1);
    fs->grad_off = 0;
    ftl_loader_stop(valid);
    fs->running = NULL;
    if (fs->bar_on) ftl_pbar_finish(&fs->bar);
    fs->bar_on = 0;
    if (r == GO && dist_of(ln)) r = dist_reduce_avgs(fs, dist_of(ln));
    if (r != GO) return r;
    return run_event(L, fs, fl, EV_AFTER_VALIDATE);
}

/* ---------------------------------------------------------------- fit */

static int rec_push_groups(ftl_dvec *d, const double *v, int n) {
    for (int i = 0; i < n; i++)
        if (dvec_push(d, v[i])) return -1;
    return 0;
}

/* Copies the recorder to learn.recorder: lrs, moms (the last group's, per batch, as fastai's
 * Recorder), hps = {lr = {{per group}...}, mom = {...}}, losses, iters, values, metric_names. */
static void push_recorder(lua_State *L, ftl_learner *ln, int learn) {
    ftl_recorder *r = &ln->rec;
    int ng = ln->n_groups;
    size_t nb = r->losses.n;
    lua_createtable(L, 0, 8);
    for (int w = 0; w < 2; w++) {
        ftl_dvec *d = w ? &r->moms : &r->lrs;
        lua_createtable(L, (int)nb, 0);
        for (size_t i = 0; i < nb && (i + 1) * ng <= d->n; i++) {
            lua_pushnumber(L, d->v[i * ng + ng - 1]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, w ? "moms" : "lrs");
    }
    lua_createtable(L, 0, 2);
    for (int w = 0; w < 2; w++) {
        ftl_dvec *d = w ? &r->moms : &r->lrs;
        lua_createtable(L, (int)nb, 0);
        for (size_t i = 0; i < nb && (i + 1) * ng <= d->n; i++) {
            lua_createtable(L, ng, 0);
            for (int g = 0; g < ng; g++) {
                lua_pushnumber(L, d->v[i * ng + g]);
                lua_rawseti(L, -2, g + 1);
            }
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, w ? "mom" : "lr");
    }
    lua_setfield(L, -2, "hps");
    lua_createtable(L, (int)nb, 0);
    for (size_t i = 0; i < nb; i++) {
        lua_pushnumber(L, r->losses.v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "losses");
    lua_createtable(L, (int)r->iters.n, 0);
    for (size_t i = 0; i < r->iters.n; i++) {
        lua_pushinteger(L, (lua_Integer)r->iters.v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "iters");
    int nv = 2 + ln->n_metrics;
    lua_createtable(L, (int)(r->values.n / nv), 0);
    for (size_t e = 0; (e + 1) * nv <= r->values.n; e++) {
        lua_createtable(L, nv, 0);
        for (int j = 0; j < nv; j++) {
            lua_pushnumber(L, r->values.v[e * nv + j]);
            lua_rawseti(L, -2, j + 1);
        }
        lua_rawseti(L, -2, (lua_Integer)e + 1);
    }
    lua_setfield(L, -2, "values");
    lua_createtable(L, nv, 0);
    lua_pushstring(L, "train_loss");
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, "valid_loss");
    lua_rawseti(L, -2, 2);
    for (int i = 0; i < ln->n_metrics; i++) {
        lua_pushstring(L, ln->metrics[i].name);
        lua_rawseti(L, -2, i + 3);
    }
    lua_setfield(L, -2, "metric_names");
    lua_setfield(L, learn, "recorder");
}

/* The training part of one epoch. */
static int train_epoch(lua_State *L, fit_state *fs, fit_lua *fl, fit_spec *sp, ftl_loader *train,
                       int epoch, int n_epoch, int64_t *train_iter) {
    ftl_learner *ln = fs->ln;
    int ng = ln->n_groups;
    double lrs[64], moms[64];
    if (ng > 64) return failf(fs, "at most 64 parameter groups", "", "");
    int r = run_event(L, fs, fl, EV_BEFORE_TRAIN);
    if (r == FAIL || r >= CANCEL_EPOCH) return r;
    if (r == CANCEL_TRAIN) return GO;
    ftm_set_training(ln->model, 1);
    char err[512];
    if (ftl_loader_start(train, ln->data_epoch++, -1, err, sizeof err))
        return failf(fs, "train loader: %s", err, "");
    fs->running = train;
    int n_iter = (int)ftl_loader_len(train);
    if (ftl_dist_is_main()) { /* only rank 0 prints */
        ftl_pbar_start(&fs->bar, stdout, epoch, n_epoch, n_iter, now_s());
        fs->bar_on = 1;
    }
    r = GO;
    for (int it = 0;; it++) {
        int got = next_batch(fs, ln, train, "training");
        if (got == 0) break;
        if (got != 1) {
            r = got;
            break;
        }
        /* hypers for this batch (ParamScheduler/LRFinder before_batch) */
        double pos = ftl_train_pos(epoch, it, n_iter, n_epoch);
        if (sp->kind == SCHED_LR_FIND) {
            double lr = ftl_lr_finder_lr(&sp->finder);
            for (int g = 0; g < ng; g++) lrs[g] = lr;
            ftl_adam_set_hyper(ln->opt, FTL_LR, lrs);
        } else if (fs->lr_s) {
            ftl_sched_at(fs->lr_s, pos, lrs);
            ftl_adam_set_hyper(ln->opt, FTL_LR, lrs);
        }
        if (fs->mom_s) {
            double m[64];
            ftl_sched_at(fs->mom_s, pos, m);
            for (int g = 0; g < ng; g++) moms[g] = fs->mom_s->n_groups == 1 ? m[0] : m[g];
            ftl_adam_set_hyper(ln->opt, FTL_MOM, moms);
        }
        if (fl->has[EV_BEFORE_BATCH] || fl->has[EV_AFTER_LOSS] || fl->has[EV_AFTER_BATCH]) {
            set_int(L, fl->learn, "epoch", epoch);
            set_int(L, fl->learn, "iter", it);
            set_int(L, fl->learn, "n_iter", n_iter);
            set_num(L, fl->learn, "pct_train", pos);
            set_int(L, fl->learn, "train_iter", *train_iter);
            lua_pushboolean(L, 1);
            lua_setfield(L, fl->learn, "training");
            if (set_tensor(L, fl->learn, "xb", fs->x) || set_tensor(L, fl->learn, "yb", fs->y)) {
                r = shim_fail(fs, "batch");
                break;
            }
        }
        int c = run_event(L, fs, fl, EV_BEFORE_BATCH);
        if (c == FAIL || c >= CANCEL_TRAIN) { r = c; break; }
        if (c != CANCEL_BATCH) {
            if ((r = forward(L, fs, fs->x, &fs->pred)) != GO) break;
            if ((r = compute_loss(L, fs, fs->pred, fs->y, FT_REDUCE_MEAN, &fs->loss)) != GO) break;
            if (fl->has[EV_AFTER_LOSS]) {
                if (set_tensor(L, fl->learn, "loss", fs->loss) || set_tensor(L, fl->learn, "pred", fs->pred)) {
                    r = shim_fail(fs, "batch");
                    break;
                }
            }
            c = run_event(L, fs, fl, EV_AFTER_LOSS);
            if (c == FAIL || c >= CANCEL_TRAIN) { r = c; break; }
        }
        if (c != CANCEL_BATCH) {
            ft_status st;
            int skip = 0;
            if (fs->reducer && ft_dist_reducer_prepare(fs->reducer, (double)ft_size(fs->y, 0)) != FT_OK) {
                r = shim_fail(fs, "data parallel step");
                break;
            }
            if (ln->amp == FTL_AMP_FP16) {
                ft_tensor *scaled = NULL;
                st = ft_binary_scalar(FT_MUL, fs->loss, ln->loss_scale, &scaled);
                if (st == FT_OK) st = ft_backward(scaled, NULL, 0);
                ft_free(scaled);
                if (st != FT_OK) { r = shim_fail(fs, "backward"); break; }
                /* reduced before the check, so every rank skips the same steps */
                if (dist_of(ln) && (r = dist_reduce_grads(fs, dist_of(ln))) != GO) break;
                if ((r = unscale_grads(fs, &skip)) != GO) break;
            } else {
                if ((st = ft_backward(fs->loss, NULL, 0)) != FT_OK) {
                    r = shim_fail(fs, "backward");
                    break;
                }
                if (dist_of(ln) && (r = dist_reduce_grads(fs, dist_of(ln))) != GO) break;
            }
            if (!skip && ftl_adam_step(ln->opt) != FT_OK) { r = learn_fail(fs, "optimizer step"); break; }
            if (ftl_adam_zero_grad(ln->opt, 1) != FT_OK) { r = learn_fail(fs, "zero_grad"); break; }
            /* Recorder.after_batch: smoothed loss and the hypers of this batch */
            double sl = NAN;
            if (ftl_smooth_add(&fs->smooth, fs->loss) != FT_OK || ftl_smooth_value(&fs->smooth, &sl) != FT_OK) {
                r = learn_fail(fs, "smooth loss");
                break;
            }
            for (int g = 0; g < ng; g++) {
                lrs[g] = ftl_adam_get_hyper(ln->opt, g, FTL_LR);
                moms[g] = ftl_adam_get_hyper(ln->opt, g, FTL_MOM);
            }
            if (rec_push_groups(&ln->rec.lrs, lrs, ng) || rec_push_groups(&ln->rec.moms, moms, ng) ||
                dvec_push(&ln->rec.losses, sl)) {
                r = failf(fs, "recorder: out of memory", "", "");
                break;
            }
            if (fs->bar_on) ftl_pbar_comment(&fs->bar, sl);
            (*train_iter)++;
            if (fl->has[EV_AFTER_BATCH]) set_num(L, fl->learn, "smooth_loss", sl);
            if (sp->kind == SCHED_LR_FIND && ftl_lr_finder_after_batch(&sp->finder, sl)) {
                fs_batch_free(fs);
                if (fs->bar_on) ftl_pbar_update(&fs->bar, it + 1, now_s());
                r = CANCEL_FIT;
                break;
            }
        }
        c = run_event(L, fs, fl, EV_AFTER_BATCH);
        fs_batch_free(fs);
        if (fs->bar_on) ftl_pbar_update(&fs->bar, it + 1, now_s());
        if (c == FAIL || c >= CANCEL_TRAIN) { r = c; break; }
        if (ftl_interrupted()) {
            r = CANCEL_FIT;
            snprintf(fs->err, sizeof fs->err, "interrupted!");
            break;
        }
    }
    fs_batch_free(fs);
    ftl_loader_stop(train);
    fs->running = NULL;
    if (fs->bar_on) ftl_pbar_finish(&fs->bar);
    fs->bar_on = 0;
    if (r == CANCEL_TRAIN) r = GO;
    if (r != GO) return r;
    return run_event(L, fs, fl, EV_AFTER_TRAIN);
}

/* core:fit(learn, n_epoch, spec, cbs, train_loader, valid_loader)
 * spec: {kind = "const"|"one_cycle"|"flat_cos"|"sgdr"|"lr_find", lrs = {per group}, wd =,
 *        div, div_final, pct_start, moms, n_cycles, cycle_len, cycle_mult,
 *        start_lr, end_lr, num_it, stop_div, no_logging}
 * Prints fastai's table, fills learn.recorder; raises after a clean stop when something failed
 * (a callback, a metric, libtorch) or on Ctrl-C ("interrupted!"). */
static int l_core_fit(lua_State *L) {
    ftl_learner *ln = check_core(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int n_epoch = (int)luaL_checkinteger(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    luaL_checktype(L, 5, LUA_TTABLE);
    ftl_loader *train = ftl_check_loader(L, 6);
    ftl_loader *valid = lua_isnoneornil(L, 7) ? NULL : ftl_check_loader(L, 7);
    lua_settop(L, 7);
    int64_t n_iter = ftl_loader_len(train);
    if (n_iter <= 0)
        return luaL_error(L, "fit: the training set is empty (%d items, batch size %d%s)",
                          (int)ftl_loader_items(train), ftl_loader_config_of(train)->bs,
                          ftl_loader_config_of(train)->drop_last ? ", drop_last" : "");
    fit_lua fl = {.learn = 2, .cbs = 5};
    for (int i = 1; i <= (int)luaL_len(L, 5); i++) {
        lua_geti(L, 5, i);
        if (!lua_istable(L, -1)) return luaL_error(L, "fit: callback %d is not a table", i);
        for (int e = 0; e < NEV; e++) {
            if (lua_getfield(L, -1, EV_NAMES[e]) == LUA_TFUNCTION) fl.has[e] = 1;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    fit_state *fs = new_fit_state(L, ln);
    fl.fs = lua_gettop(L);
    if (dist_of(ln)) {
        if (dist_shard(fs, dist_of(ln), train, valid) != GO) return luaL_error(L, "%s", fs->err);
        n_iter = ftl_loader_len(train);
    }
    fit_spec sp;
    memset(&sp, 0, sizeof sp);
    n_epoch = build_spec(L, 4, fs, &sp, n_epoch);
    if (sp.kind == SCHED_LR_FIND) n_epoch = ftl_lr_find_n_epoch(opt_int(L, 4, "num_it", 100), (int)n_iter);
    if (n_epoch < 1) return luaL_error(L, "fit: n_epoch must be >= 1, got %d", n_epoch);
    /* fit's own hypers: wd when given, a constant lr for plain fit */
    double *tmp = lua_newuserdatauv(L, sizeof(double) * (size_t)ln->n_groups, 0); /* stays on the stack */
    if (lua_getfield(L, 4, "wd") != LUA_TNIL) {
        double wd = luaL_checknumber(L, -1);
        for (int g = 0; g < ln->n_groups; g++) tmp[g] = wd;
        ftl_adam_set_hyper(ln->opt, FTL_WD, tmp);
    }
    lua_pop(L, 1);
    if (sp.kind != SCHED_LR_FIND) ftl_adam_set_hyper(ln->opt, FTL_LR, sp.lrs);

    /* lr_find: snapshot the weights, buffers and optimizer state in memory */
    if (sp.kind == SCHED_LR_FIND) {
        plist p = {0};
        if (collect_state(ln->model, &p)) {
            plist_free(&p);
            return luaL_error(L, "lr_find: out of memory");
        }
        fs->state = p.t;
        fs->n_state = p.n;
        p.t = NULL;
        plist_free(&p);
        if (new_ftl_tensor_snapshot(fs->state, fs->n_state, &fs->wsnap) != FT_OK ||
            new_ftl_adam_snapshot(ln->opt, &fs->osnap) != FT_OK)
            return luaL_error(L, "lr_find: %s", ftl_learn_error()); /* fs's __gc frees the rest */
    }

    columns cols;
    make_columns(ln, &cols);
    char line[4096];
    int main_rank = ftl_dist_is_main(); /* data parallel: only rank 0 prints */
    if (!sp.no_logging && main_rank) {
        ftl_table_header(line, sizeof line, cols.names, cols.k);
        ftl_table_emit(line, cols.names, NULL, cols.k);
    }
    rec_reset(&ln->rec);
    ftl_smooth_reset(&fs->smooth, 0.98);
    set_int(L, 2, "n_epoch", n_epoch);
    int64_t train_iter = 0;
    int r = run_event(L, fs, &fl, EV_BEFORE_FIT);
    for (int epoch = 0; epoch < n_epoch && r != FAIL && r != CANCEL_FIT; epoch++) {
        double t0 = now_s();
        set_int(L, 2, "epoch", epoch);
        r = run_event(L, fs, &fl, EV_BEFORE_EPOCH);
        if (r == FAIL || r == CANCEL_FIT) break;
        if (r != CANCEL_EPOCH) r = train_epoch(L, fs, &fl, &sp, train, epoch, n_epoch, &train_iter);
        if (r == FAIL || r == CANCEL_FIT) break;
        if (dvec_push(&ln->rec.iters, (double)train_iter)) {
            r = failf(fs, "recorder: out of memory", "", "");
            break;
        }
        if (r != CANCEL_EPOCH && sp.kind != SCHED_LR_FIND && valid) {
            r = validate(L, fs, &fl, valid, epoch, n_epoch);
            if (r == FAIL || r == CANCEL_FIT) break;
            if (ftl_interrupted()) {
                snprintf(fs->err, sizeof fs->err, "interrupted!");
                r = CANCEL_FIT;
            }
        }
        if (sp.kind == SCHED_LR_FIND) continue;
        /* the epoch's row: train_loss (smoothed), valid_loss, metrics, time */
        int nv = 2 + ln->n_metrics;
        double vals[FTL_MAX_METRICS + 2];
        ftl_smooth_value(&fs->smooth, &vals[0]);
        if (ftl_avg_value(&fs->vloss, &vals[1]) != FT_OK) vals[1] = NAN;
        for (int i = 0; i < ln->n_metrics; i++)
            if (ftl_avg_value(&fs->vmet[i], &vals[2 + i]) != FT_OK) vals[2 + i] = NAN;
        for (int j = 0; j < nv; j++)
            if (dvec_push(&ln->rec.values, vals[j])) {
                r = failf(fs, "recorder: out of memory", "", "");
                break;
            }
        if (r == FAIL) break;
        ftl_cell cells[FTL_MAX_METRICS + 4];
        char tbuf[32];
        cells[0] = (ftl_cell){.kind = FTL_CELL_INT, .i = epoch};
        for (int j = 0; j < nv; j++) cells[1 + j] = (ftl_cell){.kind = FTL_CELL_FLOAT, .f = vals[j]};
        cells[1 + nv] = (ftl_cell){.kind = FTL_CELL_STR, .s = ftl_format_time(now_s() - t0, tbuf)};
        if (!sp.no_logging && main_rank) {
            ftl_table_row(line, sizeof line, cols.names, cells, cols.k);
            ftl_table_emit(line, cols.names, cells, cols.k);
        }
        if (fl.has[EV_AFTER_EPOCH]) {
            lua_createtable(L, nv, 0);
            for (int j = 0; j < nv; j++) {
                lua_pushnumber(L, vals[j]);
                lua_rawseti(L, -2, j + 1);
            }
            lua_setfield(L, 2, "final_record");
            push_recorder(L, ln, 2); /* so callbacks see recorder.values so far */
        }
        int c = run_event(L, fs, &fl, EV_AFTER_EPOCH);
        if (c == FAIL || c == CANCEL_FIT) r = c;
        else if (r != CANCEL_FIT) r = GO;
    }
    int failed = r == FAIL || (r == CANCEL_FIT && fs->err[0]);
    if (!failed) {
        int c = run_event(L, fs, &fl, EV_AFTER_FIT);
        if (c == FAIL) failed = 1;
    }
    /* lr_find's after_fit: zero_grad, then put everything back, bit for bit */
    if (sp.kind == SCHED_LR_FIND) {
        ft_status st = ftl_adam_zero_grad(ln->opt, 1);
        if (st == FT_OK) st = ftl_tensor_snapshot_restore(fs->wsnap, fs->state, fs->n_state);
        if (st == FT_OK) st = ftl_adam_restore(ln->opt, fs->osnap);
        if (st != FT_OK && !failed) {
            snprintf(fs->err, sizeof fs->err, "lr_find: restoring the model: %s", ftl_learn_error());
            failed = 1;
        }
    }
    char msg[sizeof fs->err];
    memcpy(msg, fs->err, sizeof msg);
    fs_clear(fs);
    ftm_set_training(ln->model, 0);
    if (ftl_interrupted()) ftl_interrupt_handled();
    push_recorder(L, ln, 2);
    if (failed) return luaL_error(L, "%s", msg);
    return 0;
}

/* ---------------------------------------------------------------- predictions */

typedef struct {
    ft_tensor **p, **y, **l;
    int n, cap;
    ftl_loader *running;
    int grad_off;
} pred_state;

static void ps_clear(pred_state *ps) {
    for (int i = 0; i < ps->n; i++) {
        ft_free(ps->p[i]);
        ft_free(ps->y[i]);
        ft_free(ps->l[i]);
    }
    free(ps->p);
    free(ps->y);
    free(ps->l);
    ps->p = ps->y = ps->l = NULL;
    ps->n = ps->cap = 0;
    if (ps->running) ftl_loader_stop(ps->running);
    ps->running = NULL;
    if (ps->grad_off) ft_set_grad_enabled(1);
    ps->grad_off = 0;
}

static int ps_gc(lua_State *L) {
    ps_clear(luaL_checkudata(L, 1, PRED_MT));
    return 0;
}

static int ps_push(pred_state *ps, ft_tensor *p, ft_tensor *y, ft_tensor *l) {
    if (ps->n == ps->cap) {
        int cap = ps->cap ? ps->cap * 2 : 32;
        ft_tensor **a = realloc(ps->p, sizeof *a * cap);
        if (a) ps->p = a;
        ft_tensor **b = realloc(ps->y, sizeof *b * cap);
        if (b) ps->y = b;
        ft_tensor **c = realloc(ps->l, sizeof *c * cap);
        if (c) ps->l = c;
        if (!a || !b || !c) return -1;
        ps->cap = cap;
    }
    ps->p[ps->n] = p;
    ps->y[ps->n] = y;
    ps->l[ps->n] = l;
    ps->n++;
    return 0;
}

static ft_status cat_list(ft_tensor **ts, int n, ft_tensor **out) {
    *out = NULL;
    for (int i = 0; i < n; i++)
        if (!ts[i]) return FT_OK;
    if (n == 0) return FT_OK;
    return ft_cat((const ft_tensor *const *)ts, n, 0, out);
}

/* Batch i of a Lua list of batches (the table at idx): {x, y} with 1-based targets, or x alone.
 * Fills fs->x and fs->y (0-based int64) as next_batch does. 1: a batch, 0: the end. */
static int list_batch(lua_State *L, fit_state *fs, const ftl_learner *ln, int idx, lua_Integer i) {
    int top = lua_gettop(L), r = 1;
    int t = lua_geti(L, idx, i);
    if (t == LUA_TNIL) return lua_settop(L, top), 0;
    ft_tensor *x = NULL, *y = NULL;
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)i);
    if (t == LUA_TTABLE) {
        lua_geti(L, -1, 1);
        x = ftl_to_tensor(L, -1);
        if (lua_geti(L, -2, 2) != LUA_TNIL) {
            y = ftl_to_tensor(L, -1);
            if (!y) r = failf(fs, "batch %s: its second element (the targets) is not a tensor", num, "");
        }
    } else {
        x = ftl_to_tensor(L, -1);
    }
    if (r == 1 && !x) r = failf(fs, "batch %s is not {x, y} (tensors) or a tensor x", num, "");
    if (r == 1 && ft_shallow_copy(x, &fs->x) != FT_OK) r = shim_fail(fs, "batch");
    if (r == 1 && y) {
        ft_tensor *z = NULL;
        ft_status st = ft_binary_scalar(FT_SUB, y, 1, &z);
        if (st == FT_OK) st = ft_to(z, FT_INT64, ft_device(z), &fs->y);
        ft_free(z);
        if (st != FT_OK) r = shim_fail(fs, "targets");
    }
    if (r == 1 && ln->channels_last) {
        ft_tensor *c = NULL;
        if (ft_contiguous_channels_last(fs->x, &c) != FT_OK) r = shim_fail(fs, "channels_last");
        else {
            ft_free(fs->x);
            fs->x = c;
        }
    }
    lua_settop(L, top);
    return r;
}

/* core:predict(loader or {{x, y}, ...} [, {with_loss = false, epoch = 0, act = true}]) ->
 * probs [N,C] (CPU float32, softmax of the model's output unless act = false), targets
 * (1-based int64, or nil when the loader has no labels), losses per item (or nil). Eval mode,
 * no autograd. */
static int l_core_predict(lua_State *L) {
    ftl_learner *ln = check_core(L, 1);
    int is_list = lua_type(L, 2) == LUA_TTABLE;
    ftl_loader *dl = is_list ? NULL : ftl_check_loader(L, 2);
    int with_loss = 0, act = 1;
    int64_t epoch = 0;
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "with_loss");
        with_loss = lua_toboolean(L, -1);
        lua_getfield(L, 3, "act");
        act = lua_isnil(L, -1) || lua_toboolean(L, -1);
        lua_pop(L, 2);
        epoch = opt_int(L, 3, "epoch", 0);
    }
    lua_settop(L, 3);
    pred_state *ps = lua_newuserdatauv(L, sizeof *ps, 0);
    memset(ps, 0, sizeof *ps);
    luaL_setmetatable(L, PRED_MT);
    fit_state *fs = new_fit_state(L, ln); /* for forward/loss errors and batch tensors */
    char err[512];
    int r = GO;
    ftm_set_training(ln->model, 0);
    if (dl && ftl_loader_start(dl, epoch, -1, err, sizeof err)) return luaL_error(L, "predict: %s", err);
    ps->running = dl;
    ft_set_grad_enabled(0);
    ps->grad_off = 1;
    for (lua_Integer bi = 1;; bi++) {
        int got = dl ? next_batch(fs, ln, dl, NULL) : list_batch(L, fs, ln, 2, bi);
        if (got == 0) break;
        if (got != 1) {
            r = got;
            break;
        }
        if ((r = forward(L, fs, fs->x, &fs->pred)) != GO) break;
        ft_tensor *l = NULL, *p = NULL, *pc = NULL, *yc = NULL, *lc = NULL;
        if (with_loss && fs->y && (r = compute_loss(L, fs, fs->pred, fs->y, FT_REDUCE_NONE, &l)) != GO) break;
        ft_status st = act ? ft_softmax(fs->pred, 1, &p) : ft_shallow_copy(fs->pred, &p);
        if (st == FT_OK) st = ft_to(p, FT_FLOAT32, FT_CPU, &pc);
        if (st == FT_OK && fs->y) {
            ft_tensor *y1 = NULL;
            st = ft_binary_scalar(FT_ADD, fs->y, 1, &y1);
            if (st == FT_OK) st = ft_to(y1, FT_INT64, FT_CPU, &yc);
            ft_free(y1);
        }
        if (st == FT_OK && l) st = ft_to(l, FT_FLOAT32, FT_CPU, &lc);
        ft_free(p);
        ft_free(l);
        if (st != FT_OK || ps_push(ps, pc, yc, lc)) {
            ft_free(pc);
            ft_free(yc);
            ft_free(lc);
            r = st != FT_OK ? shim_fail(fs, "predict") : failf(fs, "predict: out of memory", "", "");
            break;
        }
        fs_batch_free(fs);
    }
    fs_batch_free(fs);
    if (dl) ftl_loader_stop(dl);
    ps->running = NULL;
    ft_set_grad_enabled(1);
    ps->grad_off = 0;
    if (r != GO) {
        char msg[sizeof fs->err];
        memcpy(msg, fs->err, sizeof msg);
        ps_clear(ps);
        return luaL_error(L, "predict: %s", msg);
    }
    if (ps->n == 0) {
        ps_clear(ps);
        return luaL_error(L, "predict: the loader gave no batch");
    }
    ft_tensor *P = NULL, *Y = NULL, *Lo = NULL;
    ft_status st = cat_list(ps->p, ps->n, &P);
    if (st == FT_OK) st = cat_list(ps->y, ps->n, &Y);
    if (st == FT_OK) st = cat_list(ps->l, ps->n, &Lo);
    ps_clear(ps);
    if (st != FT_OK) {
        ft_free(P);
        ft_free(Y);
        ft_free(Lo);
        return luaL_error(L, "predict: %s", ft_last_error());
    }
    ftl_push_tensor(L, P);
    if (Y) ftl_push_tensor(L, Y);
    else lua_pushnil(L);
    if (Lo) ftl_push_tensor(L, Lo);
    else lua_pushnil(L);
    return 3;
}

/* ---------------------------------------------------------------- registration */

static void new_mt(lua_State *L, const char *name, lua_CFunction gc) {
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
}

/* Pushes the table of the C core: {new = core.new}; cores have the methods below. */
int ftl_learner_core_class(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"fit", l_core_fit},
        {"predict", l_core_predict},
        {"freeze_to", l_core_freeze_to},
        {"n_groups", l_core_n_groups},
        {"hypers", l_core_hypers}, {"opt_kind", l_core_opt_kind},
        {"set_hyper", l_core_set_hyper},
        {"set_amp", l_core_set_amp},
        {"set_channels_last", l_core_set_channels_last},
        {"set_dist", l_core_set_dist},
        {"set_loss_metrics", l_core_set_loss_metrics},
        {"opt_state", l_core_opt_state},
        {"set_opt_state", l_core_set_opt_state},
        {"free", core_gc},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, CORE_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, core_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    new_mt(L, FIT_MT, fs_gc);
    new_mt(L, PRED_MT, ps_gc);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_core_new);
    lua_setfield(L, -2, "new");
    return 1;
}
