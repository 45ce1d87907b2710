/* json.h: ft.json, JSON for Lua over jansson (base/json.c). */
#ifndef FTLUA_BASE_JSON_H
#define FTLUA_BASE_JSON_H

#include <lua.h>

/* The module table: encode(value) -> string, decode(string) -> value. */
int luaopen_ftlua_json(lua_State *L);

#endif /* FTLUA_BASE_JSON_H */
