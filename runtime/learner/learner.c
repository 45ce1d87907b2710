/* learner.c: the Lua class "ftlua.LearnerCore" behind ft.Learner: construction, loss and
 * metrics, options (amp, channels_last, data parallel), parameter groups and fastai's optimizer
 * over them (freeze_to, hypers, optimizer state). Registers the metatables of the C core; the
 * loop itself is in learner_fit.c and learner_step.c (see learner_internal.h for the map).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "learner/learner_internal.h"

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
static ftf_adam *make_opt(ftm_module *m, ftf_opt_kind kind, int momentum, int l2_wd,
                          const ftf_adam_hypers *h, int train_bn, int *n_groups, char *err,
                          size_t errlen) {
    plist p = {0};
    int ng = collect_groups(m, &p, err, errlen);
    ftf_adam *o = ng <= 0               ? NULL
                  : kind == FTL_OPT_SGD ? new_ftl_sgd(momentum, l2_wd)
                                        : new_ftl_adam();
    if (o) o->l2_wd = l2_wd;
    if (ng > 0 && !o) snprintf(err, errlen, "out of memory");
    for (int g = 0; o && g < ng; g++) {
        ft_tensor **ts = malloc(sizeof *ts * (size_t)(p.n + 1));
        int k = 0;
        for (int i = 0; ts && i < p.n; i++)
            if (p.group[i] == g) ts[k++] = p.t[i];
        int first = o->n_params;
        ft_status st = ts ? ftf_adam_add_group(o, ts, k, h) : FT_ERR_OOM;
        free(ts);
        if (st != FT_OK) {
            snprintf(err, errlen, "optimizer: %s", ts ? ft_last_error() : "out of memory");
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
int ftl_model_state_tensors(ftm_module *m, ft_tensor ***out, int *n) {
    plist p = {0};
    ftm_walk(m, "", 1, 1, plist_visit, &p);
    if (p.failed) {
        plist_free(&p);
        return -1;
    }
    *out = p.t;
    *n = p.n;
    p.t = NULL;
    plist_free(&p);
    return 0;
}

/* ---------------------------------------------------------------- the core userdata */

typedef struct {
    ftl_learner *ln;
} core_box;

ftl_learner *ftl_check_core(lua_State *L, int idx) {
    core_box *b = luaL_checkudata(L, idx, CORE_MT);
    if (!b->ln) luaL_argerror(L, idx, "attempt to use a freed learner");
    return b->ln;
}

/* A learner over m (retained), with no optimizer, loss or metrics yet. NULL when out of memory. */
static ftl_learner *new_learner(ftm_module *m) {
    ftl_learner *ln = calloc(1, sizeof *ln);
    if (!ln) return NULL;
    ln->loss_ref = LUA_NOREF;
    ftm_retain(m);
    ln->model = m;
    return ln;
}

static void free_learner(lua_State *L, ftl_learner *ln) {
    if (!ln) return;
    free_ftl_adam(ln->opt);
    if (ln->model) ftm_release(L, ln->model);
    luaL_unref(L, LUA_REGISTRYINDEX, ln->loss_ref);
    for (int i = 0; i < ln->n_metrics; i++) luaL_unref(L, LUA_REGISTRYINDEX, ln->metrics[i].ref);
    ftl_dvec_free(&ln->rec.lrs);
    ftl_dvec_free(&ln->rec.moms);
    ftl_dvec_free(&ln->rec.losses);
    ftl_dvec_free(&ln->rec.iters);
    ftl_dvec_free(&ln->rec.values);
    free(ln);
}

static int core_gc(lua_State *L) {
    core_box *b = luaL_checkudata(L, 1, CORE_MT);
    free_learner(L, b->ln);
    b->ln = NULL;
    return 0;
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
        if (!strcmp(s, "cross_entropy"))
            ln->loss = FTL_LOSS_CE;
        else if (!strcmp(s, "label_smoothing"))
            ln->loss = FTL_LOSS_LS;
        else
            luaL_error(L, "Learner: unknown loss '%s'", s);
        lua_pop(L, 1);
    }
    ln->ls_eps = ftl_opt_number(L, t, "Learner", "ls_eps", 0.1);
    if (lua_getfield(L, t, "metrics") == LUA_TTABLE) {
        int mt = lua_gettop(L);
        int n = (int)luaL_len(L, mt);
        if (n > FTL_MAX_METRICS) luaL_error(L, "Learner: at most %d metrics", FTL_MAX_METRICS);
        for (int i = 0; i < ln->n_metrics; i++)
            luaL_unref(L, LUA_REGISTRYINDEX, ln->metrics[i].ref);
        ln->n_metrics = 0;
        for (int i = 1; i <= n; i++) {
            lua_geti(L, mt, i);
            int e = lua_gettop(L);
            luaL_checktype(L, e, LUA_TTABLE);
            ftl_metric met = {.ref = LUA_NOREF};
            lua_getfield(L, e, "kind");
            const char *k = luaL_checkstring(L, -1);
            if (!strcmp(k, "error_rate"))
                met.kind = FTL_MET_ERROR_RATE;
            else if (!strcmp(k, "accuracy"))
                met.kind = FTL_MET_ACCURACY;
            else if (!strcmp(k, "top_k_accuracy"))
                met.kind = FTL_MET_TOP_K;
            else
                met.kind = FTL_MET_LUA;
            lua_pop(L, 1);
            met.k = (int)ftl_opt_integer(L, e, "Learner", "k", 5);
            snprintf(met.name, sizeof met.name, "%s", ftl_opt_string(L, e, "Learner", "name", k));
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
    ftl_learner *ln = new_learner(m);
    if (!ln) return luaL_error(L, "Learner: out of memory");
    b->ln = ln; /* owned by the userdata from here on */
    /* opts.opt: "Adam" (default) or "SGD", with opt_func's mom, sqr_mom, eps, decouple_wd */
    static const char *const kinds[] = {"Adam", "SGD", NULL};
    ftf_opt_kind kind = ftl_opt_enum(L, 2, "Learner", "opt", kinds, 0) ? FTL_OPT_SGD : FTL_OPT_ADAM;
    ftf_adam_hypers h = kind == FTL_OPT_SGD ? ftf_sgd_defaults() : ftf_adam_defaults();
    h.lr = ftl_opt_number(L, 2, "Learner", "lr", h.lr);
    h.wd = ftl_opt_number(L, 2, "Learner", "wd", h.wd);
    h.mom = ftl_opt_number(L, 2, "Learner", "mom", h.mom);
    h.sqr_mom = ftl_opt_number(L, 2, "Learner", "sqr_mom", h.sqr_mom);
    h.eps = ftl_opt_number(L, 2, "Learner", "eps", h.eps);
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
    ftl_learner *ln = ftl_check_core(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    set_loss_metrics(L, ln, 2);
    return 0;
}

static int l_core_n_groups(lua_State *L) {
    lua_pushinteger(L, ftl_check_core(L, 1)->n_groups);
    return 1;
}

/* core:freeze_to(n): fastai's Learner.freeze_to (n < 0 counts from the end); clears the
 * optimizer state. Returns fastai's frozen_idx. */
static int l_core_freeze_to(lua_State *L) {
    ftl_learner *ln = ftl_check_core(L, 1);
    int n = (int)luaL_checkinteger(L, 2), idx = 0;
    ft_status st = ftf_adam_freeze_to(ln->opt, n, &idx);
    if (st != FT_OK) return luaL_error(L, "freeze_to: %s", ft_last_error());
    ftf_adam_clear_state(ln->opt);
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
    lua_pushstring(L, ftf_opt_kind_name(ftl_check_core(L, 1)->opt->kind));
    return 1;
}

static int l_core_hypers(lua_State *L) {
    ftl_learner *ln = ftl_check_core(L, 1);
    lua_createtable(L, ln->n_groups, 0);
    for (int g = 0; g < ln->n_groups; g++) {
        lua_createtable(L, 0, FTL_NHYPERS);
        for (int k = 0; k < FTL_NHYPERS; k++) {
            lua_pushnumber(L, ftf_adam_get_hyper(ln->opt, g, (ftf_hyper)k));
            lua_setfield(L, -2, ftf_hyper_name((ftf_hyper)k));
        }
        lua_rawseti(L, -2, g + 1);
    }
    return 1;
}

/* core:set_hyper(name, {per group} | number) */
static int l_core_set_hyper(lua_State *L) {
    ftl_learner *ln = ftl_check_core(L, 1);
    int k = ftf_hyper_from_name(luaL_checkstring(L, 2));
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
    ftf_adam_set_hyper(ln->opt, (ftf_hyper)k, v);
    return 0;
}

/* core:set_amp("off"|"bf16"|"fp16"), core:set_channels_last(bool) */
static int l_core_set_amp(lua_State *L) {
    ftl_learner *ln = ftl_check_core(L, 1);
    static const char *const names[] = {"off", "bf16", "fp16", NULL};
    ln->amp = (ftl_amp)luaL_checkoption(L, 2, "off", names);
    ln->loss_scale = 65536.0;
    ln->good_steps = 0;
    return 0;
}

/* core:set_dist(on): train data-parallel over ft.dist's group. Turning it on gives every rank
 * rank 0's weights and buffers, so the ranks start identical. */
static int l_core_set_dist(lua_State *L) {
    ftl_learner *ln = ftl_check_core(L, 1);
    ln->dist = lua_toboolean(L, 2);
    ft_dist *d = ftl_fit_dist(ln);
    if (!d) return 0;
    ft_tensor **ts = NULL;
    int n = 0;
    if (ftl_model_state_tensors(ln->model, &ts, &n))
        return luaL_error(L, "to_distributed: out of memory");
    ft_status st = ft_dist_broadcast(d, ts, n, 0);
    free(ts);
    ftl_check(L, st, "to_distributed");
    return 0;
}

static int l_core_set_channels_last(lua_State *L) {
    ftl_check_core(L, 1)->channels_last = lua_toboolean(L, 2);
    return 0;
}

/* core:opt_state() -> {["<i>.grad_avg"] = t, ["<i>.sqr_avg"] = t, ["<i>.step"] = t} (i 1-based,
 * over all params), for learn:save. Tensors are clones. */
static int l_core_opt_state(lua_State *L) {
    ftl_learner *ln = ftl_check_core(L, 1);
    lua_newtable(L);
    for (int i = 0; i < ln->opt->n_params; i++) {
        ftf_adam_param *q = &ln->opt->params[i];
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
        for (int k = 0; k < FTL_NHYPERS; k++) hv[k] = ftf_adam_get_hyper(ln->opt, g, (ftf_hyper)k);
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
    ftl_learner *ln = ftl_check_core(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    ftf_adam *o = ln->opt;
    for (int i = 0; i < o->n_params; i++) {
        char key[64];
        snprintf(key, sizeof key, "%d.step", i + 1);
        if (lua_getfield(L, 2, key) == LUA_TNIL)
            return luaL_error(L, "load: the optimizer state has no entry '%s' (a different model?)",
                              key);
        double step = 0;
        ftl_check(L, ft_item(ftl_check_tensor(L, -1), &step), "load");
        lua_pop(L, 1);
        ft_tensor *ga = NULL, *sa = NULL;
        for (int w = 0; w < 2; w++) {
            snprintf(key, sizeof key, w ? "%d.sqr_avg" : "%d.grad_avg", i + 1);
            if (lua_getfield(L, 2, key) != LUA_TNIL) {
                ft_tensor *src = ftl_check_tensor(L, -1), *c = NULL;
                ft_status st =
                    ft_numel(src) == ft_numel(o->params[i].p)
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
                    return luaL_error(L, "load: optimizer entry '%s' does not fit its parameter",
                                      key);
                }
                if (w)
                    sa = v;
                else
                    ga = v;
            }
            lua_pop(L, 1);
        }
        ftf_adam_param *q = &o->params[i];
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
                for (int j = 0; j < ln->n_groups; j++)
                    vals[j] = ftf_adam_get_hyper(o, j, (ftf_hyper)k);
                vals[g] = hv[k];
                ftf_adam_set_hyper(o, (ftf_hyper)k, vals);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* ---------------------------------------------------------------- registration */

/* Pushes the table of the C core: {new = core.new}; cores have the methods below. */
int ftl_learner_core_class(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"fit", ftl_core_fit},
        {"predict", ftl_core_predict},
        {"freeze_to", l_core_freeze_to},
        {"n_groups", l_core_n_groups},
        {"hypers", l_core_hypers},
        {"opt_kind", l_core_opt_kind},
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
    static const luaL_Reg core_meta[] = {{"__gc", core_gc}, {NULL, NULL}};
    ftl_new_class(L, CORE_MT, methods, core_meta);
    static const luaL_Reg fit_meta[] = {
        {"__gc", ftl_fit_state_gc}, {"__close", ftl_fit_state_gc}, {NULL, NULL}};
    ftl_new_class(L, FIT_MT, NULL, fit_meta);
    static const luaL_Reg pred_meta[] = {
        {"__gc", ftl_pred_state_gc}, {"__close", ftl_pred_state_gc}, {NULL, NULL}};
    ftl_new_class(L, PRED_MT, NULL, pred_meta);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_core_new);
    lua_setfield(L, -2, "new");
    return 1;
}
