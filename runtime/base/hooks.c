/* hooks.c: the functions the host installs (see hooks.h). */
#include "base/hooks.h"

#include <stddef.h>

#include <lauxlib.h>

static ftb_interrupt_requested_fn interrupt_requested;
static ftb_interrupt_clear_fn interrupt_clear;
static ftl_figure_fn figure_written;
static lua_State *main_thread; /* of the last state that loaded ftlua */

void ftb_set_interrupt_hook(ftb_interrupt_requested_fn requested, ftb_interrupt_clear_fn clear) {
    interrupt_requested = requested;
    interrupt_clear = clear;
}

void ftl_set_figure_hook(ftl_figure_fn fn) { figure_written = fn; }

void ftl_hooks_attach(lua_State *L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    main_thread = lua_tothread(L, -1);
    lua_pop(L, 1);
}

/* lua.c's SIGINT handler: lua_sethook(L, lstop, call | return | line | count, 1). */
#define LUA_C_STOP_MASK (LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT)
static int lua_c_stop_pending(void) {
    return main_thread && lua_gethook(main_thread) != NULL &&
           lua_gethookmask(main_thread) == LUA_C_STOP_MASK && lua_gethookcount(main_thread) == 1;
}

int ftb_interrupted(void) {
    if (interrupt_requested) return interrupt_requested();
    return lua_c_stop_pending();
}

void ftb_interrupt_handled(void) {
    if (interrupt_clear) {
        interrupt_clear();
    } else if (lua_c_stop_pending()) {
        /* lua.c's hook would raise a second "interrupted!" at the next instruction */
        lua_sethook(main_thread, NULL, 0, 0);
    }
}

void ftl_figure_written(lua_State *L, const char *path) {
    if (figure_written) figure_written(L, path);
}
