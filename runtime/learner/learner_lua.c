/* learner_lua.c: the entry of the learner module. `luaopen_ftlua_learner` returns the table
 * behind ft.Learner, ft.vision.cnn_learner/vision_learner, ft.metrics, ft.slice,
 * ft.ClassificationInterpretation, ft.load_learner and ft.callbacks.
 *
 * The loop is C (learner_fit.c and learner_step.c; learner.c is the class); the options, the fit
 * methods' wiring, callbacks, persistence and interpretation are the Lua half,
 * lua/ftlua/learner_api.lua, run here once with the C core class and the core module
 * (learner_core.c and its parts: schedules, Adam, lr_find, metrics, progress).
 */
#include "ftlua.h"
#include "learner/learner.h"

int luaopen_ftlua_learner_core(lua_State *L); /* learner_core.c */

int luaopen_ftlua_learner(lua_State *L) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    if (lua_getfield(L, -1, "ftlua.learner_api") != LUA_TFUNCTION)
        return luaL_error(L, "ftlua.learner: the embedded learner_api.lua is missing");
    ftl_learner_core_class(L);
    luaL_requiref(L, "ftlua.learner_core", luaopen_ftlua_learner_core, 0);
    lua_call(L, 2, 1);
    return 1;
}
