/* plot.c: the `plot` Lua module (ft.plot) over gnuplot.
 *
 * A figure is a full userdata owning one long-lived gnuplot process (gnuplot.c). Commands are
 * built in a luaL_Buffer (so a memory error cannot leak), sent in one batch followed by a marker,
 * and gnuplot's stderr up to the marker is turned into a Lua error naming the command. While a
 * buffer is open its box sits on top of the Lua stack: values read between its calls are
 * pushed and popped before the next one, and tables that must stay (the rows, the tick names)
 * are pushed before it is opened, with luaL_checkstack for as many as there are. The process is
 * closed by fig:close(), ft.plot.close(), __gc and __close. Where a plot goes follows
 * docs/plot.md ("Where figures go"): a file is drawn into a temp file next to it (`set output`
 * ... plot ... `unset output`), checked and renamed into place (plot_file.c).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ftlua.h"
#include "plot/gnuplot.h"
#include "base/hooks.h"
#include "plot/plot_file.h"

#define FIG_MT "ftlua.PlotFigure"
#define CURRENT_KEY "ftlua.plot.current"
#define OPEN_KEY "ftlua.plot.open" /* weak-keyed set of every figure */

enum { K_PNG, K_SVG, K_PDF, K_DUMB, K_WINDOW, K_COUNT };
static const char *const KIND_NAMES[] = {"png", "svg", "pdf", "dumb", "window", NULL};

typedef struct {
    gp_proc gp;
    int kind, width, height, number;
    char output[1024];
    char title[256];
    char terms[1024]; /* GPVAL_TERMINALS, space-separated, with spaces around */
    int auto_out;     /* output is a default name under FTLUA_PLOT_DIR: a fresh file per plot */
    int drawing_kind;   /* the terminal of the file below */
    char drawing[1024]; /* the file the plot in progress writes ("" when it goes to the screen) */
    char tmp[1100];     /* where gnuplot writes it until it is checked and renamed into place */
} plot_fig;

/* ---------------------------------------------------------------- helpers */

static plot_fig *check_fig(lua_State *L, int idx) {
    plot_fig *f = luaL_checkudata(L, idx, FIG_MT);
    if (f->gp.pid < 0) luaL_error(L, "ft.plot: figure %d is closed", f->number);
    return f;
}

static int has_term(const plot_fig *f, const char *name) {
    char pat[40];
    snprintf(pat, sizeof pat, " %s ", name);
    return strstr(f->terms, pat) != NULL;
}

static int kind_of_path(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot) return -1;
    if (strcmp(dot, ".png") == 0) return K_PNG;
    if (strcmp(dot, ".svg") == 0) return K_SVG;
    if (strcmp(dot, ".pdf") == 0) return K_PDF;
    if (strcmp(dot, ".txt") == 0) return K_DUMB;
    return -1;
}

/* FTLUA_PLOT_DIR (set by `ftlua --report`): figures with no term or output default to PNG, and
 * default-named files go in that folder, a fresh name per plot so none is overwritten. */
static const char *plot_dir(void) {
    const char *d = getenv("FTLUA_PLOT_DIR");
    return d && *d ? d : NULL;
}
static int dir_serial = 1;

static const char *window_term(const plot_fig *f) {
    const char *d = getenv("DISPLAY");
    if (!d || !*d) return NULL;
    static const char *const wins[] = {"qt", "wxt", "x11"};
    for (int i = 0; i < 3; i++)
        if (has_term(f, wins[i])) return wins[i];
    return NULL;
}

/* A gnuplot single-quoted string: '' stands for ', newlines become spaces. */
static void add_quoted(luaL_Buffer *b, const char *s) {
    luaL_addchar(b, '\'');
    for (; *s; s++) {
        if (*s == '\'') luaL_addstring(b, "''");
        else if (*s == '\n' || *s == '\r') luaL_addchar(b, ' ');
        else luaL_addchar(b, *s);
    }
    luaL_addchar(b, '\'');
}

__attribute__((format(printf, 2, 3))) static void addf(luaL_Buffer *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    luaL_addstring(b, tmp);
}

/* Forget the file of the plot in progress (its temp file is removed). */
static void discard(plot_fig *f) {
    if (f->tmp[0]) remove(f->tmp);
    f->tmp[0] = f->drawing[0] = '\0';
}

/* Send the string on top of the stack (popped) and turn gnuplot's complaints into errors; on an
 * error the plot's temp file goes, and the message names the file the user asked for. */
static void run(lua_State *L, plot_fig *f, int to_stdout) {
    size_t n;
    const char *cmds = lua_tolstring(L, -1, &n);
    char out[8192], err[1024], msg[1200], file[1100] = "";
    if (f->drawing[0]) snprintf(file, sizeof file, "cannot write '%s': ", f->drawing);
    if (to_stdout) fflush(stdout); /* our text first, then gnuplot's plot */
    int rc = gp_exchange(&f->gp, cmds, n, out, sizeof out, err, sizeof err);
    lua_pop(L, 1);
    if (rc != 0) { /* gp_exchange closed the process */
        discard(f);
        luaL_error(L, "ft.plot: %s%s", file, err);
    }
    if (gp_parse_error(out, msg, sizeof msg)) {
        discard(f);
        luaL_error(L, "ft.plot: %s%s", file, msg);
    }
    for (const char *w = out; *w;) { /* warnings: one line each, without gnuplot's indent */
        const char *e = strchr(w, '\n');
        size_t len = e ? (size_t)(e - w) : strlen(w);
        const char *t = w;
        while (t < w + len && *t == ' ') t++;
        if (t < w + len) fprintf(stderr, "ft.plot: gnuplot: %.*s\n", (int)(len - (size_t)(t - w)), t);
        w = e ? e + 1 : w + len;
    }
}

static int opt_bool(lua_State *L, int t, const char *k) {
    if (lua_type(L, t) != LUA_TTABLE) return 0;
    lua_getfield(L, t, k);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Copy a string option into buf; returns 1 when present. */
static int opt_str(lua_State *L, int t, const char *k, char *buf, size_t sz) {
    if (lua_type(L, t) != LUA_TTABLE) return 0;
    int ty = lua_getfield(L, t, k);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (ty != LUA_TSTRING && ty != LUA_TNUMBER) luaL_error(L, "ft.plot: option %s: expected string, got %s", k, luaL_typename(L, -1));
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (len >= sz) luaL_error(L, "ft.plot: option %s is too long", k);
    memcpy(buf, s, len + 1);
    lua_pop(L, 1);
    return 1;
}

static int opt_int(lua_State *L, int t, const char *k, int def) {
    if (lua_type(L, t) != LUA_TTABLE) return def;
    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    int isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < 1 || v > 100000) luaL_error(L, "ft.plot: option %s: expected a positive integer", k);
    lua_pop(L, 1);
    return (int)v;
}

static int parse_kind(lua_State *L, const char *name, const char *where) {
    for (int i = 0; KIND_NAMES[i]; i++)
        if (strcmp(name, KIND_NAMES[i]) == 0) return i;
    return luaL_error(L, "ft.plot: %s: unknown terminal '%s' (png, svg, pdf, dumb or window)", where, name);
}

/* Replace the value at idx by a flat Lua table of numbers (tensors via :totable()). Returns n. */
static lua_Integer to_numbers(lua_State *L, int idx, const char *what) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TUSERDATA && luaL_getmetafield(L, idx, "__index") != LUA_TNIL) {
        lua_pop(L, 1);
        lua_getfield(L, idx, "totable");
        lua_pushvalue(L, idx);
        lua_call(L, 1, 1);
        lua_replace(L, idx);
    }
    if (!lua_istable(L, idx)) luaL_error(L, "ft.plot: %s: expected a table or tensor of numbers, got %s", what, luaL_typename(L, idx));
    lua_Integer n = luaL_len(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_geti(L, idx, i) != LUA_TNUMBER)
            luaL_error(L, "ft.plot: %s[%d]: expected a number, got %s", what, (int)i, luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    return n;
}

static double num_at(lua_State *L, int idx, lua_Integer i) {
    lua_geti(L, idx, i);
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* ---------------------------------------------------------------- figures */

static int next_number = 1;

/* Resolve the gnuplot terminal command for one plot; fills *kind. */
static void add_term(lua_State *L, luaL_Buffer *b, plot_fig *f, int kind, int w, int h) {
    const char *t = NULL;
    switch (kind) {
    case K_PNG: t = has_term(f, "pngcairo") ? "pngcairo" : has_term(f, "png") ? "png" : NULL; break;
    case K_SVG: t = has_term(f, "svg") ? "svg" : NULL; break;
    case K_PDF: t = has_term(f, "pdfcairo") ? "pdfcairo" : NULL; break;
    case K_DUMB: t = "dumb"; break;
    case K_WINDOW: t = window_term(f); break;
    }
    if (!t) {
        if (kind == K_WINDOW) luaL_error(L, "ft.plot: no window: DISPLAY is unset or gnuplot has no qt/wxt/x11 terminal (apt-get install gnuplot-qt)");
        luaL_error(L, "ft.plot: this gnuplot has no %s terminal", KIND_NAMES[kind]);
    }
    luaL_addstring(b, "set term ");
    luaL_addstring(b, t);
    luaL_addstring(b, " noenhanced");
    if (kind == K_DUMB) {
        addf(b, " size %.0f", (double)(w ? w : 79));
        addf(b, ",%.0f", (double)(h ? h : 24));
    } else if (kind == K_PDF) {
        addf(b, " size %gin", (w ? w : 640) / 100.0);
        addf(b, ",%gin", (h ? h : 480) / 100.0);
    } else {
        addf(b, " size %.0f", (double)(w ? w : 640));
        addf(b, ",%.0f", (double)(h ? h : 480));
    }
    luaL_addchar(b, '\n');
}

static int f_figure(lua_State *L) {
    int o = 1;
    if (!lua_isnoneornil(L, o)) luaL_checktype(L, o, LUA_TTABLE);
    char term[32] = "", output[1024] = "", title[256] = "";
    int has_t = opt_str(L, o, "term", term, sizeof term);
    opt_str(L, o, "output", output, sizeof output);
    opt_str(L, o, "title", title, sizeof title);
    int width = opt_int(L, o, "width", 0), height = opt_int(L, o, "height", 0);
    int kind = -1;
    if (has_t) kind = parse_kind(L, term, "term");
    else if (output[0] && kind_of_path(output) >= 0) kind = kind_of_path(output);
    else if (!output[0] && plot_dir()) kind = K_PNG;
    else if (getenv("FTLUA_PLOT") && *getenv("FTLUA_PLOT")) kind = parse_kind(L, getenv("FTLUA_PLOT"), "FTLUA_PLOT");

    plot_fig *f = lua_newuserdatauv(L, sizeof(plot_fig), 0);
    memset(f, 0, sizeof *f);
    f->gp.pid = -1;
    f->gp.in_fd = f->gp.err_fd = -1;
    luaL_setmetatable(L, FIG_MT); /* from here __gc owns the process */
    char err[512];
    if (gp_open(&f->gp, err, sizeof err) != 0) luaL_error(L, "ft.plot: %s", err);
    f->number = next_number++;
    f->width = width;
    f->height = height;
    memcpy(f->output, output, sizeof output);
    memcpy(f->title, title, sizeof title);
    /* Which terminals this gnuplot has. */
    lua_pushliteral(L, "print 'FTLUA_TERMS ', GPVAL_TERMINALS\n");
    {
        size_t n;
        const char *cmds = lua_tolstring(L, -1, &n);
        char out[4096];
        int rc = gp_exchange(&f->gp, cmds, n, out, sizeof out, err, sizeof err);
        lua_pop(L, 1);
        if (rc != 0) luaL_error(L, "ft.plot: %s", err);
        const char *p = strstr(out, "FTLUA_TERMS ");
        if (p) {
            p += 12;
            const char *e = strchr(p, '\n');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if (len > sizeof f->terms - 3) len = sizeof f->terms - 3;
            f->terms[0] = ' ';
            memcpy(f->terms + 1, p, len);
            f->terms[len + 1] = ' ';
            f->terms[len + 2] = '\0';
        }
    }
    if (kind < 0) kind = window_term(f) ? K_WINDOW : K_DUMB;
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
    plot_fig *f = luaL_testudata(L, -1, FIG_MT);
    if (f && f->gp.pid >= 0) return f;
    lua_pop(L, 1);
    lua_pushcfunction(L, f_figure);
    lua_call(L, 0, 1);
    return lua_touserdata(L, -1);
}

static int m_close(lua_State *L) {
    plot_fig *f = luaL_checkudata(L, 1, FIG_MT);
    gp_close(&f->gp);
    discard(f); /* a plot stopped by an error between begin() and finish() */
    return 0;
}

static int m_tostring(lua_State *L) {
    plot_fig *f = luaL_checkudata(L, 1, FIG_MT);
    lua_pushfstring(L, "ft.plot figure %d (%s%s%s%s)", f->number, KIND_NAMES[f->kind],
                    f->output[0] ? " -> " : "", f->output, f->gp.pid < 0 ? ", closed" : "");
    return 1;
}

static int m_pid(lua_State *L) {
    plot_fig *f = luaL_checkudata(L, 1, FIG_MT);
    if (f->gp.pid < 0) lua_pushnil(L);
    else lua_pushinteger(L, f->gp.pid);
    return 1;
}

static int m_term(lua_State *L) {
    plot_fig *f = luaL_checkudata(L, 1, FIG_MT);
    lua_pushstring(L, KIND_NAMES[f->kind]);
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
    run(L, f, 1);
    return 0;
}

static int is_file_kind(int kind) { return kind == K_PNG || kind == K_SVG || kind == K_PDF; }

/* Where one plot goes (the rule of docs/plot.md, "Where figures go"): an explicit output (the
 * call's, else the figure's) is that file; with none, a file terminal writes a fresh PNG/SVG/PDF
 * in FTLUA_PLOT_DIR (--report, the notebook kernel) and is an error without it (never a file
 * the user did not name); dumb goes to stdout, window to a window. Fills kind and output
 * ("" for stdout or a window). */
/* The terminal of one plot: the call's term, else its output's extension, else the figure's. */
static int kind_for(lua_State *L, plot_fig *f, int o) {
    char term[32], output[1024];
    if (opt_str(L, o, "term", term, sizeof term)) return parse_kind(L, term, "term");
    if (opt_str(L, o, "output", output, sizeof output) && kind_of_path(output) >= 0) return kind_of_path(output);
    return f->kind;
}

static void where(lua_State *L, plot_fig *f, int o, int *kind_out, char *output, size_t outsz) {
    int kind = kind_for(L, f, o);
    int has_out = opt_str(L, o, "output", output, outsz);
    if (!has_out) {
        output[0] = '\0';
        if (f->output[0] && kind == f->kind && !f->auto_out) snprintf(output, outsz, "%s", f->output);
        else if (is_file_kind(kind) && plot_dir()) {
            snprintf(output, outsz, "%s/ftlua-fig%d-%d.%s", plot_dir(), f->number, dir_serial++, KIND_NAMES[kind]);
            if (f->auto_out) memcpy(f->output, output, sizeof f->output); /* fig:term() names it */
        } else if (is_file_kind(kind))
            luaL_error(L, "ft.plot: a %s figure writes a file: give output = 'name.%s' (with no output, "
                          "figures go to the terminal, or to FTLUA_PLOT_DIR when it is set)",
                       KIND_NAMES[kind], KIND_NAMES[kind]);
    }
    if (kind == K_WINDOW) output[0] = '\0';
    *kind_out = kind;
}

/* Start a plot: batch 1 (terminal and output) is sent and checked alone, so a bad output path
 * never lets a plot go to stdout. A file is drawn into a temp file next to it (finish() checks
 * and renames it). Then a buffer is opened for batch 2 with the common settings.
 * Returns whether the plot goes to our stdout. */
static int begin(lua_State *L, plot_fig *f, int o, luaL_Buffer *b) {
    char output[1024], title[256], err[1200];
    int kind;
    where(L, f, o, &kind, output, sizeof output);
    int w = opt_int(L, o, "width", f->width), h = opt_int(L, o, "height", f->height);
    discard(f);
    if (output[0]) {
        if (ftl_fig_tmpname(output, f->tmp, sizeof f->tmp, err, sizeof err) != 0) luaL_error(L, "ft.plot: %s", err);
        memcpy(f->drawing, output, sizeof output);
        f->drawing_kind = kind;
    }
    luaL_Buffer b1;
    luaL_buffinit(L, &b1);
    luaL_addstring(&b1, "reset\n");
    add_term(L, &b1, f, kind, w, h);
    if (output[0]) {
        luaL_addstring(&b1, "set output ");
        add_quoted(&b1, f->tmp);
        luaL_addchar(&b1, '\n');
    } else luaL_addstring(&b1, "set output\n");
    luaL_pushresult(&b1);
    run(L, f, 0);
    luaL_buffinit(L, b);
    if (!opt_str(L, o, "title", title, sizeof title)) memcpy(title, f->title, sizeof title);
    if (title[0]) {
        luaL_addstring(b, "set title ");
        add_quoted(b, title);
        luaL_addchar(b, '\n');
    }
    static const char *const labels[] = {"xlabel", "ylabel"};
    for (int i = 0; i < 2; i++) {
        if (opt_str(L, o, labels[i], title, sizeof title)) {
            luaL_addstring(b, "set ");
            luaL_addstring(b, labels[i]);
            luaL_addchar(b, ' ');
            add_quoted(b, title);
            luaL_addchar(b, '\n');
        }
    }
    /* on a log x axis (learning rates) 1e-07 reads better than 0.00000010 */
    if (opt_bool(L, o, "logx")) luaL_addstring(b, "set logscale x\nset format x \"%.0e\"\n");
    if (opt_bool(L, o, "logy")) luaL_addstring(b, "set logscale y\n");
    if (opt_bool(L, o, "grid")) luaL_addstring(b, "set grid\n");
    return kind == K_DUMB && !output[0];
}

static void finish(lua_State *L, plot_fig *f, luaL_Buffer *b, int to_stdout) {
    luaL_addstring(b, "unset output\n"); /* gnuplot closes the file: complete now */
    luaL_pushresult(b);
    run(L, f, to_stdout);
    if (!f->drawing[0]) return;
    char path[1024], err[1200];
    memcpy(path, f->drawing, sizeof path);
    int kind = f->drawing_kind;
    int check = kind == K_PNG ? FTL_FIG_PNG : kind == K_SVG ? FTL_FIG_SVG : kind == K_PDF ? FTL_FIG_PDF : FTL_FIG_ANY;
    int rc = ftl_fig_commit(f->tmp, path, check, err, sizeof err);
    f->tmp[0] = f->drawing[0] = '\0';
    if (rc != 0) luaL_error(L, "ft.plot: %s", err);
    if (kind == K_PNG || kind == K_SVG) ftl_figure_written(L, path); /* whole, at its path */
}

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

/* Normalize series `s` (at index s) into two flat tables pushed at the top: x then y. */
static lua_Integer series_xy(lua_State *L, int s, int k) {
    char what[32];
    snprintf(what, sizeof what, "series %d y", k);
    if (lua_istable(L, s) && lua_getfield(L, s, "y") != LUA_TNIL) {
        lua_Integer n = to_numbers(L, -1, what);
        lua_getfield(L, s, "x");
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_createtable(L, (int)n, 0);
            for (lua_Integer i = 1; i <= n; i++) lua_pushinteger(L, i), lua_rawseti(L, -2, i);
        } else {
            snprintf(what, sizeof what, "series %d x", k);
            if (to_numbers(L, -1, what) != n) luaL_error(L, "ft.plot: series %d: x and y have different lengths", k);
        }
        lua_insert(L, -2);
        return n;
    }
    if (lua_istable(L, s)) lua_pop(L, 1);
    lua_pushvalue(L, s);
    lua_Integer n = to_numbers(L, -1, what);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) lua_pushinteger(L, i), lua_rawseti(L, -2, i);
    lua_insert(L, -2);
    return n;
}

static int do_plot(lua_State *L, plot_fig *f, int o) {
    luaL_checktype(L, o, LUA_TTABLE);
    /* The series: the array part, or the options table itself when it has y. */
    int nser = 0, base = lua_gettop(L) + 1;
    lua_getfield(L, o, "y");
    int self = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (self) {
        lua_pushvalue(L, o);
        nser = 1;
    } else {
        for (lua_Integer i = 1;; i++) {
            luaL_checkstack(L, 4, "ft.plot: too many series"); /* each series stays pushed */
            lua_geti(L, o, i);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                break;
            }
            if (!is_series(L, -1)) luaL_error(L, "ft.plot: series %d: expected {x=, y=} or numbers", (int)i);
            nser++;
        }
        if (nser == 0) { /* a bare list of numbers: plot{1, 4, 9} */
            luaL_error(L, "ft.plot: no series to plot");
        }
    }
    /* Check and normalize everything before anything is sent. */
    int logx = opt_bool(L, o, "logx"), logy = opt_bool(L, o, "logy");
    int xy = lua_gettop(L) + 1;
    luaL_checkstack(L, 2 * nser + 20, "ft.plot: too many series");
    for (int k = 0; k < nser; k++) series_xy(L, base + k, k + 1);
    luaL_Buffer b;
    int to_stdout = begin(L, f, o, &b);
    luaL_addstring(&b, "plot ");
    for (int k = 0; k < nser; k++) {
        int s = base + k;
        char style[32] = "lines", title[256] = "";
        int has_title = 0;
        if (lua_istable(L, s)) {
            if (opt_str(L, s, "style", style, sizeof style)) {
                for (char *c = style; *c; c++)
                    if (!((*c >= 'a' && *c <= 'z') || *c == ' '))
                        luaL_error(L, "ft.plot: series %d: bad style '%s'", k + 1, style);
            }
            if (!(self && k == 0)) has_title = opt_str(L, s, "title", title, sizeof title);
            else has_title = opt_str(L, s, "label", title, sizeof title);
        }
        if (k) luaL_addstring(&b, ", ");
        luaL_addstring(&b, "'-' using 1:2 ");
        if (has_title) {
            luaL_addstring(&b, "title ");
            add_quoted(&b, title);
        } else luaL_addstring(&b, "notitle");
        luaL_addstring(&b, " with ");
        luaL_addstring(&b, style);
    }
    luaL_addchar(&b, '\n');
    for (int k = 0; k < nser; k++) {
        int xi = xy + 2 * k, yi = xi + 1;
        lua_Integer n = luaL_len(L, yi);
        for (lua_Integer i = 1; i <= n; i++) {
            double x = num_at(L, xi, i), y = num_at(L, yi, i);
            if (!isfinite(x) || !isfinite(y) || (logx && x <= 0) || (logy && y <= 0)) continue;
            addf(&b, "%.17g ", x);
            addf(&b, "%.17g\n", y);
        }
        luaL_addstring(&b, "e\n");
    }
    finish(L, f, &b, to_stdout);
    return 0;
}

/* ---------------------------------------------------------------- hist */

static int do_hist(lua_State *L, plot_fig *f, int v, int o) {
    if (!lua_isnoneornil(L, o)) luaL_checktype(L, o, LUA_TTABLE);
    else {
        lua_newtable(L);
        lua_replace(L, o);
    }
    lua_Integer n = to_numbers(L, v, "values");
    int bins = opt_int(L, o, "bins", 20);
    double lo = HUGE_VAL, hi = -HUGE_VAL;
    for (lua_Integer i = 1; i <= n; i++) {
        double x = num_at(L, v, i);
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
        double x = num_at(L, v, i);
        if (!isfinite(x)) continue;
        int k = (int)((x - lo) / w);
        if (k >= bins) k = bins - 1;
        if (k < 0) k = 0;
        counts[k] += 1;
    }
    luaL_Buffer b;
    int to_stdout = begin(L, f, o, &b);
    luaL_addstring(&b, "set style fill solid 0.6 border -1\n");
    addf(&b, "set boxwidth %.17g absolute\n", w);
    luaL_addstring(&b, "set yrange [0:*]\nplot '-' using 1:2 notitle with boxes\n");
    for (int k = 0; k < bins; k++) {
        addf(&b, "%.17g ", lo + (k + 0.5) * w);
        addf(&b, "%.17g\n", counts[k]);
    }
    luaL_addstring(&b, "e\n");
    finish(L, f, &b, to_stdout);
    return 0;
}

/* ---------------------------------------------------------------- imagesc */

/* Label i of the table at t (absolute index), copied into buf; "" when t is 0. The stack is
 * left as it was, so this is safe between the calls on an open luaL_Buffer. */
static void label_at(lua_State *L, int t, const char *key, lua_Integer i, char *buf, size_t sz) {
    buf[0] = '\0';
    if (!t) return;
    lua_geti(L, t, i);
    const char *s = lua_tostring(L, -1);
    if (!s) luaL_error(L, "ft.plot.imagesc: %s[%d]: expected a string, got %s", key, (int)i, luaL_typename(L, -1));
    snprintf(buf, sz, "%s", s);
    lua_pop(L, 1);
}

/* The labels table o[key] pushed (checked: at least n strings), or nothing; returns its
 * absolute index or 0. Called before any buffer is opened: a luaL_Buffer must find its box on
 * top of the stack, so nothing may stay pushed above it while it is in use. */
static int get_labels(lua_State *L, int o, const char *key, lua_Integer n) {
    if (lua_getfield(L, o, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1)) luaL_error(L, "ft.plot.imagesc: %s: expected a table of strings, got %s", key, luaL_typename(L, -1));
    int t = lua_gettop(L);
    if (luaL_len(L, t) < n) luaL_error(L, "ft.plot.imagesc: %s has %d names for %d %s", key, (int)luaL_len(L, t), (int)n, key[0] == 'x' ? "columns" : "rows");
    char tmp[8];
    for (lua_Integer i = 1; i <= n; i++) label_at(L, t, key, i, tmp, sizeof tmp); /* type checks */
    return t;
}

static void add_tics(lua_State *L, luaL_Buffer *b, int t, const char *key, const char *axis, lua_Integer n) {
    char name[256];
    if (!t) { /* integer ticks: 1, 2, ... (at most ~20 of them) */
        char cmd[96];
        snprintf(cmd, sizeof cmd, "set %stics 1,%d,%d format '%%.0f'\n", axis, n > 20 ? (int)((n + 19) / 20) : 1, (int)n);
        luaL_addstring(b, cmd);
        return;
    }
    luaL_addstring(b, "set ");
    luaL_addstring(b, axis);
    luaL_addstring(b, "tics (");
    for (lua_Integer i = 1; i <= n; i++) {
        label_at(L, t, key, i, name, sizeof name);
        if (i > 1) luaL_addstring(b, ", ");
        add_quoted(b, name);
        addf(b, " %.0f", (double)i);
    }
    luaL_addstring(b, ")");
    if (axis[0] == 'x' && n > 6) luaL_addstring(b, " rotate by 90 right"); /* as fastai's */
    luaL_addchar(b, '\n');
}

static int all_integers(lua_State *L, int first, lua_Integer rows, lua_Integer cols) {
    for (lua_Integer r = 1; r <= rows; r++)
        for (lua_Integer j = 1; j <= cols; j++) {
            double x = num_at(L, first + (int)r - 1, j);
            if (isfinite(x) && (x != floor(x) || fabs(x) >= 1e15)) return 0;
        }
    return 1;
}

static void cell_text(char *txt, size_t sz, double x, int ints) {
    if (!isfinite(x)) snprintf(txt, sz, "%s", isnan(x) ? "" : x > 0 ? "inf" : "-inf");
    else if (ints) snprintf(txt, sz, "%.0f", x);
    else snprintf(txt, sz, "%.3g", x);
}

/* imagesc in a text terminal: the values as a table (a heat map in characters cannot hold 37
 * names nor the counts). Rows are numbered and named; columns are numbered, with a legend when
 * their names differ from the rows'. Integer matrices show 0 as "." so the counts stand out. */
static void imagesc_table(lua_State *L, luaL_Buffer *b, int o, int first, lua_Integer rows, lua_Integer cols,
                          int xt, int yt, const char *title) {
    int ints = all_integers(L, first, rows, cols);
    char txt[64], name[256], other[256];
    int cw = snprintf(NULL, 0, "%d", (int)cols);
    for (lua_Integer r = 1; r <= rows; r++)
        for (lua_Integer j = 1; j <= cols; j++) {
            cell_text(txt, sizeof txt, num_at(L, first + (int)r - 1, j), ints);
            if ((int)strlen(txt) > cw) cw = (int)strlen(txt);
        }
    int nw = 0, rw = snprintf(NULL, 0, "%d", (int)rows);
    for (lua_Integer r = 1; r <= rows; r++) {
        label_at(L, yt, "ylabels", r, name, sizeof name);
        if ((int)strlen(name) > nw) nw = (int)strlen(name);
    }
    int same = xt && yt && rows == cols; /* the columns are the rows' classes, in order */
    for (lua_Integer j = 1; same && j <= cols; j++) {
        label_at(L, xt, "xlabels", j, name, sizeof name);
        label_at(L, yt, "ylabels", j, other, sizeof other);
        same = strcmp(name, other) == 0;
    }
    char xl[256] = "", yl[256] = "", line[512];
    opt_str(L, o, "xlabel", xl, sizeof xl);
    opt_str(L, o, "ylabel", yl, sizeof yl);
    if (title[0]) luaL_addstring(b, title), luaL_addchar(b, '\n');
    snprintf(line, sizeof line, "rows: %s, columns: %s%s\n", yl[0] ? yl : "row", xl[0] ? xl : "column",
             same ? " (numbered as the rows)" : "");
    luaL_addstring(b, line);
    if (xt && !same)
        for (lua_Integer j = 1; j <= cols; j++) {
            label_at(L, xt, "xlabels", j, name, sizeof name);
            snprintf(line, sizeof line, "  column %d: %s\n", (int)j, name);
            luaL_addstring(b, line);
        }
    int lead = rw + 1 + (nw ? nw + 1 : 0);
    snprintf(line, sizeof line, "%*s", lead, "");
    luaL_addstring(b, line);
    for (lua_Integer j = 1; j <= cols; j++) {
        snprintf(line, sizeof line, " %*d", cw, (int)j);
        luaL_addstring(b, line);
    }
    luaL_addchar(b, '\n');
    for (lua_Integer r = 1; r <= rows; r++) {
        label_at(L, yt, "ylabels", r, name, sizeof name);
        snprintf(line, sizeof line, "%*d %-*s", rw, (int)r, nw, name);
        luaL_addstring(b, line);
        if (nw) luaL_addchar(b, ' ');
        for (lua_Integer j = 1; j <= cols; j++) {
            double x = num_at(L, first + (int)r - 1, j);
            cell_text(txt, sizeof txt, x, ints);
            if (ints && x == 0) snprintf(txt, sizeof txt, ".");
            snprintf(line, sizeof line, " %*s", cw, txt);
            luaL_addstring(b, line);
        }
        luaL_addchar(b, '\n');
    }
}

static int do_imagesc(lua_State *L, plot_fig *f, int m, int o) {
    if (!lua_isnoneornil(L, o)) luaL_checktype(L, o, LUA_TTABLE);
    else {
        lua_newtable(L);
        lua_replace(L, o);
    }
    if (lua_type(L, m) == LUA_TUSERDATA) {
        lua_getfield(L, m, "totable");
        lua_pushvalue(L, m);
        lua_call(L, 1, 1);
        lua_replace(L, m);
    }
    luaL_argexpected(L, lua_istable(L, m), m, "table of rows or 2-D tensor");
    lua_Integer rows = luaL_len(L, m), cols = -1;
    if (rows > 100000) luaL_error(L, "ft.plot.imagesc: %d rows is too many", (int)rows);
    luaL_checkstack(L, (int)rows + 20, "ft.plot.imagesc: the rows"); /* each row stays pushed */
    int first = lua_gettop(L) + 1;
    double lo = HUGE_VAL, hi = -HUGE_VAL;
    for (lua_Integer r = 1; r <= rows; r++) {
        lua_geti(L, m, r);
        char what[32];
        snprintf(what, sizeof what, "row %d", (int)r);
        lua_Integer c = to_numbers(L, -1, what);
        if (cols < 0) cols = c;
        else if (c != cols) luaL_error(L, "ft.plot.imagesc: row %d has %d values, row 1 has %d", (int)r, (int)c, (int)cols);
        for (lua_Integer j = 1; j <= c; j++) {
            double x = num_at(L, -1, j);
            if (!isfinite(x)) continue;
            if (x < lo) lo = x;
            if (x > hi) hi = x;
        }
    }
    if (rows < 1 || cols < 1) luaL_error(L, "ft.plot.imagesc: empty matrix");
    if (lo > hi) lo = 0, hi = 1;
    if (lo == hi) hi = lo + 1;
    int xt = get_labels(L, o, "xlabels", cols), yt = get_labels(L, o, "ylabels", rows);
    int ints = all_integers(L, first, rows, cols);

    int kind;
    char output[1024], title[256], err[1200];
    if (kind_for(L, f, o) == K_DUMB) { /* a table, written by us: stdout, or the .txt file whole */
        where(L, f, o, &kind, output, sizeof output);
        if (!opt_str(L, o, "title", title, sizeof title)) memcpy(title, f->title, sizeof title);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        imagesc_table(L, &b, o, first, rows, cols, xt, yt, title);
        luaL_pushresult(&b);
        size_t n;
        const char *text = lua_tolstring(L, -1, &n);
        if (!output[0]) {
            fwrite(text, 1, n, stdout);
            fflush(stdout);
        } else if (ftl_fig_write(output, text, n, err, sizeof err) != 0)
            luaL_error(L, "ft.plot: %s", err);
        lua_pop(L, 1);
        return 0;
    }
    /* Values in the cells when they fit: ~7 px a character at the cells' font size. */
    int w = opt_int(L, o, "width", f->width ? f->width : 640), h = opt_int(L, o, "height", f->height ? f->height : 480);
    int show = (int)rows * cols <= 400 || (w / cols >= 18 && h / rows >= 12);
    if (lua_getfield(L, o, "cell_text") != LUA_TNIL) show = lua_toboolean(L, -1);
    lua_pop(L, 1);
    int many = rows > 20 || cols > 20;

    luaL_Buffer b;
    int to_stdout = begin(L, f, o, &b);
    luaL_addstring(&b, "set palette defined (0 '#f7fbff', 1 '#08306b')\nunset key\nset tics out nomirror\n");
    if (xt || yt) {
        /* Margins from the names' lengths (~7 px a character at 9 pt, rotated x names): gnuplot's
         * own guess leaves the rotated names too little room or the matrix too little. */
        char name[256];
        size_t lx = 0, ly = 0;
        for (lua_Integer j = 1; xt && j <= cols; j++) label_at(L, xt, "xlabels", j, name, sizeof name), lx = strlen(name) > lx ? strlen(name) : lx;
        for (lua_Integer r = 1; yt && r <= rows; r++) label_at(L, yt, "ylabels", r, name, sizeof name), ly = strlen(name) > ly ? strlen(name) : ly;
        double left = (double)ly * 7 + 60, bottom = (double)lx * 7 + 60, right = 130, top = 50;
        if (left + right < w - 100 && bottom + top < h - 100) {
            addf(&b, "set lmargin at screen %.4f\n", left / w);
            addf(&b, "set rmargin at screen %.4f\n", 1 - right / w);
            addf(&b, "set bmargin at screen %.4f\n", bottom / h);
            addf(&b, "set tmargin at screen %.4f\n", 1 - top / h);
            /* gnuplot places axis labels from its own margins: put them at the canvas' edges */
            char al[256];
            if (opt_str(L, o, "xlabel", al, sizeof al)) {
                luaL_addstring(&b, "unset xlabel\nset label ");
                add_quoted(&b, al);
                addf(&b, " at screen %.4f", (left + (w - right)) / 2 / w);
                addf(&b, ", screen %.4f center\n", 18.0 / h);
            }
            if (opt_str(L, o, "ylabel", al, sizeof al)) {
                luaL_addstring(&b, "unset ylabel\nset label ");
                add_quoted(&b, al);
                addf(&b, " at screen %.4f", 18.0 / w);
                addf(&b, ", screen %.4f center rotate by 90\n", (bottom + (h - top)) / 2 / h);
            }
        }
    } else if (rows == cols) luaL_addstring(&b, "set size square\n"); /* square cells, as an image */
    if (many) luaL_addstring(&b, "set tics font ',9'\n");
    addf(&b, "set xrange [0.5:%.1f]\n", cols + 0.5);
    addf(&b, "set yrange [%.1f:0.5]\n", rows + 0.5); /* row 1 at the top */
    addf(&b, "set cbrange [%.17g:", lo);
    addf(&b, "%.17g]\n", hi);
    if (ints) addf(&b, "set cbtics %.0f format '%%.0f'\n", fmax(1, ceil((hi - lo) / 8))); /* 0 1 2, not 0 0 1 1 2 */
    add_tics(L, &b, xt, "xlabels", "x", cols);
    add_tics(L, &b, yt, "ylabels", "y", rows);
    if (show) {
        for (lua_Integer r = 1; r <= rows; r++)
            for (lua_Integer j = 1; j <= cols; j++) {
                double x = num_at(L, first + (int)r - 1, j);
                if (!isfinite(x)) continue;
                char txt[64], cmd[200];
                cell_text(txt, sizeof txt, x, ints);
                snprintf(cmd, sizeof cmd, "set label '%s' at %d,%d center front tc rgb '%s'%s\n", txt, (int)j,
                         (int)r, (x - lo) / (hi - lo) > 0.5 ? "white" : "black", many ? " font ',8'" : "");
                luaL_addstring(&b, cmd);
            }
    }
    luaL_addstring(&b, "plot '-' matrix using ($1+1):($2+1):3 with image\n");
    for (lua_Integer r = 1; r <= rows; r++) {
        for (lua_Integer j = 1; j <= cols; j++) {
            double x = num_at(L, first + (int)r - 1, j);
            if (j > 1) luaL_addchar(&b, ' ');
            if (isfinite(x)) addf(&b, "%.17g", x);
            else luaL_addstring(&b, "NaN");
        }
        luaL_addchar(&b, '\n');
    }
    luaL_addstring(&b, "e\n");
    finish(L, f, &b, to_stdout);
    return 0;
}

/* ---------------------------------------------------------------- entry points */

static int m_plot(lua_State *L) { return do_plot(L, check_fig(L, 1), 2); }
static int m_hist(lua_State *L) {
    lua_settop(L, 3);
    return do_hist(L, check_fig(L, 1), 2, 3);
}
static int m_imagesc(lua_State *L) {
    lua_settop(L, 3);
    return do_imagesc(L, check_fig(L, 1), 2, 3);
}

static int f_plot(lua_State *L) {
    lua_settop(L, 1);
    return do_plot(L, current(L), 1);
}
static int f_hist(lua_State *L) {
    lua_settop(L, 2);
    return do_hist(L, current(L), 1, 2);
}
static int f_imagesc(lua_State *L) {
    lua_settop(L, 2);
    return do_imagesc(L, current(L), 1, 2);
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
    if (ftl_fig_write(path, text, n, err, sizeof err) != 0) return luaL_error(L, "%s", err);
    return 0;
}

static int f_current(lua_State *L) {
    current(L);
    return 1;
}

/* ft.plot.close(): close every figure. */
static int f_close(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, OPEN_KEY);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        plot_fig *f = luaL_testudata(L, -1, FIG_MT);
        if (f) gp_close(&f->gp), discard(f);
    }
    lua_pop(L, 1);
    lua_newtable(L); /* forget them: a fresh weak set */
    lua_newtable(L);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, OPEN_KEY);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
    return 0;
}

static const luaL_Reg fig_methods[] = {
    {"plot", m_plot}, {"hist", m_hist}, {"imagesc", m_imagesc}, {"close", m_close},
    {"send", m_send}, {"pid", m_pid},   {"term", m_term},       {NULL, NULL},
};

static const luaL_Reg module_funcs[] = {
    {"figure", f_figure}, {"plot", f_plot},   {"hist", f_hist},       {"imagesc", f_imagesc},
    {"close", f_close},   {"gcf", f_current}, {"_stdout_is_tty", f_stdout_is_tty},
    {"_write_file", f_write_file}, {NULL, NULL},
};

int luaopen_ftlua_plot(lua_State *L) {
    if (luaL_newmetatable(L, FIG_MT)) {
        lua_pushcfunction(L, m_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, m_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, m_tostring);
        lua_setfield(L, -2, "__tostring");
        luaL_newlib(L, fig_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, OPEN_KEY) != LUA_TTABLE) {
        lua_newtable(L);
        lua_newtable(L);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_setfield(L, LUA_REGISTRYINDEX, OPEN_KEY);
    }
    lua_pop(L, 1);
    luaL_newlib(L, module_funcs);
    return 1;
}
