/* hooks.h: what the host lends the library. The library never calls the host (main.c, repl.c,
 * report.c); the host installs functions here at startup, and library code calls these
 * wrappers, which do something sensible when nothing is installed (ftlua.so under a stock
 * lua5.4, the C test programs).
 *
 * Interrupts. Ctrl-C asks Lua to raise "interrupted!" at its next hook, but a loop that stays in
 * C (the learner's training loop) never reaches one, so it checks between steps:
 *
 *     if (ftb_interrupted()) { ftb_interrupt_handled(); return luaL_error(L, "interrupted!"); }
 *
 * (free what the step owns before raising). Under ftlua the host's flag answers. Under a stock
 * lua5.4 there is no flag, but lua.c's SIGINT handler installs a hook with every mask and a
 * count of 1 on the main thread; lua_gethook and friends can see it, so that is the signal.
 *
 * Figures. A figure written to a file of the script's own choosing (ft.plot's `output`,
 * show_batch's `path`) is announced with ftl_figure_written; `ftlua --report` (report.c) and
 * the notebook kernel put it on their page. Nobody listening: nothing happens.
 */
#ifndef FTLUA_BASE_HOOKS_H
#define FTLUA_BASE_HOOKS_H

#include <lua.h>

typedef int (*ftb_interrupt_requested_fn)(void); /* 1 after Ctrl-C in the current call */
typedef void (*ftb_interrupt_clear_fn)(void);    /* forget it, and any pending Lua hook */
typedef void (*ftl_figure_fn)(lua_State *L, const char *path);

/* The host's side. NULL uninstalls. */
void ftb_set_interrupt_hook(ftb_interrupt_requested_fn requested, ftb_interrupt_clear_fn clear);
void ftl_set_figure_hook(ftl_figure_fn fn);
/* luaopen_ftlua records L's main thread, where lua.c sets its interrupt hook. */
void ftl_hooks_attach(lua_State *L);

/* The library's side. */
int ftb_interrupted(void);        /* 1 when Ctrl-C asked the current call to stop */
void ftb_interrupt_handled(void); /* the caller raises its own "interrupted!": clear the request */
void ftl_figure_written(lua_State *L, const char *path);

#endif /* FTLUA_BASE_HOOKS_H */
