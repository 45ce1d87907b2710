/* args.c: the one reader of options tables (see args.h for the message forms). */
#include <math.h>
#include <string.h>

#include "base/args.h"
#include "base/lua_tensor.h"

const char *ftl_push_described(lua_State *L, int idx) {
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: return lua_pushfstring(L, "the string \"%s\"", lua_tostring(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) return lua_pushfstring(L, "%I", lua_tointeger(L, idx));
        return lua_pushfstring(L, "%f", lua_tonumber(L, idx));
    default: return lua_pushfstring(L, "a %s", luaL_typename(L, idx));
    }
}

/* Raises "fn: option 'key' must be <what>, got <the value at index value>". */
static int wrong(lua_State *L, int value, const char *fn, const char *key, const char *what) {
    const char *got = ftl_push_described(L, value);
    return luaL_error(L, "%s: option '%s' must be %s, got %s", fn, key, what, got);
}

static void check_table(lua_State *L, int t, const char *fn) {
    if (lua_isnoneornil(L, t) || lua_istable(L, t)) return;
    const char *got = ftl_push_described(L, t);
    luaL_error(L, "%s: options must be a table, got %s", fn, got);
}

/* Pushes opts[key] and returns its index; returns 0 (pushing nothing) when it is nil or there
 * are no options. */
static int get(lua_State *L, int t, const char *fn, const char *key) {
    check_table(L, t, fn);
    if (lua_isnoneornil(L, t)) return 0;
    if (lua_getfield(L, t, key) != LUA_TNIL) return lua_gettop(L);
    lua_pop(L, 1);
    return 0;
}

static int is_known(const char *key, const char *const known[]) {
    for (int i = 0; known[i]; i++)
        if (strcmp(key, known[i]) == 0) return 1;
    return 0;
}

/* Pushes "a, b, c": the known names, sorted (the lists are short: pick the next in order). */
static const char *push_known_list(lua_State *L, const char *const known[]) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *prev = NULL, *next;
    do {
        next = NULL;
        for (int i = 0; known[i]; i++)
            if ((!prev || strcmp(known[i], prev) > 0) && (!next || strcmp(known[i], next) < 0))
                next = known[i];
        if (next) {
            if (prev) luaL_addstring(&b, ", ");
            luaL_addstring(&b, next);
        }
        prev = next;
    } while (next);
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

/* The keys of the table at t are all known; with named_only, keys that are not strings (an
 * array part) are let through. */
static void check_keys(lua_State *L, int t, const char *fn, const char *const known[],
                       int named_only) {
    check_table(L, t, fn);
    if (lua_isnoneornil(L, t)) return;
    t = lua_absindex(L, t);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1); /* the value */
        int is_name = lua_type(L, -1) == LUA_TSTRING;
        if (is_name ? is_known(lua_tostring(L, -1), known) : named_only) continue;
        const char *key = luaL_tolstring(L, -1, NULL);
        luaL_error(L, "%s: unknown option '%s' (known: %s)", fn, key, push_known_list(L, known));
    }
}

void ftl_check_options(lua_State *L, int t, const char *fn, const char *const known[]) {
    check_keys(L, t, fn, known, 0);
}

void ftl_check_named_options(lua_State *L, int t, const char *fn, const char *const known[]) {
    check_keys(L, t, fn, known, 1);
}

lua_Integer ftl_opt_integer(lua_State *L, int t, const char *fn, const char *key, lua_Integer def) {
    return ftl_opt_integer_in(L, t, fn, key, def, LUA_MININTEGER, LUA_MAXINTEGER);
}

lua_Integer ftl_opt_integer_in(lua_State *L, int t, const char *fn, const char *key,
                               lua_Integer def, lua_Integer lo, lua_Integer hi) {
    int i = get(L, t, fn, key);
    if (!i) return def;
    int ok;
    lua_Integer v = lua_tointegerx(L, i, &ok);
    if (!ok || lua_type(L, i) != LUA_TNUMBER || v < lo || v > hi) {
        int any = lo == LUA_MININTEGER && hi == LUA_MAXINTEGER;
        wrong(L, i, fn, key,
              any ? "an integer" : lua_pushfstring(L, "an integer in [%I, %I]", lo, hi));
    }
    lua_pop(L, 1);
    return v;
}

double ftl_opt_number(lua_State *L, int t, const char *fn, const char *key, double def) {
    int i = get(L, t, fn, key);
    if (!i) return def;
    if (lua_type(L, i) != LUA_TNUMBER) wrong(L, i, fn, key, "a number");
    double v = lua_tonumber(L, i);
    lua_pop(L, 1);
    return v;
}

double ftl_opt_number_in(lua_State *L, int t, const char *fn, const char *key, double def,
                         double lo, double hi) {
    int i = get(L, t, fn, key);
    if (!i) return def;
    double v = lua_tonumber(L, i);
    if (lua_type(L, i) != LUA_TNUMBER || !(v >= lo && v <= hi)) /* NaN fails too */
        wrong(L, i, fn, key, lua_pushfstring(L, "a number in [%f, %f]", lo, hi));
    lua_pop(L, 1);
    return v;
}

int ftl_opt_boolean(lua_State *L, int t, const char *fn, const char *key, int def) {
    int i = get(L, t, fn, key);
    if (!i) return def;
    if (!lua_isboolean(L, i)) wrong(L, i, fn, key, "true or false");
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

const char *ftl_opt_string(lua_State *L, int t, const char *fn, const char *key, const char *def) {
    int i = get(L, t, fn, key);
    if (!i) return def;
    if (lua_type(L, i) != LUA_TSTRING) wrong(L, i, fn, key, "a string");
    const char *s = lua_tostring(L, -1); /* anchored by the table */
    lua_pop(L, 1);
    return s;
}

int ftl_opt_enum(lua_State *L, int t, const char *fn, const char *key, const char *const names[],
                 int def) {
    int v = get(L, t, fn, key);
    if (!v) return def;
    const char *s = lua_type(L, v) == LUA_TSTRING ? lua_tostring(L, v) : NULL;
    for (int i = 0; s && names[i]; i++)
        if (strcmp(s, names[i]) == 0) {
            lua_pop(L, 1);
            return i;
        }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; names[i]; i++) {
        luaL_addstring(&b, i == 0 ? "one of \"" : names[i + 1] ? ", \"" : " or \"");
        luaL_addstring(&b, names[i]);
        luaL_addchar(&b, '"');
    }
    luaL_pushresult(&b);
    return wrong(L, v, fn, key, lua_tostring(L, -1));
}

ft_tensor *ftl_opt_tensor(lua_State *L, int t, const char *fn, const char *key) {
    int i = get(L, t, fn, key);
    if (!i) return NULL;
    ft_tensor *h = ftl_to_tensor(L, i);
    if (!h) wrong(L, i, fn, key, "a tensor");
    lua_pop(L, 1); /* the table keeps the userdata alive */
    return h;
}
