/* introspect.c: see introspect.h. */
#include <string.h>

#include "kernel/introspect.h"

json_t *ftk_complete(lua_State *L, json_t *request) {
    (void)L;
    json_int_t pos = json_integer_value(json_object_get(request, "cursor_pos"));
    return json_pack("{s:s, s:[], s:I, s:I, s:{}}", "status", "ok", "matches", "cursor_start",
                     (json_int_t)pos, "cursor_end", (json_int_t)pos, "metadata");
}

json_t *ftk_inspect(lua_State *L, json_t *request) {
    (void)L;
    (void)request;
    return json_pack("{s:s, s:b, s:{}, s:{}}", "status", "ok", "found", 0, "data", "metadata");
}

json_t *ftk_is_complete(lua_State *L, json_t *request) {
    (void)L;
    (void)request;
    return json_pack("{s:s}", "status", "unknown");
}
