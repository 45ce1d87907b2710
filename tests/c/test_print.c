/* test_print.c: ftt_format_tensor against PyTorch's own repr.
 * Every case is built here (seeded normals, edge values), written to a temp file, and one
 * /usr/bin/python3 run rebuilds each tensor from the same values and dtype and prints repr(t).
 * The text before our footer must match byte for byte; the footer is checked on its own.
 * A few literal expectations run even without Python. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tensor/tensor_print.h"

#ifndef PY
#define PY "/usr/bin/python3" /* -DPY=... to point elsewhere */
#endif
#define MAXD     6
#define MAXCASES 80

typedef struct {
    char name[48];
    ft_dtype dtype;
    int device, requires_grad, ndim;
    int64_t shape[MAXD];
    int64_t n;
    double *v; /* full data, C order, already rounded to dtype */
} tcase;

static tcase cases[MAXCASES];
static int ncases;

/* ---------------------------------------------------------------- values */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rng_uniform(void) { return ((rng_next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
static double rng_normal(void) { /* Box-Muller */
    return sqrt(-2 * log(rng_uniform())) * cos(2 * M_PI * rng_uniform());
}

/* Round to a binary format with mant_bits stored mantissa bits, ties to even. Subnormals share
 * the quantum of the smallest normal exponent; past max it overflows to inf. */
static double round_bits(double x, int mant_bits, int emin, double max) {
    if (!isfinite(x) || x == 0) return x;
    int e = ilogb(x);
    if (e < emin) e = emin;
    double q = ldexp(1, e - mant_bits);
    double r = nearbyint(x / q) * q;
    return fabs(r) > max ? copysign(INFINITY, x) : r;
}

static double to_dtype(ft_dtype dt, double x) {
    switch (dt) {
    case FT_FLOAT32: return (double)(float)x;
    case FT_FLOAT64: return x;
    case FT_FLOAT16: return round_bits(x, 10, -14, 65504.0);
    case FT_BFLOAT16: return round_bits(x, 7, -126, 0x1.fep127);
    case FT_BOOL: return x != 0;
    default: return nearbyint(x);
    }
}

static const char *dt_name(ft_dtype dt) {
    static const char *n[] = {"float32", "float64", "float16", "bfloat16", "int64",
                              "int32",   "int16",   "int8",    "uint8",    "bool"};
    return n[dt];
}

/* A new case of the given shape; fill its values with one of the helpers below. */
static tcase *add(const char *name, ft_dtype dt, int ndim, const int64_t *shape) {
    tcase *c = &cases[ncases++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->dtype = dt;
    c->device = -1;
    c->ndim = ndim;
    c->n = 1;
    for (int d = 0; d < ndim; d++) c->n *= (c->shape[d] = shape[d]);
    c->v = calloc((size_t)(c->n ? c->n : 1), sizeof(double));
    return c;
}

static void fill_normal(tcase *c, double scale, double shift) {
    for (int64_t i = 0; i < c->n; i++) c->v[i] = to_dtype(c->dtype, rng_normal() * scale + shift);
}

static void fill_list(tcase *c, const double *xs) {
    for (int64_t i = 0; i < c->n; i++) c->v[i] = to_dtype(c->dtype, xs[i]);
}

static void fill_ints(tcase *c, int64_t lo, int64_t hi) { /* uniform in [lo, hi] */
    for (int64_t i = 0; i < c->n; i++)
        c->v[i] =
            to_dtype(c->dtype, (double)(lo + (int64_t)(rng_next() % (uint64_t)(hi - lo + 1))));
}

#define SHAPE(...)         ((const int64_t[]){__VA_ARGS__})
#define LIST(...)          ((const double[]){__VA_ARGS__})
#define NDIM(...)          ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define ADD(name, dt, ...) add(name, dt, NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__))

static void build_cases(void) {
    tcase *c;
    double nan = NAN, inf = INFINITY;
    /* plain floats */
    c = ADD("int_valued_2x2", FT_FLOAT32, 2, 2);
    fill_list(c, LIST(1, 2, 3, 4));
    c = ADD("randn_3", FT_FLOAT32, 3);
    fill_normal(c, 1, 0);
    c = ADD("randn_5x4", FT_FLOAT32, 5, 4);
    fill_normal(c, 1, 0);
    c = ADD("randn_row_30_wraps", FT_FLOAT32, 30);
    fill_normal(c, 1, 0);
    c = ADD("randn_row_100_wide", FT_FLOAT32, 100);
    fill_normal(c, 100, 0);
    c = ADD("randn_2x3x4", FT_FLOAT32, 2, 3, 4);
    fill_normal(c, 1, 0);
    c = ADD("randn_2x2x3x2", FT_FLOAT32, 2, 2, 3, 2);
    fill_normal(c, 1, 0);
    c = ADD("randn_5d", FT_FLOAT32, 2, 1, 2, 1, 3);
    fill_normal(c, 1, 0);
    c = ADD("randn_3x25_wraps", FT_FLOAT32, 3, 25);
    fill_normal(c, 1, 0);
    c = ADD("negatives", FT_FLOAT32, 3, 3);
    fill_normal(c, 10, -40);
    c = ADD("wide_fixed", FT_FLOAT32, 4);
    fill_list(c, LIST(123456.789, -0.5, 3, 17.25));
    /* summarized */
    c = ADD("summ_2000", FT_FLOAT32, 2000);
    fill_normal(c, 1, 0);
    c = ADD("summ_2000_wide_rows", FT_FLOAT32, 2000);
    fill_normal(c, 1000, 0);
    c = ADD("summ_30x40", FT_FLOAT32, 30, 40);
    fill_normal(c, 1, 0);
    c = ADD("summ_10x10x20", FT_FLOAT32, 10, 10, 20);
    fill_normal(c, 1, 0);
    c = ADD("summ_8x2x8x10", FT_FLOAT32, 8, 2, 8, 10);
    fill_normal(c, 1, 0);
    c = ADD("summ_7x200", FT_FLOAT32, 7, 200);
    fill_normal(c, 1, 0);
    c = ADD("summ_6x200", FT_FLOAT32, 6, 200);
    fill_normal(c, 1, 0);
    c = ADD("summ_int64_2000", FT_INT64, 2000);
    fill_ints(c, -5000, 5000);
    c = ADD("summ_bool_1500", FT_BOOL, 1500);
    fill_ints(c, 0, 1);
    c = ADD("summ_tiny_1200", FT_FLOAT32, 1200);
    fill_normal(c, 1e-6, 0);
    /* scientific and fixed mode selection */
    c = ADD("tiny", FT_FLOAT32, 2, 3);
    fill_normal(c, 1e-5, 0);
    c = ADD("huge", FT_FLOAT32, 2, 3);
    fill_normal(c, 1e9, 0);
    c = ADD("very_huge", FT_FLOAT64, 3);
    fill_list(c, LIST(1e300, -2.5e-300, 7));
    c = ADD("zero_and_tiny", FT_FLOAT32, 2);
    fill_list(c, LIST(0, 1e-5));
    c = ADD("int_ratio_sci", FT_FLOAT32, 2);
    fill_list(c, LIST(1, 5000));
    c = ADD("int_ratio_1000_fixed", FT_FLOAT32, 2);
    fill_list(c, LIST(1, -1000));
    c = ADD("int_1e8_fixed", FT_FLOAT32, 2);
    fill_list(c, LIST(1e8, 1e6));
    c = ADD("int_over_1e8_sci", FT_FLOAT32, 2);
    fill_list(c, LIST(2e8, 3));
    c = ADD("min_1e-4_boundary", FT_FLOAT64, 2);
    fill_list(c, LIST(1e-4, 0.05));
    c = ADD("int_valued_negatives", FT_FLOAT32, 4);
    fill_list(c, LIST(-3, 0, 100, 7));
    /* nan / inf / zeros */
    c = ADD("nan_inf_mixed", FT_FLOAT32, 6);
    fill_list(c, LIST(1.5, nan, inf, -inf, 0, -2.25));
    c = ADD("nan_inf_only", FT_FLOAT32, 3);
    fill_list(c, LIST(nan, inf, -inf));
    c = ADD("nan_int_mode", FT_FLOAT32, 4);
    fill_list(c, LIST(1, nan, -inf, 3));
    c = ADD("nan_sci", FT_FLOAT32, 3);
    fill_list(c, LIST(nan, 1e-5, -inf));
    c = ADD("zeros", FT_FLOAT32, 2, 3);
    fill_list(c, LIST(0, 0, 0, 0, 0, 0));
    c = ADD("signed_zeros", FT_FLOAT32, 3);
    fill_list(c, LIST(-0.0, 0.0, 0.5));
    /* other dtypes */
    c = ADD("int64", FT_INT64, 2, 5);
    fill_ints(c, -1000, 1000);
    c = ADD("int64_big", FT_INT64, 3);
    fill_list(c, LIST(-9007199254740992.0, 123, 0));
    c = ADD("int32", FT_INT32, 3, 4);
    fill_ints(c, -50, 50);
    c = ADD("int16", FT_INT16, 4);
    fill_ints(c, -30000, 30000);
    c = ADD("int8", FT_INT8, 3);
    fill_list(c, LIST(-128, 127, 0));
    c = ADD("int32_neg_zero", FT_INT32, 2);
    fill_list(c, LIST(-0.2, 5));
    c = ADD("uint8", FT_UINT8, 4, 8);
    fill_ints(c, 0, 255);
    c = ADD("int64_row_wraps", FT_INT64, 100);
    fill_ints(c, 0, 999);
    c = ADD("bool", FT_BOOL, 3, 3);
    fill_ints(c, 0, 1);
    c = ADD("bool_all_true", FT_BOOL, 2);
    fill_list(c, LIST(1, 1));
    c = ADD("float64", FT_FLOAT64, 4, 3);
    fill_normal(c, 1, 0);
    c = ADD("float16", FT_FLOAT16, 3, 4);
    fill_normal(c, 1, 0);
    c = ADD("float16_overflow", FT_FLOAT16, 3);
    fill_list(c, LIST(1.5, 70000, -1e-3));
    c = ADD("bfloat16", FT_BFLOAT16, 2, 5);
    fill_normal(c, 1, 0);
    c = ADD("bfloat16_summ", FT_BFLOAT16, 40, 30);
    fill_normal(c, 3, 0);
    /* empty and 0-dim */
    c = ADD("empty_0", FT_FLOAT32, 0);
    c = ADD("empty_0x3", FT_FLOAT32, 0, 3);
    c = ADD("empty_int64", FT_INT64, 0);
    c = ADD("empty_bool_2x0x3", FT_BOOL, 2, 0, 3);
    c = ADD("empty_float16", FT_FLOAT16, 0);
    c = ADD("empty_grad", FT_FLOAT32, 0);
    c->requires_grad = 1;
    c = add("scalar_float", FT_FLOAT32, 0, NULL);
    fill_list(c, LIST(3.5));
    c = add("scalar_int64", FT_INT64, 0, NULL);
    fill_list(c, LIST(7));
    c = add("scalar_bool", FT_BOOL, 0, NULL);
    fill_list(c, LIST(1));
    c = add("scalar_nan", FT_FLOAT32, 0, NULL);
    fill_list(c, LIST(nan));
    c = add("scalar_neg_zero", FT_FLOAT32, 0, NULL);
    fill_list(c, LIST(-0.0));
    c = add("scalar_tiny", FT_FLOAT32, 0, NULL);
    fill_list(c, LIST(1e-5));
    c = add("scalar_float16_grad", FT_FLOAT16, 0, NULL);
    fill_list(c, LIST(-2.75));
    c->requires_grad = 1;
    /* suffixes and where they wrap */
    c = ADD("grad_short", FT_FLOAT32, 2);
    fill_list(c, LIST(1, 2));
    c->requires_grad = 1;
    c = ADD("grad_wraps", FT_FLOAT32, 7);
    fill_normal(c, 1, 0);
    c->requires_grad = 1;
    c = ADD("grad_2x3", FT_FLOAT32, 2, 3);
    fill_normal(c, 1, 0);
    c->requires_grad = 1;
    c = ADD("float64_grad", FT_FLOAT64, 2, 2);
    fill_normal(c, 1, 0);
    c->requires_grad = 1;
    c = ADD("float16_grad_3x4", FT_FLOAT16, 3, 4);
    fill_normal(c, 1, 0);
    c->requires_grad = 1;
    /* PyTorch's last_line_len is 2 more than the line's length: these sit on that edge */
    c = ADD("grad_edge_1line", FT_FLOAT32, 13);
    fill_ints(c, 1, 9);
    c->requires_grad = 1;
    c = ADD("grad_edge_2x10", FT_FLOAT32, 2, 10);
    fill_ints(c, 10, 99);
    c->requires_grad = 1;
    c = ADD("cuda0", FT_FLOAT32, 2, 3);
    fill_normal(c, 1, 0);
    c->device = 0;
    c = ADD("cuda1_int32", FT_INT32, 4);
    fill_ints(c, -9, 9);
    c->device = 1;
    c = ADD("cuda0_float16_grad", FT_FLOAT16, 6);
    fill_normal(c, 1, 0);
    c->device = 0;
    c->requires_grad = 1;
}

/* ---------------------------------------------------------------- what the lead does via libtorch
 */

/* get_summarized_data: keep the first and last edgeitems entries of every long dim. */
static void gather(const tcase *c, int d, int64_t off, int summarize, double *out, int64_t *k) {
    int64_t n = c->shape[d], stride = 1;
    for (int e = d + 1; e < c->ndim; e++) stride *= c->shape[e];
    int cut = summarize && n > 2 * FTL_PRINT_EDGEITEMS;
    for (int64_t j = 0; j < (cut ? 2 * FTL_PRINT_EDGEITEMS : n); j++) {
        int64_t i = cut && j >= FTL_PRINT_EDGEITEMS ? n - 2 * FTL_PRINT_EDGEITEMS + j : j;
        if (d == c->ndim - 1)
            out[(*k)++] = c->v[off + i];
        else
            gather(c, d + 1, off + i * stride, summarize, out, k);
    }
}

static char *format_case(const tcase *c) {
    int summarize = ftt_print_should_summarize(c->n);
    int64_t shape[MAXD];
    for (int d = 0; d < c->ndim; d++) {
        int cut = summarize && c->shape[d] > 2 * FTL_PRINT_EDGEITEMS;
        shape[d] = cut ? 2 * FTL_PRINT_EDGEITEMS : c->shape[d];
    }
    double *vals = malloc((size_t)(c->n ? c->n : 1) * sizeof(double));
    int64_t k = 0;
    if (c->ndim == 0)
        vals[k++] = c->v[0];
    else if (c->n > 0)
        gather(c, 0, 0, summarize, vals, &k);
    char *s = ftt_format_tensor(vals, shape, c->shape, c->ndim, c->dtype, c->device,
                                c->requires_grad, summarize);
    free(vals);
    return s;
}

/* ---------------------------------------------------------------- comparing */

/* Prints the first line where want and got differ, numbered from 1. */
static void show_diff(const char *want, const char *got) {
    int line = 1;
    const char *w = want, *g = got;
    for (;;) {
        const char *we = strchr(w, '\n'), *ge = strchr(g, '\n');
        size_t wn = we ? (size_t)(we - w) : strlen(w), gn = ge ? (size_t)(ge - g) : strlen(g);
        if (wn != gn || memcmp(w, g, wn) != 0 || !we != !ge) {
            printf("    line %d:\n    -%.*s\n    +%.*s\n", line, (int)wn, w, (int)gn, g);
            return;
        }
        if (!we) return;
        w = we + 1;
        g = ge + 1;
        line++;
    }
}

/* Splits our output at its footer line and checks both halves. */
static void compare(const char *name, const char *got, const char *want, const char *want_footer) {
    char nm[80];
    if (!got) {
        printf("FAIL %s: ftt_format_tensor returned NULL\n", name);
        check_failures++;
        return;
    }
    const char *nl = strrchr(got, '\n');
    size_t body = nl ? (size_t)(nl - got) : strlen(got);
    if (body == strlen(want) && memcmp(got, want, body) == 0) {
        printf("ok %s\n", name);
    } else {
        printf("FAIL %s: differs from PyTorch's repr\n", name);
        char *b = strndup(got, body);
        show_diff(want, b);
        free(b);
        check_failures++;
    }
    snprintf(nm, sizeof nm, "%s_footer", name);
    if (nl && strcmp(nl + 1, want_footer) == 0) {
        printf("ok %s\n", nm);
    } else {
        printf("FAIL %s: want \"%s\", got \"%s\"\n", nm, want_footer, nl ? nl + 1 : "(none)");
        check_failures++;
    }
}

static void footer_of(const tcase *c, char *out, size_t n) {
    size_t k = (size_t)snprintf(out, n, "[%s %s", dt_name(c->dtype),
                                c->ndim ? "tensor of size " : "scalar");
    for (int d = 0; d < c->ndim; d++)
        k += (size_t)snprintf(out + k, n - k, d ? "x%lld" : "%lld", (long long)c->shape[d]);
    if (c->device >= 0)
        snprintf(out + k, n - k, " on cuda:%d]", c->device);
    else
        snprintf(out + k, n - k, " on cpu]");
}

/* ---------------------------------------------------------------- the reference */

static const char *py_script =
    "import sys\n"
    "try:\n"
    "    import torch\n"
    "    from torch import _tensor_str as ts\n"
    "except Exception as e:\n"
    "    print('@@NOTORCH %s' % e); sys.exit(0)\n"
    "DT = {n: getattr(torch, n) for n in ['float32', 'float64', 'float16', 'bfloat16', 'int64',\n"
    "      'int32', 'int16', 'int8', 'uint8', 'bool']}\n"
    "def emulate(t, dev):\n"
    "    # repr(t) as if t lived on cuda:dev, assembled from _tensor_str's own pieces in\n"
    "    # _str_intern's suffix order (only for nonempty tensors; checked against repr below)\n"
    "    suf = [] if dev is None else [\"device='cuda:%d'\" % dev]\n"
    "    if t.dtype not in (torch.float32, torch.int64, torch.bool): suf.append('dtype=' + str(t.dtype))\n"
    "    if t.requires_grad: suf.append('requires_grad=True')\n"
    "    return ts._add_suffixes('tensor(' + ts._tensor_str(t, 7), suf, 7, False)\n"
    "tok = open(sys.argv[1]).read().split()\n"
    "i = 0\n"
    "while i < len(tok):\n"
    "    assert tok[i] == 'case'\n"
    "    name, dt, dev, rg, nd = tok[i+1], tok[i+2], int(tok[i+3]), int(tok[i+4]), int(tok[i+5])\n"
    "    shape = [int(x) for x in tok[i+6:i+6+nd]]; n = int(tok[i+6+nd]); i += 7 + nd\n"
    "    src = torch.tensor([float(x) for x in tok[i:i+n]], dtype=torch.float64).reshape(shape)\n"
    "    i += n\n"
    "    t = src.to(DT[dt])\n"
    "    back = t.double()\n"
    "    if not bool(((back == src) | (back.isnan() & src.isnan())).all()):\n"
    "        r = '!values do not survive conversion to ' + dt\n"
    "    elif dev >= 0 and torch.cuda.is_available() and dev < torch.cuda.device_count():\n"
    "        r = repr(t.to('cuda:%d' % dev).requires_grad_(bool(rg)))\n"
    "    else:\n"
    "        t.requires_grad_(bool(rg))\n"
    "        if dev < 0: r = repr(t)\n"
    "        elif emulate(t, None) != repr(t): r = '!cuda suffix emulation does not reproduce repr'\n"
    "        else: r = '~' + emulate(t, dev)\n"
    "    sys.stdout.write('@@%s %d\\n%s\\n' % (name, len(r.encode()), r))\n";

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int write_cases(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (int i = 0; i < ncases; i++) {
        const tcase *c = &cases[i];
        fprintf(f, "case %s %s %d %d %d", c->name, dt_name(c->dtype), c->device, c->requires_grad,
                c->ndim);
        for (int d = 0; d < c->ndim; d++) fprintf(f, " %lld", (long long)c->shape[d]);
        fprintf(f, " %lld\n", (long long)c->n);
        for (int64_t j = 0; j < c->n; j++) {
            if (isnan(c->v[j]))
                fprintf(f, "nan\n"); /* not "-nan": keep Python's float() happy */
            else
                fprintf(f, "%.17g\n", c->v[j]);
        }
    }
    return fclose(f);
}

/* Runs Python once for every case; returns its whole stdout (malloc'd) or NULL. */
static char *run_python(const char *script, const char *data) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, PY " %s %s 2>&1", script, data);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 4096) {
            char *b = realloc(buf, cap *= 2);
            if (!b) {
                free(buf);
                buf = NULL;
            } else
                buf = b;
        }
    }
    pclose(p);
    if (buf) buf[len] = '\0';
    return buf;
}

/* Finds "@@name len\n<repr>\n" in Python's output; returns a malloc'd copy of the repr. */
static char *find_ref(const char *out, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "@@%.47s ", name);
    for (const char *p = out; (p = strstr(p, key)); p++) {
        if (p != out && p[-1] != '\n') continue;
        char *end;
        long n = strtol(p + strlen(key), &end, 10);
        if (*end != '\n' || n < 0 || strlen(end + 1) < (size_t)n) return NULL;
        return strndup(end + 1, (size_t)n);
    }
    return NULL;
}

/* ---------------------------------------------------------------- literal cases (no Python needed)
 */

static void literal(const char *name, const double *v, const int64_t *shape, int ndim, ft_dtype dt,
                    int device, int rg, const char *want, const char *footer) {
    char *s = ftt_format_tensor(v, shape, shape, ndim, dt, device, rg, 0);
    compare(name, s, want, footer);
    free(s);
}

static void literal_cases(void) {
    literal("lit_2x2", LIST(1, 2, 3, 4), SHAPE(2, 2), 2, FT_FLOAT32, -1, 0,
            "tensor([[1., 2.],\n        [3., 4.]])", "[float32 tensor of size 2x2 on cpu]");
    literal("lit_scalar", LIST(3.5), NULL, 0, FT_FLOAT32, -1, 0, "tensor(3.5000)",
            "[float32 scalar on cpu]");
    literal("lit_sci", LIST(1e-5, 1), SHAPE(2), 1, FT_FLOAT64, -1, 0,
            "tensor([1.0000e-05, 1.0000e+00], dtype=torch.float64)",
            "[float64 tensor of size 2 on cpu]");
    literal("lit_bool", LIST(1, 0), SHAPE(2), 1, FT_BOOL, -1, 0, "tensor([ True, False])",
            "[bool tensor of size 2 on cpu]");
    literal("lit_empty", LIST(0), SHAPE(0, 3), 2, FT_FLOAT32, -1, 0, "tensor([], size=(0, 3))",
            "[float32 tensor of size 0x3 on cpu]");
    literal("lit_nan", LIST(0, NAN, INFINITY), SHAPE(3), 1, FT_FLOAT32, 0, 1,
            "tensor([0., nan, inf], device='cuda:0', requires_grad=True)",
            "[float32 tensor of size 3 on cuda:0]");
    literal("lit_dims_footer", LIST(1, 2, 3, 4, 5, 6), SHAPE(1, 2, 3), 3, FT_INT32, -1, 0,
            "tensor([[[1, 2, 3],\n         [4, 5, 6]]], dtype=torch.int32)",
            "[int32 tensor of size 1x2x3 on cpu]");
    /* arange(2000) summarized: the vector's ellipsis layout */
    double a[6] = {0, 1, 2, 1997, 1998, 1999};
    char *s = ftt_format_tensor(a, SHAPE(6), SHAPE(2000), 1, FT_INT64, -1, 0, 1);
    compare("lit_arange_2000", s, "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])",
            "[int64 tensor of size 2000 on cpu]");
    free(s);
    CHECK("should_summarize_1000", ftt_print_should_summarize(1000) == 0);
    CHECK("should_summarize_1001", ftt_print_should_summarize(1001) == 1);
}

int main(void) {
    literal_cases();
    build_cases();

    char script[] = "/tmp/ftl_print_pyXXXXXX", data[] = "/tmp/ftl_print_dataXXXXXX";
    int fs = mkstemp(script), fd = mkstemp(data);
    char *out = NULL;
    const char *why = NULL;
    int missing = 0;
    if (fs < 0 || fd < 0)
        why = "cannot create temp files";
    else if (access(PY, X_OK) != 0)
        why = PY " not found";
    else if (write_file(script, py_script) || write_cases(data))
        why = "cannot write temp files";
    else if (!(out = run_python(script, data)))
        why = "cannot run " PY;
    else if (!strncmp(out, "@@NOTORCH", 9))
        why = PY " has no torch";
    if (fs >= 0) {
        close(fs);
        unlink(script);
    }
    if (fd >= 0) {
        close(fd);
        unlink(data);
    }

    for (int i = 0; i < ncases; i++) {
        tcase *c = &cases[i];
        char name[64], footer[128];
        snprintf(name, sizeof name, "repr_%.47s", c->name);
        if (why) {
            SKIP(name, why);
        } else {
            char *ref = find_ref(out, c->name);
            if (!ref) {
                printf("FAIL %s: no reference from Python\n", name);
                check_failures++;
                missing = 1;
            } else if (ref[0] == '!') {
                printf("FAIL %s: reference: %s\n", name, ref + 1);
                check_failures++;
            } else {
                /* '~': the device suffix was emulated because Python has no such GPU */
                if (ref[0] == '~') strncat(name, "_cuda_emulated", sizeof name - strlen(name) - 1);
                char *got = format_case(c);
                footer_of(c, footer, sizeof footer);
                compare(name, got, ref + (ref[0] == '~'), footer);
                free(got);
            }
            free(ref);
        }
        free(c->v);
    }
    if (missing) printf("    python said: %.500s\n", out); /* e.g. a traceback */
    free(out);
    return check_exit();
}
