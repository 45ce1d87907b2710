/* repl.h: the ftlua REPL (repl.c). It knows nothing of main.c: the host program passes the way
 * it runs code and reports errors, as it does to report.c.
 */
#ifndef FTLUA_REPL_H
#define FTLUA_REPL_H

#include <lua.h>

#include "host.h"

/* The read-eval-print loop: reads from stdin until EOF. With a terminal it uses readline
 * (prompts, history, completion); otherwise it reads plain lines and prints no prompts. Each
 * input runs through docall; a failed one is printed with print_error (no prefix). */
void ftl_repl(lua_State *L, ftl_docall_fn docall, ftl_print_error_fn print_error);

#endif /* FTLUA_REPL_H */
