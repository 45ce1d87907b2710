/* progress.h: what a fit prints, as fastprogress's console mode does (callback/progress.py): the
 * epoch table, the live batch bar, format_time; and CSVLogger's file. Pure C (stdio).
 *
 * The table goes to stdout whether or not it is a terminal. The bar is drawn only on a
 * terminal, redrawn in place with '\r', and cleared when its loop ends. (fastprogress also
 * prints a stray "█\r" each time it makes a bar, even into a file; we don't.)
 */
#ifndef FTL_PROGRESS_H
#define FTL_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* fastprogress's format_time: t truncated to whole seconds, "mm:ss", or "h:mm:ss" from an
 * hour on. Returns buf. */
char *ftf_format_time(double t, char buf[32]);

/* Python's repr(float): the shortest digits that read back to x, in Python's layout
 * ("0.1", "1e-05", "123.0", "1e+16", "nan", "inf"). Returns the length (as snprintf). */
int ftf_repr_double(double x, char *buf, size_t n);

/* A logged value: an int (the epoch), a float (losses, metrics), a string (the time), or
 * None. */
typedef enum { FTL_CELL_INT = 0, FTL_CELL_FLOAT, FTL_CELL_STR, FTL_CELL_NONE } ftf_cell_kind;
typedef struct {
    ftf_cell_kind kind;
    int64_t i;
    double f;
    const char *s;
} ftf_cell;

/* ProgressCallback._write_stats: floats as "%.6f", the rest as Python's str(). */
int ftf_cell_text(const ftf_cell *c, char *buf, size_t n);
/* The header: each name left-justified to at least 8 characters, joined by two spaces. */
int ftf_table_header(char *buf, size_t n, const char *const *names, int k);
/* A row: each value followed by 2 + len(padded name) - len(value) spaces (none when the
 * value is wider). */
int ftf_table_row(char *buf, size_t n, const char *const *names, const ftf_cell *cells, int k);

/* CSVLogger: a header line of names, then one line per epoch with floats unrounded
 * (repr). The lines are kept, and every line rewrites the whole file atomically (io/atomic.h):
 * after a crash or a full disk the file is the one before or after that line, never torn or
 * empty. With append, the existing file's lines come first. */
typedef struct {
    char *path;
    char *text; /* the whole file */
    size_t len, cap;
} ftf_csv;
/* NULL on failure (ft_last_error names the file and the reason). */
ftf_csv *new_ftl_csv(const char *path, int append, const char *const *names, int k);
int ftf_csv_write(ftf_csv *c, const ftf_cell *cells, int k); /* 0, or -1 (ft_last_error) */
void free_ftl_csv(ftf_csv *c);                               /* closes the file */

/* The live bar of one training or validation loop:
 *   Epoch {e+1}/{n} : |████------| {100*v/total:.2f}% [{v}/{total} {elapsed}<{remaining} {comment}]
 * with fastprogress's redraw throttling (every batch for the first 5, then about every 0.2 s)
 * and width (the terminal's columns, at most 160; the bar is 60 less, shrunk to fit).
 * Times are passed in (seconds, any monotonic origin), so the bar is testable. */
typedef struct {
    FILE *out;
    int display; /* out is a terminal (set by ftf_pbar_start; tests may force it) */
    int total, cols, length, max_len, last_v, wait_for, done;
    double start_t, last_t, pred_t;
    char prefix[64];
    char comment[64];
} ftf_pbar;

/* The terminal's width as Python's shutil.get_terminal_size((100, 40)) finds it. */
int ftf_terminal_cols(FILE *out);
/* A new bar for epoch (0-based) of n_epoch over total batches; draws it at 0. That is
 * ftf_pbar_init (which draws nothing) then ftf_pbar_update(b, 0, now). */
void ftf_pbar_start(ftf_pbar *b, FILE *out, int epoch, int n_epoch, int total, double now);
void ftf_pbar_init(ftf_pbar *b, FILE *out, int epoch, int n_epoch, int total);
/* After batch val (1-based count of batches done). At total it draws and clears the bar. */
void ftf_pbar_update(ftf_pbar *b, int val, double now);
/* The comment shown from the next redraw on: the smoothed loss as "%.4f". fastai sets it
 * after each update, so the bar shows the loss of the batch before. */
void ftf_pbar_comment(ftf_pbar *b, double smooth_loss);
/* Clears the bar's line if it was not cleared yet (an interrupted loop). */
void ftf_pbar_finish(ftf_pbar *b);
/* The text one redraw writes, "\r" + prefix + " |" + bar + "| " + text, and its length in
 * characters (the bar's blocks are 3 bytes each). For tests. */
int ftf_pbar_text(ftf_pbar *b, int val, char *buf, size_t n, int *chars);

/* A front end that shows progress itself (the Jupyter kernel: an HTML table that grows, a bar
 * updated in place) sets this; the library never calls the host otherwise. While it is set
 * the table and the bar are handed to it instead of printed. */
typedef struct {
    /* a redraw of the bar after val batches (text as ftf_pbar_text, without the '\r'), or
     * text NULL when its loop ended */
    void (*bar)(const ftf_pbar *b, int val, const char *text);
    /* a table line: the header when cells is NULL, else an epoch's row */
    void (*table)(const char *line, const char *const *names, const ftf_cell *cells, int k);
} ftf_progress_hooks;
extern const ftf_progress_hooks *ftl_progress_display;

/* Prints a table line to stdout (and flushes), or hands it to ftl_progress_display. */
void ftf_table_emit(const char *line, const char *const *names, const ftf_cell *cells, int k);

#endif /* FTL_PROGRESS_H */
