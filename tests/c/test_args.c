/* test_args.c: the one options reader of runtime/base/args.h, called from a Lua function as a
 * module calls it. The expected messages are the forms lua/ftlua/args.lua gives, written out. */
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "check.h"
#include "ftlua.h"

static const char *const KNOWN[] = {"stride", "bias", "mode", "lr", "x", NULL};
static const char *const MODES[] = {"nearest", "bilinear", "bicubic", NULL};

/* read(opts) -> stride, bias, mode, lr, name, has_x: every reader once over one table */
static int l_read(lua_State *L) {
    lua_settop(L, 1); /* the options at 1, results pushed above them */
    ftl_check_options(L, 1, "Conv2d", KNOWN);
    lua_pushinteger(L, ftl_opt_integer_in(L, 1, "Conv2d", "stride", 1, 1, 64));
    lua_pushboolean(L, ftl_opt_boolean(L, 1, "Conv2d", "bias", 1));
    lua_pushinteger(L, ftl_opt_enum(L, 1, "Conv2d", "mode", MODES, 1));
    lua_pushnumber(L, ftl_opt_number_in(L, 1, "Conv2d", "lr", 0.5, 0, 1));
    lua_pushboolean(L, ftl_opt_tensor(L, 1, "Conv2d", "x") != NULL);
    return 5;
}

static int l_plain(lua_State *L) {
    lua_settop(L, 1);
    lua_pushinteger(L, ftl_opt_integer(L, 1, "f", "n", 7));
    lua_pushnumber(L, ftl_opt_number(L, 1, "f", "v", 2.5));
    lua_pushstring(L, ftl_opt_string(L, 1, "f", "s", "dflt"));
    return 3;
}

static lua_State *L;

/* The error of `code` without its position (luaL_error puts the caller's line first), or
 * "(no error)". */
static const char *err(const char *code) {
    static char msg[1024];
    int st = luaL_dostring(L, code);
    const char *m = st == LUA_OK ? "(no error)" : lua_tostring(L, -1);
    const char *at = strstr(m, "]:1: ");
    snprintf(msg, sizeof msg, "%s", at ? at + 5 : m);
    lua_settop(L, 0);
    return msg;
}

/* The values `code` returns, joined by spaces with tostring. */
static const char *vals(const char *code) {
    static char out[1024];
    char buf[1200];
    snprintf(buf, sizeof buf,
             "local t = table.pack(%s) for i = 1, t.n do t[i] = tostring(t[i]) end "
             "return table.concat(t, ' ')",
             code);
    if (luaL_dostring(L, buf) != LUA_OK)
        snprintf(out, sizeof out, "error: %s", lua_tostring(L, -1));
    else
        snprintf(out, sizeof out, "%s", lua_tostring(L, -1));
    lua_settop(L, 0);
    return out;
}

#define SAME(name, got, want)                                                                      \
    do {                                                                                           \
        const char *g_ = (got);                                                                    \
        CHECK(name, strcmp(g_, want) == 0);                                                        \
        if (strcmp(g_, want) != 0) printf("#   got  %s\n#   want %s\n", g_, want);                 \
    } while (0)

int main(void) {
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "ftlua", luaopen_ftlua, 1);
    lua_pop(L, 1);
    lua_register(L, "read", l_read);
    lua_register(L, "plain", l_plain);

    SAME("defaults_nil", vals("read()"), "1 true 1 0.5 false");
    SAME("defaults_empty", vals("read({})"), "1 true 1 0.5 false");
    SAME(
        "values",
        vals(
            "read{stride = 2.0, bias = false, mode = 'bicubic', lr = 1, x = ftlua.tensor.zeros(2)}"),
        "2 false 2 1.0 true");
    SAME("plain_defaults", vals("plain(nil)"), "7 2.5 dflt");
    SAME("plain_values", vals("plain{n = -3, v = 1e300, s = 'abc'}"), "-3 1e+300 abc");

    SAME("not_table", err("read(true)"), "Conv2d: options must be a table, got a boolean");
    SAME("unknown", err("read{strid = 2}"),
         "Conv2d: unknown option 'strid' (known: bias, lr, mode, stride, x)");
    SAME("unknown_index", err("read{4}"),
         "Conv2d: unknown option '1' (known: bias, lr, mode, stride, x)");
    SAME("integer_string", err("read{stride = '2'}"),
         "Conv2d: option 'stride' must be an integer in [1, 64], got the string \"2\"");
    SAME("integer_fraction", err("read{stride = 1.5}"),
         "Conv2d: option 'stride' must be an integer in [1, 64], got 1.5");
    SAME("integer_range", err("read{stride = 0}"),
         "Conv2d: option 'stride' must be an integer in [1, 64], got 0");
    SAME("boolean", err("read{bias = 1}"), "Conv2d: option 'bias' must be true or false, got 1");
    SAME(
        "enum", err("read{mode = 'cubic'}"),
        "Conv2d: option 'mode' must be one of \"nearest\", \"bilinear\" or \"bicubic\", got the string \"cubic\"");
    SAME("enum_type", err("read{mode = 3}"),
         "Conv2d: option 'mode' must be one of \"nearest\", \"bilinear\" or \"bicubic\", got 3");
    CHECK("number_nan", strstr(err("read{lr = 0/0}"),
                               "Conv2d: option 'lr' must be a number in [0.0, 1.0], got ") &&
                            strstr(err("read{lr = 0/0}"), "nan"));
    SAME("number_type", err("read{lr = {}}"),
         "Conv2d: option 'lr' must be a number in [0.0, 1.0], got a table");
    SAME("tensor", err("read{x = {1, 2}}"), "Conv2d: option 'x' must be a tensor, got a table");
    SAME("plain_integer", err("plain{n = 'x'}"),
         "f: option 'n' must be an integer, got the string \"x\"");
    SAME("plain_number", err("plain{v = true}"), "f: option 'v' must be a number, got a boolean");
    SAME("plain_string", err("plain{s = 5}"), "f: option 's' must be a string, got 5");
    /* the stack is balanced after many reads (no leftover per call) */
    SAME(
        "balanced",
        vals(
            "(function() local n for i = 1, 1000 do n = select('#', read{stride = 3}) end return n end)()"),
        "5");
    lua_close(L);
    return check_exit();
}
