/* dist.c: the entry of the dist module, ft.dist: the process group and its collectives.
 *
 *   ft.dist.init{backend=, addr=, port=, rank=, world_size=, timeout=}   every field optional:
 *       the environment's RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, FTLUA_DIST_TIMEOUT
 *   ft.dist.rank(), world_size(), local_rank(), is_main(), is_initialized(), backend()
 *   ft.dist.all_reduce(x [, "sum"|"mean"|"max"|"min"])   a tensor (in place), a number or a
 *       list of numbers (returned)
 *   ft.dist.broadcast(tensor [, src = 0]), ft.dist.barrier(), ft.dist.destroy()
 *
 * Without init, a world of one: the collectives return their argument, so a script runs the
 * same on one process and on many.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/args.h"
#include "dist/dist.h"
#include "ftlua.h"

static ft_dist *g_group; /* the process's one group */
static ft_dist_backend g_backend;

ft_dist *ftr_dist_group(void) { return g_group; }

int ftr_env_int(const char *name, int def) {
    const char *s = getenv(name);
    if (!s || !*s) return def;
    char *end;
    long v = strtol(s, &end, 10);
    return *end ? def : (int)v;
}

int ftr_dist_rank(void) { return g_group ? ft_dist_rank(g_group) : ftr_env_int("RANK", 0); }
int ftr_dist_world(void) { return g_group ? ft_dist_world(g_group) : ftr_env_int("WORLD_SIZE", 1); }
int ftr_dist_is_main(void) { return ftr_dist_rank() == 0; }

static double env_num(const char *name, double def) {
    const char *s = getenv(name);
    if (!s || !*s) return def;
    char *end;
    double v = strtod(s, &end);
    return *end || !(v > 0) ? def : v;
}

/* ft.dist.init([opts]) -> true. A second call with a group already formed is a no-op. */
static int l_init(lua_State *L) {
    if (g_group) {
        lua_pushboolean(L, 1);
        return 1;
    }
    static const char *const known[] = {"addr",    "backend",    "port", "rank",
                                        "timeout", "world_size", NULL};
    static const char *const backends[] = {"gloo", "nccl", NULL};
    const char *fn = "dist.init";
    int t = 1;
    ftl_check_options(L, t, fn, known);
    int world = (int)ftl_opt_integer(L, t, fn, "world_size", ftr_env_int("WORLD_SIZE", 1));
    int rank = (int)ftl_opt_integer(L, t, fn, "rank", ftr_env_int("RANK", 0));
    /* A world of one needs no agreed port: let the system pick one (0). */
    int port =
        (int)ftl_opt_integer(L, t, fn, "port", ftr_env_int("MASTER_PORT", world == 1 ? 0 : 29500));
    /* the strings stay valid while the options table holds them, until we return */
    const char *addr = ftl_opt_string(L, t, fn, "addr", getenv("MASTER_ADDR"));
    double timeout = ftl_opt_number(L, t, fn, "timeout", env_num("FTLUA_DIST_TIMEOUT", 600));
    if (!addr || !*addr) addr = "127.0.0.1";
    /* Gloo on the CPU, NCCL on CUDA, chosen by the default device. */
    ft_dist_backend b = ft_default_device() == FT_CPU ? FT_DIST_GLOO : FT_DIST_NCCL;
    int chosen = ftl_opt_enum(L, t, fn, "backend", backends, -1);
    if (chosen >= 0) b = chosen == 0 ? FT_DIST_GLOO : FT_DIST_NCCL;
    int device = b == FT_DIST_NCCL ? ftr_env_int("LOCAL_RANK", 0) %
                                         (ft_cuda_device_count() > 0 ? ft_cuda_device_count() : 1)
                                   : FT_CPU;
    ft_dist *d = NULL;
    ft_status st = new_ft_dist(addr, port, rank, world, b, device, timeout, &d);
    ftl_check(L, st, "dist.init");
    g_group = d;
    g_backend = b;
    lua_pushboolean(L, 1);
    return 1;
}

static int l_destroy(lua_State *L) {
    (void)L;
    free_ft_dist(g_group);
    g_group = NULL;
    return 0;
}

static int l_rank(lua_State *L) {
    lua_pushinteger(L, ftr_dist_rank());
    return 1;
}

static int l_world_size(lua_State *L) {
    lua_pushinteger(L, ftr_dist_world());
    return 1;
}

static int l_local_rank(lua_State *L) {
    lua_pushinteger(L, ftr_env_int("LOCAL_RANK", 0));
    return 1;
}

static int l_is_main(lua_State *L) {
    lua_pushboolean(L, ftr_dist_is_main());
    return 1;
}

static int l_is_initialized(lua_State *L) {
    lua_pushboolean(L, g_group != NULL);
    return 1;
}

static int l_backend(lua_State *L) {
    if (!g_group)
        lua_pushnil(L);
    else
        lua_pushstring(L, ft_dist_backend_name(g_backend));
    return 1;
}

static const char *const OPS[] = {"sum", "max", "min", "mean", NULL};

/* all_reduce(x [, op]): x a tensor (reduced in place and returned), a number, or a list of
 * numbers (a new list). "mean" is the sum over the world size. */
static int l_all_reduce(lua_State *L) {
    int op = luaL_checkoption(L, 2, "sum", OPS);
    ft_dist_op dop = op == 3 ? FT_DIST_SUM : (ft_dist_op)op;
    int world = g_group ? ft_dist_world(g_group) : 1;
    ft_tensor *t = ftl_to_tensor(L, 1);
    if (t) {
        if (g_group) ftl_check(L, ft_dist_all_reduce(g_group, t, dop), "dist.all_reduce");
        if (op == 3 && world > 1)
            ftl_check(L, ft_binary_scalar_(FT_DIV, t, world), "dist.all_reduce");
        lua_settop(L, 1);
        return 1;
    }
    int is_num = lua_type(L, 1) == LUA_TNUMBER;
    if (!is_num) luaL_checktype(L, 1, LUA_TTABLE);
    int n = is_num ? 1 : (int)luaL_len(L, 1);
    double *v = lua_newuserdatauv(L, sizeof(double) * (size_t)(n > 0 ? n : 1), 0);
    if (is_num) v[0] = lua_tonumber(L, 1);
    for (int i = 0; !is_num && i < n; i++) {
        lua_geti(L, 1, i + 1);
        v[i] = luaL_checknumber(L, -1);
        lua_pop(L, 1);
    }
    if (g_group) ftl_check(L, ft_dist_all_reduce_doubles(g_group, v, n, dop), "dist.all_reduce");
    if (op == 3)
        for (int i = 0; i < n; i++) v[i] /= world;
    if (is_num) {
        lua_pushnumber(L, v[0]);
        return 1;
    }
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* broadcast(tensor [, src = 0]): rank src's values into every rank's tensor. */
static int l_broadcast(lua_State *L) {
    ft_tensor *t = ftl_check_tensor(L, 1);
    int src = (int)luaL_optinteger(L, 2, 0);
    if (g_group) ftl_check(L, ft_dist_broadcast(g_group, &t, 1, src), "dist.broadcast");
    lua_settop(L, 1);
    return 1;
}

static int l_barrier(lua_State *L) {
    if (g_group) ftl_check(L, ft_dist_barrier(g_group), "dist.barrier");
    return 0;
}

static int l_has_backend(lua_State *L) {
    static const char *const names[] = {"gloo", "nccl", NULL};
    lua_pushboolean(L, ft_dist_has_backend((ft_dist_backend)luaL_checkoption(L, 1, NULL, names)));
    return 1;
}

int luaopen_ftlua_dist(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"init", l_init},
        {"destroy", l_destroy},
        {"rank", l_rank},
        {"world_size", l_world_size},
        {"local_rank", l_local_rank},
        {"is_main", l_is_main},
        {"is_initialized", l_is_initialized},
        {"backend", l_backend},
        {"has_backend", l_has_backend},
        {"all_reduce", l_all_reduce},
        {"broadcast", l_broadcast},
        {"barrier", l_barrier},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
