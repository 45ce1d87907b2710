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

/* Raises "fn: option 'key' must be <what>, got <the value on top>". */
static int wrong(lua_State *L, const char *fn, const char *key, const char *what) {
    const char *got = ftl_push_described(L, -1);
    return luaL_error(L, "%s: option '%s' must be %s, got %s", fn, key, what, got);
}

static void check_table(lua_State *L, int t, const char *fn) {
    if (lua_isnoneornil(L, t) || lua_istable(L, t)) return;
    const char *got = ftl_push_described(L, t);
    luaL_error(L, "%s: options must be a table, got %s", fn, got);
}

/* Pushes opts[key] (nil without options); returns 0 when it is nil (and pops it). */
static int get(lua_State *L, int t, const char *fn, const char *key) {
    check_table(L, t, fn);
    if (lua_isnoneornil(L, t)) return 0;
    if (lua_getfield(L, t, key) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    return 0;
}

void ftl_check_options(lua_State *L, int t, const char *fn, const char *const known[]) {
    check_table(L, t, fn);
    if (lua_isnoneornil(L, t)) return;
    t = lua_absindex(L, t);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1); /* the value */
        int found = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; known[i] && !found; i++)
                found = strcmp(lua_tostring(L, -1), known[i]) == 0;
        if (found) continue;
        /* sorted list of the known names */
        luaL_Buffer b;
        const char *key = luaL_tolstring(L, -1, NULL);
        int n = 0;
        while (known[n]) n++;
        luaL_buffinit(L, &b);
        const char *prev = "";
        for (int k = 0; k < n; k++) { /* n is small: pick the next name in order each time */
            const char *next = NULL;
            for (int i = 0; i < n; i++)
                if (strcmp(known[i], prev) > 0 && (!next || strcmp(known[i], next) < 0))
                    next = known[i];
            if (!next) break;
            if (k) luaL_addstring(&b, ", ");
            luaL_addstring(&b, next);
            prev = next;
        }
        luaL_pushresult(&b);
        luaL_error(L, "%s: unknown option '%s' (known: %s)", fn, key, lua_tostring(L, -1));
    }
}

lua_Integer ftl_opt_integer(lua_State *L, int t, const char *fn, const char *key, lua_Integer def) {
    if (!get(L, t, fn, key)) return def;
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok || lua_type(L, -1) != LUA_TNUMBER) wrong(L, fn, key, "an integer");
    lua_pop(L, 1);
    return v;
}

lua_Integer ftl_opt_integer_in(lua_State *L, int t, const char *fn, const char *key,
                               lua_Integer def, lua_Integer lo, lua_Integer hi) {
    if (!get(L, t, fn, key)) return def;
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok || lua_type(L, -1) != LUA_TNUMBER || v < lo || v > hi) {
        const char *what = lua_pushfstring(L, "an integer in [%I, %I]", lo, hi);
        lua_rotate(L, -2, 1); /* the value back on top */
        wrong(L, fn, key, what);
    }
    lua_pop(L, 1);
    return v;
}

double ftl_opt_number(lua_State *L, int t, const char *fn, const char *key, double def) {
    if (!get(L, t, fn, key)) return def;
    if (lua_type(L, -1) != LUA_TNUMBER) wrong(L, fn, key, "a number");
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

double ftl_opt_number_in(lua_State *L, int t, const char *fn, const char *key, double def,
                         double lo, double hi) {
    if (!get(L, t, fn, key)) return def;
    double v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(v >= lo && v <= hi)) { /* NaN fails too */
        const char *what = lua_pushfstring(L, "a number in [%f, %f]", lo, hi);
        lua_rotate(L, -2, 1); /* the value back on top */
        wrong(L, fn, key, what);
    }
    lua_pop(L, 1);
    return v;
}

int ftl_opt_boolean(lua_State *L, int t, const char *fn, const char *key, int def) {
    if (!get(L, t, fn, key)) return def;
    if (!lua_isboolean(L, -1)) wrong(L, fn, key, "true or false");
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

const char *ftl_opt_string(lua_State *L, int t, const char *fn, const char *key, const char *def) {
    if (!get(L, t, fn, key)) return def;
    if (lua_type(L, -1) != LUA_TSTRING) wrong(L, fn, key, "a string");
    const char *s = lua_tostring(L, -1); /* anchored by the table */
    lua_pop(L, 1);
    return s;
}

int ftl_opt_enum(lua_State *L, int t, const char *fn, const char *key, const char *const names[],
                 int def) {
    if (!get(L, t, fn, key)) return def;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
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
    lua_rotate(L, -2, 1); /* the value back on top */
    return wrong(L, fn, key, lua_tostring(L, -2));
}

ft_tensor *ftl_opt_tensor(lua_State *L, int t, const char *fn, const char *key) {
    if (!get(L, t, fn, key)) return NULL;
    ft_tensor *h = ftl_to_tensor(L, -1);
    if (!h) wrong(L, fn, key, "a tensor");
    lua_pop(L, 1); /* the table keeps the userdata alive */
    return h;
}
