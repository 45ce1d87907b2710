/* session.h: what carries from one notebook cell (or REPL input) to the next, including a
 * cell's top-level `local`s (docs/jupyter.md, "State between cells").
 *
 * Each cell is compiled as its own chunk, so its top-level locals would die with it. Instead a
 * top-level `local x = e` (and `local function f`) is rewritten to an assignment `x = e`, and
 * every chunk runs with _ENV set to one session table: reading a name looks in the session
 * table, then in _G; assigning a name that some cell declared local stores it in the session
 * table (so `local print = 1` shadows print for the cells only, not for the library), any other
 * assignment goes to _G as in a script. Locals inside functions and blocks are untouched, as is
 * the rest of the text (line numbers in errors stay right). `<const>` and `<close>` attributes
 * of top-level locals are dropped.
 */
#ifndef FTK_SESSION_H
#define FTK_SESSION_H

#include <stddef.h>

#include <lua.h>

/* luaL_loadbuffer of the rewritten source, with the chunk's _ENV set to the session table.
 * Pushes the function or the error message; returns the load status. Names are declared only
 * when the chunk compiles. */
int ftl_session_load(lua_State *L, const char *src, size_t len, const char *chunkname);

/* A notebook cell: like ftl_session_load, but when the cell ends with an expression (its last
 * top-level line or lines read as `return <expr>`), that expression is returned, as the REPL
 * returns an input that is an expression. *has_value says which. A cell whose text ends
 * with ';' returns nothing (as in the REPL). */
int ftl_session_load_cell(lua_State *L, const char *src, size_t len, const char *chunkname,
                          int *has_value);

/* The REPL's input rule (host.h's ftl_compile_input: an expression to show, else statements,
 * or FTL_INCOMPLETE) with the loading above. Same stack contract as ftl_compile_input. */
int ftl_session_compile_input(lua_State *L, const char *src, size_t len, const char *chunkname);

/* on: make the session table the globals table (LUA_RIDX_GLOBALS), so code that looks names
 * up as globals (completion, help) sees the session's locals too; off: put _G back. Returns 0
 * when there is no session table yet (nothing was swapped). */
int ftl_session_swap_globals(lua_State *L, int on);

#endif
