/* plot_series.c: ft.plot.plot (series of x, y as lines or points) and ft.plot.hist (a histogram
 * of values), each checked and normalised before anything is sent, then drawn through
 * plot_draw.c's begin/finish. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/args.h"
#include "plot/figure.h"

/* ---------------------------------------------------------------- plot */

static int is_series(lua_State *L, int idx) {
    if (lua_type(L, idx) == LUA_TUSERDATA) return 1;
    if (!lua_istable(L, idx)) return 0;
    int t = lua_getfield(L, idx, "y");
    lua_pop(L, 1);
    if (t != LUA_TNIL) return 1;
    t = lua_geti(L, idx, 1);
    lua_pop(L, 1);
    return t == LUA_TNUMBER;
}

/* Normalize series `s` (at index s) into two flat tables pushed at the top: x then y. k counts
 * from 1 (messages). */
static lua_Integer series_xy(lua_State *L, int s, int k) {
    char what[32];
    snprintf(what, sizeof what, "series %d y", k);
    if (lua_istable(L, s) && lua_getfield(L, s, "y") != LUA_TNIL) {
        lua_Integer n = ftl_plot_to_numbers(L, -1, what);
        lua_getfield(L, s, "x");
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_createtable(L, (int)n, 0);
            for (lua_Integer i = 1; i <= n; i++) lua_pushinteger(L, i), lua_rawseti(L, -2, i);
        } else {
            snprintf(what, sizeof what, "series %d x", k);
            if (ftl_plot_to_numbers(L, -1, what) != n)
                luaL_error(L, "ft.plot: series %d: x and y have different lengths", k);
        }
        lua_insert(L, -2);
        return n;
    }
    if (lua_istable(L, s)) lua_pop(L, 1);
    lua_pushvalue(L, s);
    lua_Integer n = ftl_plot_to_numbers(L, -1, what);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) lua_pushinteger(L, i), lua_rawseti(L, -2, i);
    lua_insert(L, -2);
    return n;
}

/* Push the series of the options table o: its array part, or o itself when it has y (then
 * *self is set). Returns how many; each stays pushed. */
static int push_series(lua_State *L, int o, const char *fn, int *self) {
    static const char *const known[] = {"x", "y", "title", "style", NULL};
    lua_getfield(L, o, "y");
    *self = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (*self) {
        lua_pushvalue(L, o);
        return 1;
    }
    int nser = 0;
    for (lua_Integer i = 1;; i++) {
        luaL_checkstack(L, 4, "ft.plot: too many series"); /* each series stays pushed */
        if (lua_geti(L, o, i) == LUA_TNIL) {
            lua_pop(L, 1);
            break;
        }
        if (!is_series(L, -1))
            luaL_error(L, "ft.plot: series %d: expected {x=, y=} or numbers", (int)i);
        if (lua_istable(L, -1)) ftl_check_named_options(L, -1, fn, known);
        nser++;
    }
    if (nser == 0) luaL_error(L, "ft.plot: no series to plot"); /* a bare list: plot{1, 4, 9} */
    return nser;
}

/* The plot command: "plot '-' using 1:2 title 't' with lines, ..." for the series at base.. */
static void add_plot_command(lua_State *L, luaL_Buffer *b, int base, int nser, int self,
                             const char *fn) {
    luaL_addstring(b, "plot ");
    for (int k = 0; k < nser; k++) {
        int s = base + k;
        char style[32] = "lines", title[256] = "";
        int has_title = 0;
        if (lua_istable(L, s)) {
            if (ftl_plot_opt_string(L, s, fn, "style", style, sizeof style)) {
                for (char *c = style; *c; c++)
                    if (!((*c >= 'a' && *c <= 'z') || *c == ' '))
                        luaL_error(L, "ft.plot: series %d: bad style '%s'", k + 1, style);
            }
            if (!(self && k == 0))
                has_title = ftl_plot_opt_string(L, s, fn, "title", title, sizeof title);
            else
                has_title = ftl_plot_opt_string(L, s, fn, "label", title, sizeof title);
        }
        if (k) luaL_addstring(b, ", ");
        luaL_addstring(b, "'-' using 1:2 ");
        if (has_title) {
            luaL_addstring(b, "title ");
            ftl_plot_add_quoted(b, title);
        } else
            luaL_addstring(b, "notitle");
        luaL_addstring(b, " with ");
        luaL_addstring(b, style);
    }
    luaL_addchar(b, '\n');
}

int ftl_plot_draw_lines(lua_State *L, plot_fig *f, int o) {
    static const char *const known[] = {FTL_PLOT_COMMON_OPTIONS, "x", "y", "label", "style", NULL};
    const char *fn = "ft.plot";
    luaL_checktype(L, o, LUA_TTABLE);
    ftl_check_named_options(L, o, fn, known);
    int self, base = lua_gettop(L) + 1;
    int nser = push_series(L, o, fn, &self);
    /* Check and normalize everything before anything is sent. */
    int logx = ftl_opt_boolean(L, o, fn, "logx", 0), logy = ftl_opt_boolean(L, o, fn, "logy", 0);
    int xy = lua_gettop(L) + 1;
    luaL_checkstack(L, 2 * nser + 20, "ft.plot: too many series");
    for (int k = 0; k < nser; k++) series_xy(L, base + k, k + 1);
    luaL_Buffer b;
    int to_stdout = ftl_plot_begin(L, f, o, fn, &b);
    add_plot_command(L, &b, base, nser, self, fn);
    for (int k = 0; k < nser; k++) {
        int xi = xy + 2 * k, yi = xi + 1;
        lua_Integer n = luaL_len(L, yi);
        for (lua_Integer i = 1; i <= n; i++) {
            double x = ftl_plot_num_at(L, xi, i), y = ftl_plot_num_at(L, yi, i);
            if (!isfinite(x) || !isfinite(y) || (logx && x <= 0) || (logy && y <= 0)) continue;
            ftl_plot_addf(&b, "%.17g ", x);
            ftl_plot_addf(&b, "%.17g\n", y);
        }
        luaL_addstring(&b, "e\n");
    }
    ftl_plot_finish(L, f, &b, to_stdout);
    return 0;
}

/* ---------------------------------------------------------------- hist */

int ftl_plot_draw_hist(lua_State *L, plot_fig *f, int v, int o) {
    static const char *const known[] = {FTL_PLOT_COMMON_OPTIONS, "bins", NULL};
    const char *fn = "ft.plot.hist";
    ftl_plot_options(L, o, fn, known);
    lua_Integer n = ftl_plot_to_numbers(L, v, "values");
    int bins = (int)ftl_opt_integer_in(L, o, fn, "bins", 20, 1, 100000);
    double lo = HUGE_VAL, hi = -HUGE_VAL;
    for (lua_Integer i = 1; i <= n; i++) {
        double x = ftl_plot_num_at(L, v, i);
        if (!isfinite(x)) continue;
        if (x < lo) lo = x;
        if (x > hi) hi = x;
    }
    if (lo > hi) luaL_error(L, "ft.plot.hist: no finite values");
    if (lo == hi) lo -= 0.5, hi += 0.5;
    double *counts = lua_newuserdatauv(L, sizeof(double) * (size_t)bins, 0); /* scratch, GC-owned */
    memset(counts, 0, sizeof(double) * (size_t)bins);
    double w = (hi - lo) / bins;
    for (lua_Integer i = 1; i <= n; i++) {
        double x = ftl_plot_num_at(L, v, i);
        if (!isfinite(x)) continue;
        int k = (int)((x - lo) / w);
        if (k >= bins) k = bins - 1;
        if (k < 0) k = 0;
        counts[k] += 1;
    }
    luaL_Buffer b;
    int to_stdout = ftl_plot_begin(L, f, o, fn, &b);
    luaL_addstring(&b, "set style fill solid 0.6 border -1\n");
    ftl_plot_addf(&b, "set boxwidth %.17g absolute\n", w);
    luaL_addstring(&b, "set yrange [0:*]\nplot '-' using 1:2 notitle with boxes\n");
    for (int k = 0; k < bins; k++) {
        ftl_plot_addf(&b, "%.17g ", lo + (k + 0.5) * w);
        ftl_plot_addf(&b, "%.17g\n", counts[k]);
    }
    luaL_addstring(&b, "e\n");
    ftl_plot_finish(L, f, &b, to_stdout);
    return 0;
}
