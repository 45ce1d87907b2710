/* learner_core_sched.c: ft.learner_core's slices, the per-group lr rule (fastai's set_hyper)
 * and the schedules of fit_one_cycle, fit_flat_cos and fit_sgdr (schedule.h), as Lua values. */
#include <string.h>

#include "learner/learner_core.h"

#define SLICE_MT "ftlua.slice"
#define SCHED_MT "ftlua.Schedule"

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

int ftl_lcore_is_slice(lua_State *L, int idx) {
    if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, SLICE_MT);
    int eq = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return eq;
}

static int l_is_slice(lua_State *L) {
    lua_pushboolean(L, ftl_lcore_is_slice(L, 1));
    return 1;
}

static int slice_tostring(lua_State *L) {
    lua_getfield(L, 1, "lo");
    lua_getfield(L, 1, "hi");
    if (lua_isnil(L, -2))
        lua_pushfstring(L, "slice(%f)", lua_tonumber(L, -1));
    else
        lua_pushfstring(L, "slice(%f, %f)", lua_tonumber(L, -2), lua_tonumber(L, -1));
    return 1;
}

/* A number, a slice or a list at idx as an lr spec (the list lives in a scratch userdata). */
static void check_lr_spec(lua_State *L, int idx, ftf_lr_spec *spec) {
    memset(spec, 0, sizeof *spec);
    if (lua_type(L, idx) == LUA_TNUMBER) {
        spec->kind = FTL_LR_NUMBER;
        spec->hi = lua_tonumber(L, idx);
    } else if (ftl_lcore_is_slice(L, idx)) {
        spec->kind = FTL_LR_SLICE;
        lua_getfield(L, idx, "lo");
        spec->has_lo = !lua_isnil(L, -1);
        spec->lo = spec->has_lo ? luaL_checknumber(L, -1) : 0;
        lua_getfield(L, idx, "hi");
        spec->hi = luaL_checknumber(L, -1);
        lua_pop(L, 2);
    } else if (lua_istable(L, idx)) {
        spec->kind = FTL_LR_LIST;
        spec->list =
            ftl_lcore_number_list(L, idx, &spec->n, "lr"); /* its scratch stays on the stack */
    } else {
        luaL_typeerror(L, idx, "number, slice or table of numbers");
    }
}

/* The n_groups lrs of the value at idx, validated (errors name the problem). */
double *ftl_lcore_lr_values(lua_State *L, int idx, int n_groups) {
    ftf_lr_spec spec;
    int abs_idx = lua_absindex(L, idx);
    check_lr_spec(L, abs_idx, &spec);
    double *out = ftl_lcore_scratch(L, sizeof(double) * (size_t)(n_groups > 0 ? n_groups : 1));
    if (ftf_lr_per_group(&spec, n_groups, out)) luaL_error(L, "%s", ft_last_error());
    return out;
}

/* core.lr_per_group(lr, n_groups) -> {lr per group} */
static int l_lr_per_group(lua_State *L) {
    int n = (int)luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 1, 2, "needs at least one group");
    double *v = ftl_lcore_lr_values(L, 1, n);
    ftl_lcore_push_numbers(L, v, n);
    return 1;
}

static int l_even_mults(lua_State *L) {
    double a = luaL_checknumber(L, 1), b = luaL_checknumber(L, 2);
    int n = (int)luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 1, 3, "needs n >= 1");
    double *v = ftl_lcore_scratch(L, sizeof(double) * (size_t)n);
    ftf_even_mults(a, b, n, v);
    ftl_lcore_push_numbers(L, v, n);
    return 1;
}

static int l_sched_cos(lua_State *L) {
    lua_pushnumber(
        L, ftf_sched_cos(luaL_checknumber(L, 1), luaL_checknumber(L, 2), luaL_checknumber(L, 3)));
    return 1;
}

/* core.train_pos(epoch, iter, n_iter, n_epoch): fastai's pct_train (epoch and iter 0-based) */
static int l_train_pos(lua_State *L) {
    int e = (int)luaL_checkinteger(L, 1), it = (int)luaL_checkinteger(L, 2);
    int n_iter = (int)luaL_checkinteger(L, 3), n_epoch = (int)luaL_checkinteger(L, 4);
    luaL_argcheck(L, n_iter > 0 && n_epoch > 0, 3, "n_iter and n_epoch must be positive");
    lua_pushnumber(L, ftf_train_pos(e, it, n_iter, n_epoch));
    return 1;
}

/* ---------------------------------------------------------------- schedules */

typedef struct {
    ftf_sched *lr, *mom; /* mom NULL when the fit schedules none */
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

/* The group count of a schedule's options (fn's): opts.n_groups, else the lr list's length,
 * else 1. */
static int groups_of(lua_State *L, int lr_idx, int opts_idx, const char *fn) {
    int dflt =
        lua_istable(L, lr_idx) && !ftl_lcore_is_slice(L, lr_idx) ? (int)luaL_len(L, lr_idx) : 1;
    int n = (int)ftl_opt_integer(L, opts_idx, fn, "n_groups", dflt);
    if (n < 1) luaL_error(L, "%s: n_groups must be at least 1, got %d", fn, n);
    return n;
}

/* core.one_cycle(lr_max, {n_groups, div=25, div_final=1e5, pct_start=0.25, moms={.95,.85,.95}}) */
static int l_one_cycle(lua_State *L) {
    static const char *const keys[] = {"n_groups", "div", "div_final", "pct_start", "moms", NULL};
    ftl_check_options(L, 2, "one_cycle", keys);
    int n = groups_of(L, 1, 2, "one_cycle");
    double *lr = ftl_lcore_lr_values(L, 1, n);
    ftf_one_cycle_opts o = ftf_one_cycle_defaults();
    o.div = ftl_opt_number(L, 2, "one_cycle", "div", o.div);
    o.div_final = ftl_opt_number(L, 2, "one_cycle", "div_final", o.div_final);
    o.pct_start = ftl_opt_number(L, 2, "one_cycle", "pct_start", o.pct_start);
    if (!lua_isnoneornil(L, 2) && lua_getfield(L, 2, "moms") != LUA_TNIL) {
        int k;
        double *m = ftl_lcore_number_list(L, -1, &k, "moms");
        if (k != 3) luaL_error(L, "moms needs 3 values (start, middle, end), got %d", k);
        memcpy(o.moms, m, sizeof o.moms);
    }
    sched_ud *s = new_sched_ud(L);
    s->lr = new_ftl_one_cycle_lr(lr, n, &o);
    if (s->lr) s->mom = new_ftl_one_cycle_mom(&o);
    if (!s->lr || !s->mom) luaL_error(L, "fit_one_cycle: %s", ft_last_error());
    return 1;
}

/* core.flat_cos(lr, {n_groups, div_final=1e5, pct_start=0.75}) */
static int l_flat_cos(lua_State *L) {
    static const char *const keys[] = {"n_groups", "div_final", "pct_start", NULL};
    ftl_check_options(L, 2, "flat_cos", keys);
    int n = groups_of(L, 1, 2, "flat_cos");
    double *lr = ftl_lcore_lr_values(L, 1, n);
    double div_final = ftl_opt_number(L, 2, "flat_cos", "div_final", 1e5);
    double pct = ftl_opt_number(L, 2, "flat_cos", "pct_start", 0.75);
    sched_ud *s = new_sched_ud(L);
    s->lr = new_ftl_flat_cos_lr(lr, n, div_final, pct);
    if (!s->lr) luaL_error(L, "fit_flat_cos: %s", ft_last_error());
    return 1;
}

/* core.sgdr(n_cycles, cycle_len, lr_max, {n_groups, cycle_mult=2}); .n_epoch is the total */
static int l_sgdr(lua_State *L) {
    int n_cycles = (int)luaL_checkinteger(L, 1), cycle_len = (int)luaL_checkinteger(L, 2);
    static const char *const keys[] = {"n_groups", "cycle_mult", NULL};
    ftl_check_options(L, 4, "sgdr", keys);
    int n = groups_of(L, 3, 4, "sgdr");
    double *lr = ftl_lcore_lr_values(L, 3, n);
    int mult = (int)ftl_opt_integer(L, 4, "sgdr", "cycle_mult", 2);
    sched_ud *s = new_sched_ud(L);
    s->lr = new_ftl_sgdr_lr(lr, n, n_cycles, cycle_len, mult, &s->n_epoch);
    if (!s->lr) luaL_error(L, "%s", ft_last_error());
    return 1;
}

/* sched:at(pos) -> {lr per group}, mom (nil when not scheduled) */
static int sched_at(lua_State *L) {
    sched_ud *s = check_sched(L, 1);
    double pos = luaL_checknumber(L, 2);
    double *v = ftl_lcore_scratch(L, sizeof(double) * (size_t)s->lr->n_groups);
    ftf_sched_at(s->lr, pos, v);
    ftl_lcore_push_numbers(L, v, s->lr->n_groups);
    if (s->mom) {
        double m;
        ftf_sched_at(s->mom, pos, &m);
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
    double *v = ftl_lcore_scratch(L, sizeof(double) * (size_t)g);
    lua_createtable(L, 0, 2);
    lua_createtable(L, n_epoch * n_iter, 0);
    if (s->mom) lua_createtable(L, n_epoch * n_iter, 0);
    int b = 0;
    for (int e = 0; e < n_epoch; e++)
        for (int it = 0; it < n_iter; it++) {
            double pos = ftf_train_pos(e, it, n_iter, n_epoch);
            ftf_sched_at(s->lr, pos, v);
            b++;
            ftl_lcore_push_numbers(L, v, g);
            lua_rawseti(L, s->mom ? -3 : -2, b);
            if (s->mom) {
                double m;
                ftf_sched_at(s->mom, pos, &m);
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
        if (s->n_epoch)
            lua_pushinteger(L, s->n_epoch);
        else
            lua_pushnil(L);
    } else if (!strcmp(k, "n_groups")) {
        lua_pushinteger(L, s->lr->n_groups);
    } else {
        luaL_getmetatable(L, SCHED_MT);
        lua_getfield(L, -1, "methods");
        lua_getfield(L, -1, k);
    }
    return 1;
}

/* ---------------------------------------------------------------- registration */

void ftl_lcore_open_sched(lua_State *L) {
    static const luaL_Reg slice_meta[] = {{"__tostring", slice_tostring}, {NULL, NULL}};
    ftl_new_class(L, SLICE_MT, NULL, slice_meta);
    /* a schedule's __index answers n_epoch and n_groups, and looks up methods otherwise */
    static const luaL_Reg sched_meta[] = {
        {"__index", sched_index}, {"__gc", sched_gc}, {"__close", sched_gc}, {NULL, NULL}};
    static const luaL_Reg sched_methods[] = {
        {"at", sched_at}, {"values", sched_values}, {NULL, NULL}};
    ftl_new_class(L, SCHED_MT, NULL, sched_meta);
    luaL_getmetatable(L, SCHED_MT);
    luaL_newlib(L, sched_methods);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {{"slice", l_slice},
                                     {"is_slice", l_is_slice},
                                     {"lr_per_group", l_lr_per_group},
                                     {"even_mults", l_even_mults},
                                     {"sched_cos", l_sched_cos},
                                     {"train_pos", l_train_pos},
                                     {"one_cycle", l_one_cycle},
                                     {"flat_cos", l_flat_cos},
                                     {"sgdr", l_sgdr},
                                     {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
}
