/* host_show.c: how the REPL and the notebook show a value (host.h, "showing values"): a table one
 * level deep with its keys in order, anything else as tostring does.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "host.h"
#include "host_internal.h"

#define SHOW_ITEMS 20 /* table entries shown before "..." */
#define SHOW_CHARS 60 /* string length shown inside a table */

/* ---------------------------------------------------------------- showing values */

/* Truncated string literal for values inside a table: "abc\n..." */
static void push_quoted(lua_State *L, int idx) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '"');
    for (size_t i = 0; i < len && i < SHOW_CHARS; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            luaL_addchar(&b, '\\');
            luaL_addchar(&b, (char)c);
        } else if (c == '\n')
            luaL_addstring(&b, "\\n");
        else if (c == '\t')
            luaL_addstring(&b, "\\t");
        else if (c < 32 || c == 127) {
            char e[8];
            snprintf(e, sizeof e, "\\%d", c);
            luaL_addstring(&b, e);
        } else
            luaL_addchar(&b, (char)c);
    }
    luaL_addchar(&b, '"');
    if (len > SHOW_CHARS) luaL_addstring(&b, "...");
    luaL_pushresult(&b);
}

/* Tables with their own way of printing (__tostring, or __name) use it. */
static int plain_table(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TTABLE) return 0;
    if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (luaL_getmetafield(L, idx, "__name") != LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

/* One value inside a table: nested tables are not opened. */
static void push_brief(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING)
        push_quoted(L, idx);
    else if (plain_table(L, idx)) {
        lua_pushnil(L);
        int empty = !lua_next(L, idx);
        if (!empty) lua_pop(L, 2);
        lua_pushstring(L, empty ? "{}" : "{...}");
    } else {
        /* a multi-line __tostring (a tensor) on one line, cut short */
        size_t len;
        const char *s = luaL_tolstring(L, idx, &len);
        if (len <= SHOW_CHARS && !memchr(s, '\n', len)) return;
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        size_t i = 0;
        for (size_t shown = 0; i < len && shown < SHOW_CHARS; i++, shown++) {
            if (s[i] != '\n') {
                luaL_addchar(&b, s[i]);
                continue;
            }
            while (i + 1 < len && isspace((unsigned char)s[i + 1])) i++;
            luaL_addchar(&b, ' ');
        }
        if (i < len) luaL_addstring(&b, "...");
        luaL_pushresult(&b);
        lua_remove(L, -2);
    }
}

/* Sort order of keys: numbers, strings, booleans, the rest (by address). */
static int key_rank(lua_State *L, int i) {
    switch (lua_type(L, i)) {
    case LUA_TNUMBER: return 0;
    case LUA_TSTRING: return 1;
    case LUA_TBOOLEAN: return 2;
    default: return 3;
    }
}

static int key_less(lua_State *L) {
    int ra = key_rank(L, 1), rb = key_rank(L, 2), less;
    if (ra != rb)
        less = ra < rb;
    else if (ra <= 1)
        less = lua_compare(L, 1, 2, LUA_OPLT);
    else if (ra == 2)
        less = !lua_toboolean(L, 1) && lua_toboolean(L, 2);
    else
        less = (uintptr_t)lua_topointer(L, 1) < (uintptr_t)lua_topointer(L, 2);
    lua_pushboolean(L, less);
    return 1;
}

/* {1, 2, name = "x", [10] = true, ... (5 more)}: the array part in order, then the other keys
 * sorted; one level deep. Pushes the string. */
static void push_table(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lua_Integer n = 0; /* the array part: 1..n */
    while (lua_rawgeti(L, idx, n + 1) != LUA_TNIL) {
        lua_pop(L, 1);
        n++;
    }
    lua_pop(L, 1);

    lua_newtable(L); /* the other keys */
    int keys = lua_gettop(L);
    lua_Integer nk = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= n)
            continue;
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++nk);
    }
    /* table.sort from the loaded library, so a user's global `table` cannot break printing */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (nk > 1 && lua_getfield(L, -1, "table") == LUA_TTABLE &&
        lua_getfield(L, -1, "sort") == LUA_TFUNCTION) {
        lua_pushvalue(L, keys);
        lua_pushcfunction(L, key_less);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1); /* unsorted, then */
    }
    lua_settop(L, keys);

    /* the string grows on top of the stack: acc, then each ", item" is concatenated to it */
    lua_pushliteral(L, "{");
    lua_Integer shown = 0, total = n + nk;
    for (lua_Integer i = 1; i <= total && shown < SHOW_ITEMS; i++, shown++) {
        lua_pushstring(L, shown ? ", " : "");
        if (i <= n) {
            lua_rawgeti(L, idx, i);
            push_brief(L, -1);
            lua_remove(L, -2);
        } else {
            lua_rawgeti(L, keys, i - n);
            int k = lua_gettop(L);
            size_t len;
            const char *s = lua_type(L, k) == LUA_TSTRING ? lua_tolstring(L, k, &len) : NULL;
            if (s && fth_host_is_name(s, len))
                lua_pushvalue(L, k);
            else {
                lua_pushliteral(L, "[");
                push_brief(L, k);
                lua_pushliteral(L, "]");
                lua_concat(L, 3);
            }
            lua_pushliteral(L, " = ");
            lua_pushvalue(L, k);
            lua_rawget(L, idx);
            push_brief(L, -1);
            lua_remove(L, -2);
            lua_concat(L, 3);
            lua_remove(L, k);
        }
        lua_concat(L, 3);
    }
    if (total > shown)
        lua_pushfstring(L, "%s... (%I more)", shown ? ", " : "", (LUA_INTEGER)(total - shown));
    else
        lua_pushliteral(L, "");
    lua_pushliteral(L, "}");
    lua_concat(L, 3);
    lua_remove(L, keys);
}

void ftl_push_shown(lua_State *L, int idx) {
    if (plain_table(L, idx))
        push_table(L, idx);
    else
        luaL_tolstring(L, idx, NULL);
}

int ftl_print_results(lua_State *L) {
    int n = lua_gettop(L);
    if (n == 0) return 0; /* a call that returns nothing shows nothing */
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    for (int i = 1; i <= n; i++) {
        ftl_push_shown(L, i);
        lua_replace(L, i);
    }
    lua_getglobal(L, "print");
    lua_insert(L, 1);
    lua_call(L, n, 0);
    return 0;
}
