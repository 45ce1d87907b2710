/* learner_core.c: the entry of ft.learner_core, the Lua bindings of the learner's core:
 * schedules and the per-group lr rule, fastai's Adam and SGD and state snapshots, the lr
 * finder, metrics and losses, and what a fit prints (one file each: see learner_core.h).
 * `luaopen_ftlua_learner_core` returns the table; the C functions in schedule.h, optimizer.h,
 * lr_find.h, metrics.h and progress.h stay the source of truth (the C training loop calls them
 * directly, no Lua per batch). This file also holds the helpers the bindings share.
 */
#include "learner/learner_core.h"

/* ---------------------------------------------------------------- helpers */

void ftl_lcore_check(lua_State *L, ft_status st) {
    if (st != FT_OK) luaL_error(L, "%s", ft_last_error());
}

void **ftl_lcore_new_box(lua_State *L, const char *mt) {
    ftl_lcore_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->p = NULL; /* closed until filled */
    luaL_setmetatable(L, mt);
    return &b->p;
}

void *ftl_lcore_check_box(lua_State *L, int idx, const char *mt) {
    ftl_lcore_box *b = luaL_checkudata(L, idx, mt);
    if (!b->p) luaL_argerror(L, idx, "attempt to use a freed object");
    return b->p;
}

void *ftl_lcore_take_box(lua_State *L, int idx, const char *mt) {
    ftl_lcore_box *b = luaL_checkudata(L, idx, mt);
    void *p = b->p;
    b->p = NULL;
    return p;
}

void *ftl_lcore_scratch(lua_State *L, size_t bytes) {
    return lua_newuserdatauv(L, bytes ? bytes : 1, 0);
}

void ftl_lcore_push_numbers(lua_State *L, const double *v, int n) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

double *ftl_lcore_number_list(lua_State *L, int idx, int *n, const char *what) {
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    *n = (int)luaL_len(L, idx);
    double *v = ftl_lcore_scratch(L, sizeof(double) * (size_t)*n);
    for (int i = 0; i < *n; i++) {
        lua_geti(L, idx, i + 1);
        int ok;
        v[i] = lua_tonumberx(L, -1, &ok);
        if (!ok)
            luaL_error(L, "%s: entry %d is a %s, expected a number", what, i + 1,
                       luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    return v;
}

ft_tensor **ftl_lcore_tensor_list(lua_State *L, int idx, int *n, const char *what) {
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    *n = (int)luaL_len(L, idx);
    ft_tensor **ts = ftl_lcore_scratch(L, sizeof(ft_tensor *) * (size_t)*n);
    for (int i = 0; i < *n; i++) {
        lua_geti(L, idx, i + 1);
        ts[i] = ftl_to_tensor(L, -1);
        if (!ts[i])
            luaL_error(L, "%s: entry %d is a %s, expected a tensor", what, i + 1,
                       luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    return ts;
}

/* ---------------------------------------------------------------- the module */

int luaopen_ftlua_learner_core(lua_State *L) {
    lua_newtable(L);
    ftl_lcore_open_sched(L);
    ftl_lcore_open_optim(L);
    ftl_lcore_open_metrics(L);
    ftl_lcore_open_progress(L);
    return 1;
}
