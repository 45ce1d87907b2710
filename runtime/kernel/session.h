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

#endif
