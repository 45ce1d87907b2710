/* args.h: the one reader of options tables for every Lua module written in C (base layer).
 *
 * An options table is a call's last argument: ft.nn.Conv2d(3, 8, 3, {stride = 2}). Each reader
 * takes the table's stack index t (none or nil: every option takes its default), the name of the
 * user's function `fn` and the option's `key`, and returns the value or the default. Messages
 * have one form, the same as lua/ftlua/args.lua's:
 *
 *   Conv2d: option 'stride' must be an integer, got the string "2"
 *   Conv2d: options must be a table, got a boolean
 *   Conv2d: unknown option 'strid' (known: bias, dilation, groups, padding, stride)
 *
 * Positional arguments keep Lua's own luaL_check* readers and messages.
 */
#ifndef FTL_ARGS_H
#define FTL_ARGS_H

#include <lauxlib.h>
#include <lua.h>

#include "torch/ft_torch.h"

/* Raises "fn: unknown option 'k' (known: ...)" for a string key of the table at t that is not
 * in `known` (NULL-terminated), and "fn: options must be a table" when t holds something else
 * than a table, nil or nothing. */
void ftl_check_options(lua_State *L, int t, const char *fn, const char *const known[]);
/* The same over string keys only: the array part may hold anything (ft.plot's options table and
 * its series keep their data there). */
void ftl_check_named_options(lua_State *L, int t, const char *fn, const char *const known[]);

/* An integer (3 and 3.0 both), a number, true/false, or a string option. */
lua_Integer ftl_opt_integer(lua_State *L, int t, const char *fn, const char *key, lua_Integer def);
double ftl_opt_number(lua_State *L, int t, const char *fn, const char *key, double def);
int ftl_opt_boolean(lua_State *L, int t, const char *fn, const char *key, int def);
/* The string stays valid while the table at t holds it (the caller must not change the table). */
const char *ftl_opt_string(lua_State *L, int t, const char *fn, const char *key, const char *def);

/* Range-checked forms: the value must lie in [lo, hi] ("must be an integer in [1, 64], got 0"). */
lua_Integer ftl_opt_integer_in(lua_State *L, int t, const char *fn, const char *key,
                               lua_Integer def, lua_Integer lo, lua_Integer hi);
double ftl_opt_number_in(lua_State *L, int t, const char *fn, const char *key, double def,
                         double lo, double hi);

/* One of the NULL-terminated `names`; returns its index, or def when the option is absent. */
int ftl_opt_enum(lua_State *L, int t, const char *fn, const char *key, const char *const names[],
                 int def);

/* A tensor option, or NULL when absent. The handle stays owned by the table's userdata. */
ft_tensor *ftl_opt_tensor(lua_State *L, int t, const char *fn, const char *key);

/* Pushes a short description of the value at idx, as messages show it: the string "x",
 * a number as itself, or "a <type>". Returns the pushed string. */
const char *ftl_push_described(lua_State *L, int idx);

#endif /* FTL_ARGS_H */
