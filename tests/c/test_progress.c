/* test_progress.c: what a fit prints (runtime/learner/progress.c) against tests/py/learner_ref.py.
 *
 * The reference implements the spec's formatting rules (fastprogress console mode, fastai's
 * _write_stats and CSVLogger) in Python on the same values. Compared byte for byte: table
 * headers and rows, format_time, repr of doubles (CSV floats), the batch bar's output over
 * a run (throttling, widths, clearing), and a CSV file. The book's table lines and a few
 * format_time values are checked without Python. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "learner/progress.h"
#include "torch/ft_torch.h"

/* ---------------------------------------------------------------- the Python reference */

#include "learner_ref.h"

/* The next line of *s (without its '\n'), or NULL at the end. */
static char *next_line(char **s) {
    if (!*s || !**s) return NULL;
    char *line = *s, *nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *s = nl + 1;
    } else {
        *s += strlen(line);
    }
    return line;
}

static void json_str(FILE *m, const char *s) {
    fputc('"', m);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', m);
        fputc(*s, m);
    }
    fputc('"', m);
}

static void json_cell(FILE *m, const ftf_cell *c) {
    switch (c->kind) {
    case FTL_CELL_INT: fprintf(m, "{\"i\": %lld}", (long long)c->i); break;
    case FTL_CELL_FLOAT:
        if (isnan(c->f))
            fputs("{\"f\": NaN}", m);
        else if (isinf(c->f))
            fprintf(m, "{\"f\": %sInfinity}", c->f < 0 ? "-" : "");
        else
            fprintf(m, "{\"f\": %.17g}", c->f);
        break;
    case FTL_CELL_STR:
        fputs("{\"s\": ", m);
        json_str(m, c->s);
        fputc('}', m);
        break;
    default: fputs("{\"none\": 1}", m);
    }
}

static uint64_t rng = 11;
static uint64_t next_u64(void) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- format_time */

static void test_format_time(void) {
    struct {
        double t;
        const char *want;
    } known[] = {{0, "00:00"},        {0.99, "00:00"},      {18.7, "00:18"},   {59.999, "00:59"},
                 {60, "01:00"},       {3599.9, "59:59"},    {3600, "1:00:00"}, {3661.5, "1:01:01"},
                 {86399, "23:59:59"}, {100000, "27:46:40"}, {-5, "-1:59:55"},  {-0.5, "00:00"}};
    int n = sizeof known / sizeof known[0], ok = 1;
    char buf[32];
    for (int i = 0; i < n; i++)
        if (strcmp(ftf_format_time(known[i].t, buf), known[i].want)) {
            printf("# format_time(%g) = %s, want %s\n", known[i].t, buf, known[i].want);
            ok = 0;
        }
    CHECK("format_time_known", ok);
    if (!have_ref) {
        SKIP("format_time_vs_python", "no /usr/bin/python3 with torch and numpy");
        return;
    }
    double ts[200];
    for (int i = 0; i < 200; i++) ts[i] = (double)(next_u64() % 2000000) / 7.0 - (i < 20 ? 100 : 0);
    char *req = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&req, &len);
    fputs("{\"t\": [", m);
    for (int i = 0; i < 200; i++) fprintf(m, "%s%.17g", i ? ", " : "", ts[i]);
    fputs("]}\n", m);
    fclose(m);
    char *out = ref_run("time", req), *s = out;
    free(req);
    ok = out != NULL;
    for (int i = 0; ok && i < 200; i++) {
        char *want = next_line(&s);
        if (!want || strcmp(ftf_format_time(ts[i], buf), want)) {
            printf("# format_time(%.17g) = %s, want %s\n", ts[i], buf, want ? want : "(none)");
            ok = 0;
        }
    }
    free(out);
    CHECK("format_time_vs_python", ok);
}

/* ---------------------------------------------------------------- repr */

static void test_repr(void) {
    char buf[64];
    struct {
        double x;
        const char *want;
    } known[] = {{0.1, "0.1"},
                 {1e-5, "1e-05"},
                 {1e-4, "0.0001"},
                 {123.0, "123.0"},
                 {1e16, "1e+16"},
                 {1e15, "1000000000000000.0"},
                 {0.33735501766204834, "0.33735501766204834"},
                 {-0.0, "-0.0"},
                 {NAN, "nan"},
                 {-INFINITY, "-inf"},
                 {5e-324, "5e-324"},
                 {1.5, "1.5"},
                 {2e-3, "0.002"}};
    int n = sizeof known / sizeof known[0], ok = 1;
    for (int i = 0; i < n; i++) {
        ftf_repr_double(known[i].x, buf, sizeof buf);
        if (strcmp(buf, known[i].want)) {
            printf("# repr(%.17g) = %s, want %s\n", known[i].x, buf, known[i].want);
            ok = 0;
        }
    }
    CHECK("repr_known", ok);
    if (!have_ref) {
        SKIP("repr_vs_python", "no /usr/bin/python3 with torch and numpy");
        return;
    }
    /* random bit patterns, float32 values (what metrics are), powers of two, decimals */
    enum { N = 6000 };
    static double xs[N];
    int k = 0;
    while (k < 2000) {
        uint64_t u = next_u64();
        double x;
        memcpy(&x, &u, 8);
        if (isfinite(x)) xs[k++] = x;
    }
    while (k < 4000) {
        uint32_t u = (uint32_t)next_u64();
        float f;
        memcpy(&f, &u, 4);
        if (isfinite(f)) xs[k++] = f;
    }
    for (int e = -1074; e <= 1023 && k < 6000; e += 1) xs[k++] = ldexp(1, e);
    for (int i = 0; k < N; i++)
        xs[k++] = (double)(next_u64() % 100000) * pow(10, (int)(next_u64() % 40) - 20);
    char *req = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&req, &len);
    fputs("{\"hex\": [", m);
    for (int i = 0; i < N; i++) fprintf(m, "%s\"%a\"", i ? ", " : "", xs[i]);
    fputs("]}\n", m);
    fclose(m);
    char *out = ref_run("repr", req), *s = out;
    free(req);
    int bad = out ? 0 : 1;
    for (int i = 0; out && i < N; i++) {
        char *want = next_line(&s);
        ftf_repr_double(xs[i], buf, sizeof buf);
        if (!want || strcmp(buf, want)) {
            if (bad++ < 5) printf("# repr(%a) = %s, want %s\n", xs[i], buf, want ? want : "(none)");
        }
    }
    printf("# repr: %d doubles compared, %d differ\n", N, bad);
    free(out);
    CHECK("repr_vs_python", bad == 0);
}

/* ---------------------------------------------------------------- the table */

#define NROWS 6
static const char *NAMES[5] = {"epoch", "train_loss", "valid_loss", "error_rate", "time"};
static const char *NAMES2[6] = {"epoch", "loss", "top_k_accuracy", "x", "métrique", "time"};

/* A second table: long names, a name with a non-ASCII letter, values wider than their column,
 * NaN, inf, None, negatives, big epochs. */
static void make_rows(ftf_cell rows[NROWS][6]) {
    for (int r = 0; r < NROWS; r++) {
        double v = (double)(next_u64() % 1000000) / 997.0;
        ftf_cell c[6] = {{FTL_CELL_INT, r * 1000, 0, NULL},
                         {FTL_CELL_FLOAT, 0,
                          r == 1   ? NAN
                          : r == 2 ? INFINITY
                                   : v,
                          NULL},
                         {FTL_CELL_FLOAT, 0, r == 3 ? -v : v / 1000, NULL},
                         {FTL_CELL_FLOAT, 0, r == 4 ? 123456789.125 : (float)(v / 1e3), NULL},
                         {r == 5 ? FTL_CELL_NONE : FTL_CELL_FLOAT, 0, 0.5, NULL},
                         {FTL_CELL_STR, 0, 0, r == 2 ? "1:02:03" : "00:18"}};
        memcpy(rows[r], c, sizeof c);
    }
}

/* The rows printed as fastprogress prints them, header included. */
static void check_table_vs_python(ftf_cell rows[NROWS][6]) {
    char line[1024];
    char *req = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&req, &len);
    fputs("{\"rows\": [[", m);
    for (int i = 0; i < 6; i++) {
        if (i) fputs(", ", m);
        fputs("{\"s\": ", m);
        json_str(m, NAMES2[i]);
        fputc('}', m);
    }
    fputc(']', m);
    for (int r = 0; r < NROWS; r++) {
        fputs(", [", m);
        for (int i = 0; i < 6; i++) {
            if (i) fputs(", ", m);
            json_cell(m, &rows[r][i]);
        }
        fputc(']', m);
    }
    fputs("]}\n", m);
    fclose(m);
    char *out = ref_run("table", req), *s = out;
    free(req);
    int ok = out != NULL;
    for (int r = -1; ok && r < NROWS; r++) {
        char *want = next_line(&s);
        if (r < 0)
            ftf_table_header(line, sizeof line, NAMES2, 6);
        else
            ftf_table_row(line, sizeof line, NAMES2, rows[r], 6);
        if (!want || strcmp(line, want)) {
            printf("# got  [%s]\n# want [%s]\n", line, want ? want : "(none)");
            ok = 0;
        }
    }
    free(out);
    CHECK("table_vs_python", ok);
}

/* CSV of the same rows, and append mode adding a second header. */
static void check_csv(ftf_cell rows[NROWS][6]) {
    char *req = NULL, *out = NULL;
    size_t len = 0;
    FILE *m = NULL;
    char path[] = "/tmp/ftl_csv_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    ftf_csv *c = new_ftl_csv(path, 0, NAMES2, 6);
    int wrote = c != NULL;
    for (int r = 0; c && r < NROWS; r++) wrote &= ftf_csv_write(c, rows[r], 6) == 0;
    free_ftl_csv(c);
    c = new_ftl_csv(path, 1, NAMES2, 6);
    wrote &= c && ftf_csv_write(c, rows[0], 6) == 0;
    free_ftl_csv(c);
    CHECK("csv_written", wrote);
    FILE *f = fopen(path, "r");
    char *got = NULL;
    size_t cap = 0;
    if (f && getdelim(&got, &cap, '\0', f) < 0) got[0] = '\0';
    if (f) fclose(f);
    unlink(path);
    m = open_memstream(&req, &len);
    fputs("{\"rows\": [", m);
    for (int r = -1; r <= NROWS + 1; r++) {
        int rr = r == NROWS + 1 ? 0 : r;
        if (r > -1) fputs(", ", m);
        fputc('[', m);
        for (int i = 0; i < 6; i++) {
            if (i) fputs(", ", m);
            if (r == -1 || r == NROWS) {
                fputs("{\"s\": ", m);
                json_str(m, NAMES2[i]);
                fputc('}', m);
            } else {
                json_cell(m, &rows[rr][i]);
            }
        }
        fputc(']', m);
    }
    fputs("]}\n", m);
    fclose(m);
    out = ref_run("csv", req);
    free(req);
    CHECK("csv_vs_python", out && got && !strcmp(got, out));
    if (out && got && strcmp(got, out)) printf("# got:\n%s# want:\n%s", got, out);
    free(out);
    free(got);
    CHECK("csv_bad_path", !new_ftl_csv("/nonexistent/dir/h.csv", 0, NAMES2, 6) &&
                              strstr(ft_last_error(), "cannot write '/nonexistent/dir/h.csv'"));
}

static void test_table(void) {
    char line[1024];
    ftf_table_header(line, sizeof line, NAMES, 5);
    CHECK("table_header_book",
          !strcmp(line, "epoch     train_loss  valid_loss  error_rate  time    "));
    ftf_cell row[5] = {{FTL_CELL_INT, 0, 0, NULL},
                       {FTL_CELL_FLOAT, 0, 1.491732, NULL},
                       {FTL_CELL_FLOAT, 0, 0.337355, NULL},
                       {FTL_CELL_FLOAT, 0, 0.108254, NULL},
                       {FTL_CELL_STR, 0, 0, "00:18"}};
    ftf_table_row(line, sizeof line, NAMES, row, 5);
    CHECK("table_row_book",
          !strcmp(line, "0         1.491732    0.337355    0.108254    00:18     "));
    if (!have_ref) {
        SKIP("table_vs_python", "no /usr/bin/python3 with torch and numpy");
        return;
    }
    ftf_cell rows[NROWS][6];
    make_rows(rows);
    check_table_vs_python(rows);
    check_csv(rows);
}

/* ---------------------------------------------------------------- the bar */

typedef struct {
    int total, cols, epoch, n_epoch, nev;
    int val[400];
    double t[400], comment[400]; /* NaN: no comment set after this event */
} bar_case;

static void hex_of(const char *s, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", (unsigned char)s[i]);
    out[2 * n] = '\0';
}

/* Runs the bar over the events into a memory stream; display forced on (or left as the
 * stream says when force is 0). */
static char *run_bar(const bar_case *c, int force, size_t *len) {
    char *buf = NULL;
    FILE *m = open_memstream(&buf, len);
    char cols[16];
    snprintf(cols, sizeof cols, "%d", c->cols);
    setenv("COLUMNS", cols, 1);
    ftf_pbar b;
    ftf_pbar_init(&b, m, c->epoch, c->n_epoch, c->total);
    if (force) b.display = 1;
    for (int i = 0; i < c->nev; i++) {
        ftf_pbar_update(&b, c->val[i], c->t[i]);
        if (!isnan(c->comment[i])) ftf_pbar_comment(&b, c->comment[i]);
    }
    ftf_pbar_finish(&b);
    fclose(m);
    return buf;
}

static void test_bar(void) {
    static bar_case cases[6];
    int spec[6][5] = {/* total cols epoch n_epoch kind */
                      {10, 100, 0, 3, 0}, {92, 100, 1, 2, 1},   {24, 70, 0, 1, 0},
                      {30, 50, 4, 5, 0},  {300, 250, 0, 12, 1}, {8, 120, 2, 3, 2}};
    for (int k = 0; k < 6; k++) {
        bar_case *c = &cases[k];
        c->total = spec[k][0];
        c->cols = spec[k][1];
        c->epoch = spec[k][2];
        c->n_epoch = spec[k][3];
        double step = spec[k][4] == 0 ? 0.5 : spec[k][4] == 1 ? 0.013 : 700; /* slow: hours */
        double t = 1000.25;
        for (int v = 0; v <= c->total; v++) {
            c->val[v] = v;
            c->t[v] = t;
            c->comment[v] = v == 0 ? NAN : 2.5 / (1 + 0.1 * v);
            t += step * (1 + 0.3 * ((v * 7) % 5 - 2) / 2.0);
        }
        c->nev = c->total + 1;
    }
    /* Not a terminal: nothing at all */
    size_t len = 0;
    char *out = run_bar(&cases[0], 0, &len);
    CHECK("bar_silent_when_not_a_terminal", len == 0);
    free(out);
    /* The first redraw, by hand: 0 of 10, no comment yet, cols 100 so the bar is 40 wide */
    out = run_bar(&(bar_case){10, 100, 0, 3, 1, {0}, {5.0}, {NAN}}, 1, &len);
    char want0[256] =
        "\rEpoch 1/3 : |----------------------------------------| 0.00% [0/10 00:00<00:00]\r";
    CHECK("bar_first_draw", out && !strncmp(out, want0, strlen(want0)));
    free(out);
    if (!have_ref) {
        SKIP("bar_vs_python", "no /usr/bin/python3 with torch and numpy");
        return;
    }
    char *req = NULL;
    FILE *m = open_memstream(&req, &len);
    fputs("{\"cases\": [", m);
    for (int k = 0; k < 6; k++) {
        const bar_case *c = &cases[k];
        fprintf(m, "%s{\"total\": %d, \"cols\": %d, \"epoch\": %d, \"n_epoch\": %d, \"events\": [",
                k ? ", " : "", c->total, c->cols, c->epoch, c->n_epoch);
        for (int i = 0; i < c->nev; i++) {
            fprintf(m, "%s[%d, %.17g, ", i ? ", " : "", c->val[i], c->t[i]);
            if (isnan(c->comment[i]))
                fputs("null]", m);
            else
                fprintf(m, "%.17g]", c->comment[i]);
        }
        fputs("]}", m);
    }
    fputs("]}\n", m);
    fclose(m);
    char *ref = ref_run("bar", req), *s = ref;
    free(req);
    for (int k = 0; k < 6; k++) {
        char name[64];
        snprintf(name, sizeof name, "bar_vs_python_%d", k + 1);
        char *want = ref ? next_line(&s) : NULL;
        char *got = run_bar(&cases[k], 1, &len);
        char *hex = malloc(2 * len + 1);
        hex_of(got, len, hex);
        int ok = want && !strcmp(hex, want);
        if (!ok && want)
            printf("# case %d: got %zu bytes, reference %zu\n", k + 1, len, strlen(want) / 2);
        CHECK(name, ok);
        free(hex);
        free(got);
    }
    free(ref);
}

int main(void) {
    ref_init();
    if (!have_ref) printf("# no reference: %s with torch and numpy, or %s, missing\n", py, script);
    test_format_time();
    test_repr();
    test_table();
    test_bar();
    return check_exit();
}
