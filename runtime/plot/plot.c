/* plot.c: the `plot` Lua module (ft.plot) over gnuplot, entry file: figures and ft.plot.*.
 *
 * A figure is a full userdata owning one long-lived gnuplot process (gnuplot.c), closed by
 * fig:close(), ft.plot.close(), __gc and __close. Each plot sends its commands in batches
 * followed by a marker, and gnuplot's stderr up to the marker becomes a Lua error naming the
 * command (plot_draw.c). Where a plot goes follows docs/plot.md ("Where figures go"): a file is
 * drawn into a temp file next to it, checked and renamed into place (plot_file.c). The plots
 * themselves: plot_series.c (plot, hist) and plot_imagesc.c; figure.h says who does what.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/args.h"
#include "base/lua_class.h"
#include "plot/figure.h"
#include "plot/plot_file.h"

#define CURRENT_KEY "ftlua.plot.current"
#define OPEN_KEY    "ftlua.plot.open" /* weak-keyed set of every figure */

static plot_fig *check_fig(lua_State *L, int idx) {
    plot_fig *f = luaL_checkudata(L, idx, FTL_PLOT_FIG_MT);
    if (f->gp.pid < 0) luaL_error(L, "ft.plot: figure %d is closed", f->number);
    return f;
}

/* ---------------------------------------------------------------- figures */

static int next_number = 1;

/* Ask gnuplot which terminals it has (f->terms). */
static void read_terms(lua_State *L, plot_fig *f) {
    char out[4096], err[512];
    static const char cmd[] = "print 'FTLUA_TERMS ', GPVAL_TERMINALS\n";
    if (gp_exchange(&f->gp, cmd, sizeof cmd - 1, out, sizeof out, err, sizeof err) != 0)
        luaL_error(L, "ft.plot: %s", err);
    const char *p = strstr(out, "FTLUA_TERMS ");
    if (!p) return;
    p += 12;
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len > sizeof f->terms - 3) len = sizeof f->terms - 3;
    f->terms[0] = ' ';
    memcpy(f->terms + 1, p, len);
    f->terms[len + 1] = ' ';
    f->terms[len + 2] = '\0';
}

/* ft.plot.figure{term =, output =, title =, width =, height =} -> a new figure, the current one. */
static int f_figure(lua_State *L) {
    static const char *const known[] = {"term", "output", "title", "width", "height", NULL};
    const char *fn = "ft.plot.figure";
    int o = 1;
    if (!lua_isnoneornil(L, o)) luaL_checktype(L, o, LUA_TTABLE);
    ftl_check_options(L, o, fn, known);
    char term[32] = "", output[1024] = "", title[256] = "";
    int has_t = ftl_plot_opt_string(L, o, fn, "term", term, sizeof term);
    ftl_plot_opt_string(L, o, fn, "output", output, sizeof output);
    ftl_plot_opt_string(L, o, fn, "title", title, sizeof title);
    int width = (int)ftl_opt_integer_in(L, o, fn, "width", 0, 1, 100000);
    int height = (int)ftl_opt_integer_in(L, o, fn, "height", 0, 1, 100000);
    int kind = -1;
    if (has_t)
        kind = ftl_plot_parse_kind(L, term, "term");
    else if (output[0] && ftp_plot_kind_of_path(output) >= 0)
        kind = ftp_plot_kind_of_path(output);
    else if (!output[0] && ftp_plot_dir())
        kind = K_PNG;
    else if (getenv("FTLUA_PLOT") && *getenv("FTLUA_PLOT"))
        kind = ftl_plot_parse_kind(L, getenv("FTLUA_PLOT"), "FTLUA_PLOT");

    plot_fig *f = lua_newuserdatauv(L, sizeof(plot_fig), 0);
    memset(f, 0, sizeof *f);
    f->gp.pid = -1;
    f->gp.in_fd = f->gp.err_fd = -1;
    luaL_setmetatable(L, FTL_PLOT_FIG_MT); /* from here __gc owns the process */
    char err[512];
    if (gp_open(&f->gp, err, sizeof err) != 0) luaL_error(L, "ft.plot: %s", err);
    f->number = next_number++;
    f->width = width;
    f->height = height;
    memcpy(f->output, output, sizeof output);
    memcpy(f->title, title, sizeof title);
    read_terms(L, f);
    if (kind < 0) kind = ftp_plot_window_term(f) ? K_WINDOW : K_DUMB;
    f->kind = kind;
    /* A file figure with no output: named at each plot, in FTLUA_PLOT_DIR (see where()). */
    f->auto_out = !f->output[0] && (kind == K_PNG || kind == K_SVG || kind == K_PDF);
    /* Remember it: the current figure, and in the set ft.plot.close() closes. */
    lua_getfield(L, LUA_REGISTRYINDEX, OPEN_KEY);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
    return 1;
}

/* The current figure (made when there is none or it was closed), pushed. */
static plot_fig *current(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
    plot_fig *f = luaL_testudata(L, -1, FTL_PLOT_FIG_MT);
    if (f && f->gp.pid >= 0) return f;
    lua_pop(L, 1);
    lua_pushcfunction(L, f_figure);
    lua_call(L, 0, 1);
    return lua_touserdata(L, -1);
}

static int m_close(lua_State *L) {
    plot_fig *f = luaL_checkudata(L, 1, FTL_PLOT_FIG_MT);
    gp_close(&f->gp);
    ftp_plot_discard(f); /* a plot stopped by an error between begin() and finish() */
    return 0;
}

static int m_tostring(lua_State *L) {
    plot_fig *f = luaL_checkudata(L, 1, FTL_PLOT_FIG_MT);
    lua_pushfstring(L, "ft.plot figure %d (%s%s%s%s)", f->number, ftl_plot_kind_names[f->kind],
                    f->output[0] ? " -> " : "", f->output, f->gp.pid < 0 ? ", closed" : "");
    return 1;
}

static int m_pid(lua_State *L) {
    plot_fig *f = luaL_checkudata(L, 1, FTL_PLOT_FIG_MT);
    if (f->gp.pid < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, f->gp.pid);
    return 1;
}

static int m_term(lua_State *L) {
    plot_fig *f = luaL_checkudata(L, 1, FTL_PLOT_FIG_MT);
    lua_pushstring(L, ftl_plot_kind_names[f->kind]);
    lua_pushstring(L, f->output);
    return 2;
}

/* fig:send(commands): raw gnuplot commands, errors raised. */
static int m_send(lua_State *L) {
    plot_fig *f = check_fig(L, 1);
    luaL_checkstring(L, 2);
    lua_pushvalue(L, 2);
    lua_pushliteral(L, "\n");
    lua_concat(L, 2);
    ftl_plot_run(L, f, 1);
    return 0;
}

/* ---------------------------------------------------------------- entry points */

static int m_plot(lua_State *L) { return ftl_plot_draw_lines(L, check_fig(L, 1), 2); }
static int m_hist(lua_State *L) {
    lua_settop(L, 3);
    return ftl_plot_draw_hist(L, check_fig(L, 1), 2, 3);
}
static int m_imagesc(lua_State *L) {
    lua_settop(L, 3);
    return ftl_plot_draw_imagesc(L, check_fig(L, 1), 2, 3);
}

static int f_plot(lua_State *L) {
    lua_settop(L, 1);
    return ftl_plot_draw_lines(L, current(L), 1);
}
static int f_hist(lua_State *L) {
    lua_settop(L, 2);
    return ftl_plot_draw_hist(L, current(L), 1, 2);
}
static int f_imagesc(lua_State *L) {
    lua_settop(L, 2);
    return ftl_plot_draw_imagesc(L, current(L), 1, 2);
}
/* ft.plot._stdout_is_tty(): whether stdout is a terminal (text grids keep their colours). */
static int f_stdout_is_tty(lua_State *L) {
    lua_pushboolean(L, isatty(STDOUT_FILENO));
    return 1;
}

/* ft.plot._write_file(path, text): text written whole or not at all (plot_top_losses' table). */
static int f_write_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    size_t n;
    const char *text = luaL_checklstring(L, 2, &n);
    char err[1200];
    if (ftp_fig_write(path, text, n, err, sizeof err) != 0) return luaL_error(L, "%s", err);
    return 0;
}

static int f_current(lua_State *L) {
    current(L);
    return 1;
}

/* A fresh, empty weak set of open figures in the registry. */
static void new_open_set(lua_State *L) {
    lua_newtable(L);
    lua_newtable(L);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, OPEN_KEY);
}

/* ft.plot.close(): close every figure. */
static int f_close(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, OPEN_KEY);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        plot_fig *f = luaL_testudata(L, -1, FTL_PLOT_FIG_MT);
        if (f) gp_close(&f->gp), ftp_plot_discard(f);
    }
    lua_pop(L, 1);
    new_open_set(L); /* forget them */
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
    return 0;
}

static const luaL_Reg fig_methods[] = {
    {"plot", m_plot}, {"hist", m_hist}, {"imagesc", m_imagesc}, {"close", m_close},
    {"send", m_send}, {"pid", m_pid},   {"term", m_term},       {NULL, NULL},
};

static const luaL_Reg fig_meta[] = {
    {"__gc", m_close}, {"__close", m_close}, {"__tostring", m_tostring}, {NULL, NULL}};

static const luaL_Reg module_funcs[] = {
    {"figure", f_figure},
    {"plot", f_plot},
    {"hist", f_hist},
    {"imagesc", f_imagesc},
    {"close", f_close},
    {"gcf", f_current},
    {"_stdout_is_tty", f_stdout_is_tty},
    {"_write_file", f_write_file},
    {NULL, NULL},
};

int luaopen_ftlua_plot(lua_State *L) {
    ftl_new_class(L, FTL_PLOT_FIG_MT, fig_methods, fig_meta);
    if (lua_getfield(L, LUA_REGISTRYINDEX, OPEN_KEY) != LUA_TTABLE) new_open_set(L);
    lua_pop(L, 1);
    luaL_newlib(L, module_funcs);
    return 1;
}
