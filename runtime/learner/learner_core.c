/* learner_core.c: the Lua bindings of the learner's core (entry file of this part of the
 * learner): schedules and the per-group lr rule, fastai's Adam and SGD and state snapshots, the lr
 * finder, metrics and losses, and what a fit prints. `luaopen_ftlua_learner_core` returns
 * the table; the C functions in schedule.h, optimizer.h, lr_find.h, metrics.h and progress.h
 * stay the source of truth (the C training loop calls them directly, no Lua per batch).
 *
 * Conventions: class targets are 1-based in Lua (converted here); parameter indices are
 * 1-based over all groups; fastai's counts (epoch, iter, freeze_to's n) keep fastai's meaning.
 * Every C object lives in a userdata that is created "closed" (NULL) and filled right after,
 * so a Lua error never leaks it; errors are raised only after the C call returned.
 */
#include <math.h>
#include <string.h>

#include "base/clock.h"
#include "ftlua.h"
#include "learner/lr_find.h"
#include "learner/metrics.h"
#include "learner/optimizer.h"
#include "learner/progress.h"
#include "learner/schedule.h"

#define SLICE_MT "ftlua.slice"
#define SCHED_MT "ftlua.Schedule"
#define ADAM_MT "ftlua.Adam"
#define ADAM_SNAP_MT "ftlua.AdamSnapshot"
#define TENSOR_SNAP_MT "ftlua.TensorSnapshot"
#define FINDER_MT "ftlua.LRFinder"
#define AVG_MT "ftlua.AvgMetric"
#define SMOOTH_MT "ftlua.AvgSmoothLoss"
#define PBAR_MT "ftlua.ProgressBar"
#define CSV_MT "ftlua.CSVLogger"

/* ---------------------------------------------------------------- helpers */

/* Raises the learner's last error when st is not FT_OK (only after the C call returned). */
static void check(lua_State *L, ft_status st) {
    if (st != FT_OK) luaL_error(L, "%s", ftl_learn_error());
}

typedef struct {
    void *p;
} box;

static void **new_box(lua_State *L, const char *mt) {
    box *b = lua_newuserdatauv(L, sizeof(box), 0);
    b->p = NULL; /* closed until filled */
    luaL_setmetatable(L, mt);
    return &b->p;
}

static void *check_box(lua_State *L, int idx, const char *mt) {
    box *b = luaL_checkudata(L, idx, mt);
    if (!b->p) luaL_argerror(L, idx, "attempt to use a freed object");
    return b->p;
}

static void new_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc) {
    luaL_newmetatable(L, mt);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    if (gc) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
}

static double opt_number(lua_State *L, int t, const char *key, double dflt) {
    if (lua_isnoneornil(L, t)) return dflt;
    lua_getfield(L, t, key);
    double v = lua_isnil(L, -1) ? dflt : luaL_checknumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static int opt_integer(lua_State *L, int t, const char *key, int dflt) {
    if (lua_isnoneornil(L, t)) return dflt;
    lua_getfield(L, t, key);
    int v = lua_isnil(L, -1) ? dflt : (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

static void push_numbers(lua_State *L, const double *v, int n) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* A scratch array owned by a userdata on the stack (the GC frees it on any error). */
static void *scratch(lua_State *L, size_t bytes) { return lua_newuserdatauv(L, bytes ? bytes : 1, 0); }

static double *number_list(lua_State *L, int idx, int *n, const char *what) {
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    *n = (int)luaL_len(L, idx);
    double *v = scratch(L, sizeof(double) * (size_t)*n);
    for (int i = 0; i < *n; i++) {
        lua_geti(L, idx, i + 1);
        int ok;
        v[i] = lua_tonumberx(L, -1, &ok);
        if (!ok) luaL_error(L, "%s: entry %d is a %s, expected a number", what, i + 1, luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    return v;
}

/* Borrowed handles of the tensors in the list at idx (alive while the list holds them). */
static ft_tensor **tensor_list(lua_State *L, int idx, int *n, const char *what) {
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    *n = (int)luaL_len(L, idx);
    ft_tensor **ts = scratch(L, sizeof(ft_tensor *) * (size_t)*n);
    for (int i = 0; i < *n; i++) {
        lua_geti(L, idx, i + 1);
        ts[i] = ftl_to_tensor(L, -1);
        if (!ts[i]) luaL_error(L, "%s: entry %d is a %s, expected a tensor", what, i + 1, luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    return ts;
}

/* ---------------------------------------------------------------- slices and lr per group */

/* core.slice(lo, hi) or core.slice(hi), like Python's slice: {lo = ..., hi = ...}. */
static int l_slice(lua_State *L) {
    int two = !lua_isnoneornil(L, 2);
    double a = luaL_checknumber(L, 1);
    lua_createtable(L, 0, 2);
    if (two) {
        lua_pushnumber(L, a);
        lua_setfield(L, -2, "lo");
        lua_pushnumber(L, luaL_checknumber(L, 2));
    } else {
        lua_pushnumber(L, a);
    }
    lua_setfield(L, -2, "hi");
    luaL_setmetatable(L, SLICE_MT);
    return 1;
}

static int is_slice(lua_State *L, int idx) {
    if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, SLICE_MT);
    int eq = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return eq;
}

static int l_is_slice(lua_State *L) {
    lua_pushboolean(L, is_slice(L, 1));
    return 1;
}

static int slice_tostring(lua_State *L) {
    lua_getfield(L, 1, "lo");
    lua_getfield(L, 1, "hi");
    if (lua_isnil(L, -2)) lua_pushfstring(L, "slice(%f)", lua_tonumber(L, -1));
    else lua_pushfstring(L, "slice(%f, %f)", lua_tonumber(L, -2), lua_tonumber(L, -1));
    return 1;
}

/* A number, a slice or a list at idx as an lr spec (the list lives in a scratch userdata). */
static void check_lr_spec(lua_State *L, int idx, ftl_lr_spec *spec) {
    memset(spec, 0, sizeof *spec);
    if (lua_type(L, idx) == LUA_TNUMBER) {
        spec->kind = FTL_LR_NUMBER;
        spec->hi = lua_tonumber(L, idx);
    } else if (is_slice(L, idx)) {
        spec->kind = FTL_LR_SLICE;
        lua_getfield(L, idx, "lo");
        spec->has_lo = !lua_isnil(L, -1);
        spec->lo = spec->has_lo ? luaL_checknumber(L, -1) : 0;
        lua_getfield(L, idx, "hi");
        spec->hi = luaL_checknumber(L, -1);
        lua_pop(L, 2);
    } else if (lua_istable(L, idx)) {
        spec->kind = FTL_LR_LIST;
        spec->list = number_list(L, idx, &spec->n, "lr"); /* its scratch stays on the stack */
    } else {
        luaL_typeerror(L, idx, "number, slice or table of numbers");
    }
}

/* The n_groups lrs of the value at idx, validated (errors name the problem). */
static double *lr_values(lua_State *L, int idx, int n_groups) {
    ftl_lr_spec spec;
    int abs_idx = lua_absindex(L, idx);
    check_lr_spec(L, abs_idx, &spec);
    double *out = scratch(L, sizeof(double) * (size_t)(n_groups > 0 ? n_groups : 1));
    if (ftl_lr_per_group(&spec, n_groups, out)) luaL_error(L, "%s", ftl_learn_error());
    return out;
}

/* core.lr_per_group(lr, n_groups) -> {lr per group} */
static int l_lr_per_group(lua_State *L) {
    int n = (int)luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 1, 2, "needs at least one group");
    double *v = lr_values(L, 1, n);
    push_numbers(L, v, n);
    return 1;
}

static int l_even_mults(lua_State *L) {
    double a = luaL_checknumber(L, 1), b = luaL_checknumber(L, 2);
    int n = (int)luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 1, 3, "needs n >= 1");
    double *v = scratch(L, sizeof(double) * (size_t)n);
    ftl_even_mults(a, b, n, v);
    push_numbers(L, v, n);
    return 1;
}

static int l_sched_cos(lua_State *L) {
    lua_pushnumber(L, ftl_sched_cos(luaL_checknumber(L, 1), luaL_checknumber(L, 2), luaL_checknumber(L, 3)));
    return 1;
}

/* core.train_pos(epoch, iter, n_iter, n_epoch): fastai's pct_train (epoch and iter 0-based) */
static int l_train_pos(lua_State *L) {
    int e = (int)luaL_checkinteger(L, 1), it = (int)luaL_checkinteger(L, 2);
    int n_iter = (int)luaL_checkinteger(L, 3), n_epoch = (int)luaL_checkinteger(L, 4);
    luaL_argcheck(L, n_iter > 0 && n_epoch > 0, 3, "n_iter and n_epoch must be positive");
    lua_pushnumber(L, ftl_train_pos(e, it, n_iter, n_epoch));
    return 1;
}

/* ---------------------------------------------------------------- schedules */

typedef struct {
    ftl_sched *lr, *mom; /* mom NULL when the fit schedules none */
    int n_epoch;         /* fit_sgdr's epoch count, else 0 */
} sched_ud;

static int sched_gc(lua_State *L) {
    sched_ud *s = luaL_checkudata(L, 1, SCHED_MT);
    free_ftl_sched(s->lr);
    free_ftl_sched(s->mom);
    s->lr = s->mom = NULL;
    return 0;
}

static sched_ud *new_sched_ud(lua_State *L) {
    sched_ud *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->lr = s->mom = NULL;
    s->n_epoch = 0;
    luaL_setmetatable(L, SCHED_MT);
    return s;
}

static sched_ud *check_sched(lua_State *L, int idx) {
    sched_ud *s = luaL_checkudata(L, idx, SCHED_MT);
    if (!s->lr) luaL_argerror(L, idx, "attempt to use a freed schedule");
    return s;
}

/* The group count of a schedule's options: opts.n_groups, else the lr list's length, else 1. */
static int groups_of(lua_State *L, int lr_idx, int opts_idx) {
    int dflt = lua_istable(L, lr_idx) && !is_slice(L, lr_idx) ? (int)luaL_len(L, lr_idx) : 1;
    int n = opt_integer(L, opts_idx, "n_groups", dflt);
    if (n < 1) luaL_error(L, "n_groups must be at least 1, got %d", n);
    return n;
}

/* core.one_cycle(lr_max, {n_groups, div=25, div_final=1e5, pct_start=0.25, moms={.95,.85,.95}}) */
static int l_one_cycle(lua_State *L) {
    int n = groups_of(L, 1, 2);
    double *lr = lr_values(L, 1, n);
    ftl_one_cycle_opts o = ftl_one_cycle_defaults();
    o.div = opt_number(L, 2, "div", o.div);
    o.div_final = opt_number(L, 2, "div_final", o.div_final);
    o.pct_start = opt_number(L, 2, "pct_start", o.pct_start);
    if (!lua_isnoneornil(L, 2) && lua_getfield(L, 2, "moms") != LUA_TNIL) {
        int k;
        double *m = number_list(L, -1, &k, "moms");
        if (k != 3) luaL_error(L, "moms needs 3 values (start, middle, end), got %d", k);
        memcpy(o.moms, m, sizeof o.moms);
    }
    sched_ud *s = new_sched_ud(L);
    s->lr = new_ftl_one_cycle_lr(lr, n, &o);
    if (s->lr) s->mom = new_ftl_one_cycle_mom(&o);
    if (!s->lr || !s->mom) luaL_error(L, "fit_one_cycle: %s", ftl_learn_error());
    return 1;
}

/* core.flat_cos(lr, {n_groups, div_final=1e5, pct_start=0.75}) */
static int l_flat_cos(lua_State *L) {
    int n = groups_of(L, 1, 2);
    double *lr = lr_values(L, 1, n);
    double div_final = opt_number(L, 2, "div_final", 1e5), pct = opt_number(L, 2, "pct_start", 0.75);
    sched_ud *s = new_sched_ud(L);
    s->lr = new_ftl_flat_cos_lr(lr, n, div_final, pct);
    if (!s->lr) luaL_error(L, "fit_flat_cos: %s", ftl_learn_error());
    return 1;
}

/* core.sgdr(n_cycles, cycle_len, lr_max, {n_groups, cycle_mult=2}); .n_epoch is the total */
static int l_sgdr(lua_State *L) {
    int n_cycles = (int)luaL_checkinteger(L, 1), cycle_len = (int)luaL_checkinteger(L, 2);
    int n = groups_of(L, 3, 4);
    double *lr = lr_values(L, 3, n);
    int mult = opt_integer(L, 4, "cycle_mult", 2);
    sched_ud *s = new_sched_ud(L);
    s->lr = new_ftl_sgdr_lr(lr, n, n_cycles, cycle_len, mult, &s->n_epoch);
    if (!s->lr) luaL_error(L, "%s", ftl_learn_error());
    return 1;
}

/* sched:at(pos) -> {lr per group}, mom (nil when not scheduled) */
static int sched_at(lua_State *L) {
    sched_ud *s = check_sched(L, 1);
    double pos = luaL_checknumber(L, 2);
    double *v = scratch(L, sizeof(double) * (size_t)s->lr->n_groups);
    ftl_sched_at(s->lr, pos, v);
    push_numbers(L, v, s->lr->n_groups);
    if (s->mom) {
        double m;
        ftl_sched_at(s->mom, pos, &m);
        lua_pushnumber(L, m);
    } else {
        lua_pushnil(L);
    }
    return 2;
}

/* sched:values(n_epoch, n_iter) -> {lrs = {{...} per batch}, moms = {...} or nil}: every
 * batch of a fit, at fastai's pct_train. n_epoch defaults to fit_sgdr's. */
static int sched_values(lua_State *L) {
    sched_ud *s = check_sched(L, 1);
    int n_epoch = lua_isnoneornil(L, 2) && s->n_epoch ? s->n_epoch : (int)luaL_checkinteger(L, 2);
    int n_iter = (int)luaL_checkinteger(L, 3);
    luaL_argcheck(L, n_epoch > 0, 2, "n_epoch must be positive");
    luaL_argcheck(L, n_iter > 0, 3, "n_iter must be positive");
    int g = s->lr->n_groups;
    double *v = scratch(L, sizeof(double) * (size_t)g);
    lua_createtable(L, 0, 2);
    lua_createtable(L, n_epoch * n_iter, 0);
    if (s->mom) lua_createtable(L, n_epoch * n_iter, 0);
    int b = 0;
    for (int e = 0; e < n_epoch; e++)
        for (int it = 0; it < n_iter; it++) {
            double pos = ftl_train_pos(e, it, n_iter, n_epoch);
            ftl_sched_at(s->lr, pos, v);
            b++;
            push_numbers(L, v, g);
            lua_rawseti(L, s->mom ? -3 : -2, b);
            if (s->mom) {
                double m;
                ftl_sched_at(s->mom, pos, &m);
                lua_pushnumber(L, m);
                lua_rawseti(L, -2, b);
            }
        }
    if (s->mom) lua_setfield(L, -3, "moms");
    lua_setfield(L, -2, "lrs");
    return 1;
}

static int sched_index(lua_State *L) {
    sched_ud *s = check_sched(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "n_epoch")) {
        if (s->n_epoch) lua_pushinteger(L, s->n_epoch);
        else lua_pushnil(L);
    } else if (!strcmp(k, "n_groups")) {
        lua_pushinteger(L, s->lr->n_groups);
    } else {
        luaL_getmetatable(L, SCHED_MT);
        lua_getfield(L, -1, "methods");
        lua_getfield(L, -1, k);
    }
    return 1;
}

/* ---------------------------------------------------------------- Adam */

static ftl_adam *check_adam(lua_State *L, int idx) { return check_box(L, idx, ADAM_MT); }

static int adam_gc(lua_State *L) {
    box *b = luaL_checkudata(L, 1, ADAM_MT);
    free_ftl_adam(b->p);
    b->p = NULL;
    return 0;
}

/* Values for a hyper of n groups: lr takes a number, a slice or a list (checked by fastai's
 * rule); the others a number or a list. */
static double *hyper_values(lua_State *L, int idx, ftl_hyper k, int n) {
    idx = lua_absindex(L, idx);
    if (k == FTL_LR) return lr_values(L, idx, n);
    double *v = scratch(L, sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (lua_type(L, idx) == LUA_TNUMBER) {
        for (int g = 0; g < n; g++) v[g] = lua_tonumber(L, idx);
    } else if (lua_istable(L, idx) && !is_slice(L, idx)) {
        int m;
        double *list = number_list(L, idx, &m, ftl_hyper_name(k));
        if (m != n) luaL_error(L, "%d values of %s for %d parameter groups", m, ftl_hyper_name(k), n);
        memcpy(v, list, sizeof(double) * (size_t)n);
        lua_pop(L, 1);
    } else {
        luaL_error(L, "%s must be a number or a table with one number per group", ftl_hyper_name(k));
    }
    for (int g = 0; g < n; g++)
        if (!isfinite(v[g])) luaL_error(L, "%s must be a finite number, got %f", ftl_hyper_name(k), v[g]);
    return v;
}

static ftl_hyper check_hyper_name(lua_State *L, int idx) {
    int k = ftl_hyper_from_name(luaL_checkstring(L, idx));
    if (k < 0) luaL_argerror(L, idx, lua_pushfstring(L, "unknown hyper-parameter '%s' (lr, mom, sqr_mom, eps or wd)", lua_tostring(L, idx)));
    return (ftl_hyper)k;
}

/* Shared by core.Adam and core.SGD: groups is a list of lists of tensors, or one list of
 * tensors (one group); opts sets hypers (number, slice or one per group) and decouple_wd. */
static int new_optimizer(lua_State *L, ftl_opt_kind kind) {
    const char *what = ftl_opt_kind_name(kind);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    lua_geti(L, 1, 1);
    int nested = lua_istable(L, -1) && !ftl_to_tensor(L, -1);
    lua_pop(L, 1);
    int n_groups = nested ? (int)luaL_len(L, 1) : 1;
    luaL_argcheck(L, n_groups >= 1, 1, "needs at least one parameter group");
    int l2_wd = 0, momentum = 0;
    if (!lua_isnil(L, 2)) {
        lua_getfield(L, 2, "decouple_wd");
        l2_wd = !lua_isnil(L, -1) && !lua_toboolean(L, -1);
        lua_getfield(L, 2, "mom"); /* SGD keeps grad_avg when made with mom != 0, as fastai */
        momentum = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) != 0 : !lua_isnil(L, -1);
        lua_pop(L, 2);
    }
    void **slot = new_box(L, ADAM_MT); /* index 3 */
    ftl_adam *o = kind == FTL_OPT_SGD ? new_ftl_sgd(momentum, l2_wd) : new_ftl_adam();
    if (!o) luaL_error(L, "%s: out of memory", what);
    *slot = o;
    o->l2_wd = l2_wd;
    ftl_adam_hypers h = kind == FTL_OPT_SGD ? ftl_sgd_defaults() : ftl_adam_defaults();
    char pname[32];
    snprintf(pname, sizeof pname, "%s params", what);
    for (int g = 0; g < n_groups; g++) {
        int n;
        if (nested) lua_geti(L, 1, g + 1);
        else lua_pushvalue(L, 1);
        ft_tensor **ts = tensor_list(L, -1, &n, pname);
        check(L, ftl_adam_add_group(o, ts, n, &h));
        lua_pop(L, 2);
    }
    if (!lua_isnil(L, 2)) {
        for (int k = 0; k < FTL_NHYPERS; k++) {
            if (lua_getfield(L, 2, ftl_hyper_name((ftl_hyper)k)) != LUA_TNIL)
                ftl_adam_set_hyper(o, (ftl_hyper)k, hyper_values(L, -1, (ftl_hyper)k, n_groups));
            lua_settop(L, 3);
        }
    }
    return 1;
}

/* core.Adam(groups, {lr=1e-3, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01, decouple_wd=true}) */
static int l_adam(lua_State *L) { return new_optimizer(L, FTL_OPT_ADAM); }

/* core.SGD(groups, {lr=1e-3, mom=0, wd=0, decouple_wd=true}): momentum when mom != 0 here. */
static int l_sgd(lua_State *L) { return new_optimizer(L, FTL_OPT_SGD); }

/* opt:kind() -> "Adam" or "SGD" */
static int adam_kind(lua_State *L) {
    lua_pushstring(L, ftl_opt_kind_name(check_adam(L, 1)->kind));
    return 1;
}

static int adam_step(lua_State *L) {
    check(L, ftl_adam_step(check_adam(L, 1)));
    return 0;
}

/* opt:zero_grad([set_to_none = true]) */
static int adam_zero_grad(lua_State *L) {
    ftl_adam *o = check_adam(L, 1);
    int to_none = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    check(L, ftl_adam_zero_grad(o, to_none));
    return 0;
}

static int adam_clear_state(lua_State *L) {
    ftl_adam_clear_state(check_adam(L, 1));
    return 0;
}

/* opt:set_hyper(name, number | slice | {per group}) */
static int adam_set_hyper(lua_State *L) {
    ftl_adam *o = check_adam(L, 1);
    ftl_hyper k = check_hyper_name(L, 2);
    ftl_adam_set_hyper(o, k, hyper_values(L, 3, k, o->n_groups));
    return 0;
}

/* opt:hypers() -> {{lr=, mom=, sqr_mom=, eps=, wd=} per group} */
static int adam_hypers(lua_State *L) {
    ftl_adam *o = check_adam(L, 1);
    lua_createtable(L, o->n_groups, 0);
    for (int g = 0; g < o->n_groups; g++) {
        lua_createtable(L, 0, FTL_NHYPERS);
        for (int k = 0; k < FTL_NHYPERS; k++) {
            lua_pushnumber(L, ftl_adam_get_hyper(o, g, (ftl_hyper)k));
            lua_setfield(L, -2, ftl_hyper_name((ftl_hyper)k));
        }
        lua_rawseti(L, -2, g + 1);
    }
    return 1;
}

static int adam_n_groups(lua_State *L) {
    lua_pushinteger(L, check_adam(L, 1)->n_groups);
    return 1;
}

static int adam_n_params(lua_State *L) {
    lua_pushinteger(L, check_adam(L, 1)->n_params);
    return 1;
}

static ftl_adam_param *param_arg(lua_State *L, ftl_adam *o, int idx) {
    lua_Integer i = luaL_checkinteger(L, idx);
    if (i < 1 || i > o->n_params)
        luaL_argerror(L, idx, lua_pushfstring(L, "param %d out of range (1..%d)", (int)i, o->n_params));
    return &o->params[i - 1];
}

static void push_clone_or_nil(lua_State *L, const ft_tensor *t) {
    if (!t) {
        lua_pushnil(L);
        return;
    }
    ft_tensor *c = NULL;
    ftl_check(L, ft_clone(t, &c), "param_state");
    ftl_push_tensor(L, c);
}

/* opt:param_state(i) -> {group, step, do_wd, force_train, grad_avg, sqr_avg} (copies) */
static int adam_param_state(lua_State *L) {
    ftl_adam *o = check_adam(L, 1);
    ftl_adam_param *q = param_arg(L, o, 2);
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, q->group + 1);
    lua_setfield(L, -2, "group");
    lua_pushinteger(L, q->step);
    lua_setfield(L, -2, "step");
    lua_pushboolean(L, q->do_wd);
    lua_setfield(L, -2, "do_wd");
    lua_pushboolean(L, q->force_train);
    lua_setfield(L, -2, "force_train");
    push_clone_or_nil(L, q->grad_avg);
    lua_setfield(L, -2, "grad_avg");
    push_clone_or_nil(L, q->sqr_avg);
    lua_setfield(L, -2, "sqr_avg");
    return 1;
}

/* opt:set_flags(i, {do_wd = bool, force_train = bool}) */
static int adam_set_flags(lua_State *L) {
    ftl_adam *o = check_adam(L, 1);
    ftl_adam_param *q = param_arg(L, o, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    if (lua_getfield(L, 3, "do_wd") != LUA_TNIL) q->do_wd = lua_toboolean(L, -1);
    if (lua_getfield(L, 3, "force_train") != LUA_TNIL) q->force_train = lua_toboolean(L, -1);
    return 0;
}

/* opt:freeze_to(n) -> fastai's frozen_idx (n groups frozen; negative counts from the end) */
static int adam_freeze_to(lua_State *L) {
    ftl_adam *o = check_adam(L, 1);
    int idx;
    check(L, ftl_adam_freeze_to(o, (int)luaL_checkinteger(L, 2), &idx));
    lua_pushinteger(L, idx);
    return 1;
}

static int adam_snapshot(lua_State *L) {
    ftl_adam *o = check_adam(L, 1);
    void **slot = new_box(L, ADAM_SNAP_MT);
    ftl_adam_snapshot *s = NULL;
    check(L, new_ftl_adam_snapshot(o, &s));
    *slot = s;
    return 1;
}

static int adam_restore(lua_State *L) {
    ftl_adam *o = check_adam(L, 1);
    check(L, ftl_adam_restore(o, check_box(L, 2, ADAM_SNAP_MT)));
    return 0;
}

static int adam_tostring(lua_State *L) {
    box *b = luaL_checkudata(L, 1, ADAM_MT);
    const ftl_adam *o = b->p;
    if (!o) lua_pushliteral(L, "optimizer (freed)");
    else lua_pushfstring(L, "%s (%d groups, %d params)", ftl_opt_kind_name(o->kind), o->n_groups, o->n_params);
    return 1;
}

static int adam_snap_gc(lua_State *L) {
    box *b = luaL_checkudata(L, 1, ADAM_SNAP_MT);
    free_ftl_adam_snapshot(b->p);
    b->p = NULL;
    return 0;
}

/* core.tensor_snapshot(list) -> snapshot; snap:restore(list) copies the values back in place */
static int l_tensor_snapshot(lua_State *L) {
    int n;
    ft_tensor **ts = tensor_list(L, 1, &n, "tensor_snapshot");
    void **slot = new_box(L, TENSOR_SNAP_MT);
    ftl_tensor_snapshot *s = NULL;
    check(L, new_ftl_tensor_snapshot(ts, n, &s));
    *slot = s;
    return 1;
}

static int tensor_snap_restore(lua_State *L) {
    ftl_tensor_snapshot *s = check_box(L, 1, TENSOR_SNAP_MT);
    int n;
    ft_tensor **ts = tensor_list(L, 2, &n, "restore");
    check(L, ftl_tensor_snapshot_restore(s, ts, n));
    return 0;
}

static int tensor_snap_gc(lua_State *L) {
    box *b = luaL_checkudata(L, 1, TENSOR_SNAP_MT);
    free_ftl_tensor_snapshot(b->p);
    b->p = NULL;
    return 0;
}

/* ---------------------------------------------------------------- lr_find */

/* core.LRFinder{start_lr=1e-7, end_lr=10, num_it=100, stop_div=true} */
static int l_lr_finder(lua_State *L) {
    double start = opt_number(L, 1, "start_lr", 1e-7), end = opt_number(L, 1, "end_lr", 10);
    int num_it = opt_integer(L, 1, "num_it", 100), stop_div = 1;
    if (lua_istable(L, 1) && lua_getfield(L, 1, "stop_div") != LUA_TNIL) stop_div = lua_toboolean(L, -1);
    ftl_lr_finder *f = lua_newuserdatauv(L, sizeof *f, 0);
    luaL_setmetatable(L, FINDER_MT);
    if (ftl_lr_finder_init(f, start, end, num_it, stop_div)) luaL_error(L, "%s", ftl_learn_error());
    return 1;
}

static int finder_lr(lua_State *L) {
    lua_pushnumber(L, ftl_lr_finder_lr(luaL_checkudata(L, 1, FINDER_MT)));
    return 1;
}

/* finder:after_batch(smooth_loss) -> true when the sweep must stop */
static int finder_after_batch(lua_State *L) {
    ftl_lr_finder *f = luaL_checkudata(L, 1, FINDER_MT);
    lua_pushboolean(L, ftl_lr_finder_after_batch(f, luaL_checknumber(L, 2)));
    return 1;
}

static int finder_train_iter(lua_State *L) {
    lua_pushinteger(L, ((ftl_lr_finder *)luaL_checkudata(L, 1, FINDER_MT))->train_iter);
    return 1;
}

static int finder_num_it(lua_State *L) {
    lua_pushinteger(L, ((ftl_lr_finder *)luaL_checkudata(L, 1, FINDER_MT))->num_it);
    return 1;
}

/* core.lr_suggestions(lrs, losses, num_it) -> {minimum, steep, valley, slide, n} (a field is
 * nil when the curve is too short for it) */
static int l_lr_suggestions(lua_State *L) {
    int n, m;
    double *lrs = number_list(L, 1, &n, "lrs");
    double *losses = number_list(L, 2, &m, "losses");
    int num_it = (int)luaL_checkinteger(L, 3);
    luaL_argcheck(L, n == m, 2, "lrs and losses must have the same length");
    ftl_lr_suggestions sg;
    int used = ftl_lr_suggest(lrs, losses, n, num_it, &sg);
    if (used < 0) luaL_error(L, "%s", ftl_learn_error());
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
    check(L, st);
    ftl_push_tensor(L, out);
    return 1;
}

static int l_accuracy(lua_State *L) { return run_metric(L, ftl_accuracy); }
static int l_error_rate(lua_State *L) { return run_metric(L, ftl_error_rate); }

static int l_top_k_accuracy(lua_State *L) {
    ft_tensor *pred = ftl_check_tensor(L, 1);
    int k = (int)luaL_optinteger(L, 3, 5);
    ft_tensor *targ = zero_based(L, 2), *out = NULL;
    ft_status st = ftl_top_k_accuracy(pred, targ, k, &out);
    ft_free(targ);
    check(L, st);
    ftl_push_tensor(L, out);
    return 1;
}

/* core.label_smoothing_ce(logits, targ, {eps = 0.1, reduction = "mean"|"sum"|"none"}) */
static int l_label_smoothing_ce(lua_State *L) {
    ft_tensor *logits = ftl_check_tensor(L, 1);
    double eps = opt_number(L, 3, "eps", 0.1);
    ft_reduction red = FT_REDUCE_MEAN;
    if (lua_istable(L, 3) && lua_getfield(L, 3, "reduction") != LUA_TNIL) {
        const char *r = luaL_checkstring(L, -1);
        if (!strcmp(r, "sum")) red = FT_REDUCE_SUM;
        else if (!strcmp(r, "none")) red = FT_REDUCE_NONE;
        else if (strcmp(r, "mean")) luaL_error(L, "reduction must be \"mean\", \"sum\" or \"none\", got \"%s\"", r);
    }
    ft_tensor *targ = zero_based(L, 2), *out = NULL;
    ft_status st = ftl_label_smoothing_ce(logits, targ, eps, red, &out);
    ft_free(targ);
    check(L, st);
    ftl_push_tensor(L, out);
    return 1;
}

/* The reduction named at opts.reduction (a table at idx), "mean" by default. */
static ft_reduction opt_reduction(lua_State *L, int idx, const char *what) {
    ft_reduction red = FT_REDUCE_MEAN;
    if (lua_istable(L, idx) && lua_getfield(L, idx, "reduction") != LUA_TNIL) {
        const char *r = lua_tostring(L, -1);
        if (r && !strcmp(r, "sum")) red = FT_REDUCE_SUM;
        else if (r && !strcmp(r, "none")) red = FT_REDUCE_NONE;
        else if (!r || strcmp(r, "mean"))
            luaL_error(L, "%s: reduction must be \"mean\", \"sum\" or \"none\", got %s", what,
                       r ? r : luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    return red;
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
    ft_tensor *logits = ftl_check_tensor(L, 1);
    ft_reduction red = opt_reduction(L, 3, "cross_entropy");
    double ls = opt_number(L, 3, "label_smoothing", 0.0);
    ft_tensor *targ = zero_based_long(L, 2), *out = NULL;
    ft_status st = ft_cross_entropy(logits, targ, NULL, red, ls, &out);
    ft_free(targ);
    ftl_check(L, st, "cross_entropy");
    ftl_push_tensor(L, out);
    return 1;
}

/* core.nll_loss(log_probs [N,C], targ (1-based) [N], {reduction = "mean"}): torch's F.nll_loss. */
static int l_nll_loss(lua_State *L) {
    ft_tensor *lp = ftl_check_tensor(L, 1);
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
    ftl_avg *a = lua_newuserdatauv(L, sizeof *a, 0);
    memset(a, 0, sizeof *a);
    luaL_setmetatable(L, AVG_MT);
    return 1;
}

static int avg_gc(lua_State *L) {
    ftl_avg_reset(luaL_checkudata(L, 1, AVG_MT));
    return 0;
}

static int avg_accumulate(lua_State *L) {
    ftl_avg *a = luaL_checkudata(L, 1, AVG_MT);
    lua_Integer bs = luaL_checkinteger(L, 3);
    luaL_argcheck(L, bs >= 0, 3, "batch size must be non-negative");
    if (lua_type(L, 2) == LUA_TNUMBER) ftl_avg_add_number(a, lua_tonumber(L, 2), bs);
    else check(L, ftl_avg_add(a, ftl_check_tensor(L, 2), bs));
    return 0;
}

static int avg_value(lua_State *L) {
    double v;
    check(L, ftl_avg_value(luaL_checkudata(L, 1, AVG_MT), &v));
    if (isnan(v) && ((ftl_avg *)lua_touserdata(L, 1))->count == 0) lua_pushnil(L);
    else lua_pushnumber(L, v);
    return 1;
}

/* core.AvgSmoothLoss([beta = 0.98]): :accumulate(loss), :value(), :reset() */
static int l_smooth(lua_State *L) {
    double beta = luaL_optnumber(L, 1, 0.98);
    ftl_smooth_loss *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    s->beta = beta;
    luaL_setmetatable(L, SMOOTH_MT);
    return 1;
}

static int smooth_gc(lua_State *L) {
    ftl_smooth_loss *s = luaL_checkudata(L, 1, SMOOTH_MT);
    ftl_smooth_reset(s, s->beta);
    return 0;
}

static int smooth_accumulate(lua_State *L) {
    check(L, ftl_smooth_add(luaL_checkudata(L, 1, SMOOTH_MT), ftl_check_tensor(L, 2)));
    return 0;
}

static int smooth_value(lua_State *L) {
    ftl_smooth_loss *s = luaL_checkudata(L, 1, SMOOTH_MT);
    double v;
    check(L, ftl_smooth_value(s, &v));
    if (s->count == 0) lua_pushnil(L);
    else lua_pushnumber(L, v);
    return 1;
}

/* ---------------------------------------------------------------- printing */

static int l_format_time(lua_State *L) {
    char buf[32];
    lua_pushstring(L, ftl_format_time(luaL_checknumber(L, 1), buf));
    return 1;
}

static int l_repr(lua_State *L) {
    char buf[64];
    ftl_repr_double(luaL_checknumber(L, 1), buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
}

static const char **name_list(lua_State *L, int idx, int *n) {
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    *n = (int)luaL_len(L, idx);
    const char **names = scratch(L, sizeof(char *) * (size_t)*n);
    for (int i = 0; i < *n; i++) {
        lua_geti(L, idx, i + 1);
        names[i] = lua_tostring(L, -1);
        if (!names[i]) luaL_error(L, "names: entry %d is a %s, expected a string", i + 1, luaL_typename(L, -1));
        lua_pop(L, 1); /* the string stays alive: the table holds it */
    }
    return names;
}

/* Lua values to cells: integer -> int, float -> float, string -> str, false -> None. */
static ftl_cell *cell_list(lua_State *L, int idx, int n) {
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    ftl_cell *cells = scratch(L, sizeof(ftl_cell) * (size_t)n);
    for (int i = 0; i < n; i++) {
        lua_geti(L, idx, i + 1);
        ftl_cell c = {FTL_CELL_NONE, 0, 0, NULL};
        if (lua_isinteger(L, -1)) {
            c.kind = FTL_CELL_INT;
            c.i = lua_tointeger(L, -1);
        } else if (lua_type(L, -1) == LUA_TNUMBER) {
            c.kind = FTL_CELL_FLOAT;
            c.f = lua_tonumber(L, -1);
        } else if (lua_type(L, -1) == LUA_TSTRING) {
            c.kind = FTL_CELL_STR;
            c.s = lua_tostring(L, -1);
        } else if (!lua_isnil(L, -1) && !(lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
            luaL_error(L, "value %d is a %s (numbers, strings or false for None)", i + 1, luaL_typename(L, -1));
        }
        lua_pop(L, 1);
        cells[i] = c;
    }
    return cells;
}

static int l_table_header(lua_State *L) {
    int n;
    const char **names = name_list(L, 1, &n);
    int len = ftl_table_header(NULL, 0, names, n);
    char *buf = scratch(L, (size_t)len + 1);
    ftl_table_header(buf, (size_t)len + 1, names, n);
    lua_pushlstring(L, buf, (size_t)len);
    return 1;
}

/* core.table_row(names, values) -> the row fastprogress prints for these values */
static int l_table_row(lua_State *L) {
    int n;
    const char **names = name_list(L, 1, &n);
    ftl_cell *cells = cell_list(L, 2, n);
    int len = ftl_table_row(NULL, 0, names, cells, n);
    char *buf = scratch(L, (size_t)len + 1);
    ftl_table_row(buf, (size_t)len + 1, names, cells, n);
    lua_pushlstring(L, buf, (size_t)len);
    return 1;
}

/* core.ProgressBar(epoch, n_epoch, total): epoch 0-based as fastai's; draws on stdout when it
 * is a terminal. :update(val [, now]), :comment(smooth_loss), :finish() */
static int l_pbar(lua_State *L) {
    int e = (int)luaL_checkinteger(L, 1), n = (int)luaL_checkinteger(L, 2), total = (int)luaL_checkinteger(L, 3);
    luaL_argcheck(L, total >= 0, 3, "total must be non-negative");
    ftl_pbar *b = lua_newuserdatauv(L, sizeof *b, 0);
    luaL_setmetatable(L, PBAR_MT);
    ftl_pbar_start(b, stdout, e, n, total, monotonic_seconds());
    return 1;
}

static int pbar_update(lua_State *L) {
    ftl_pbar *b = luaL_checkudata(L, 1, PBAR_MT);
    ftl_pbar_update(b, (int)luaL_checkinteger(L, 2), luaL_optnumber(L, 3, monotonic_seconds()));
    return 0;
}

static int pbar_comment(lua_State *L) {
    ftl_pbar_comment(luaL_checkudata(L, 1, PBAR_MT), luaL_checknumber(L, 2));
    return 0;
}

static int pbar_finish(lua_State *L) {
    ftl_pbar_finish(luaL_checkudata(L, 1, PBAR_MT));
    return 0;
}

/* core.CSVLogger(path, names [, append | {append = bool}]): :write(values), :close() */
static int l_csv(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int n;
    const char **names = name_list(L, 2, &n);
    int append = lua_toboolean(L, 3);
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "append");
        append = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    void **slot = new_box(L, CSV_MT);
    ftl_csv *c = new_ftl_csv(path, append, names, n);
    if (!c) luaL_error(L, "%s", ftl_learn_error());
    *slot = c;
    return 1;
}

static int csv_write(lua_State *L) {
    ftl_csv *c = check_box(L, 1, CSV_MT);
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = (int)luaL_len(L, 2);
    ftl_cell *cells = cell_list(L, 2, n);
    if (ftl_csv_write(c, cells, n)) luaL_error(L, "%s", ftl_learn_error());
    return 0;
}

static int csv_gc(lua_State *L) {
    box *b = luaL_checkudata(L, 1, CSV_MT);
    free_ftl_csv(b->p);
    b->p = NULL;
    return 0;
}

/* ---------------------------------------------------------------- the module */

int luaopen_ftlua_learner_core(lua_State *L) {
    luaL_newmetatable(L, SLICE_MT);
    lua_pushcfunction(L, slice_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    static const luaL_Reg sched_methods[] = {{"at", sched_at}, {"values", sched_values}, {NULL, NULL}};
    luaL_newmetatable(L, SCHED_MT);
    luaL_newlib(L, sched_methods);
    lua_setfield(L, -2, "methods");
    lua_pushcfunction(L, sched_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, sched_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, sched_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);

    static const luaL_Reg adam_methods[] = {
        {"step", adam_step}, {"zero_grad", adam_zero_grad}, {"clear_state", adam_clear_state},
        {"set_hyper", adam_set_hyper}, {"hypers", adam_hypers}, {"n_groups", adam_n_groups},
        {"n_params", adam_n_params}, {"param_state", adam_param_state}, {"set_flags", adam_set_flags},
        {"freeze_to", adam_freeze_to}, {"state_snapshot", adam_snapshot}, {"restore", adam_restore},
        {"kind", adam_kind}, {"free", adam_gc}, {NULL, NULL}};
    new_class(L, ADAM_MT, adam_methods, adam_gc);
    luaL_getmetatable(L, ADAM_MT);
    lua_pushcfunction(L, adam_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    static const luaL_Reg adam_snap_methods[] = {{"free", adam_snap_gc}, {NULL, NULL}};
    new_class(L, ADAM_SNAP_MT, adam_snap_methods, adam_snap_gc);
    static const luaL_Reg tensor_snap_methods[] = {{"restore", tensor_snap_restore}, {"free", tensor_snap_gc}, {NULL, NULL}};
    new_class(L, TENSOR_SNAP_MT, tensor_snap_methods, tensor_snap_gc);
    static const luaL_Reg finder_methods[] = {{"lr", finder_lr}, {"after_batch", finder_after_batch},
                                              {"train_iter", finder_train_iter}, {"num_it", finder_num_it}, {NULL, NULL}};
    new_class(L, FINDER_MT, finder_methods, NULL);
    static const luaL_Reg avg_methods[] = {{"accumulate", avg_accumulate}, {"value", avg_value}, {"reset", avg_gc}, {NULL, NULL}};
    new_class(L, AVG_MT, avg_methods, avg_gc);
    static const luaL_Reg smooth_methods[] = {{"accumulate", smooth_accumulate}, {"value", smooth_value}, {"reset", smooth_gc}, {NULL, NULL}};
    new_class(L, SMOOTH_MT, smooth_methods, smooth_gc);
    static const luaL_Reg pbar_methods[] = {{"update", pbar_update}, {"comment", pbar_comment}, {"finish", pbar_finish}, {NULL, NULL}};
    new_class(L, PBAR_MT, pbar_methods, NULL);
    static const luaL_Reg csv_methods[] = {{"write", csv_write}, {"close", csv_gc}, {NULL, NULL}};
    new_class(L, CSV_MT, csv_methods, csv_gc);

    static const luaL_Reg funcs[] = {
        {"slice", l_slice}, {"is_slice", l_is_slice}, {"lr_per_group", l_lr_per_group},
        {"even_mults", l_even_mults}, {"sched_cos", l_sched_cos}, {"train_pos", l_train_pos},
        {"one_cycle", l_one_cycle}, {"flat_cos", l_flat_cos}, {"sgdr", l_sgdr},
        {"Adam", l_adam}, {"SGD", l_sgd}, {"tensor_snapshot", l_tensor_snapshot},
        {"LRFinder", l_lr_finder}, {"lr_suggestions", l_lr_suggestions},
        {"accuracy", l_accuracy}, {"error_rate", l_error_rate}, {"top_k_accuracy", l_top_k_accuracy},
        {"label_smoothing_ce", l_label_smoothing_ce}, {"cross_entropy", l_cross_entropy}, {"nll_loss", l_nll_loss}, {"AvgMetric", l_avg}, {"AvgLoss", l_avg},
        {"AvgSmoothLoss", l_smooth}, {"format_time", l_format_time}, {"repr", l_repr},
        {"table_header", l_table_header}, {"table_row", l_table_row}, {"ProgressBar", l_pbar},
        {"CSVLogger", l_csv}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
