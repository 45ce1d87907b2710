/* host.h: what any host of the ftlua library shares: the REPL (repl.c), the notebook kernel,
 * the host program (main.c). No readline, no terminal: a lua_State in, strings and stack values
 * out. host.c and its host_*.c files are part of the library (ftlua.so has them too); the Lua
 * half of help is lua/ftlua/help.lua, reading docs/api.md as compiled in (tools/embed_doc.sh).
 *
 * Every function here that runs Lua code does it protected: a throwing __index or __tostring
 * gives fewer candidates, no help or a plainer message, never a longjmp into the caller. They
 * need the library loaded (luaopen_ftlua) for help; completion and compiling do not.
 */
#ifndef FTLUA_HOST_H
#define FTLUA_HOST_H

#include <stddef.h>

#include <lua.h>

/* ---------------------------------------------------------------- completion */

typedef struct {
    char **v; /* malloc'ed strings */
    size_t n, cap;
} fth_strlist;
void fth_strlist_free(fth_strlist *l); /* frees the strings and the array; l is then empty */

/* Complete the word that ends at byte `cursor` of `line` (the text before the cursor, back to
 * one of " \t\n\"'\\><=;+-*, /%^~#&|{}()[]"). The word is a path: "pri", "ft.tensor.ze", "x:ma".
 * Adds to out every candidate, each the whole replacement word ("ft.tensor.zeros", "x:max"):
 * globals and keywords for a bare name; a value's fields (through its __index chain) after '.';
 * only callable ones after ':'. Unsorted, possibly with repeats. Returns the byte offset where
 * the word starts: the candidates replace line[start, cursor). Offsets are bytes, not
 * characters. */
size_t ftl_complete(lua_State *L, const char *line, size_t cursor, fth_strlist *out);

/* lua_CFunction: names(v [, methods]) -> sorted list of the public names v has (its keys and
 * those of its __index chain; only functions when methods is true). "did you mean" uses it. */
int ftl_names(lua_State *L);

/* ---------------------------------------------------------------- reading input */

#define FTL_INCOMPLETE (-3) /* status: the input is unfinished, read another line */

/* Compile one REPL or notebook input: as "return <src>" when that compiles (an expression, whose
 * values are then shown), else as statements. Pushes the function, or the error message.
 * Returns LUA_OK, a load status (LUA_ERRSYNTAX, ...), or FTL_INCOMPLETE when the input ends
 * early (lua.c's rule: the syntax error is at "<eof>"); the message is pushed in every case. */
int ftl_compile_input(lua_State *L, const char *src, size_t len, const char *chunkname);

/* 1 when src is unfinished (ftl_compile_input would give FTL_INCOMPLETE), else 0. Pushes nothing.
 */
int ftl_input_incomplete(lua_State *L, const char *src, size_t len);

/* A Python habit: an expression alone after statements, "a = f(); a" (Lua waits for the rest of
 * the statement) or "x = 1; #t" (a syntax error). When src (one line) is one of those, pushes a
 * message saying what Lua expects and returns 1; else pushes nothing, returns 0. Call it on an
 * input that ftl_compile_input found incomplete or wrong, before reading more lines. */
int ftl_input_hint(lua_State *L, const char *src, size_t len);

/* ---------------------------------------------------------------- showing values */

/* Push the text the REPL shows for the value at idx: a table without __tostring or __name one
 * level deep ({1, 2, name = "x", ...}), anything else as tostring does. Call it protected: a
 * __tostring may raise. */
void ftl_push_shown(lua_State *L, int idx);

/* lua_CFunction: shows its arguments with the global print, each through ftl_push_shown (the
 * REPL's auto-print; with no arguments it prints nothing). Call it protected. */
int ftl_print_results(lua_State *L);

/* ---------------------------------------------------------------- help */

/* Push the API reference text (from docs/api.md) for the value at idx (a function, a namespace
 * table, an object such as a Learner or a tensor), or nil. Returns 1 when text was pushed. */
int ftl_help_value(lua_State *L, int idx);

/* Push the reference text for a name path: "learn:fit_one_cycle", "ft.plot.imagesc", "learn",
 * or an entry name alone ("fit_one_cycle"). The first name is a global. Returns 1 with the text
 * pushed; else 0 with a message pushed that says what is wrong, with "did you mean ...?" when
 * the name is a typo of one the value has ("help: learn has no method 'fit_one_cyle'; did you
 * mean fit_one_cycle?"). */
int ftl_help_text(lua_State *L, const char *expr);

/* ftl_help_text for the name path around byte `cursor` of `code` (a notebook's inspect request:
 * "learn:fit_one|_cycle(3)" looks up "learn:fit_one_cycle"). Returns as ftl_help_text; 0 with a
 * message when there is no name at the cursor. */
int ftl_help_at(lua_State *L, const char *code, size_t cursor);

/* Push "did you mean fit_one_cycle?" for `name`, missing from the value at obj, using the names
 * that value has (only callable ones when methods is set); returns 0 and pushes nothing when no
 * name is close. */
int ftl_push_suggestion(lua_State *L, int obj, const char *name, int methods);

/* lua_CFunction: the global help(x). help() prints how to use it; help(x) prints x's entry;
 * help("learn:fit") looks the name up. Returns nothing. */
int ftl_help(lua_State *L);

/* Set the host's globals: help. */
void ftl_open_host(lua_State *L);

/* ---------------------------------------------------------------- source text */

/* Push the text of the chunk named `source` (a lua_Debug's source: "=stdin" for the inputs that
 * ftl_compile_input compiled, "@file" for a script, read again from its file); returns 0 and
 * pushes nothing when there is none. nn.Module reads its caller's definition with it. */
int ftl_push_chunk_source(lua_State *L, const char *source);

/* ---------------------------------------------------------------- errors */

/* The host's message handler (for lua_pcall): the error as a string (through __tostring), said
 * at the user's own line rather than inside the library (lua/ftlua/ *.lua, C functions), with a
 * traceback of the user's frames only (none when there is just one), "did you mean ...?" after
 * "attempt to call a nil value (method 'fit_one_cyle')", and "interrupted!" without a position.
 * With ftl_full_traceback set, lua.c's message and full traceback instead. */
int ftl_msghandler(lua_State *L);
extern int ftl_full_traceback; /* --traceback, or FTLUA_TRACEBACK=1 in the environment */

/* ---------------------------------------------------------------- running the user's code
 * The host program (main.c) owns these two; the parts of the host that run code (repl.c,
 * report.c) take them as arguments, so that none of them calls back into main.c. */

/* lua_pcall with ftl_msghandler and Ctrl-C handling. The function and its narg arguments are on
 * the stack; leaves nres results (or the error message) like lua_pcall. */
typedef int (*ftl_docall_fn)(lua_State *L, int narg, int nres);

/* If status is not LUA_OK, print the message on top of the stack to stderr (prefixed with the
 * program's name when prefix is set) and pop it. Returns status. */
typedef int (*ftl_print_error_fn)(lua_State *L, int status, int prefix);

#endif /* FTLUA_HOST_H */
