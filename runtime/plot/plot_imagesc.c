/* plot_imagesc.c: ft.plot.imagesc: a matrix as a heat map (row 1 at the top, named ticks, the
 * values in the cells when they fit), or, in a text terminal, as a table of the values. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/args.h"
#include "plot/figure.h"
#include "plot/plot_file.h"

/* The matrix being drawn: its rows pushed from stack index first on (flat tables of numbers),
 * the finite values' range, its tick names (stack indices, 0: none). */
typedef struct {
    int first;
    lua_Integer rows, cols;
    double lo, hi;
    int xt, yt; /* xlabels, ylabels */
    int ints;   /* every finite value is a whole number */
} matrix;

/* Label i of the table at t (absolute index), copied into buf; "" when t is 0. The stack is
 * left as it was, so this is safe between the calls on an open luaL_Buffer. */
static void label_at(lua_State *L, int t, const char *key, lua_Integer i, char *buf, size_t sz) {
    buf[0] = '\0';
    if (!t) return;
    lua_geti(L, t, i);
    const char *s = lua_tostring(L, -1);
    if (!s)
        luaL_error(L, "ft.plot.imagesc: %s[%d]: expected a string, got %s", key, (int)i,
                   luaL_typename(L, -1));
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
    if (!lua_istable(L, -1))
        luaL_error(L, "ft.plot.imagesc: %s: expected a table of strings, got %s", key,
                   luaL_typename(L, -1));
    int t = lua_gettop(L);
    if (luaL_len(L, t) < n)
        luaL_error(L, "ft.plot.imagesc: %s has %d names for %d %s", key, (int)luaL_len(L, t),
                   (int)n, key[0] == 'x' ? "columns" : "rows");
    char tmp[8];
    for (lua_Integer i = 1; i <= n; i++) label_at(L, t, key, i, tmp, sizeof tmp); /* type checks */
    return t;
}

static void add_tics(lua_State *L, luaL_Buffer *b, int t, const char *key, const char *axis,
                     lua_Integer n) {
    char name[256];
    if (!t) { /* integer ticks: 1, 2, ... (at most ~20 of them) */
        char cmd[96];
        snprintf(cmd, sizeof cmd, "set %stics 1,%d,%d format '%%.0f'\n", axis,
                 n > 20 ? (int)((n + 19) / 20) : 1, (int)n);
        luaL_addstring(b, cmd);
        return;
    }
    luaL_addstring(b, "set ");
    luaL_addstring(b, axis);
    luaL_addstring(b, "tics (");
    for (lua_Integer i = 1; i <= n; i++) {
        label_at(L, t, key, i, name, sizeof name);
        if (i > 1) luaL_addstring(b, ", ");
        ftl_plot_add_quoted(b, name);
        ftl_plot_addf(b, " %.0f", (double)i);
    }
    luaL_addstring(b, ")");
    if (axis[0] == 'x' && n > 6) luaL_addstring(b, " rotate by 90 right"); /* as fastai's */
    luaL_addchar(b, '\n');
}

static int all_integers(lua_State *L, int first, lua_Integer rows, lua_Integer cols) {
    for (lua_Integer r = 1; r <= rows; r++)
        for (lua_Integer j = 1; j <= cols; j++) {
            double x = ftl_plot_num_at(L, first + (int)r - 1, j);
            if (isfinite(x) && (x != floor(x) || fabs(x) >= 1e15)) return 0;
        }
    return 1;
}

static void cell_text(char *txt, size_t sz, double x, int ints) {
    if (!isfinite(x))
        snprintf(txt, sz, "%s", isnan(x) ? "" : x > 0 ? "inf" : "-inf");
    else if (ints)
        snprintf(txt, sz, "%.0f", x);
    else
        snprintf(txt, sz, "%.3g", x);
}

/* imagesc in a text terminal: the values as a table (a heat map in characters cannot hold 37
 * names nor the counts). Rows are numbered and named; columns are numbered, with a legend when
 * their names differ from the rows'. Integer matrices show 0 as "." so the counts stand out. */
static void imagesc_table(lua_State *L, luaL_Buffer *b, int o, const char *fn, const matrix *mx,
                          const char *title) {
    int first = mx->first, xt = mx->xt, yt = mx->yt, ints = mx->ints;
    lua_Integer rows = mx->rows, cols = mx->cols;
    char txt[64], name[256], other[256];
    int cw = snprintf(NULL, 0, "%d", (int)cols);
    for (lua_Integer r = 1; r <= rows; r++)
        for (lua_Integer j = 1; j <= cols; j++) {
            cell_text(txt, sizeof txt, ftl_plot_num_at(L, first + (int)r - 1, j), ints);
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
    ftl_plot_opt_string(L, o, fn, "xlabel", xl, sizeof xl);
    ftl_plot_opt_string(L, o, fn, "ylabel", yl, sizeof yl);
    if (title[0]) luaL_addstring(b, title), luaL_addchar(b, '\n');
    snprintf(line, sizeof line, "rows: %s, columns: %s%s\n", yl[0] ? yl : "row",
             xl[0] ? xl : "column", same ? " (numbered as the rows)" : "");
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
            double x = ftl_plot_num_at(L, first + (int)r - 1, j);
            cell_text(txt, sizeof txt, x, ints);
            if (ints && x == 0) snprintf(txt, sizeof txt, ".");
            snprintf(line, sizeof line, " %*s", cw, txt);
            luaL_addstring(b, line);
        }
        luaL_addchar(b, '\n');
    }
}

/* Push the rows of the matrix at m (a table of rows or a 2-D tensor, replaced by its table),
 * each checked to be numbers and of one length. */
static matrix push_matrix(lua_State *L, int m) {
    if (lua_type(L, m) == LUA_TUSERDATA) {
        lua_getfield(L, m, "totable");
        lua_pushvalue(L, m);
        lua_call(L, 1, 1);
        lua_replace(L, m);
    }
    luaL_argexpected(L, lua_istable(L, m), m, "table of rows or 2-D tensor");
    matrix mx = {.rows = luaL_len(L, m), .cols = -1, .lo = HUGE_VAL, .hi = -HUGE_VAL};
    if (mx.rows > 100000) luaL_error(L, "ft.plot.imagesc: %d rows is too many", (int)mx.rows);
    luaL_checkstack(L, (int)mx.rows + 20, "ft.plot.imagesc: the rows"); /* each row stays pushed */
    mx.first = lua_gettop(L) + 1;
    for (lua_Integer r = 1; r <= mx.rows; r++) {
        lua_geti(L, m, r);
        char what[32];
        snprintf(what, sizeof what, "row %d", (int)r);
        lua_Integer c = ftl_plot_to_numbers(L, -1, what);
        if (mx.cols < 0)
            mx.cols = c;
        else if (c != mx.cols)
            luaL_error(L, "ft.plot.imagesc: row %d has %d values, row 1 has %d", (int)r, (int)c,
                       (int)mx.cols);
        for (lua_Integer j = 1; j <= c; j++) {
            double x = ftl_plot_num_at(L, -1, j);
            if (!isfinite(x)) continue;
            if (x < mx.lo) mx.lo = x;
            if (x > mx.hi) mx.hi = x;
        }
    }
    if (mx.rows < 1 || mx.cols < 1) luaL_error(L, "ft.plot.imagesc: empty matrix");
    if (mx.lo > mx.hi) mx.lo = 0, mx.hi = 1;
    if (mx.lo == mx.hi) mx.hi = mx.lo + 1;
    mx.ints = all_integers(L, mx.first, mx.rows, mx.cols);
    return mx;
}

static double value_at(lua_State *L, const matrix *mx, lua_Integer r, lua_Integer j) {
    return ftl_plot_num_at(L, mx->first + (int)r - 1, j);
}

/* The text terminal's table, written by us: to stdout, or the .txt file whole. */
static void imagesc_text(lua_State *L, plot_fig *f, int o, const char *fn, const matrix *mx) {
    int kind;
    char output[1024], title[256], err[1200];
    ftl_plot_where(L, f, o, fn, &kind, output, sizeof output);
    if (!ftl_plot_opt_string(L, o, fn, "title", title, sizeof title))
        memcpy(title, f->title, sizeof title);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    imagesc_table(L, &b, o, fn, mx, title);
    luaL_pushresult(&b);
    size_t n;
    const char *text = lua_tolstring(L, -1, &n);
    if (!output[0]) {
        fwrite(text, 1, n, stdout);
        fflush(stdout);
    } else if (ftp_fig_write(output, text, n, err, sizeof err) != 0)
        luaL_error(L, "ft.plot: %s", err);
    lua_pop(L, 1);
}

/* Margins from the names' lengths (~7 px a character at 9 pt, rotated x names): gnuplot's own
 * guess leaves the rotated names too little room or the matrix too little. Axis labels go at
 * the canvas' edges (gnuplot would place them from its own margins). */
static void add_margins(lua_State *L, luaL_Buffer *b, int o, const char *fn, const matrix *mx,
                        int w, int h) {
    char name[256];
    size_t lx = 0, ly = 0;
    for (lua_Integer j = 1; mx->xt && j <= mx->cols; j++) {
        label_at(L, mx->xt, "xlabels", j, name, sizeof name);
        if (strlen(name) > lx) lx = strlen(name);
    }
    for (lua_Integer r = 1; mx->yt && r <= mx->rows; r++) {
        label_at(L, mx->yt, "ylabels", r, name, sizeof name);
        if (strlen(name) > ly) ly = strlen(name);
    }
    double left = (double)ly * 7 + 60, bottom = (double)lx * 7 + 60, right = 130, top = 50;
    if (!(left + right < w - 100 && bottom + top < h - 100)) return;
    ftl_plot_addf(b, "set lmargin at screen %.4f\n", left / w);
    ftl_plot_addf(b, "set rmargin at screen %.4f\n", 1 - right / w);
    ftl_plot_addf(b, "set bmargin at screen %.4f\n", bottom / h);
    ftl_plot_addf(b, "set tmargin at screen %.4f\n", 1 - top / h);
    char al[256];
    if (ftl_plot_opt_string(L, o, fn, "xlabel", al, sizeof al)) {
        luaL_addstring(b, "unset xlabel\nset label ");
        ftl_plot_add_quoted(b, al);
        ftl_plot_addf(b, " at screen %.4f", (left + (w - right)) / 2 / w);
        ftl_plot_addf(b, ", screen %.4f center\n", 18.0 / h);
    }
    if (ftl_plot_opt_string(L, o, fn, "ylabel", al, sizeof al)) {
        luaL_addstring(b, "unset ylabel\nset label ");
        ftl_plot_add_quoted(b, al);
        ftl_plot_addf(b, " at screen %.4f", 18.0 / w);
        ftl_plot_addf(b, ", screen %.4f center rotate by 90\n", (bottom + (h - top)) / 2 / h);
    }
}

/* Each finite value written in its cell, white on the dark half of the palette. */
static void add_cell_labels(lua_State *L, luaL_Buffer *b, const matrix *mx, int many) {
    for (lua_Integer r = 1; r <= mx->rows; r++)
        for (lua_Integer j = 1; j <= mx->cols; j++) {
            double x = value_at(L, mx, r, j);
            if (!isfinite(x)) continue;
            char txt[64], cmd[200];
            cell_text(txt, sizeof txt, x, mx->ints);
            snprintf(cmd, sizeof cmd, "set label '%s' at %d,%d center front tc rgb '%s'%s\n", txt,
                     (int)j, (int)r, (x - mx->lo) / (mx->hi - mx->lo) > 0.5 ? "white" : "black",
                     many ? " font ',8'" : "");
            luaL_addstring(b, cmd);
        }
}

/* The plot command and the matrix as gnuplot's inline data (NaN for what is not finite). */
static void add_matrix_data(lua_State *L, luaL_Buffer *b, const matrix *mx) {
    luaL_addstring(b, "plot '-' matrix using ($1+1):($2+1):3 with image\n");
    for (lua_Integer r = 1; r <= mx->rows; r++) {
        for (lua_Integer j = 1; j <= mx->cols; j++) {
            double x = value_at(L, mx, r, j);
            if (j > 1) luaL_addchar(b, ' ');
            if (isfinite(x))
                ftl_plot_addf(b, "%.17g", x);
            else
                luaL_addstring(b, "NaN");
        }
        luaL_addchar(b, '\n');
    }
    luaL_addstring(b, "e\n");
}

int ftl_plot_draw_imagesc(lua_State *L, plot_fig *f, int m, int o) {
    static const char *const known[] = {FTL_PLOT_COMMON_OPTIONS, "xlabels", "ylabels", "cell_text",
                                        NULL};
    const char *fn = "ft.plot.imagesc";
    ftl_plot_options(L, o, fn, known);
    matrix mx = push_matrix(L, m);
    mx.xt = get_labels(L, o, "xlabels", mx.cols);
    mx.yt = get_labels(L, o, "ylabels", mx.rows);
    if (ftl_plot_kind_for(L, f, o, fn) == K_DUMB) {
        imagesc_text(L, f, o, fn, &mx);
        return 0;
    }
    /* Values in the cells when they fit: ~7 px a character at the cells' font size. */
    int w = (int)ftl_opt_integer_in(L, o, fn, "width", f->width ? f->width : 640, 1, 100000);
    int h = (int)ftl_opt_integer_in(L, o, fn, "height", f->height ? f->height : 480, 1, 100000);
    int show = (int)mx.rows * mx.cols <= 400 || (w / mx.cols >= 18 && h / mx.rows >= 12);
    show = ftl_opt_boolean(L, o, fn, "cell_text", show);
    int many = mx.rows > 20 || mx.cols > 20;

    luaL_Buffer b;
    int to_stdout = ftl_plot_begin(L, f, o, fn, &b);
    luaL_addstring(
        &b, "set palette defined (0 '#f7fbff', 1 '#08306b')\nunset key\nset tics out nomirror\n");
    if (mx.xt || mx.yt)
        add_margins(L, &b, o, fn, &mx, w, h);
    else if (mx.rows == mx.cols)
        luaL_addstring(&b, "set size square\n"); /* square cells, as an image */
    if (many) luaL_addstring(&b, "set tics font ',9'\n");
    ftl_plot_addf(&b, "set xrange [0.5:%.1f]\n", mx.cols + 0.5);
    ftl_plot_addf(&b, "set yrange [%.1f:0.5]\n", mx.rows + 0.5); /* row 1 at the top */
    ftl_plot_addf(&b, "set cbrange [%.17g:", mx.lo);
    ftl_plot_addf(&b, "%.17g]\n", mx.hi);
    if (mx.ints) /* 0 1 2, not 0 0 1 1 2 */
        ftl_plot_addf(&b, "set cbtics %.0f format '%%.0f'\n", fmax(1, ceil((mx.hi - mx.lo) / 8)));
    add_tics(L, &b, mx.xt, "xlabels", "x", mx.cols);
    add_tics(L, &b, mx.yt, "ylabels", "y", mx.rows);
    if (show) add_cell_labels(L, &b, &mx, many);
    add_matrix_data(L, &b, &mx);
    ftl_plot_finish(L, f, &b, to_stdout);
    return 0;
}
