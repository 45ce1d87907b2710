/* lua_class.h: one way to register a C class (a userdata metatable) for every module (base layer).
 */
#ifndef FTL_LUA_CLASS_H
#define FTL_LUA_CLASS_H

#include <lauxlib.h>
#include <lua.h>

/* Creates the metatable registered as `mt` (once: a second call changes nothing), with
 * __index = a table of `methods` (NULL: no __index) and the metamethods of `meta` ({"__gc", f},
 * {"__close", f}, {"__tostring", g}, ...; NULL: none). Leaves the stack as it found it. */
void ftl_new_class(lua_State *L, const char *mt, const luaL_Reg *methods, const luaL_Reg *meta);

#endif /* FTL_LUA_CLASS_H */
