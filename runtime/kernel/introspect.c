/* introspect.c: see introspect.h. The work is host.h's (the REPL's completer, its <eof> rule,
 * help from docs/api.md); this file converts between Jupyter's cursor positions (Unicode code
 * points) and bytes, and lets those functions see the cells' session locals (session.h). */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "host.h"
#include "kernel/introspect.h"
#include "kernel/session.h"

/* Byte offset of code point cp in s (clamped to its length), and back. */
static size_t cp_to_byte(const char *s, json_int_t cp) {
    size_t i = 0;
    for (json_int_t k = 0; s[i] && k < cp; k++) {
        i++;
        while (s[i] && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
    }
    return i;
}

static json_int_t byte_to_cp(const char *s, size_t b) {
    json_int_t n = 0;
    for (size_t i = 0; i < b && s[i]; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static int has(const fth_strlist *l, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(l->v[i], s) == 0) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

json_t *ftk_complete(lua_State *L, json_t *request) {
    const char *code = json_string_value(json_object_get(request, "code"));
    if (!code) code = "";
    json_t *pos = json_object_get(request, "cursor_pos");
    size_t cursor = json_is_integer(pos) ? cp_to_byte(code, json_integer_value(pos)) : strlen(code);
    fth_strlist found = {0};
    /* the globals, then the session's locals (whose table reads through to _G) */
    size_t start = ftl_complete(L, code, cursor, &found);
    if (ftl_session_swap_globals(L, 1)) {
        ftl_complete(L, code, cursor, &found);
        ftl_session_swap_globals(L, 0);
    }
    if (found.n > 1) qsort(found.v, found.n, sizeof *found.v, cmp_str);
    json_t *matches = json_array();
    for (size_t i = 0; i < found.n; i++)
        if (i == 0 || !has(&found, i, found.v[i]))
            json_array_append_new(matches, json_string(found.v[i]));
    fth_strlist_free(&found);
    return json_pack("{s:s, s:o, s:I, s:I, s:{}}", "status", "ok", "matches", matches,
                     "cursor_start", byte_to_cp(code, start), "cursor_end",
                     byte_to_cp(code, cursor), "metadata");
}

static int name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

json_t *ftk_inspect(lua_State *L, json_t *request) {
    const char *code = json_string_value(json_object_get(request, "code"));
    if (!code) code = "";
    json_t *pos = json_object_get(request, "cursor_pos");
    size_t cursor = json_is_integer(pos) ? cp_to_byte(code, json_integer_value(pos)) : strlen(code);
    /* the name path under the cursor: "learn:fit_one_cycle", "ft.tensor.zeros" */
    size_t a = cursor, b = cursor;
    while (a > 0 && (name_char(code[a - 1]) || code[a - 1] == '.' || code[a - 1] == ':')) a--;
    while (code[b] && name_char(code[b])) b++;
    while (b > a && (code[b - 1] == '.' || code[b - 1] == ':')) b--;
    while (a < b && !(name_char(code[a]) && !(code[a] >= '0' && code[a] <= '9'))) a++;
    json_t *data = json_object();
    int found = 0;
    if (b > a) {
        char *expr = strndup(code + a, b - a);
        int top = lua_gettop(L);
        int swapped = ftl_session_swap_globals(L, 1);
        found = expr && ftl_help_text(L, expr);
        if (swapped) ftl_session_swap_globals(L, 0);
        if (found) json_object_set_new(data, "text/plain", json_string(lua_tostring(L, -1)));
        lua_settop(L, top);
        free(expr);
    }
    return json_pack("{s:s, s:b, s:o, s:{}}", "status", "ok", "found", found, "data", data,
                     "metadata");
}

json_t *ftk_is_complete(lua_State *L, json_t *request) {
    const char *code = json_string_value(json_object_get(request, "code"));
    if (!code) code = "";
    int top = lua_gettop(L);
    int status = ftl_compile_input(L, code, strlen(code), "=In");
    lua_settop(L, top);
    if (status == FTL_INCOMPLETE)
        return json_pack("{s:s, s:s}", "status", "incomplete", "indent", "  ");
    return json_pack("{s:s}", "status", status == LUA_OK ? "complete" : "invalid");
}
