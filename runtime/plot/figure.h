/* figure.h: what the files of the plot module (ft.plot) share: the figure userdata and the
 * steps of one plot.
 *
 *   plot.c          the module's entry: figures (open, current, close, methods) and ft.plot.*
 *   plot_draw.c     one plot: where it goes, its terminal, the command batches sent to gnuplot,
 *                   gnuplot's answer, the file checked and renamed into place
 *   plot_series.c   ft.plot.plot (lines and points) and ft.plot.hist
 *   plot_imagesc.c  ft.plot.imagesc (a heat map, or a table of the values in a text terminal)
 *
 * Below them: gnuplot.c (the process) and plot_file.c (files whole or not at all), no Lua.
 * Messages name the user's function `fn` ("ft.plot", "ft.plot.hist", ...).
 */
#ifndef FTLUA_PLOT_FIGURE_H
#define FTLUA_PLOT_FIGURE_H

#include <stddef.h>

#include "ftlua.h"
#include "plot/gnuplot.h"

#define FTL_PLOT_FIG_MT "ftlua.PlotFigure"

enum { K_PNG, K_SVG, K_PDF, K_DUMB, K_WINDOW, K_COUNT };
extern const char *const ftl_plot_kind_names[]; /* by K_*: "png", ..., "window", NULL */

typedef struct {
    gp_proc gp;
    int kind, width, height, number;
    char output[1024];
    char title[256];
    char terms[1024];   /* GPVAL_TERMINALS, space-separated, with spaces around */
    int auto_out;       /* output is a default name under FTLUA_PLOT_DIR: a fresh file per plot */
    int drawing_kind;   /* the terminal of the file below */
    char drawing[1024]; /* the file the plot in progress writes ("" when it goes to the screen) */
    char tmp[1100];     /* where gnuplot writes it until it is checked and renamed into place */
} plot_fig;

/* The options every plot takes (ftl_plot_begin reads them). */
#define FTL_PLOT_COMMON_OPTIONS                                                                    \
    "term", "output", "title", "xlabel", "ylabel", "logx", "logy", "grid", "width", "height"

/* ---------------------------------------------------------------- plot_draw.c */

/* The options table at o (nil or none: a new empty one put there), checked against known. */
void ftl_plot_options(lua_State *L, int o, const char *fn, const char *const known[]);

/* String option k of the table at t copied into buf (base/args.h's ftl_opt_string, and an error
 * when it does not fit); returns 1 when present, else 0 with buf untouched. */
int ftl_plot_opt_string(lua_State *L, int t, const char *fn, const char *k, char *buf, size_t sz);
/* The terminal kind named `name` (K_*); `where` says where the name came from in the error. */
int ftl_plot_parse_kind(lua_State *L, const char *name, const char *where);
int ftp_plot_kind_of_path(const char *path);         /* K_* by the extension, -1 when unknown */
const char *ftp_plot_dir(void);                      /* FTLUA_PLOT_DIR, NULL when unset */
const char *ftp_plot_window_term(const plot_fig *f); /* qt, wxt or x11; NULL: no window */

/* A gnuplot single-quoted string; a printf into the buffer (short results only: 64 bytes). */
void ftl_plot_add_quoted(luaL_Buffer *b, const char *s);
__attribute__((format(printf, 2, 3))) void ftl_plot_addf(luaL_Buffer *b, const char *fmt, ...);

/* Forget the file of the plot in progress (its temp file is removed). */
void ftp_plot_discard(plot_fig *f);
/* Send the string on top of the stack (popped); gnuplot's complaints become Lua errors. */
void ftl_plot_run(lua_State *L, plot_fig *f, int to_stdout);

/* The terminal of one plot, and where it goes (docs/plot.md, "Where figures go"): fills kind
 * and output ("" for stdout or a window). o: the call's options table. */
int ftl_plot_kind_for(lua_State *L, plot_fig *f, int o, const char *fn);
void ftl_plot_where(lua_State *L, plot_fig *f, int o, const char *fn, int *kind, char *output,
                    size_t outsz);
/* Start a plot (terminal and output sent and checked) and open b with the common settings;
 * returns whether the plot goes to our stdout. finish() sends b and commits the file. */
int ftl_plot_begin(lua_State *L, plot_fig *f, int o, const char *fn, luaL_Buffer *b);
void ftl_plot_finish(lua_State *L, plot_fig *f, luaL_Buffer *b, int to_stdout);

/* Replace the value at idx by a flat Lua table of numbers (tensors via :totable()); returns its
 * length. num_at reads entry i of such a table. */
lua_Integer ftl_plot_to_numbers(lua_State *L, int idx, const char *what);
double ftl_plot_num_at(lua_State *L, int idx, lua_Integer i);

/* ---------------------------------------------------------------- the plots */

int ftl_plot_draw_lines(lua_State *L, plot_fig *f, int o);          /* plot_series.c */
int ftl_plot_draw_hist(lua_State *L, plot_fig *f, int v, int o);    /* plot_series.c */
int ftl_plot_draw_imagesc(lua_State *L, plot_fig *f, int m, int o); /* plot_imagesc.c */

#endif
