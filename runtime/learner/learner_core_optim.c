/* learner_core_optim.c: ft.learner_core's optimizers: fastai's Adam and SGD over lists of
 * tensors (optimizer.h), their hypers per group, freeze_to, and in-memory snapshots of an
 * optimizer's state and of a tensor list (what lr_find puts back). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "learner/learner_core.h"
#include "learner/optimizer.h"

#define ADAM_MT        "ftlua.Adam"
#define ADAM_SNAP_MT   "ftlua.AdamSnapshot"
#define TENSOR_SNAP_MT "ftlua.TensorSnapshot"

/* ---------------------------------------------------------------- Adam */

static ftf_adam *check_adam(lua_State *L, int idx) { return ftl_lcore_check_box(L, idx, ADAM_MT); }

static int adam_gc(lua_State *L) {
    free_ftl_adam(ftl_lcore_take_box(L, 1, ADAM_MT));
    return 0;
}

/* Values for a hyper of n groups: lr takes a number, a slice or a list (checked by fastai's
 * rule); the others a number or a list. */
static double *hyper_values(lua_State *L, int idx, ftf_hyper k, int n) {
    idx = lua_absindex(L, idx);
    if (k == FTL_LR) return ftl_lcore_lr_values(L, idx, n);
    double *v = ftl_lcore_scratch(L, sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (lua_type(L, idx) == LUA_TNUMBER) {
        for (int g = 0; g < n; g++) v[g] = lua_tonumber(L, idx);
    } else if (lua_istable(L, idx) && !ftl_lcore_is_slice(L, idx)) {
        int m;
        double *list = ftl_lcore_number_list(L, idx, &m, ftf_hyper_name(k));
        if (m != n)
            luaL_error(L, "%d values of %s for %d parameter groups", m, ftf_hyper_name(k), n);
        memcpy(v, list, sizeof(double) * (size_t)n);
        lua_pop(L, 1);
    } else {
        luaL_error(L, "%s must be a number or a table with one number per group",
                   ftf_hyper_name(k));
    }
    for (int g = 0; g < n; g++)
        if (!isfinite(v[g]))
            luaL_error(L, "%s must be a finite number, got %f", ftf_hyper_name(k), v[g]);
    return v;
}

static ftf_hyper check_hyper_name(lua_State *L, int idx) {
    int k = ftf_hyper_from_name(luaL_checkstring(L, idx));
    if (k < 0)
        luaL_argerror(L, idx,
                      lua_pushfstring(L,
                                      "unknown hyper-parameter '%s' (lr, mom, sqr_mom, eps or wd)",
                                      lua_tostring(L, idx)));
    return (ftf_hyper)k;
}

/* Shared by core.Adam and core.SGD: groups is a list of lists of tensors, or one list of
 * tensors (one group); opts sets hypers (number, slice or one per group) and decouple_wd. */
static int new_optimizer(lua_State *L, ftf_opt_kind kind) {
    const char *what = ftf_opt_kind_name(kind);
    static const char *const keys[] = {"lr", "mom", "sqr_mom", "eps", "wd", "decouple_wd", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    ftl_check_options(L, 2, what, keys);
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
    void **slot = ftl_lcore_new_box(L, ADAM_MT); /* index 3 */
    ftf_adam *o = kind == FTL_OPT_SGD ? new_ftl_sgd(momentum, l2_wd) : new_ftl_adam();
    if (!o) luaL_error(L, "%s: out of memory", what);
    *slot = o;
    o->l2_wd = l2_wd;
    ftf_adam_hypers h = kind == FTL_OPT_SGD ? ftf_sgd_defaults() : ftf_adam_defaults();
    char pname[32];
    snprintf(pname, sizeof pname, "%s params", what);
    for (int g = 0; g < n_groups; g++) {
        int n;
        if (nested)
            lua_geti(L, 1, g + 1);
        else
            lua_pushvalue(L, 1);
        ft_tensor **ts = ftl_lcore_tensor_list(L, -1, &n, pname);
        ftl_lcore_check(L, ftf_adam_add_group(o, ts, n, &h));
        lua_pop(L, 2);
    }
    if (!lua_isnil(L, 2)) {
        for (int k = 0; k < FTL_NHYPERS; k++) {
            if (lua_getfield(L, 2, ftf_hyper_name((ftf_hyper)k)) != LUA_TNIL)
                ftf_adam_set_hyper(o, (ftf_hyper)k, hyper_values(L, -1, (ftf_hyper)k, n_groups));
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
    lua_pushstring(L, ftf_opt_kind_name(check_adam(L, 1)->kind));
    return 1;
}

static int adam_step(lua_State *L) {
    ftl_lcore_check(L, ftf_adam_step(check_adam(L, 1)));
    return 0;
}

/* opt:zero_grad([set_to_none = true]) */
static int adam_zero_grad(lua_State *L) {
    ftf_adam *o = check_adam(L, 1);
    int to_none = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    ftl_lcore_check(L, ftf_adam_zero_grad(o, to_none));
    return 0;
}

static int adam_clear_state(lua_State *L) {
    ftf_adam_clear_state(check_adam(L, 1));
    return 0;
}

/* opt:set_hyper(name, number | slice | {per group}) */
static int adam_set_hyper(lua_State *L) {
    ftf_adam *o = check_adam(L, 1);
    ftf_hyper k = check_hyper_name(L, 2);
    ftf_adam_set_hyper(o, k, hyper_values(L, 3, k, o->n_groups));
    return 0;
}

/* opt:hypers() -> {{lr=, mom=, sqr_mom=, eps=, wd=} per group} */
static int adam_hypers(lua_State *L) {
    ftf_adam *o = check_adam(L, 1);
    lua_createtable(L, o->n_groups, 0);
    for (int g = 0; g < o->n_groups; g++) {
        lua_createtable(L, 0, FTL_NHYPERS);
        for (int k = 0; k < FTL_NHYPERS; k++) {
            lua_pushnumber(L, ftf_adam_get_hyper(o, g, (ftf_hyper)k));
            lua_setfield(L, -2, ftf_hyper_name((ftf_hyper)k));
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

static ftf_adam_param *param_arg(lua_State *L, ftf_adam *o, int idx) {
    lua_Integer i = luaL_checkinteger(L, idx);
    if (i < 1 || i > o->n_params)
        luaL_argerror(L, idx,
                      lua_pushfstring(L, "param %d out of range (1..%d)", (int)i, o->n_params));
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
    ftf_adam *o = check_adam(L, 1);
    ftf_adam_param *q = param_arg(L, o, 2);
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
    ftf_adam *o = check_adam(L, 1);
    ftf_adam_param *q = param_arg(L, o, 2);
    static const char *const keys[] = {"do_wd", "force_train", NULL};
    luaL_checktype(L, 3, LUA_TTABLE);
    ftl_check_options(L, 3, "set_flags", keys);
    if (lua_getfield(L, 3, "do_wd") != LUA_TNIL) q->do_wd = lua_toboolean(L, -1);
    if (lua_getfield(L, 3, "force_train") != LUA_TNIL) q->force_train = lua_toboolean(L, -1);
    return 0;
}

/* opt:freeze_to(n) -> fastai's frozen_idx (n groups frozen; negative counts from the end) */
static int adam_freeze_to(lua_State *L) {
    ftf_adam *o = check_adam(L, 1);
    int idx;
    ftl_lcore_check(L, ftf_adam_freeze_to(o, (int)luaL_checkinteger(L, 2), &idx));
    lua_pushinteger(L, idx);
    return 1;
}

static int adam_snapshot(lua_State *L) {
    ftf_adam *o = check_adam(L, 1);
    void **slot = ftl_lcore_new_box(L, ADAM_SNAP_MT);
    ftf_adam_snapshot *s = NULL;
    ftl_lcore_check(L, new_ftl_adam_snapshot(o, &s));
    *slot = s;
    return 1;
}

static int adam_restore(lua_State *L) {
    ftf_adam *o = check_adam(L, 1);
    ftl_lcore_check(L, ftf_adam_restore(o, ftl_lcore_check_box(L, 2, ADAM_SNAP_MT)));
    return 0;
}

static int adam_tostring(lua_State *L) {
    ftl_lcore_box *b = luaL_checkudata(L, 1, ADAM_MT);
    const ftf_adam *o = b->p;
    if (!o)
        lua_pushliteral(L, "optimizer (freed)");
    else
        lua_pushfstring(L, "%s (%d groups, %d params)", ftf_opt_kind_name(o->kind), o->n_groups,
                        o->n_params);
    return 1;
}

static int adam_snap_gc(lua_State *L) {
    free_ftl_adam_snapshot(ftl_lcore_take_box(L, 1, ADAM_SNAP_MT));
    return 0;
}

/* core.tensor_snapshot(list) -> snapshot; snap:restore(list) copies the values back in place */
static int l_tensor_snapshot(lua_State *L) {
    int n;
    ft_tensor **ts = ftl_lcore_tensor_list(L, 1, &n, "tensor_snapshot");
    void **slot = ftl_lcore_new_box(L, TENSOR_SNAP_MT);
    ftf_tensor_snapshot *s = NULL;
    ftl_lcore_check(L, new_ftl_tensor_snapshot(ts, n, &s));
    *slot = s;
    return 1;
}

static int tensor_snap_restore(lua_State *L) {
    ftf_tensor_snapshot *s = ftl_lcore_check_box(L, 1, TENSOR_SNAP_MT);
    int n;
    ft_tensor **ts = ftl_lcore_tensor_list(L, 2, &n, "restore");
    ftl_lcore_check(L, ftf_tensor_snapshot_restore(s, ts, n));
    return 0;
}

static int tensor_snap_gc(lua_State *L) {
    free_ftl_tensor_snapshot(ftl_lcore_take_box(L, 1, TENSOR_SNAP_MT));
    return 0;
}

/* ---------------------------------------------------------------- registration */

void ftl_lcore_open_optim(lua_State *L) {
    static const luaL_Reg adam_methods[] = {{"step", adam_step},
                                            {"zero_grad", adam_zero_grad},
                                            {"clear_state", adam_clear_state},
                                            {"set_hyper", adam_set_hyper},
                                            {"hypers", adam_hypers},
                                            {"n_groups", adam_n_groups},
                                            {"n_params", adam_n_params},
                                            {"param_state", adam_param_state},
                                            {"set_flags", adam_set_flags},
                                            {"freeze_to", adam_freeze_to},
                                            {"state_snapshot", adam_snapshot},
                                            {"restore", adam_restore},
                                            {"kind", adam_kind},
                                            {"free", adam_gc},
                                            {NULL, NULL}};
    static const luaL_Reg adam_meta[] = {
        {"__gc", adam_gc}, {"__close", adam_gc}, {"__tostring", adam_tostring}, {NULL, NULL}};
    ftl_new_class(L, ADAM_MT, adam_methods, adam_meta);
    static const luaL_Reg adam_snap_methods[] = {{"free", adam_snap_gc}, {NULL, NULL}};
    static const luaL_Reg adam_snap_meta[] = {
        {"__gc", adam_snap_gc}, {"__close", adam_snap_gc}, {NULL, NULL}};
    ftl_new_class(L, ADAM_SNAP_MT, adam_snap_methods, adam_snap_meta);
    static const luaL_Reg tensor_snap_methods[] = {
        {"restore", tensor_snap_restore}, {"free", tensor_snap_gc}, {NULL, NULL}};
    static const luaL_Reg tensor_snap_meta[] = {
        {"__gc", tensor_snap_gc}, {"__close", tensor_snap_gc}, {NULL, NULL}};
    ftl_new_class(L, TENSOR_SNAP_MT, tensor_snap_methods, tensor_snap_meta);
    static const luaL_Reg funcs[] = {
        {"Adam", l_adam}, {"SGD", l_sgd}, {"tensor_snapshot", l_tensor_snapshot}, {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
}
