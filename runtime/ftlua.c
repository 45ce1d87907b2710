/* ftlua.c: the module library entry. `require "ftlua"` returns the `ft` table.
 *
 * The same objects make ./ftlua (which preloads this) and ftlua.so (which a stock lua5.4 finds
 * through package.cpath: luaopen_ftlua, the LuaRocks naming rule). Lua-written parts of the
 * library (the .lua files in lua/ftlua/) are compiled in and registered as
 * package.preload["ftlua.<name>"].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/hooks.h"
#include "base/json.h"
#include "ftlua.h"

typedef struct {
    const char *name;
    const char *source;
} ftl_embedded_lua;
extern const ftl_embedded_lua ftl_lua_sources[]; /* build/lua_embed.c, from tools/embed_lua.sh */

/* libtorch here defaults to one intra-op thread; use every core unless the user said otherwise
 * (FTLUA_NUM_THREADS, or OMP_NUM_THREADS which libtorch itself honours). Ranks sharing a machine
 * (LOCAL_WORLD_SIZE, set by the launchers) share its cores. */
static void set_default_threads(void) {
    const char *env = getenv("FTLUA_NUM_THREADS");
    int n = env ? atoi(env) : 0;
    if (n <= 0 && getenv("OMP_NUM_THREADS")) return;
    if (n <= 0) {
        const char *lw = getenv("LOCAL_WORLD_SIZE");
        int local = lw ? atoi(lw) : 1;
        n = (int)sysconf(_SC_NPROCESSORS_ONLN) / (local > 1 ? local : 1);
        if (n < 1) n = 1;
    }
    if (n > 0) ft_set_num_threads(n);
}

static void preload_embedded(lua_State *L) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const ftl_embedded_lua *m = ftl_lua_sources; m->name; m++) {
        char chunkname[128], modname[128];
        snprintf(chunkname, sizeof chunkname, "@lua/ftlua/%s.lua", m->name);
        snprintf(modname, sizeof modname, "ftlua.%s", m->name);
        if (luaL_loadbuffer(L, m->source, strlen(m->source), chunkname) != LUA_OK) lua_error(L);
        lua_setfield(L, -2, modname);
    }
    lua_pop(L, 1);
}

/* ft.clock() -- monotonic wall-clock seconds, for timing from Lua (os.clock is CPU time). */
static int ft_clock(lua_State *L) {
    lua_pushnumber(L, (lua_Number)monotonic_seconds());
    return 1;
}

/* ft.script: lua/ftlua/script.lua (parse_args), embedded like the other Lua files. */
static int open_script(lua_State *L) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    if (lua_getfield(L, -1, "ftlua.script") != LUA_TFUNCTION)
        return luaL_error(L, "ftlua.script: the embedded script.lua is missing");
    lua_call(L, 0, 1);
    return 1;
}

/* The modules, opened in this order and stored as ft.<name>. */
static const struct {
    const char *name;
    lua_CFunction open;
} SUBMODULES[] = {
    {"tensor", luaopen_ftlua_tensor},             /* tensor/tensor.c */
    {"json", luaopen_ftlua_json},                 /* base/json.c: over jansson */
    {"learner_core", luaopen_ftlua_learner_core}, /* learner/learner_core.c: schedules, Adam, ... */
    {"learner", luaopen_ftlua_learner},           /* learner/learner_lua.c */
    {"data", luaopen_ftlua_data},                 /* data/data.c */
    {"model", luaopen_ftlua_model},               /* model/model.c */
    {"weights", luaopen_ftlua_weights},           /* weights/weights.c */
    {"plot", luaopen_ftlua_plot},
    {"untar", luaopen_ftlua_untar}, /* weights/untar.c: untar_data, URLs */
    {"dist", luaopen_ftlua_dist},   /* dist/dist.c: process groups over c10d */
    {"io", luaopen_ftlua_io},       /* tensor/atomic_lua.c: atomic writes */
    {"script", open_script},        /* lua/ftlua/script.lua: a script's arguments */
};

/* Names that fastai users write at the top level (table NULL) or under ft.vision:
 * ft[table][field] = ft[module][field]. */
static const struct {
    const char *table, *module, *field;
} ALIASES[] = {
    {NULL, "model", "nn"},
    {NULL, "model", "models"},
    {NULL, "learner", "Learner"},
    {NULL, "learner", "metrics"},
    {NULL, "learner", "slice"},
    {NULL, "learner", "ClassificationInterpretation"},
    {NULL, "learner", "load_learner"},
    {NULL, "learner", "callbacks"},
    {NULL, "learner", "losses"},
    {NULL, "untar", "untar_data"},
    {NULL, "untar", "URLs"},
    {"vision", "model", "create_cnn_model"},
    {"vision", "learner", "cnn_learner"},
    {"vision", "learner", "vision_learner"},
};

int luaopen_ftlua(lua_State *L) {
    static int threads_set;
    if (!threads_set) {
        set_default_threads();
        threads_set = 1;
    }
    ftl_hooks_attach(L); /* base/hooks.h: where lua.c's Ctrl-C hook lands */
    preload_embedded(L);
    lua_newtable(L);
    lua_pushliteral(L, FTLUA_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushcfunction(L, ft_clock);
    lua_setfield(L, -2, "clock");
    for (size_t i = 0; i < sizeof SUBMODULES / sizeof SUBMODULES[0]; i++) {
        char modname[64];
        snprintf(modname, sizeof modname, "ftlua.%s", SUBMODULES[i].name);
        luaL_requiref(L, modname, SUBMODULES[i].open, 0);
        lua_setfield(L, -2, SUBMODULES[i].name);
    }
    lua_newtable(L); /* ft.vision: everything of ft.data, plus the vision names of other modules */
    if (lua_getfield(L, -2, "data") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -5);
        }
    }
    lua_pop(L, 1);
    lua_setfield(L, -2, "vision");
    for (size_t i = 0; i < sizeof ALIASES / sizeof ALIASES[0]; i++) {
        if (ALIASES[i].table)
            lua_getfield(L, -1, ALIASES[i].table);
        else
            lua_pushvalue(L, -1);
        lua_getfield(L, -2, ALIASES[i].module); /* ft is just below the target table */
        lua_getfield(L, -1, ALIASES[i].field);
        lua_setfield(L, -3, ALIASES[i].field);
        lua_pop(L, 2);
    }
    return 1;
}
