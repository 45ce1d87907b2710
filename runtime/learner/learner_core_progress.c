/* learner_core_progress.c: ft.learner_core's view of what a fit prints (progress.h): time
 * and number formats, fastprogress's epoch table and batch bar, and the CSV log of the epochs. */
#include "base/clock.h"
#include "learner/learner_core.h"
#include "learner/progress.h"

#define PBAR_MT "ftlua.ProgressBar"
#define CSV_MT  "ftlua.CSVLogger"

/* ---------------------------------------------------------------- printing */

static int l_format_time(lua_State *L) {
    char buf[32];
    lua_pushstring(L, ftf_format_time(luaL_checknumber(L, 1), buf));
    return 1;
}

static int l_repr(lua_State *L) {
    char buf[64];
    ftf_repr_double(luaL_checknumber(L, 1), buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
}

static const char **name_list(lua_State *L, int idx, int *n) {
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    *n = (int)luaL_len(L, idx);
    const char **names = ftl_lcore_scratch(L, sizeof(char *) * (size_t)*n);
    for (int i = 0; i < *n; i++) {
        lua_geti(L, idx, i + 1);
        names[i] = lua_tostring(L, -1);
        if (!names[i])
            luaL_error(L, "names: entry %d is a %s, expected a string", i + 1,
                       luaL_typename(L, -1));
        lua_pop(L, 1); /* the string stays alive: the table holds it */
    }
    return names;
}

/* Lua values to cells: integer -> int, float -> float, string -> str, false -> None. */
static ftf_cell *cell_list(lua_State *L, int idx, int n) {
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    ftf_cell *cells = ftl_lcore_scratch(L, sizeof(ftf_cell) * (size_t)n);
    for (int i = 0; i < n; i++) {
        lua_geti(L, idx, i + 1);
        ftf_cell c = {FTL_CELL_NONE, 0, 0, NULL};
        if (lua_isinteger(L, -1)) {
            c.kind = FTL_CELL_INT;
            c.i = lua_tointeger(L, -1);
        } else if (lua_type(L, -1) == LUA_TNUMBER) {
            c.kind = FTL_CELL_FLOAT;
            c.f = lua_tonumber(L, -1);
        } else if (lua_type(L, -1) == LUA_TSTRING) {
            c.kind = FTL_CELL_STR;
            c.s = lua_tostring(L, -1);
        } else if (!lua_isnil(L, -1) && !(lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
            luaL_error(L, "value %d is a %s (numbers, strings or false for None)", i + 1,
                       luaL_typename(L, -1));
        }
        lua_pop(L, 1);
        cells[i] = c;
    }
    return cells;
}

static int l_table_header(lua_State *L) {
    int n;
    const char **names = name_list(L, 1, &n);
    int len = ftf_table_header(NULL, 0, names, n);
    char *buf = ftl_lcore_scratch(L, (size_t)len + 1);
    ftf_table_header(buf, (size_t)len + 1, names, n);
    lua_pushlstring(L, buf, (size_t)len);
    return 1;
}

/* core.table_row(names, values) -> the row fastprogress prints for these values */
static int l_table_row(lua_State *L) {
    int n;
    const char **names = name_list(L, 1, &n);
    ftf_cell *cells = cell_list(L, 2, n);
    int len = ftf_table_row(NULL, 0, names, cells, n);
    char *buf = ftl_lcore_scratch(L, (size_t)len + 1);
    ftf_table_row(buf, (size_t)len + 1, names, cells, n);
    lua_pushlstring(L, buf, (size_t)len);
    return 1;
}

/* core.ProgressBar(epoch, n_epoch, total): epoch 0-based as fastai's; draws on stdout when it
 * is a terminal. :update(val [, now]), :comment(smooth_loss), :finish() */
static int l_pbar(lua_State *L) {
    int e = (int)luaL_checkinteger(L, 1), n = (int)luaL_checkinteger(L, 2),
        total = (int)luaL_checkinteger(L, 3);
    luaL_argcheck(L, total >= 0, 3, "total must be non-negative");
    ftf_pbar *b = lua_newuserdatauv(L, sizeof *b, 0);
    luaL_setmetatable(L, PBAR_MT);
    ftf_pbar_start(b, stdout, e, n, total, monotonic_seconds());
    return 1;
}

static int pbar_update(lua_State *L) {
    ftf_pbar *b = luaL_checkudata(L, 1, PBAR_MT);
    ftf_pbar_update(b, (int)luaL_checkinteger(L, 2), luaL_optnumber(L, 3, monotonic_seconds()));
    return 0;
}

static int pbar_comment(lua_State *L) {
    ftf_pbar_comment(luaL_checkudata(L, 1, PBAR_MT), luaL_checknumber(L, 2));
    return 0;
}

static int pbar_finish(lua_State *L) {
    ftf_pbar_finish(luaL_checkudata(L, 1, PBAR_MT));
    return 0;
}

/* core.CSVLogger(path, names [, append | {append = bool}]): :write(values), :close() */
static int l_csv(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int n;
    const char **names = name_list(L, 2, &n);
    int append = lua_toboolean(L, 3);
    if (lua_istable(L, 3)) {
        static const char *const keys[] = {"append", NULL};
        ftl_check_options(L, 3, "CSVLogger", keys);
        lua_getfield(L, 3, "append");
        append = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    void **slot = ftl_lcore_new_box(L, CSV_MT);
    ftf_csv *c = new_ftl_csv(path, append, names, n);
    if (!c) luaL_error(L, "%s", ft_last_error());
    *slot = c;
    return 1;
}

static int csv_write(lua_State *L) {
    ftf_csv *c = ftl_lcore_check_box(L, 1, CSV_MT);
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = (int)luaL_len(L, 2);
    ftf_cell *cells = cell_list(L, 2, n);
    if (ftf_csv_write(c, cells, n)) luaL_error(L, "%s", ft_last_error());
    return 0;
}

static int csv_gc(lua_State *L) {
    free_ftl_csv(ftl_lcore_take_box(L, 1, CSV_MT));
    return 0;
}

/* ---------------------------------------------------------------- registration */

void ftl_lcore_open_progress(lua_State *L) {
    static const luaL_Reg pbar_methods[] = {
        {"update", pbar_update}, {"comment", pbar_comment}, {"finish", pbar_finish}, {NULL, NULL}};
    ftl_new_class(L, PBAR_MT, pbar_methods, NULL);
    static const luaL_Reg csv_methods[] = {{"write", csv_write}, {"close", csv_gc}, {NULL, NULL}};
    static const luaL_Reg csv_meta[] = {{"__gc", csv_gc}, {"__close", csv_gc}, {NULL, NULL}};
    ftl_new_class(L, CSV_MT, csv_methods, csv_meta);
    static const luaL_Reg funcs[] = {{"format_time", l_format_time},
                                     {"repr", l_repr},
                                     {"table_header", l_table_header},
                                     {"table_row", l_table_row},
                                     {"ProgressBar", l_pbar},
                                     {"CSVLogger", l_csv},
                                     {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
}
