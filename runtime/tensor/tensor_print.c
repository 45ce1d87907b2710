/* tensor_print.c: PyTorch 1.13's tensor repr (torch/_tensor_str.py) in C, default options:
 * precision 4, threshold 1000, edgeitems 3, linewidth 80, sci_mode None.
 * The layout rules and their quirks are copied on purpose; each is noted where it happens. */
#include "tensor/tensor_print.h"

#include "io/strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION 4
#define LINEWIDTH 80
#define PREFIX    "tensor("
#define INDENT    7 /* strlen(PREFIX): nested rows line up under the first '[' */

/* ---------------------------------------------------------------- the formatter (_Formatter) */

typedef struct {
    int floating, int_mode, sci_mode, max_width;
} formatter;

static int is_floating(ft_dtype dt) {
    return dt == FT_FLOAT32 || dt == FT_FLOAT64 || dt == FT_FLOAT16 || dt == FT_BFLOAT16;
}

/* One value, unpadded, as Python's format() writes it. 400 bytes of out is plenty: fixed and
 * int mode only ever see |v| <= 1e8, and integer dtypes fit in 20 digits. */
static int format_raw(const formatter *f, ft_dtype dt, double v, char *out, size_t n) {
    if (dt == FT_BOOL) return snprintf(out, n, "%s", v != 0 ? "True" : "False");
    if (!f->floating) return snprintf(out, n, "%.0f", v + 0.0); /* + 0.0: no "-0" for ints */
    /* Python never prints a sign on nan; C may print "-nan". */
    if (isnan(v)) return snprintf(out, n, "nan");
    if (isinf(v)) return snprintf(out, n, v < 0 ? "-inf" : "inf");
    if (f->sci_mode) return snprintf(out, n, "%.*e", PRECISION, v);
    if (f->int_mode) return snprintf(out, n, "%.0f.", v); /* "1." says "float" */
    return snprintf(out, n, "%.*f", PRECISION, v);
}

/* Scans the printed values once, as _Formatter.__init__ does. Widths count only nonzero finite
 * values for floats, so nan/inf/0 may end up wider than max_width (and are then not padded). */
static void formatter_init(formatter *f, const double *v, int64_t n, ft_dtype dt) {
    char tmp[400];
    f->floating = is_floating(dt);
    f->int_mode = 1;
    f->sci_mode = 0;
    f->max_width = 1;
    if (!f->floating) {
        for (int64_t i = 0; i < n; i++) {
            int w = format_raw(f, dt, v[i], tmp, sizeof tmp);
            if (w > f->max_width) f->max_width = w;
        }
        return;
    }
    double mn = INFINITY, mx = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(v[i]) || v[i] == 0) continue;
        double a = fabs(v[i]);
        if (a < mn) mn = a;
        if (a > mx) mx = a;
        if (v[i] != ceil(v[i])) f->int_mode = 0;
        count++;
    }
    if (count == 0) return; /* no valid number: int mode, width 1 */
    if (f->int_mode)
        f->sci_mode = mx / mn > 1000.0 || mx > 1.0e8;
    else
        f->sci_mode = mx / mn > 1000.0 || mx > 1.0e8 || mn < 1.0e-4;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(v[i]) || v[i] == 0) continue;
        int w = format_raw(f, dt, v[i], tmp, sizeof tmp);
        if (w > f->max_width) f->max_width = w;
    }
}

/* formatter.format(): right-aligned to max_width. */
static void put_value(strbuf *s, const formatter *f, ft_dtype dt, double v) {
    char tmp[400];
    int w = format_raw(f, dt, v, tmp, sizeof tmp);
    if (w < 0) w = 0;
    if (w >= (int)sizeof tmp) w = (int)sizeof tmp - 1;
    sb_repeat(s, ' ', f->max_width - w);
    sb_put(s, tmp, (size_t)w);
}

/* ---------------------------------------------------------------- layout
 * (_tensor_str_with_formatter) */

typedef struct {
    strbuf *s;
    const formatter *f;
    ft_dtype dtype;
    const double *p; /* next value to print: printing walks vals in C order */
    const int64_t *shape, *full_shape;
    int ndim, summarize;
} layout;

/* A dim shows "..." after its first edgeitems entries when it was cut down. */
static int cut(const layout *L, int d) {
    return L->summarize && L->full_shape[d] > 2 * FTL_PRINT_EDGEITEMS;
}

/* Between vector elements: ", ", or a line break once a line holds per_line elements. */
static void vector_sep(layout *L, int64_t k, int per_line, int indent) {
    if (k == 0) return;
    if (k % per_line == 0) {
        sb_puts(L->s, ",\n");
        sb_repeat(L->s, ' ', indent + 1);
    } else {
        sb_puts(L->s, ", ");
    }
}

static void put_vector(layout *L, int d, int indent) {
    /* element_length counts the ", " separator; " ..." counts as one element */
    int per_line = (LINEWIDTH - indent) / (L->f->max_width + 2);
    if (per_line < 1) per_line = 1;
    int64_t n = L->shape[d], k = 0; /* k: elements emitted so far, the ellipsis included */
    sb_puts(L->s, "[");
    for (int64_t i = 0; i < n; i++) {
        if (cut(L, d) && i == FTL_PRINT_EDGEITEMS) {
            vector_sep(L, k++, per_line, indent);
            sb_puts(L->s, " ...");
        }
        vector_sep(L, k++, per_line, indent);
        put_value(L->s, L->f, L->dtype, *L->p++);
    }
    sb_puts(L->s, "]");
}

static void put_block(layout *L, int d, int indent) {
    if (d == L->ndim - 1) {
        put_vector(L, d, indent);
        return;
    }
    int nl = L->ndim - d - 1; /* "\n" * (dim - 1): blank lines between higher-dim blocks */
    int64_t n = L->shape[d];
    int ell = cut(L, d);
    sb_puts(L->s, "[");
    for (int64_t i = 0; i < n; i++) {
        if (ell && i == FTL_PRINT_EDGEITEMS) {
            sb_puts(L->s, "...,");
            sb_repeat(L->s, '\n', nl);
            sb_repeat(L->s, ' ', indent + 1);
        }
        put_block(L, d + 1, indent + 1);
        if (i + 1 < n) {
            sb_puts(L->s, ",");
            sb_repeat(L->s, '\n', nl);
            sb_repeat(L->s, ' ', indent + 1);
        }
    }
    sb_puts(L->s, "]");
}

/* ---------------------------------------------------------------- suffixes and footer */

static const char *dtype_name(ft_dtype dt) {
    static const char *names[FT_NDTYPES] = {"float32", "float64", "float16", "bfloat16", "int64",
                                            "int32",   "int16",   "int8",    "uint8",    "bool"};
    return (int)dt >= 0 && dt < FT_NDTYPES ? names[dt] : "unknown";
}

/* _add_suffixes: a suffix goes on a new line when the current one would pass linewidth.
 * PyTorch's last_line_len is len - rfind("\n") + 1, 2 more than the last line's length;
 * the quirk is kept so wrapping matches. */
static void add_suffixes(strbuf *s, char suffixes[][64], int nsuf) {
    long last_nl = -1;
    for (size_t i = 0; i < s->len; i++)
        if (s->p[i] == '\n') last_nl = (long)i;
    long last_line_len = (long)s->len - last_nl + 1;
    for (int i = 0; i < nsuf; i++) {
        long n = (long)strlen(suffixes[i]);
        if (last_line_len + n + 2 > LINEWIDTH) {
            sb_puts(s, ",\n");
            sb_repeat(s, ' ', INDENT);
            last_line_len = INDENT + n;
        } else {
            sb_puts(s, ", ");
            last_line_len += n + 2;
        }
        sb_puts(s, suffixes[i]);
    }
    sb_puts(s, ")");
}

int ftt_print_should_summarize(int64_t numel) { return numel > FTL_PRINT_THRESHOLD; }

char *ftt_format_tensor(const double *vals, const int64_t *shape, const int64_t *full_shape,
                        int ndim, ft_dtype dtype, int device, int requires_grad, int summarize) {
    strbuf s = {0};
    char suf[4][64];
    int nsuf = 0;
    int64_t n = 1, full_n = 1;
    for (int d = 0; d < ndim; d++) {
        n *= shape[d];
        full_n *= full_shape[d];
    }

    /* suffix order as in _str_intern: device, size (empty only), dtype, requires_grad */
    if (device >= 0) snprintf(suf[nsuf++], 64, "device='cuda:%d'", device);
    sb_puts(&s, PREFIX);
    if (full_n == 0) {
        sb_puts(&s, "[]");
        if (ndim != 1) { /* Python's tuple str: "(0, 3)", "(0,)" for one item */
            int k = snprintf(suf[nsuf], 64, "size=(");
            for (int d = 0; d < ndim && k < 64; d++)
                k += snprintf(suf[nsuf] + k, (size_t)(64 - k), d ? ", %lld" : "%lld",
                              (long long)full_shape[d]);
            if (k < 64) snprintf(suf[nsuf] + k, (size_t)(64 - k), ndim == 1 ? ",)" : ")");
            nsuf++;
        }
        /* no values to tell ints from floats, so only float32 goes without a dtype */
        if (dtype != FT_FLOAT32) snprintf(suf[nsuf++], 64, "dtype=torch.%s", dtype_name(dtype));
    } else {
        formatter f;
        formatter_init(&f, vals, n, dtype);
        if (ndim == 0) {
            put_value(&s, &f, dtype, vals[0]);
        } else {
            layout L = {&s, &f, dtype, vals, shape, full_shape, ndim, summarize};
            put_block(&L, 0, INDENT);
        }
        if (dtype != FT_FLOAT32 && dtype != FT_INT64 && dtype != FT_BOOL)
            snprintf(suf[nsuf++], 64, "dtype=torch.%s", dtype_name(dtype));
    }
    if (requires_grad) snprintf(suf[nsuf++], 64, "requires_grad=True");
    add_suffixes(&s, suf, nsuf);

    /* Footer, Torch7 style: dtype, shape and device always in view. */
    sb_puts(&s, "\n[");
    sb_puts(&s, dtype_name(dtype));
    if (ndim == 0) {
        sb_puts(&s, " scalar");
    } else {
        char num[32];
        sb_puts(&s, " tensor of size ");
        for (int d = 0; d < ndim; d++) {
            snprintf(num, sizeof num, d ? "x%lld" : "%lld", (long long)full_shape[d]);
            sb_puts(&s, num);
        }
    }
    if (device >= 0) {
        char dev[32];
        snprintf(dev, sizeof dev, " on cuda:%d]", device);
        sb_puts(&s, dev);
    } else {
        sb_puts(&s, " on cpu]");
    }
    if (s.oom) {
        sb_free(&s);
        return NULL;
    }
    return s.p; /* PREFIX was added: never NULL here */
}
