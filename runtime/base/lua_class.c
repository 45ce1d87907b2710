/* lua_class.c: see lua_class.h. */
#include "base/lua_class.h"

void ftl_new_class(lua_State *L, const char *mt, const luaL_Reg *methods, const luaL_Reg *meta) {
    if (luaL_newmetatable(L, mt)) {
        if (methods) {
            lua_newtable(L);
            luaL_setfuncs(L, methods, 0);
            lua_setfield(L, -2, "__index");
        }
        if (meta) luaL_setfuncs(L, meta, 0);
    }
    lua_pop(L, 1);
}
