/* host.c: help for every host of the ftlua library (host.h): the global help(x), the lookups a
 * notebook's inspect request makes, and "did you mean ...?". The Lua half is lua/ftlua/help.lua,
 * reading docs/api.md as compiled in. The rest of host.h lives next to it: host_show.c (how values
 * are shown), host_complete.c (completion), host_input.c (compiling input, source text) and
 * host_errors.c (the message handler).
 */
#include <ctype.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "host.h"
#include "host_internal.h"

extern const char ftl_api_doc[]; /* docs/api.md, compiled in (build/api_doc.c) */

/* ---------------------------------------------------------------- help */

#define HELP_KEY "ftlua.host.help" /* the registry's copy of lua/ftlua/help.lua's table */

/* Push help.lua's table, initialised with the page. Raises when the library is not loaded. */
static void push_help_module(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, HELP_KEY) == LUA_TTABLE) return;
    lua_pop(L, 1);
    /* from the preload table that luaopen_ftlua filled: a user's own `require` plays no part */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    if (lua_getfield(L, -1, "ftlua.help") != LUA_TFUNCTION)
        luaL_error(L, "help: the ftlua library is not loaded");
    lua_remove(L, -2);
    lua_pushliteral(L, "ftlua.help");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "init");
    lua_pushstring(L, ftl_api_doc);
    lua_pushcfunction(L, ftl_names);
    lua_call(L, 2, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, HELP_KEY);
}

/* help.fn(args...) protected: (fn name, nargs) on the stack are the arguments; leaves nres. */
static int help_call_k(lua_State *L) {
    const char *fn = lua_tostring(L, lua_upvalueindex(1));
    int nargs = lua_gettop(L);
    push_help_module(L);
    lua_getfield(L, -1, fn);
    lua_insert(L, 1);
    lua_pop(L, 1);
    lua_call(L, nargs, 2);
    return 2;
}

/* Call help.<fn> with the nargs values on top; leaves its two results (nil, nil on error). */
static void help_call(lua_State *L, const char *fn, int nargs) {
    lua_pushstring(L, fn);
    lua_pushcclosure(L, help_call_k, 1);
    lua_insert(L, -nargs - 1);
    if (lua_pcall(L, nargs, 2, 0) != LUA_OK) {
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_pushnil(L);
    }
}

int ftl_help_value(lua_State *L, int idx) {
    lua_pushvalue(L, idx);
    help_call(L, "value", 1);
    lua_pop(L, 1);
    return lua_type(L, -1) == LUA_TSTRING;
}

int ftl_help_text(lua_State *L, const char *expr) {
    lua_pushstring(L, expr);
    help_call(L, "text", 1);
    if (lua_type(L, -2) == LUA_TSTRING) {
        lua_pop(L, 1);
        return 1;
    }
    lua_remove(L, -2);
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        lua_pushfstring(L, "help: no entry for '%s'", expr);
    }
    return 0;
}

static int path_char(char c) {
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == ':';
}

int ftl_help_at(lua_State *L, const char *code, size_t cursor) {
    size_t len = strlen(code);
    if (cursor > len) cursor = len;
    size_t start = cursor, end = cursor;
    while (start > 0 && path_char(code[start - 1])) start--;
    while (end < len && (isalnum((unsigned char)code[end]) || code[end] == '_'))
        end++; /* the rest of the name */
    while (start < end && !(isalpha((unsigned char)code[start]) || code[start] == '_')) start++;
    if (start == end) {
        lua_pushliteral(L, "help: no name at the cursor");
        return 0;
    }
    lua_pushlstring(L, code + start, end - start);
    int found = ftl_help_text(L, lua_tostring(L, -1));
    lua_remove(L, -2);
    return found;
}

int ftl_push_suggestion(lua_State *L, int obj, const char *name, int methods) {
    obj = lua_absindex(L, obj);
    lua_pushvalue(L, obj);
    lua_pushstring(L, name);
    lua_pushboolean(L, methods);
    help_call(L, "suggest", 3);
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) return 1;
    lua_pop(L, 1);
    return 0;
}

/* The argument text of "help(...)" on the caller's line, pushed; or 0. */
static int push_help_argument(lua_State *L) {
    lua_Debug ar;
    if (!lua_getstack(L, 1, &ar) || !lua_getinfo(L, "Sl", &ar) ||
        !ftl_host_push_source_line(L, ar.source, ar.currentline))
        return 0;
    const char *line = lua_tostring(L, -1);
    const char *h = strstr(line, "help(");
    while (h && h > line && (isalnum((unsigned char)h[-1]) || h[-1] == '_' || h[-1] == '.'))
        h = strstr(h + 1, "help("); /* not xhelp( or t.help( */
    const char *s = h ? h + 5 : NULL, *e = s;
    while (e && *e && *e != ')' && *e != '(') e++;
    if (!e || *e != ')' || e == s) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushlstring(L, s, (size_t)(e - s));
    lua_remove(L, -2);
    return 1;
}

int ftl_help(lua_State *L) {
    if (lua_gettop(L) == 0) {
        push_help_module(L);
        lua_getfield(L, -1, "usage");
    } else if (lua_type(L, 1) == LUA_TSTRING) {
        ftl_help_text(L, lua_tostring(L, 1));
    } else if (!ftl_help_value(L, 1)) {
        lua_pop(L, 1);
        /* help(learn.fit_one_cyle) is help(nil): the caller's line says which name was meant */
        if (push_help_argument(L)) {
            const char *arg = lua_tostring(L, -1);
            if (lua_isnil(L, 1))
                ftl_help_text(L, arg);
            else
                lua_pushfstring(L, "help: %s (a %s) has no entry in the reference", arg,
                                luaL_typename(L, 1));
        } else {
            lua_pushfstring(L, "help: no entry in the reference for this %s", luaL_typename(L, 1));
        }
    }
    lua_getglobal(L, "print");
    lua_insert(L, -2);
    lua_call(L, 1, 0);
    return 0;
}

void ftl_open_host(lua_State *L) {
    lua_pushcfunction(L, ftl_help);
    lua_setglobal(L, "help");
}
