/* plot_draw.c: one plot of ft.plot, whatever its kind: where it goes (docs/plot.md, "Where figures
 * go"), its gnuplot terminal, the two command batches (terminal and output first, checked alone,
 * then the plot), gnuplot's answer turned into Lua errors, and the file checked and renamed into
 * place (plot_file.c). Commands are built in a luaL_Buffer (a memory error cannot leak); while
 * one is open its box sits on top of the Lua stack, so values read between its calls are pushed
 * and popped before the next one. Also the readers the plots share (options, numbers). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/args.h"
#include "base/hooks.h"
#include "plot/figure.h"
#include "plot/plot_file.h"

const char *const ftl_plot_kind_names[] = {"png", "svg", "pdf", "dumb", "window", NULL};

/* ---------------------------------------------------------------- readers */

void ftl_plot_options(lua_State *L, int o, const char *fn, const char *const known[]) {
    if (!lua_isnoneornil(L, o))
        luaL_checktype(L, o, LUA_TTABLE);
    else {
        lua_newtable(L);
        lua_replace(L, o);
    }
    ftl_check_options(L, o, fn, known);
}

int ftl_plot_opt_string(lua_State *L, int t, const char *fn, const char *k, char *buf, size_t sz) {
    const char *s = ftl_opt_string(L, t, fn, k, NULL);
    if (!s) return 0;
    size_t len = strlen(s);
    if (len >= sz)
        luaL_error(L, "%s: option '%s' must be a string of at most %d bytes, got %d bytes", fn, k,
                   (int)sz - 1, (int)len);
    memcpy(buf, s, len + 1);
    return 1;
}

int ftl_plot_parse_kind(lua_State *L, const char *name, const char *where) {
    for (int i = 0; ftl_plot_kind_names[i]; i++)
        if (strcmp(name, ftl_plot_kind_names[i]) == 0) return i;
    return luaL_error(L, "ft.plot: %s: unknown terminal '%s' (png, svg, pdf, dumb or window)",
                      where, name);
}

int ftp_plot_kind_of_path(const char *path) {
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
const char *ftp_plot_dir(void) {
    const char *d = getenv("FTLUA_PLOT_DIR");
    return d && *d ? d : NULL;
}
static int dir_serial = 1;

static int has_term(const plot_fig *f, const char *name) {
    char pat[40];
    snprintf(pat, sizeof pat, " %s ", name);
    return strstr(f->terms, pat) != NULL;
}

const char *ftp_plot_window_term(const plot_fig *f) {
    const char *d = getenv("DISPLAY");
    if (!d || !*d) return NULL;
    static const char *const wins[] = {"qt", "wxt", "x11"};
    for (int i = 0; i < 3; i++)
        if (has_term(f, wins[i])) return wins[i];
    return NULL;
}

/* Replace the value at idx by a flat Lua table of numbers (tensors via :totable()). Returns n. */
lua_Integer ftl_plot_to_numbers(lua_State *L, int idx, const char *what) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TUSERDATA && luaL_getmetafield(L, idx, "__index") != LUA_TNIL) {
        lua_pop(L, 1);
        lua_getfield(L, idx, "totable");
        lua_pushvalue(L, idx);
        lua_call(L, 1, 1);
        lua_replace(L, idx);
    }
    if (!lua_istable(L, idx))
        luaL_error(L, "ft.plot: %s: expected a table or tensor of numbers, got %s", what,
                   luaL_typename(L, idx));
    lua_Integer n = luaL_len(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_geti(L, idx, i) != LUA_TNUMBER)
            luaL_error(L, "ft.plot: %s[%d]: expected a number, got %s", what, (int)i,
                       luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    return n;
}

double ftl_plot_num_at(lua_State *L, int idx, lua_Integer i) {
    lua_geti(L, idx, i);
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* ---------------------------------------------------------------- talking to gnuplot */

/* A gnuplot single-quoted string: '' stands for ', newlines become spaces. */
void ftl_plot_add_quoted(luaL_Buffer *b, const char *s) {
    luaL_addchar(b, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            luaL_addstring(b, "''");
        else if (*s == '\n' || *s == '\r')
            luaL_addchar(b, ' ');
        else
            luaL_addchar(b, *s);
    }
    luaL_addchar(b, '\'');
}

void ftl_plot_addf(luaL_Buffer *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    luaL_addstring(b, tmp);
}

/* Forget the file of the plot in progress (its temp file is removed). */
void ftp_plot_discard(plot_fig *f) {
    if (f->tmp[0]) remove(f->tmp);
    f->tmp[0] = f->drawing[0] = '\0';
}

/* Send the string on top of the stack (popped) and turn gnuplot's complaints into errors; on an
 * error the plot's temp file goes, and the message names the file the user asked for. */
void ftl_plot_run(lua_State *L, plot_fig *f, int to_stdout) {
    size_t n;
    const char *cmds = lua_tolstring(L, -1, &n);
    char out[8192], err[1024], msg[1200], file[1100] = "";
    if (f->drawing[0]) snprintf(file, sizeof file, "cannot write '%s': ", f->drawing);
    if (to_stdout) fflush(stdout); /* our text first, then gnuplot's plot */
    int rc = gp_exchange(&f->gp, cmds, n, out, sizeof out, err, sizeof err);
    lua_pop(L, 1);
    if (rc != 0) { /* gp_exchange closed the process */
        ftp_plot_discard(f);
        luaL_error(L, "ft.plot: %s%s", file, err);
    }
    if (gp_parse_error(out, msg, sizeof msg)) {
        ftp_plot_discard(f);
        luaL_error(L, "ft.plot: %s%s", file, msg);
    }
    for (const char *w = out; *w;) { /* warnings: one line each, without gnuplot's indent */
        const char *e = strchr(w, '\n');
        size_t len = e ? (size_t)(e - w) : strlen(w);
        const char *t = w;
        while (t < w + len && *t == ' ') t++;
        if (t < w + len)
            fprintf(stderr, "ft.plot: gnuplot: %.*s\n", (int)(len - (size_t)(t - w)), t);
        w = e ? e + 1 : w + len;
    }
}

/* ---------------------------------------------------------------- one plot */

/* The gnuplot terminal command for one plot of this kind, w x h (0: the default size). */
static void add_term(lua_State *L, luaL_Buffer *b, plot_fig *f, int kind, int w, int h) {
    const char *t = NULL;
    switch (kind) {
    case K_PNG: t = has_term(f, "pngcairo") ? "pngcairo" : has_term(f, "png") ? "png" : NULL; break;
    case K_SVG: t = has_term(f, "svg") ? "svg" : NULL; break;
    case K_PDF: t = has_term(f, "pdfcairo") ? "pdfcairo" : NULL; break;
    case K_DUMB: t = "dumb"; break;
    case K_WINDOW: t = ftp_plot_window_term(f); break;
    }
    if (!t) {
        if (kind == K_WINDOW)
            luaL_error(
                L,
                "ft.plot: no window: DISPLAY is unset or gnuplot has no qt/wxt/x11 terminal (apt-get install gnuplot-qt)");
        luaL_error(L, "ft.plot: this gnuplot has no %s terminal", ftl_plot_kind_names[kind]);
    }
    luaL_addstring(b, "set term ");
    luaL_addstring(b, t);
    luaL_addstring(b, " noenhanced");
    if (kind == K_DUMB) {
        ftl_plot_addf(b, " size %.0f", (double)(w ? w : 79));
        ftl_plot_addf(b, ",%.0f", (double)(h ? h : 24));
    } else if (kind == K_PDF) {
        ftl_plot_addf(b, " size %gin", (w ? w : 640) / 100.0);
        ftl_plot_addf(b, ",%gin", (h ? h : 480) / 100.0);
    } else {
        ftl_plot_addf(b, " size %.0f", (double)(w ? w : 640));
        ftl_plot_addf(b, ",%.0f", (double)(h ? h : 480));
    }
    luaL_addchar(b, '\n');
}

static int is_file_kind(int kind) { return kind == K_PNG || kind == K_SVG || kind == K_PDF; }

/* The terminal of one plot: the call's term, else its output's extension, else the figure's. */
int ftl_plot_kind_for(lua_State *L, plot_fig *f, int o, const char *fn) {
    char term[32], output[1024];
    if (ftl_plot_opt_string(L, o, fn, "term", term, sizeof term))
        return ftl_plot_parse_kind(L, term, "term");
    if (ftl_plot_opt_string(L, o, fn, "output", output, sizeof output) &&
        ftp_plot_kind_of_path(output) >= 0)
        return ftp_plot_kind_of_path(output);
    return f->kind;
}

/* Where one plot goes (the rule of docs/plot.md, "Where figures go"): an explicit output (the
 * call's, else the figure's) is that file; with none, a file terminal writes a fresh PNG/SVG/PDF
 * in FTLUA_PLOT_DIR (--report, the notebook kernel) and is an error without it (never a file
 * the user did not name); dumb goes to stdout, window to a window. Fills kind and output
 * ("" for stdout or a window). */
void ftl_plot_where(lua_State *L, plot_fig *f, int o, const char *fn, int *kind_out, char *output,
                    size_t outsz) {
    int kind = ftl_plot_kind_for(L, f, o, fn);
    int has_out = ftl_plot_opt_string(L, o, fn, "output", output, outsz);
    if (!has_out) {
        output[0] = '\0';
        if (f->output[0] && kind == f->kind && !f->auto_out)
            snprintf(output, outsz, "%s", f->output);
        else if (is_file_kind(kind) && ftp_plot_dir()) {
            snprintf(output, outsz, "%s/ftlua-fig%d-%d.%s", ftp_plot_dir(), f->number, dir_serial++,
                     ftl_plot_kind_names[kind]);
            if (f->auto_out) memcpy(f->output, output, sizeof f->output); /* fig:term() names it */
        } else if (is_file_kind(kind))
            luaL_error(
                L,
                "ft.plot: a %s figure writes a file: give output = 'name.%s' (with no output, "
                "figures go to the terminal, or to FTLUA_PLOT_DIR when it is set)",
                ftl_plot_kind_names[kind], ftl_plot_kind_names[kind]);
    }
    if (kind == K_WINDOW) output[0] = '\0';
    *kind_out = kind;
}

/* Start a plot: batch 1 (terminal and output) is sent and checked alone, so a bad output path
 * never lets a plot go to stdout. A file is drawn into a temp file next to it (finish() checks
 * and renames it). Then a buffer is opened for batch 2 with the common settings.
 * Returns whether the plot goes to our stdout. */
int ftl_plot_begin(lua_State *L, plot_fig *f, int o, const char *fn, luaL_Buffer *b) {
    char output[1024], title[256], err[1200];
    int kind;
    ftl_plot_where(L, f, o, fn, &kind, output, sizeof output);
    int w = (int)ftl_opt_integer_in(L, o, fn, "width", f->width, 1, 100000);
    int h = (int)ftl_opt_integer_in(L, o, fn, "height", f->height, 1, 100000);
    ftp_plot_discard(f);
    if (output[0]) {
        if (ftp_fig_tmpname(output, f->tmp, sizeof f->tmp, err, sizeof err) != 0)
            luaL_error(L, "ft.plot: %s", err);
        memcpy(f->drawing, output, sizeof output);
        f->drawing_kind = kind;
    }
    luaL_Buffer b1;
    luaL_buffinit(L, &b1);
    luaL_addstring(&b1, "reset\n");
    add_term(L, &b1, f, kind, w, h);
    if (output[0]) {
        luaL_addstring(&b1, "set output ");
        ftl_plot_add_quoted(&b1, f->tmp);
        luaL_addchar(&b1, '\n');
    } else
        luaL_addstring(&b1, "set output\n");
    luaL_pushresult(&b1);
    ftl_plot_run(L, f, 0);
    luaL_buffinit(L, b);
    if (!ftl_plot_opt_string(L, o, fn, "title", title, sizeof title))
        memcpy(title, f->title, sizeof title);
    if (title[0]) {
        luaL_addstring(b, "set title ");
        ftl_plot_add_quoted(b, title);
        luaL_addchar(b, '\n');
    }
    static const char *const labels[] = {"xlabel", "ylabel"};
    for (int i = 0; i < 2; i++) {
        if (ftl_plot_opt_string(L, o, fn, labels[i], title, sizeof title)) {
            luaL_addstring(b, "set ");
            luaL_addstring(b, labels[i]);
            luaL_addchar(b, ' ');
            ftl_plot_add_quoted(b, title);
            luaL_addchar(b, '\n');
        }
    }
    /* on a log x axis (learning rates) 1e-07 reads better than 0.00000010 */
    if (ftl_opt_boolean(L, o, fn, "logx", 0))
        luaL_addstring(b, "set logscale x\nset format x \"%.0e\"\n");
    if (ftl_opt_boolean(L, o, fn, "logy", 0)) luaL_addstring(b, "set logscale y\n");
    if (ftl_opt_boolean(L, o, fn, "grid", 0)) luaL_addstring(b, "set grid\n");
    return kind == K_DUMB && !output[0];
}

void ftl_plot_finish(lua_State *L, plot_fig *f, luaL_Buffer *b, int to_stdout) {
    luaL_addstring(b, "unset output\n"); /* gnuplot closes the file: complete now */
    luaL_pushresult(b);
    ftl_plot_run(L, f, to_stdout);
    if (!f->drawing[0]) return;
    char path[1024], err[1200];
    memcpy(path, f->drawing, sizeof path);
    int kind = f->drawing_kind;
    int check = kind == K_PNG   ? FTL_FIG_PNG
                : kind == K_SVG ? FTL_FIG_SVG
                : kind == K_PDF ? FTL_FIG_PDF
                                : FTL_FIG_ANY;
    int rc = ftp_fig_commit(f->tmp, path, check, err, sizeof err);
    f->tmp[0] = f->drawing[0] = '\0';
    if (rc != 0) luaL_error(L, "ft.plot: %s", err);
    if (kind == K_PNG || kind == K_SVG) ftl_figure_written(L, path); /* whole, at its path */
}
