/* test_host.c: the host functions of runtime/host.h, called from C as a notebook kernel calls
 * them: completion at a cursor, the unfinished-input rule and its Python hints, how values are
 * shown, help from the compiled-in docs/api.md, and the message handler (errors said at the
 * user's line, "did you mean", interrupted! without a position).
 *
 * The expected texts are the facts of the page (docs/api.md is read here from the file, not
 * from the binary) and of Lua's own messages.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "check.h"
#include "ftlua.h"
#include "host.h"

static int has(const fth_strlist *l, const char *s) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0) return 1;
    return 0;
}

/* Run code as a chunk named `name` through the host's handler; returns the message (static). */
static const char *error_of(lua_State *L, const char *code, const char *name) {
    static char msg[2048];
    lua_pushcfunction(L, ftl_msghandler);
    int h = lua_gettop(L);
    int status = ftl_compile_input(L, code, strlen(code), name);
    if (status == LUA_OK) status = lua_pcall(L, 0, 0, h);
    snprintf(msg, sizeof msg, "%s", status == LUA_OK ? "(no error)" : lua_tostring(L, -1));
    lua_settop(L, h - 1);
    return msg;
}

/* The text of the first row of docs/api.md whose first cell starts with `cell`. */
static char *api_row(const char *cell) {
    const char *root = getenv("FTLUA_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/api.md", root ? root : ".");
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char line[4096], *found = NULL;
    char want[256];
    snprintf(want, sizeof want, "| `%s", cell);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, want, strlen(want)) == 0) {
            found = strdup(line);
            break;
        }
    fclose(f);
    return found;
}

int main(void) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "ftlua", luaopen_ftlua, 0);
    lua_setglobal(L, "ft");
    ftl_open_host(L);
    (void)luaL_dostring(L,
                        "learn_like = setmetatable({}, {__index = {fit_one_cycle = function() end, "
                        "lr_find = function() end}}) x = ft.tensor.zeros(2)");
    int top = lua_gettop(L);

    const char *m;
    /* ---- completion at a cursor */
    fth_strlist c = {0};
    const char *line = "y = ft.tensor.ze";
    size_t start = ftl_complete(L, line, strlen(line), &c);
    CHECK("complete_field", start == 4 && has(&c, "ft.tensor.zeros"));
    fth_strlist_free(&c);
    line = "print(x:ma)";
    start = ftl_complete(L, line, 10, &c); /* the cursor before ')' */
    CHECK("complete_method_mid_line", start == 6 && has(&c, "x:max") && !has(&c, "x:shape"));
    fth_strlist_free(&c);
    start = ftl_complete(L, "pri", 3, &c);
    CHECK("complete_global", start == 0 && has(&c, "print"));
    fth_strlist_free(&c);
    start = ftl_complete(L, "whi", 3, &c);
    CHECK("complete_keyword", has(&c, "while"));
    fth_strlist_free(&c);
    start = ftl_complete(L, "learn_like:fi", 13, &c);
    CHECK("complete_through_index", c.n == 1 && has(&c, "learn_like:fit_one_cycle"));
    fth_strlist_free(&c);
    CHECK("complete_stack_kept", lua_gettop(L) == top);

    /* ---- the unfinished-input rule */
    CHECK("incomplete_function", ftl_input_incomplete(L, "function f(x)", 13));
    CHECK("incomplete_bracket", ftl_input_incomplete(L, "t = {1,", 7));
    CHECK("complete_expression", !ftl_input_incomplete(L, "1 + 1", 5));
    CHECK("wrong_is_not_incomplete", !ftl_input_incomplete(L, "x = = 1", 7));
    int st = ftl_compile_input(L, "1 + 1", 5, "=stdin");
    int ok = st == LUA_OK && lua_pcall(L, 0, 1, 0) == LUA_OK && lua_tointeger(L, -1) == 2;
    lua_settop(L, top);
    CHECK("compile_expression_returns", ok);
    const char *forms[] = {"1, 2", "1, 2;", "1, 2 ; ", "1, 2 -- note", "1, 2; -- note"};
    for (int i = 0; i < 5; i++) {
        st = ftl_compile_input(L, forms[i], strlen(forms[i]), "=stdin");
        ok = st == LUA_OK && lua_pcall(L, 0, LUA_MULTRET, 0) == LUA_OK &&
             lua_gettop(L) == top + 2 && lua_tointeger(L, -1) == 2;
        if (!ok) printf("# %s\n", forms[i]);
        lua_settop(L, top);
        CHECK("compile_expression_forms", ok);
    }
    m = error_of(L, "ft.learner.LearnerClass.fit_one_cycle({}, 'x');", "=stdin");
    CHECK("expression_with_semicolon_not_a_tail_call",
          strncmp(m, "stdin:1: fit_one_cycle", 22) == 0);
    st = ftl_compile_input(L, "for i = 1, 2 do", 15, "=stdin");
    CHECK("compile_incomplete", st == FTL_INCOMPLETE && lua_isstring(L, -1));
    lua_settop(L, top);
    CHECK("stack_kept_compile", lua_gettop(L) == top);

    /* ---- Python habits */
    CHECK("hint_name", ftl_input_hint(L, "a = 1; a", 8) &&
                           strstr(lua_tostring(L, -1), "`a` alone is not a statement in Lua") &&
                           strstr(lua_tostring(L, -1), "print(a)"));
    lua_settop(L, top);
    CHECK("hint_length",
          ftl_input_hint(L, "t = {}; #t", 10) && strstr(lua_tostring(L, -1), "`#t` alone"));
    lua_settop(L, top);
    CHECK("no_hint_for_statements", !ftl_input_hint(L, "a = 1; b = 2", 12) && lua_gettop(L) == top);
    CHECK("no_hint_for_multiline", !ftl_input_hint(L, "a = 1\n; a", 9) && lua_gettop(L) == top);

    /* ---- showing values */
    (void)luaL_dostring(L, "return {3, 4, name = 'x', sub = {1}}");
    ftl_push_shown(L, -1);
    CHECK("shown_table", strcmp(lua_tostring(L, -1), "{3, 4, name = \"x\", sub = {...}}") == 0);
    lua_settop(L, top);

    /* ---- help: the row of docs/api.md, as plain text */
    char *row = api_row("ft.plot.imagesc(");
    lua_pushcfunction(L, ftl_help); /* anchor nothing; just the lookups below */
    lua_pop(L, 1);
    lua_getglobal(L, "ft");
    lua_getfield(L, -1, "plot");
    lua_getfield(L, -1, "imagesc");
    int found = ftl_help_value(L, -1);
    const char *text = found ? lua_tostring(L, -1) : "";
    CHECK("help_value_function",
          found && row && strncmp(text, "ft.plot.imagesc(matrix [, opts])\n", 33) == 0 &&
              strstr(row, "a heat map, values in the cells") &&
              strstr(text, "a heat map, values in the cells") && strstr(text, "docs/plot.md#api"));
    free(row);
    lua_settop(L, top);
    found = ftl_help_text(L, "ft.plot.imagesc");
    CHECK("help_text_path", found && strncmp(lua_tostring(L, -1), "ft.plot.imagesc(", 16) == 0);
    lua_settop(L, top);
    found = ftl_help_text(L, "x:sum");
    CHECK("help_text_method", found && strstr(lua_tostring(L, -1), "x:sum([dim, keepdim])"));
    lua_settop(L, top);
    found = ftl_help_text(L, "fit_one_cycle");
    CHECK("help_text_entry_name",
          found && strstr(lua_tostring(L, -1), "learn:fit_one_cycle(n, lr_max"));
    lua_settop(L, top);
    found = ftl_help_text(L, "learn_like:fit_one_cyle");
    CHECK("help_did_you_mean", !found &&
                                   strstr(lua_tostring(L, -1), "has no method 'fit_one_cyle'") &&
                                   strstr(lua_tostring(L, -1), "did you mean fit_one_cycle?"));
    lua_settop(L, top);
    line = "learn_like:fit_one_cycle(3)";
    found = ftl_help_at(L, line, 14); /* in the middle of the method's name */
    CHECK("help_at_cursor", found && strstr(lua_tostring(L, -1), "learn:fit_one_cycle(n, lr_max"));
    lua_settop(L, top);
    found = ftl_help_at(L, "y = ft.plot.imagesc(m)", 14);
    CHECK("help_at_cursor_path",
          found && strncmp(lua_tostring(L, -1), "ft.plot.imagesc(", 16) == 0);
    lua_settop(L, top);
    CHECK("help_at_nothing", !ftl_help_at(L, "  (  ", 2) && lua_isstring(L, -1));
    lua_settop(L, top);
    found = ftl_help_at(L, "y = ft.plot.imagesc(m)", 9); /* in "plot": the path up to its end */
    CHECK("help_at_namespace", found && strncmp(lua_tostring(L, -1), "ft.plot\n", 8) == 0);
    lua_settop(L, top);
    lua_getglobal(L, "x");
    found = ftl_help_value(L, -1);
    CHECK("help_value_object", found && strncmp(lua_tostring(L, -1), "Tensor methods\n", 15) == 0);
    lua_settop(L, top);
    lua_pushinteger(L, 3);
    CHECK("help_value_none", !ftl_help_value(L, -1) && lua_isnil(L, -1));
    lua_settop(L, top);
    lua_getglobal(L, "x");
    CHECK("suggestion", ftl_push_suggestion(L, -1, "sumx", 1) &&
                            strcmp(lua_tostring(L, -1), "did you mean sum?") == 0);
    lua_settop(L, top);

    /* ---- the message handler */
    m = error_of(L, "learn_like:fit_one_cyle()", "=stdin");
    CHECK("msg_method_typo",
          strcmp(m, "stdin:1: attempt to call a nil value (method 'fit_one_cyle'); "
                    "did you mean fit_one_cycle?") == 0);
    m = error_of(L, "prnt(1)", "=stdin");
    CHECK("msg_global_typo", strstr(m, "(global 'prnt'); did you mean print?") != NULL);
    m = error_of(L, "local T = ft.tensor\nT.zeross(2)", "=cell");
    CHECK("msg_field_typo_local",
          strstr(m, "cell:2: attempt to call a nil value (field 'zeross'); did you mean zeros?") ==
              m);
    /* an error raised inside the library's Lua code is said at the user's line */
    m = error_of(L, "\nft.learner.LearnerClass.fit_one_cycle({}, 'x')", "=cell");
    CHECK("msg_library_error_at_user_line",
          strncmp(m, "cell:2: ", 8) == 0 && !strstr(m, "lua/ftlua/") && !strstr(m, "traceback"));
    m = error_of(L, "error('interrupted!')", "=stdin");
    CHECK("msg_interrupted_bare", strcmp(m, "interrupted!") == 0);
    m = error_of(L, "local function f() error('boom') end\nf()", "=cell");
    CHECK("msg_user_traceback",
          strncmp(m, "cell:1: boom\nstack traceback:\n\tcell:1: in ", 40) == 0 &&
              strstr(m, "\n\tcell:2: in main chunk"));
    /* a stack overflow: the deep middle of the stack is skipped, not walked level by level */
    m = error_of(L, "local function f() return 1 + f() end\nf()", "=cell");
    CHECK("msg_stack_overflow", strstr(m, "stack overflow") && strstr(m, "levels)\n") &&
                                    strstr(m, "\n\tcell:2: in main chunk"));
    ftl_full_traceback = 1;
    m = error_of(L, "\nft.learner.LearnerClass.fit_one_cycle({}, 'x')", "=cell");
    CHECK("msg_full_traceback", strstr(m, "lua/ftlua/") && strstr(m, "stack traceback:"));
    ftl_full_traceback = 0;
    CHECK("stack_kept_errors", lua_gettop(L) == top);

    lua_close(L);
    return check_exit();
}
