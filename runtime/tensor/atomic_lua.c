/* atomic_lua.c: ft.io, atomic writes for Lua code (io/atomic.h does the work; this binding
 * lives with the modules, as the layer rule of docs/design.md wants).
 *
 *   ft.io.write_atomic(path, s)          -- path holds the old file or s, whole
 *   local w <close> = ft.io.open_atomic(path)
 *   w:write(s1, s2, ...)                 -- as file:write (strings and numbers)
 *   w:commit()                           -- checked fsync + rename; raises naming path and cause
 *   -- leaving the scope (or w:abort(), or an error) without commit leaves path untouched
 *
 * Errors are raised after the temp is removed, so a Lua error never leaks a temp file.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "ftlua.h"
#include "io/atomic.h"

#define ATOMIC_MT "ftlua.AtomicFile"

typedef struct {
    af_file af;
    int open; /* 1 until commit or abort */
} atomic_ud;

static int l_write_atomic(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    char err[1200];
    if (af_write(path, s, n, err, sizeof err) != 0) return luaL_error(L, "write_atomic: %s", err);
    return 0;
}

static int l_open_atomic(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    atomic_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->open = 0;
    luaL_setmetatable(L, ATOMIC_MT);
    char err[1200];
    if (af_open(&u->af, path, err, sizeof err) != 0) return luaL_error(L, "open_atomic: %s", err);
    u->open = 1;
    return 1;
}

static atomic_ud *check_open(lua_State *L, const char *what) {
    atomic_ud *u = luaL_checkudata(L, 1, ATOMIC_MT);
    if (!u->open) luaL_error(L, "%s: the atomic file was already committed or aborted", what);
    return u;
}

/* w:write(...): strings and numbers, as file:write; returns w. A failed write is reported by
 * commit, with its cause. */
static int l_w_write(lua_State *L) {
    atomic_ud *u = check_open(L, "write");
    int top = lua_gettop(L);
    for (int i = 2; i <= top; i++) {
        if (lua_type(L, i) != LUA_TSTRING && lua_type(L, i) != LUA_TNUMBER)
            return luaL_error(L, "write: argument %d must be a string or a number (got %s)", i - 1,
                              luaL_typename(L, i));
        size_t n;
        const char *s = lua_tolstring(L, i, &n);
        if (n) fwrite(s, 1, n, u->af.f);
    }
    lua_settop(L, 1);
    return 1;
}

static int l_w_commit(lua_State *L) {
    atomic_ud *u = check_open(L, "commit");
    u->open = 0;
    char err[1200];
    if (af_commit(&u->af, err, sizeof err) != 0) return luaL_error(L, "commit: %s", err);
    return 0;
}

static int l_w_abort(lua_State *L) {
    atomic_ud *u = luaL_checkudata(L, 1, ATOMIC_MT);
    if (u->open) af_abort(&u->af);
    u->open = 0;
    return 0;
}

static int l_w_tostring(lua_State *L) {
    atomic_ud *u = luaL_checkudata(L, 1, ATOMIC_MT);
    lua_pushfstring(L, "atomic file %s (%s)", u->af.path, u->open ? "open" : "closed");
    return 1;
}

int luaopen_ftlua_io(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"write", l_w_write}, {"commit", l_w_commit}, {"abort", l_w_abort}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", l_w_abort}, {"__close", l_w_abort}, {"__tostring", l_w_tostring}, {NULL, NULL}};
    ftl_new_class(L, ATOMIC_MT, methods, meta);
    static const luaL_Reg fns[] = {
        {"write_atomic", l_write_atomic}, {"open_atomic", l_open_atomic}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
