/* repl.h: the ftlua host program (main.c) and its REPL (repl.c).
 *
 * Ctrl-C during a call sets a flag and asks Lua to raise "interrupted!" at its next hook. main()
 * lends the flag to the library (base/hooks.h), whose C loops check it between steps. A second
 * Ctrl-C in the same call kills the process, as in lua.c, so a loop stuck in C can always be
 * stopped.
 */
#ifndef FTLUA_REPL_H
#define FTLUA_REPL_H

#include <stddef.h>

#include <lua.h>

#include "base/hooks.h"

int ftl_interrupt_requested(void); /* 1 after Ctrl-C in the current call */
void ftl_interrupt_clear(void);    /* forget it, and the pending "interrupted!" hook */

/* ---- host internals, shared by main.c and repl.c */

extern const char *ftl_progname; /* "ftlua": prefixes error messages */

/* lua_pcall with a traceback message handler and Ctrl-C handling. The function and its narg
 * arguments are on the stack; leaves nres results (or the error message) like lua_pcall. */
int ftl_docall(lua_State *L, int narg, int nres);
/* If status is not LUA_OK, print the message on top of the stack to stderr (prefixed with
 * ftl_progname when prefix is set) and pop it. Returns status. */
int ftl_print_error(lua_State *L, int status, int prefix);

/* The read-eval-print loop: reads from stdin until EOF. With a terminal it uses readline
 * (prompts, history, completion); otherwise it reads plain lines and prints no prompts. */
void ftl_repl(lua_State *L);

#endif /* FTLUA_REPL_H */
