/* json.c: ft.json, a small Lua binding over jansson (Debian's libjansson), the one JSON library
 * of ftlua (learn:export's description; the Jupyter kernel uses jansson from C).
 *
 *   ft.json.encode(v) -> string   compact, object keys sorted: the same value gives the same bytes
 *   ft.json.decode(s) -> value
 *
 * Lua to JSON: nil -> null; booleans; integers -> integers, floats -> reals (17 significant
 * digits, so a float reads back exactly; nan and inf are errors); strings must be UTF-8; a table
 * with a sequence part (or an empty table) is an array of t[1..#t], any other table an object,
 * whose keys must be strings. JSON to Lua: the reverse; null gives nil (a hole in an array, an
 * absent field in an object).
 *
 * A jansson tree is built completely, then the Lua error (a longjmp) is raised only after it has
 * been freed, so nothing leaks on bad input.
 */
#include "base/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>
#include <lauxlib.h>

#define MAX_DEPTH 200 /* nesting: deeper is a cycle or a mistake, not a description */

typedef struct {
    lua_State *L;
    char err[200];
} encoder;

__attribute__((format(printf, 2, 3))) static json_t *enc_fail(encoder *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, sizeof e->err, fmt, ap);
    va_end(ap);
    return NULL;
}

static json_t *to_json(encoder *e, int idx, int depth);

/* A table with a sequence part, or an empty one: t[1..#t]. */
static json_t *array_to_json(encoder *e, int idx, lua_Unsigned n, int depth) {
    json_t *a = json_array();
    if (!a) return enc_fail(e, "out of memory");
    for (lua_Unsigned i = 1; i <= n; i++) {
        lua_rawgeti(e->L, idx, (lua_Integer)i);
        json_t *item = to_json(e, lua_gettop(e->L), depth + 1);
        lua_pop(e->L, 1);
        if (!item || json_array_append_new(a, item) != 0) {
            json_decref(a);
            return item ? enc_fail(e, "out of memory") : NULL;
        }
    }
    return a;
}

static json_t *object_to_json(encoder *e, int idx, int depth) {
    lua_State *L = e->L;
    json_t *o = json_object();
    if (!o) return enc_fail(e, "out of memory");
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* key at -2, value at -1 */
        if (lua_type(L, -2) != LUA_TSTRING) {
            enc_fail(e, "cannot store a table with %s keys", luaL_typename(L, -2));
            lua_pop(L, 2);
            json_decref(o);
            return NULL;
        }
        size_t klen;
        const char *k = lua_tolstring(L, -2, &klen);
        json_t *v = to_json(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (!v || json_object_setn_new(o, k, klen, v) != 0) {
            if (v) enc_fail(e, "cannot store the key '%s' (not UTF-8?)", k);
            lua_pop(L, 1);
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *to_json(encoder *e, int idx, int depth) {
    lua_State *L = e->L;
    if (depth > MAX_DEPTH) return enc_fail(e, "tables nested deeper than %d (a cycle?)", MAX_DEPTH);
    if (!lua_checkstack(L, 4)) return enc_fail(e, "out of Lua stack");
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return json_null();
    case LUA_TBOOLEAN: return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER: {
        if (lua_isinteger(L, idx)) return json_integer((json_int_t)lua_tointeger(L, idx));
        double d = lua_tonumber(L, idx);
        if (!isfinite(d))
            return enc_fail(e, "cannot store %s", isnan(d) ? "nan" : d > 0 ? "inf" : "-inf");
        return json_real(d);
    }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        json_t *j = json_stringn(s, n);
        return j ? j : enc_fail(e, "cannot store the string \"%.40s\": it is not UTF-8", s);
    }
    case LUA_TTABLE: {
        lua_Unsigned n = lua_rawlen(L, idx);
        lua_pushnil(L);
        int empty = lua_next(L, idx) == 0;
        if (!empty) lua_pop(L, 2);
        return (n > 0 || empty) ? array_to_json(e, idx, n, depth) : object_to_json(e, idx, depth);
    }
    default: return enc_fail(e, "cannot store a %s", luaL_typename(L, idx));
    }
}

/* ft.json.encode(v) -> string */
static int json_encode(lua_State *L) {
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    encoder e = {L, ""};
    json_t *root = to_json(&e, 1, 0);
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY |
                                             JSON_REAL_PRECISION(17))
                      : NULL;
    json_decref(root);
    if (!text) return luaL_error(L, "ft.json.encode: %s", e.err[0] ? e.err : "out of memory");
    lua_pushstring(L, text);
    free(text);
    return 1;
}

/* Pushes the Lua value of j. Cannot fail except by running out of memory (a Lua error, so the
 * caller keeps the tree in a to-be-closed slot). */
static void push_json(lua_State *L, json_t *j) {
    luaL_checkstack(L, 4, "ft.json.decode: nested too deep");
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        lua_createtable(L, 0, (int)json_object_size(j));
        json_object_foreach(j, k, v) {
            push_json(L, v);
            lua_setfield(L, -2, k);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push_json(L, json_array_get(j, i));
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING: lua_pushlstring(L, json_string_value(j), json_string_length(j)); break;
    case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(j)); break;
    case JSON_REAL: lua_pushnumber(L, json_real_value(j)); break;
    case JSON_TRUE: lua_pushboolean(L, 1); break;
    case JSON_FALSE: lua_pushboolean(L, 0); break;
    case JSON_NULL: lua_pushnil(L); break;
    }
}

/* The tree's owner on the Lua stack: freed on return and on error alike. */
static int tree_close(lua_State *L) {
    json_t **p = luaL_checkudata(L, 1, "ftlua.json_tree");
    json_decref(*p);
    *p = NULL;
    return 0;
}

/* ft.json.decode(s) -> value */
static int json_decode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    json_t **owner = lua_newuserdatauv(L, sizeof *owner, 0);
    *owner = NULL;
    luaL_setmetatable(L, "ftlua.json_tree");
    lua_toclose(L, -1);
    json_error_t err;
    *owner = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!*owner)
        return luaL_error(L, "ft.json.decode: %s (line %d, column %d)", err.text, err.line,
                          err.column);
    push_json(L, *owner);
    return 1;
}

int luaopen_ftlua_json(lua_State *L) {
    if (luaL_newmetatable(L, "ftlua.json_tree")) {
        lua_pushcfunction(L, tree_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, tree_close);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"encode", json_encode}, {"decode", json_decode}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
