/* main.h: what the ftlua host program (main.c) lends to the rest of the host: its name, its way
 * of running the user's code, and Ctrl-C. The REPL (repl.c) and the report (report.c) get
 * ftl_docall and ftl_print_error as arguments instead; the notebook kernel (runtime/kernel/)
 * includes this header.
 *
 * Ctrl-C during a call sets a flag and asks Lua to raise "interrupted!" at its next hook. main()
 * lends the flag to the library (base/hooks.h), whose C loops check it between steps. A second
 * Ctrl-C in the same call kills the process, as in lua.c, so a loop stuck in C can always be
 * stopped.
 */
#ifndef FTLUA_MAIN_H
#define FTLUA_MAIN_H

#include <lua.h>

#include "base/hooks.h"
#include "host.h"

int fth_interrupt_requested(void); /* 1 after Ctrl-C in the current call */
void fth_interrupt_clear(void);    /* forget it, and the pending "interrupted!" hook */

extern const char *ftl_progname; /* "ftlua": prefixes error messages */

/* The host's ftl_docall_fn and ftl_print_error_fn (host.h). */
int ftl_docall(lua_State *L, int narg, int nres);
int ftl_print_error(lua_State *L, int status, int prefix);

#endif /* FTLUA_MAIN_H */
