/* introspect.h: complete_request, inspect_request and is_complete_request, answered with the
 * REPL's own completer, its `<eof>` rule and the help text from docs/api.md. Each returns the
 * reply's content. */
#ifndef FTK_INTROSPECT_H
#define FTK_INTROSPECT_H

#include <jansson.h>
#include <lua.h>

json_t *ftk_complete(lua_State *L, json_t *request);
json_t *ftk_inspect(lua_State *L, json_t *request);
json_t *ftk_is_complete(lua_State *L, json_t *request);

#endif
