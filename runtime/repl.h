/* repl.h: the ftlua host program (main.c) and its REPL (repl.c).
 *
 * The interrupt functions are for long-running C code, e.g. the learner's training loop.
 * Ctrl-C during a call sets a flag and asks Lua to raise "interrupted!" at its next hook, but a
 * loop that stays in C never reaches a hook. Such a loop checks the flag between steps:
 *
 *     if (ftl_interrupted()) { ftl_interrupt_clear(); return luaL_error(L, "interrupted!"); }
 *
 * (free what the step owns before raising). A second Ctrl-C in the same call kills the process,
 * as in lua.c, so a loop stuck in C can always be stopped.
 *
 * They live in main.c, which ftlua.so (the module for a stock lua5.4) and the C test programs do
 * not link. So they are weak: there they are NULL, and ftl_interrupted() is simply 0.
 */
#ifndef FTLUA_REPL_H
#define FTLUA_REPL_H

#include <stddef.h>

#include <lua.h>

__attribute__((weak)) int ftl_interrupt_requested(void); /* 1 after Ctrl-C in the current call */
__attribute__((weak)) void ftl_interrupt_clear(void);

/* Safe in any binary: 0 where there is no ftlua host. */
static inline int ftl_interrupted(void) {
    return ftl_interrupt_requested != NULL && ftl_interrupt_requested();
}

/* ---- host internals, shared by main.c and repl.c */

extern const char *ftl_progname; /* "ftlua": prefixes error messages */

/* lua_pcall with a traceback message handler and Ctrl-C handling. The function and its narg
 * arguments are on the stack; leaves nres results (or the error message) like lua_pcall. */
int ftl_docall(lua_State *L, int narg, int nres);
/* If status is not LUA_OK, print the message on top of the stack to stderr (prefixed with
 * ftl_progname when prefix is set) and pop it. Returns status. */
int ftl_report(lua_State *L, int status, int prefix);

/* The read-eval-print loop: reads from stdin until EOF. With a terminal it uses readline
 * (prompts, history, completion); otherwise it reads plain lines and prints no prompts. */
void ftl_repl(lua_State *L);

#endif /* FTLUA_REPL_H */
