/* progress.c: the epoch table, the batch bar, format_time and CSVLogger, byte for byte as
 * fastprogress and fastai print them. See progress.h. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "io/atomic.h"
#include "learner/progress.h"
#include "torch/ft_torch.h"

/* Python's len() of a UTF-8 string: code points, not bytes. */
static int text_len(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Appends to buf (snprintf-style: returns the full length even when truncated). */
typedef struct {
    char *buf;
    size_t cap, len;
} outbuf;

static void put(outbuf *o, const char *s) {
    size_t n = strlen(s);
    if (o->len < o->cap) {
        size_t room = o->cap - o->len - 1;
        memcpy(o->buf + o->len, s, n < room ? n : room);
        o->buf[o->len + (n < room ? n : room)] = '\0';
    }
    o->len += n;
}

static void put_spaces(outbuf *o, int n) {
    for (; n > 0; n--) put(o, " ");
}

/* ---------------------------------------------------------------- format_time, repr */

char *ftf_format_time(double t, char buf[32]) {
    /* int(t) truncates; then Python's floor division and modulo (also for negatives) */
    long long s = isfinite(t) && fabs(t) < 9e15 ? (long long)t : 0;
    long long h = s >= 0 ? s / 3600 : -((-s + 3599) / 3600);
    long long mins = s >= 0 ? s / 60 : -((-s + 59) / 60);
    long long m = ((mins % 60) + 60) % 60, sec = ((s % 60) + 60) % 60;
    if (h != 0)
        snprintf(buf, 32, "%lld:%02lld:%02lld", h, m, sec);
    else
        snprintf(buf, 32, "%02lld:%02lld", m, sec);
    return buf;
}

/* The p significant digits of x as %.{p-1}e gives them, and the decimal exponent. */
static void digits_of(double x, int p, char *digits, int *exp10) {
    char s[64];
    snprintf(s, sizeof s, "%.*e", p - 1, x);
    int n = 0;
    char *c = s;
    for (; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9') digits[n++] = *c;
    digits[n] = '\0';
    *exp10 = atoi(c + 1);
}

/* Does "0.d1d2...dp" x 10^(exp10+1) read back as x? */
static int reads_back(const char *digits, int exp10, double x) {
    char s[64];
    snprintf(s, sizeof s, "%c.%se%d", digits[0], digits + 1, exp10);
    return strtod(s, NULL) == x;
}

/* Adds delta (+1 or -1) to the last digit with carries. Returns 0 when the result is not a
 * p-digit string any more. */
static int bump(char *digits, int *exp10, int delta) {
    int p = (int)strlen(digits);
    int i = p - 1;
    for (; i >= 0; i--) {
        int d = digits[i] - '0' + delta;
        if (d >= 0 && d <= 9) {
            digits[i] = (char)('0' + d);
            break;
        }
        digits[i] = delta > 0 ? '0' : '9';
    }
    if (i < 0) { /* 99..9 + 1 = 100..0: one more digit */
        if (delta < 0) return 0;
        memmove(digits + 1, digits, (size_t)p + 1);
        digits[0] = '1';
        digits[p] = '\0';
        (*exp10)++;
    }
    return digits[0] != '0';
}

int ftf_repr_double(double x, char *buf, size_t n) {
    if (isnan(x)) return snprintf(buf, n, "nan");
    if (isinf(x)) return snprintf(buf, n, x > 0 ? "inf" : "-inf");
    if (x == 0) return snprintf(buf, n, signbit(x) ? "-0.0" : "0.0");
    const char *sign = x < 0 ? "-" : "";
    double ax = fabs(x);
    /* The shortest p whose correctly rounded p digits read back; failing that, a neighbour
     * p-digit string may (at powers of two, where the rounding interval is lopsided). */
    char digits[32], best[32] = "";
    int e = 0, best_e = 0;
    for (int p = 1; p <= 17 && !best[0]; p++) {
        digits_of(ax, p, digits, &e);
        if (reads_back(digits, e, ax)) {
            strcpy(best, digits);
            best_e = e;
            break;
        }
        for (int delta = -1; delta <= 1; delta += 2) {
            char d2[32];
            int e2 = e;
            strcpy(d2, digits);
            if (bump(d2, &e2, delta) && reads_back(d2, e2, ax)) {
                strcpy(best, d2);
                best_e = e2;
                break;
            }
        }
    }
    size_t p = strlen(best);
    while (p > 1 && best[p - 1] == '0') best[--p] = '\0';
    int decpt = best_e + 1; /* x = 0.best * 10^decpt */
    char out[64];
    outbuf o = {out, sizeof out, 0};
    put(&o, sign);
    if (decpt <= -4 || decpt > 16) { /* Python's repr switches to exponent notation here */
        char first[2] = {best[0], '\0'}, ex[16];
        put(&o, first);
        if (p > 1) {
            put(&o, ".");
            put(&o, best + 1);
        }
        snprintf(ex, sizeof ex, "e%+03d", decpt - 1);
        put(&o, ex);
    } else if (decpt <= 0) { /* 0.000ddd */
        put(&o, "0.");
        for (int i = 0; i < -decpt; i++) put(&o, "0");
        put(&o, best);
    } else if ((size_t)decpt < p) { /* dd.ddd */
        char head[32];
        snprintf(head, sizeof head, "%.*s", decpt, best);
        put(&o, head);
        put(&o, ".");
        put(&o, best + decpt);
    } else { /* ddd000.0 */
        put(&o, best);
        for (size_t i = p; i < (size_t)decpt; i++) put(&o, "0");
        put(&o, ".0");
    }
    return snprintf(buf, n, "%s", out);
}

/* ---------------------------------------------------------------- the table */

int ftf_cell_text(const ftf_cell *c, char *buf, size_t n) {
    switch (c->kind) {
    case FTL_CELL_INT: return snprintf(buf, n, "%lld", (long long)c->i);
    case FTL_CELL_FLOAT:
        if (isnan(c->f)) return snprintf(buf, n, "nan");
        return snprintf(buf, n, "%.6f", c->f);
    case FTL_CELL_STR: return snprintf(buf, n, "%s", c->s ? c->s : "");
    default: return snprintf(buf, n, "None");
    }
}

int ftf_table_header(char *buf, size_t n, const char *const *names, int k) {
    outbuf o = {buf, n, 0};
    if (n) buf[0] = '\0';
    for (int i = 0; i < k; i++) {
        if (i) put(&o, "  ");
        put(&o, names[i]);
        put_spaces(&o, 8 - text_len(names[i]));
    }
    return (int)o.len;
}

int ftf_table_row(char *buf, size_t n, const char *const *names, const ftf_cell *cells, int k) {
    outbuf o = {buf, n, 0};
    if (n) buf[0] = '\0';
    char v[512];
    for (int i = 0; i < k; i++) {
        ftf_cell_text(&cells[i], v, sizeof v);
        int name_len = text_len(names[i]);
        if (name_len < 8) name_len = 8;
        put(&o, v);
        put_spaces(&o, 2 + name_len - text_len(v));
    }
    return (int)o.len;
}

const ftf_progress_hooks *ftl_progress_display;

void ftf_table_emit(const char *line, const char *const *names, const ftf_cell *cells, int k) {
    if (ftl_progress_display) {
        ftl_progress_display->table(line, names, cells, k);
        return;
    }
    printf("%s\n", line);
    fflush(stdout);
}

/* ---------------------------------------------------------------- CSVLogger */

static int csv_line(ftf_csv *c, const char *line) {
    size_t n = strlen(line);
    if (c->len + n + 2 > c->cap) {
        size_t cap = (c->cap ? c->cap * 2 : 4096) + n + 2;
        char *t = realloc(c->text, cap);
        if (!t) {
            ft_set_last_error("CSVLogger: out of memory for %s", c->path);
            return -1;
        }
        c->text = t, c->cap = cap;
    }
    memcpy(c->text + c->len, line, n);
    c->text[c->len + n] = '\n';
    char err[1200];
    if (af_write(c->path, c->text, c->len + n + 1, err, sizeof err) != 0) {
        ft_set_last_error("CSVLogger: %s", err); /* the file keeps its previous lines */
        return -1;
    }
    c->len += n + 1;
    return 0;
}

ftf_csv *new_ftl_csv(const char *path, int append, const char *const *names, int k) {
    ftf_csv *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        free(c);
        ft_set_last_error("CSVLogger: out of memory");
        return NULL;
    }
    FILE *old = append ? fopen(path, "rb") : NULL;
    if (append && !old && errno != ENOENT) {
        ft_set_last_error("CSVLogger: cannot read %s to append to it: %s", path, strerror(errno));
        free_ftl_csv(c);
        return NULL;
    }
    if (old) { /* append: the new lines follow the existing ones */
        char buf[65536];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, old)) > 0) {
            if (c->len + got + 1 > c->cap) {
                size_t cap = (c->len + got + 1) * 2;
                char *t = realloc(c->text, cap);
                if (!t) break;
                c->text = t, c->cap = cap;
            }
            memcpy(c->text + c->len, buf, got);
            c->len += got;
        }
        int bad = ferror(old) || got > 0;
        fclose(old);
        if (bad) {
            ft_set_last_error("CSVLogger: cannot read %s to append to it", path);
            free_ftl_csv(c);
            return NULL;
        }
        if (c->len && c->text[c->len - 1] != '\n') c->text[c->len++] = '\n';
    }
    char line[4096];
    outbuf o = {line, sizeof line, 0};
    line[0] = '\0';
    for (int i = 0; i < k; i++) {
        if (i) put(&o, ",");
        put(&o, names[i]);
    }
    if (csv_line(c, line)) {
        free_ftl_csv(c);
        return NULL;
    }
    return c;
}

int ftf_csv_write(ftf_csv *c, const ftf_cell *cells, int k) {
    char line[4096], v[512];
    outbuf o = {line, sizeof line, 0};
    line[0] = '\0';
    for (int i = 0; i < k; i++) {
        if (i) put(&o, ",");
        if (cells[i].kind == FTL_CELL_FLOAT)
            ftf_repr_double(cells[i].f, v, sizeof v); /* str(float) */
        else
            ftf_cell_text(&cells[i], v, sizeof v);
        put(&o, v);
    }
    return csv_line(c, line);
}

void free_ftl_csv(ftf_csv *c) {
    if (!c) return;
    free(c->path);
    free(c->text);
    free(c);
}

/* ---------------------------------------------------------------- the batch bar */

int ftf_terminal_cols(FILE *out) {
    const char *env = getenv("COLUMNS");
    int cols = env ? atoi(env) : 0;
    if (cols > 0) return cols;
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 100;
}

static long long floor_div(long long a, long long b) {
    long long q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int ftf_pbar_text(ftf_pbar *b, int val, char *buf, size_t n, int *chars) {
    char el[32], rem[32], text[256];
    double elapsed = b->last_t - b->start_t;
    ftf_format_time(b->pred_t - elapsed, rem);
    ftf_format_time(elapsed, el);
    if (b->total == 0)
        snprintf(text, sizeof text, "100%% [0/0]");
    else
        snprintf(text, sizeof text, "%.2f%% [%d/%d %s<%s%s%s]", (double)(100LL * val) / b->total,
                 val, b->total, el, rem, b->comment[0] ? " " : "", b->comment);
    int fit = b->cols - text_len(text) - text_len(b->prefix) - 4;
    if (b->length > fit) b->length = fit; /* shrinks to fit, never grows back */
    long long filled = b->total ? floor_div((long long)b->length * val, b->total) : 0;
    outbuf o = {buf, n, 0};
    if (n) buf[0] = '\0';
    put(&o, "\r");
    put(&o, b->prefix);
    put(&o, " |");
    for (long long i = 0; i < filled; i++) put(&o, "\xe2\x96\x88"); /* U+2588 FULL BLOCK */
    for (long long i = filled; i < b->length; i++) put(&o, "-");
    put(&o, "| ");
    put(&o, text);
    int len = 1 + text_len(b->prefix) + 2 + (int)(filled > 0 ? filled : 0) +
              (int)(b->length - filled > 0 ? b->length - filled : 0) + 2 + text_len(text);
    if (chars) *chars = len;
    return (int)o.len;
}

static void draw(ftf_pbar *b, int val) {
    char buf[2048];
    int chars = 0;
    ftf_pbar_text(b, val, buf, sizeof buf, &chars);
    if (chars > b->max_len) b->max_len = chars;
    if (ftl_progress_display) {
        ftl_progress_display->bar(b, val, buf + 1);
        return;
    }
    if (!b->display) return;
    fputs(buf, b->out);
    fputc('\r', b->out);
    fflush(b->out);
}

/* Blank the whole bar, prefix included: whatever is printed next starts on an empty line, so a
 * shorter line ("[93.38s]", a prompt) leaves no "2 :" of "Epoch 2/2 :" behind. */
static void clear(ftf_pbar *b) {
    b->done = 1;
    if (ftl_progress_display) {
        ftl_progress_display->bar(b, b->last_v, NULL);
        return;
    }
    if (!b->display) return;
    fputc('\r', b->out);
    for (int i = 1; i < b->max_len; i++) fputc(' ', b->out); /* max_len counts the '\r' */
    fputc('\r', b->out);
    fflush(b->out);
}

void ftf_pbar_init(ftf_pbar *b, FILE *out, int epoch, int n_epoch, int total) {
    memset(b, 0, sizeof *b);
    b->out = out;
    b->display = isatty(fileno(out));
    b->cols = ftf_terminal_cols(out);
    if (b->cols > 160) b->cols = 160;
    b->length = b->cols - 60;
    b->total = total;
    snprintf(b->prefix, sizeof b->prefix, "Epoch %d/%d :", epoch + 1, n_epoch);
}

void ftf_pbar_start(ftf_pbar *b, FILE *out, int epoch, int n_epoch, int total, double now) {
    ftf_pbar_init(b, out, epoch, n_epoch, total);
    ftf_pbar_update(b, 0, now);
}

void ftf_pbar_update(ftf_pbar *b, int val, double now) {
    if (b->done) return;
    if (val == 0) {
        b->start_t = b->last_t = now;
        b->pred_t = 0;
        b->last_v = 0;
        b->wait_for = 1;
        draw(b, 0);
    } else if (val <= 5 || val >= b->last_v + b->wait_for || val >= b->total) {
        double avg_t = (now - b->start_t) / val;
        double w = 0.2 / (avg_t + 1e-8);
        b->wait_for = w >= INT_MAX ? INT_MAX : (w >= 1 ? (int)w : 1);
        b->pred_t = avg_t * b->total;
        b->last_v = val;
        b->last_t = now;
        draw(b, val);
        if (val >= b->total) clear(b);
    }
}

void ftf_pbar_comment(ftf_pbar *b, double smooth_loss) {
    if (isnan(smooth_loss))
        snprintf(b->comment, sizeof b->comment, "nan");
    else
        snprintf(b->comment, sizeof b->comment, "%.4f", smooth_loss);
}

void ftf_pbar_finish(ftf_pbar *b) {
    if (!b->done) clear(b);
}
