/* test_shim.c: checks the libtorch shim (runtime/torch/ft_torch.h) from plain C.
 *
 * References are independent of the shim: known values, libm, finite differences, or PyTorch
 * itself. The PyTorch checks are collected while the tests run (inputs are printed with full
 * precision into one Python script), then /usr/bin/python3 runs that script once and we compare;
 * when that interpreter has no torch, those checks are skipped. */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "torch/ft_torch.h"

#ifndef FT_TEST_PYTHON
#define FT_TEST_PYTHON "/usr/bin/python3"
#endif
#define PY FT_TEST_PYTHON

/* ---------------------------------------------------------------- helpers */

/* A setup call that fails makes the rest meaningless: report it as a failure and stop. */
#define OK(call) must((call), #call, __LINE__)
static void must(ft_status s, const char *expr, int line) {
    if (s == FT_OK) return;
    printf("FAIL setup: line %d: %s: %s\n", line, expr, ft_last_error());
    exit(1);
}

static ft_tensor *f64(const double *v, const int64_t *shape, int nd) {
    ft_tensor *t;
    OK(ft_from_data(v, FT_FLOAT64, shape, nd, &t));
    return t;
}

static ft_tensor *f32(const float *v, const int64_t *shape, int nd) {
    ft_tensor *t;
    OK(ft_from_data(v, FT_FLOAT32, shape, nd, &t));
    return t;
}

static ft_tensor *i64(const int64_t *v, const int64_t *shape, int nd) {
    ft_tensor *t;
    OK(ft_from_data(v, FT_INT64, shape, nd, &t));
    return t;
}

/* Deterministic, irregular float64 data: sin(1.3 i + phase) * scale. */
static ft_tensor *wave(const int64_t *shape, int nd, double phase, double scale) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    double *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = sin(1.3 * (double)i + phase) * scale;
    ft_tensor *t = f64(v, shape, nd);
    free(v);
    return t;
}

static double item(const ft_tensor *t) {
    double v;
    OK(ft_item(t, &v));
    return v;
}

/* Element i of a 1-D tensor, as a double. */
static double item_at(const ft_tensor *t, int64_t i) {
    double v[16];
    if (ft_numel(t) > 16 || i >= ft_numel(t)) return NAN;
    OK(ft_copy_to_doubles(t, v, ft_numel(t)));
    return v[i];
}

/* numel(t) == n and every element within tol (relative above 1) of want. */
static int close_to(const ft_tensor *t, const double *want, int64_t n, double tol) {
    if (ft_numel(t) != n) {
        printf("# numel %lld, want %lld\n", (long long)ft_numel(t), (long long)n);
        return 0;
    }
    double *got = malloc((size_t)(n ? n : 1) * sizeof *got);
    OK(ft_copy_to_doubles(t, got, n));
    int good = 1;
    for (int64_t i = 0; i < n && good; i++) {
        double s = fabs(want[i]) > 1 ? fabs(want[i]) : 1;
        if (!(fabs(got[i] - want[i]) <= tol * s)) {
            printf("# element %lld: got %.9g, want %.9g\n", (long long)i, got[i], want[i]);
            good = 0;
        }
    }
    free(got);
    return good;
}

static int shape_is(const ft_tensor *t, int nd, const int64_t *shape) {
    if (ft_dim(t) != nd) return 0;
    for (int i = 0; i < nd; i++)
        if (ft_size(t, i) != shape[i]) return 0;
    return 1;
}

static ft_tensor *unary(ft_unop op, const ft_tensor *a) {
    ft_tensor *r;
    OK(ft_unary(op, a, &r));
    return r;
}
static ft_tensor *binary(ft_binop op, const ft_tensor *a, const ft_tensor *b) {
    ft_tensor *r;
    OK(ft_binary(op, a, b, &r));
    return r;
}
static ft_tensor *reduce(ft_reduceop op, const ft_tensor *a) {
    ft_tensor *r;
    OK(ft_reduce_all(op, a, &r));
    return r;
}

/* ---------------------------------------------------------------- deferred PyTorch references */

static char *py_src;
static size_t py_len, py_cap;

static void py(const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(py_src + py_len, py_cap - py_len, fmt, ap);
        va_end(ap);
        if (n >= 0 && py_len + (size_t)n + 1 < py_cap) {
            py_len += (size_t)n;
            py_src[py_len++] = '\n';
            py_src[py_len] = '\0';
            return;
        }
        py_cap = py_cap ? 2 * py_cap + (size_t)n : 65536;
        py_src = realloc(py_src, py_cap);
    }
}

/* Emit `var = torch.tensor([...], dtype=...).reshape(...)` with the tensor's exact values. */
static void py_tensor(const char *var, const ft_tensor *t) {
    int64_t n = ft_numel(t);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    OK(ft_copy_to_doubles(t, v, n));
    size_t cap = (size_t)n * 26 + 256, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s + len, cap - len, "%s = torch.tensor([", var);
    for (int64_t i = 0; i < n; i++) len += (size_t)snprintf(s + len, cap - len, "%.17g,", v[i]);
    len += (size_t)snprintf(s + len, cap - len, "], dtype=torch.%s).reshape([",
                            ft_dtype_name(ft_get_dtype(t)));
    for (int i = 0; i < ft_dim(t); i++)
        len += (size_t)snprintf(s + len, cap - len, "%lld,", (long long)ft_size(t, i));
    snprintf(s + len, cap - len, "])");
    py("%s", s);
    free(s);
    free(v);
}

typedef struct {
    char name[48];
    double *got;
    int64_t n;
    double tol;
} expectation;
static expectation expects[96];
static int nexpects;

/* The Python script must run `out("<name>", <tensor>)`; we compare with t's values later. */
static void expect_py(const char *name, const ft_tensor *t, double tol) {
    if (nexpects == (int)(sizeof expects / sizeof *expects)) {
        printf("FAIL %s: too many PyTorch expectations\n", name);
        check_failures++;
        return;
    }
    expectation *e = &expects[nexpects++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->n = ft_numel(t);
    e->tol = tol;
    e->got = malloc((size_t)(e->n ? e->n : 1) * sizeof(double));
    OK(ft_copy_to_doubles(t, e->got, e->n));
}

static void run_python_checks(void) {
    char path[] = "/tmp/ftlua_test_shim_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        for (int i = 0; i < nexpects; i++) SKIP(expects[i].name, "cannot write temp script");
        return;
    }
    fprintf(f,
            "import torch, torch.nn.functional as F\n"
            "torch.set_default_dtype(torch.float32)\n"
            "def out(name, t):\n"
            "    v = t.detach().double().flatten().tolist()\n"
            "    print(name, len(v), ' '.join(repr(float(x)) for x in v))\n"
            "%s",
            py_src ? py_src : "");
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof cmd, PY " %s 2>&1", path);
    FILE *p = access(PY, X_OK) == 0 ? popen(cmd, "r") : NULL;
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    text[0] = '\0';
    if (p) {
        size_t k;
        while ((k = fread(text + len, 1, cap - len - 1, p)) > 0) {
            len += k;
            if (len + 1 == cap) text = realloc(text, cap *= 2);
        }
        text[len] = '\0';
        pclose(p);
    }
    unlink(path);
    /* No torch (or no python): skip rather than fail, as the brief asks. */
    if (!p || strstr(text, "No module named 'torch'")) {
        for (int i = 0; i < nexpects; i++) SKIP(expects[i].name, PY " has no torch");
        free(text);
        return;
    }
    for (int i = 0; i < nexpects; i++) {
        expectation *e = &expects[i];
        char key[64];
        snprintf(key, sizeof key, "\n%.47s ", e->name);
        /* Search from a newline so "x" does not match inside "max". */
        size_t keylen = strlen(key);
        char *line = NULL;
        if (strncmp(text, key + 1, keylen - 1) == 0)
            line = text;
        else if ((line = strstr(text, key)))
            line++;
        if (!line) {
            printf("FAIL %s: no PyTorch reference printed\n", e->name);
            check_failures++;
            continue;
        }
        char *s = line + keylen - 1, *end;
        long long n = strtoll(s, &end, 10);
        int good = n == e->n;
        if (!good)
            printf("# %s: %lld reference values, shim gave %lld\n", e->name, n, (long long)e->n);
        for (int64_t k = 0; good && k < e->n; k++) {
            double want = strtod(end, &end);
            double sc = fabs(want) > 1 ? fabs(want) : 1;
            if (!(fabs(e->got[k] - want) <= e->tol * sc)) {
                printf("# %s[%lld]: shim %.12g, torch %.12g\n", e->name, (long long)k, e->got[k],
                       want);
                good = 0;
            }
        }
        if (good) {
            printf("ok %s\n", e->name);
        } else {
            printf("FAIL %s: differs from PyTorch\n", e->name);
            check_failures++;
        }
        free(e->got);
    }
    /* A Python error means some references are missing; show it. */
    if (strstr(text, "Traceback")) printf("# python said:\n# %.2000s\n", strstr(text, "Traceback"));
    free(text);
}

/* ---------------------------------------------------------------- runtime, dtypes, lifetime */

static void test_runtime(void) {
    CHECK("version", ft_torch_version() && ft_torch_version()[0] >= '1');
    int cuda = ft_cuda_available();
    CHECK("default_device", ft_default_device() == (cuda ? 0 : FT_CPU));
    CHECK("cuda_device_count", cuda ? ft_cuda_device_count() > 0 : ft_cuda_device_count() == 0);
    CHECK("dtype_size", ft_dtype_size(FT_FLOAT32) == 4 && ft_dtype_size(FT_FLOAT64) == 8 &&
                            ft_dtype_size(FT_BFLOAT16) == 2 && ft_dtype_size(FT_BOOL) == 1 &&
                            ft_dtype_size(FT_INT64) == 8 && ft_dtype_size(FT_INT16) == 2);
    CHECK("dtype_name", !strcmp(ft_dtype_name(FT_FLOAT16), "float16") &&
                            !strcmp(ft_dtype_name(FT_UINT8), "uint8") &&
                            !strcmp(ft_dtype_name(FT_BOOL), "bool"));
    CHECK("synchronize_cpu", ft_synchronize(FT_CPU) == FT_OK);
    if (!cuda) CHECK("synchronize_no_cuda_fails", ft_synchronize(0) == FT_ERR);
    CHECK("dtype_is_floating", ft_dtype_is_floating(FT_BFLOAT16) && !ft_dtype_is_floating(FT_INT8));
    int old = ft_get_num_threads();
    OK(ft_set_num_threads(1));
    CHECK("num_threads", ft_get_num_threads() == 1);
    OK(ft_set_num_threads(old));
    CHECK("num_threads_bad", ft_set_num_threads(0) == FT_ERR);
    ft_free(NULL);
    CHECK("free_null", 1);
}

/* ---------------------------------------------------------------- creation, metadata, data out */

static void test_creation(void) {
    /* Byte-exact round trips for several dtypes. */
    float fv[6] = {1.5f, -2, 3.25f, 0, 1e-3f, 7};
    int64_t iv[3] = {INT64_C(-9007199254740993), 0, INT64_C(123456789012)};
    uint8_t uv[4] = {0, 1, 200, 255};
    uint8_t bv[4] = {1, 0, 0, 1};
    uint16_t hv[3] = {0x3c00, 0xc000, 0x7bff}; /* float16 1, -2, 65504 */
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s4[1] = {4};
    ft_tensor *a = f32(fv, s23, 2), *b = i64(iv, s3, 1), *u, *bo, *h;
    OK(ft_from_data(uv, FT_UINT8, s4, 1, &u));
    OK(ft_from_data(bv, FT_BOOL, s4, 1, &bo));
    OK(ft_from_data(hv, FT_FLOAT16, s3, 1, &h));
    float fo[6];
    int64_t io[3];
    uint8_t uo[4], bo2[4];
    uint16_t ho[3];
    OK(ft_copy_to_buffer(a, fo, sizeof fo));
    OK(ft_copy_to_buffer(b, io, sizeof io));
    OK(ft_copy_to_buffer(u, uo, sizeof uo));
    OK(ft_copy_to_buffer(bo, bo2, sizeof bo2));
    OK(ft_copy_to_buffer(h, ho, sizeof ho));
    CHECK("roundtrip_float32", !memcmp(fv, fo, sizeof fv));
    CHECK("roundtrip_int64", !memcmp(iv, io, sizeof iv));
    CHECK("roundtrip_uint8", !memcmp(uv, uo, sizeof uv));
    CHECK("roundtrip_bool", !memcmp(bv, bo2, sizeof bv));
    CHECK("roundtrip_float16", !memcmp(hv, ho, sizeof hv));
    double hd[3] = {1, -2, 65504}, bd[4] = {1, 0, 0, 1};
    CHECK("float16_to_doubles", close_to(h, hd, 3, 0));
    CHECK("bool_to_doubles", close_to(bo, bd, 4, 0));
    CHECK("copy_to_buffer_bad_size", ft_copy_to_buffer(a, fo, 5) == FT_ERR);
    CHECK("copy_to_doubles_bad_n", ft_copy_to_doubles(a, (double[7]){0}, 7) == FT_ERR);

    /* Metadata of a fresh 2x3 float32. */
    CHECK("meta_dim", ft_dim(a) == 2 && ft_size(a, 0) == 2 && ft_size(a, 1) == 3);
    CHECK("meta_size_bad_dim", ft_size(a, 2) == -1 && ft_size(a, -1) == -1);
    CHECK("meta_stride", ft_stride(a, 0) == 3 && ft_stride(a, 1) == 1);
    CHECK("meta_numel", ft_numel(a) == 6 && ft_storage_offset(a) == 0);
    CHECK("meta_dtype", ft_get_dtype(a) == FT_FLOAT32 && ft_get_dtype(b) == FT_INT64 &&
                            ft_get_dtype(bo) == FT_BOOL);
    CHECK("meta_device", ft_device(a) == FT_CPU);
    CHECK("meta_flags", ft_defined(a) && ft_is_contiguous(a) && !ft_requires_grad(a) &&
                            ft_is_leaf(a) && !ft_defined(NULL));
    CHECK("storage_nbytes", ft_storage_nbytes(a) == 24 && ft_storage_nbytes(b) == 24);
    CHECK("item_many_fails", ft_item(a, &(double){0}) == FT_ERR);

    /* Scalars (0 dims) */
    double pi = 3.25;
    ft_tensor *sc = f64(&pi, NULL, 0);
    CHECK("scalar_0dim", ft_dim(sc) == 0 && ft_numel(sc) == 1 && item(sc) == 3.25);

    /* Creation functions against known values. */
    ft_tensor *t;
    OK(ft_full(s23, 2, 2.5, FT_FLOAT64, FT_CPU, &t));
    double full[6] = {2.5, 2.5, 2.5, 2.5, 2.5, 2.5};
    CHECK("full", close_to(t, full, 6, 0) && ft_get_dtype(t) == FT_FLOAT64);
    ft_free(t);
    OK(ft_full(s3, 1, 7, FT_INT32, FT_CPU, &t));
    CHECK("full_int32", ft_get_dtype(t) == FT_INT32 && close_to(t, (double[]){7, 7, 7}, 3, 0));
    ft_free(t);
    OK(ft_arange(1, 2, 0.25, FT_FLOAT32, FT_CPU, &t));
    CHECK("arange", close_to(t, (double[]){1, 1.25, 1.5, 1.75}, 4, 0));
    ft_free(t);
    OK(ft_arange(0, 5, 1, FT_INT64, FT_CPU, &t));
    CHECK("arange_int64",
          ft_get_dtype(t) == FT_INT64 && close_to(t, (double[]){0, 1, 2, 3, 4}, 5, 0));
    ft_free(t);
    OK(ft_linspace(0, 1, 5, FT_FLOAT64, FT_CPU, &t));
    CHECK("linspace", close_to(t, (double[]){0, 0.25, 0.5, 0.75, 1}, 5, 1e-15));
    ft_free(t);
    OK(ft_eye(3, FT_FLOAT32, FT_CPU, &t));
    CHECK("eye", close_to(t, (double[]){1, 0, 0, 0, 1, 0, 0, 0, 1}, 9, 0));
    ft_free(t);
    int64_t s234[3] = {2, 3, 4};
    OK(ft_empty(s234, 3, FT_BFLOAT16, FT_CPU, &t));
    CHECK("empty", shape_is(t, 3, s234) && ft_get_dtype(t) == FT_BFLOAT16 && ft_stride(t, 0) == 12);
    ft_free(t);
    int64_t s1000[1] = {1000};
    OK(ft_randint(-3, 4, s1000, 1, FT_INT64, FT_CPU, &t));
    double *rv = malloc(1000 * sizeof *rv);
    OK(ft_copy_to_doubles(t, rv, 1000));
    int inrange = 1, seen_lo = 0, seen_hi = 0;
    for (int i = 0; i < 1000; i++) {
        inrange &= rv[i] >= -3 && rv[i] <= 3 && rv[i] == floor(rv[i]);
        seen_lo |= rv[i] == -3;
        seen_hi |= rv[i] == 3;
    }
    CHECK("randint_range", inrange && seen_lo && seen_hi);
    ft_free(t);
    OK(ft_randperm(50, FT_CPU, &t));
    OK(ft_copy_to_doubles(t, rv, 50));
    int hit[50] = {0}, perm = ft_get_dtype(t) == FT_INT64;
    for (int i = 0; i < 50; i++) {
        int k = (int)rv[i];
        perm &= k >= 0 && k < 50 && !hit[k];
        if (k >= 0 && k < 50) hit[k] = 1;
    }
    CHECK("randperm", perm);
    ft_free(t);
    free(rv);

    /* Conversion and copies. */
    double cv[4] = {-1.7, 0.4, 2.6, 3};
    ft_tensor *c = f64(cv, s4, 1);
    OK(ft_to(c, FT_INT64, FT_CPU, &t));
    CHECK("to_int64", ft_get_dtype(t) == FT_INT64 && close_to(t, (double[]){-1, 0, 2, 3}, 4, 0));
    ft_free(t);
    OK(ft_to(c, FT_BOOL, FT_CPU, &t));
    CHECK("to_bool", close_to(t, (double[]){1, 1, 1, 1}, 4, 0));
    ft_free(t);
    if (!ft_cuda_available()) {
        t = (ft_tensor *)&pi; /* sentinel: a failing call must not write it */
        CHECK("to_cuda_without_cuda", ft_to(c, FT_FLOAT32, 0, &t) == FT_ERR &&
                                          t == (ft_tensor *)&pi &&
                                          strstr(ft_last_error(), "CUDA") != NULL);
        CHECK("empty_on_cuda_without_cuda", ft_empty(s3, 1, FT_FLOAT32, 0, &t) == FT_ERR);
    }
    OK(ft_clone(c, &t));
    CHECK("clone_new_storage", ft_storage_id(t) != ft_storage_id(c) && close_to(t, cv, 4, 0));
    OK(ft_fill_(t, 9));
    CHECK("clone_independent", close_to(c, cv, 4, 0) && close_to(t, (double[]){9, 9, 9, 9}, 4, 0));
    ft_tensor *one;
    double onev = 5;
    one = f64(&onev, NULL, 0);
    OK(ft_copy_(t, one)); /* broadcast a scalar */
    CHECK("copy_broadcast", close_to(t, (double[]){5, 5, 5, 5}, 4, 0));
    ft_free(t);
    OK(ft_shallow_copy(c, &t));
    CHECK("shallow_copy_same_storage", ft_storage_id(t) == ft_storage_id(c));
    ft_free(t);
    OK(ft_pin_memory(c, &t)); /* a copy in pinned memory, or the same tensor without CUDA */
    CHECK("pin_memory", close_to(t, cv, 4, 0));
    ft_free(t);
    OK(ft_detach(c, &t));
    CHECK("detach_shares", ft_storage_id(t) == ft_storage_id(c) && !ft_requires_grad(t));
    ft_free(t);
    int64_t s1234[4] = {1, 2, 3, 4};
    ft_tensor *x4 = wave(s1234, 4, 0, 1), *cl;
    OK(ft_contiguous_channels_last(x4, &cl));
    CHECK("channels_last_strides", ft_stride(cl, 1) == 1 && ft_stride(cl, 3) == 2 &&
                                       ft_stride(cl, 2) == 8 && ft_stride(cl, 0) == 24);
    CHECK("channels_last_same_values", ft_equal(cl, x4, &(int){0}) == FT_OK);
    int eq = 0;
    OK(ft_equal(cl, x4, &eq));
    CHECK("channels_last_equal", eq == 1);
    CHECK("channels_last_needs_4d", ft_contiguous_channels_last(c, &t) == FT_ERR);

    ft_free(cl);
    ft_free(x4);
    ft_free(one);
    ft_free(c);
    ft_free(sc);
    ft_free(a);
    ft_free(b);
    ft_free(u);
    ft_free(bo);
    ft_free(h);
}

/* ---------------------------------------------------------------- views and indexing */

static void test_views(void) {
    int64_t s34[2] = {3, 4};
    double v[12];
    for (int i = 0; i < 12; i++) v[i] = i;
    ft_tensor *a = f64(v, s34, 2), *t, *u;
    const void *id = ft_storage_id(a);

    int64_t s26[2] = {2, -1};
    OK(ft_view(a, s26, 2, &t));
    CHECK("view_infers", ft_size(t, 0) == 2 && ft_size(t, 1) == 6 && ft_storage_id(t) == id);
    ft_free(t);

    OK(ft_narrow(a, 1, 1, 2, &t)); /* columns 1..2 */
    CHECK("narrow_values", close_to(t, (double[]){1, 2, 5, 6, 9, 10}, 6, 0));
    CHECK("narrow_shares", ft_storage_id(t) == id && ft_storage_offset(t) == 1 &&
                               !ft_is_contiguous(t) && ft_stride(t, 0) == 4);
    OK(ft_fill_(t, -1)); /* writes through to a */
    CHECK("narrow_writes_through",
          close_to(a, (double[]){0, -1, -1, 3, 4, -1, -1, 7, 8, -1, -1, 11}, 12, 0));
    ft_free(t);
    ft_free(a);
    a = f64(v, s34, 2);
    id = ft_storage_id(a);

    OK(ft_select(a, 0, 2, &t));
    CHECK("select", ft_dim(t) == 1 && close_to(t, (double[]){8, 9, 10, 11}, 4, 0) &&
                        ft_storage_id(t) == id && ft_storage_offset(t) == 8);
    ft_free(t);
    OK(ft_select(a, 1, -1, &t)); /* negative index counts from the end, like torch */
    CHECK("select_negative", close_to(t, (double[]){3, 7, 11}, 3, 0));
    ft_free(t);
    CHECK("select_out_of_range", ft_select(a, 0, 3, &t) == FT_ERR);

    int64_t perm[2] = {1, 0};
    OK(ft_permute(a, perm, 2, &t));
    CHECK("permute", ft_size(t, 0) == 4 && ft_stride(t, 0) == 1 && ft_stride(t, 1) == 4 &&
                         ft_storage_id(t) == id && !ft_is_contiguous(t));
    OK(ft_contiguous(t, &u));
    CHECK("permute_contiguous",
          ft_is_contiguous(u) && ft_storage_id(u) != id &&
              close_to(u, (double[]){0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}, 12, 0));
    ft_free(u);
    int64_t flat[1] = {12};
    CHECK("view_noncontiguous_fails",
          ft_view(t, flat, 1, &u) == FT_ERR && strlen(ft_last_error()) > 0);
    OK(ft_reshape(t, flat, 1, &u)); /* reshape copies when it must */
    CHECK("reshape_copies",
          ft_storage_id(u) != id &&
              close_to(u, (double[]){0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}, 12, 0));
    ft_free(u);
    float fb[12]; /* strided view, converted: copy_to_buffer must gather in C order */
    ft_tensor *tf;
    OK(ft_to(t, FT_FLOAT32, FT_CPU, &tf));
    OK(ft_narrow(tf, 0, 1, 2, &u));
    CHECK("copy_to_buffer_strided", ft_copy_to_buffer(u, fb, 6 * sizeof(float)) == FT_OK &&
                                        fb[0] == 1 && fb[1] == 5 && fb[2] == 9 && fb[3] == 2 &&
                                        fb[5] == 10);
    ft_free(u);
    ft_free(tf);
    ft_free(t);
    OK(ft_transpose(a, 0, 1, &t));
    CHECK("transpose", ft_size(t, 0) == 4 && ft_size(t, 1) == 3 && ft_storage_id(t) == id);
    ft_free(t);

    OK(ft_unsqueeze(a, 0, &t));
    int64_t s134[3] = {1, 3, 4};
    CHECK("unsqueeze", shape_is(t, 3, s134) && ft_storage_id(t) == id);
    OK(ft_unsqueeze(t, 3, &u));
    int64_t s1341[4] = {1, 3, 4, 1};
    CHECK("unsqueeze_last", shape_is(u, 4, s1341));
    ft_tensor *w;
    OK(ft_squeeze(u, -1, &w));
    CHECK("squeeze_all", shape_is(w, 2, s34));
    ft_free(w);
    OK(ft_squeeze(u, 0, &w));
    int64_t s341[3] = {3, 4, 1};
    CHECK("squeeze_dim", shape_is(w, 3, s341));
    ft_free(w);
    OK(ft_flatten(u, 1, 2, &w));
    int64_t s1121[3] = {1, 12, 1};
    CHECK("flatten", shape_is(w, 3, s1121) && ft_storage_id(w) == id);
    ft_free(w);
    ft_free(u);
    ft_free(t);

    int64_t s1_4[2] = {1, 4}, s34e[2] = {3, 4};
    double row[4] = {1, 2, 3, 4};
    ft_tensor *r = f64(row, s1_4, 2);
    OK(ft_expand(r, s34e, 2, &t));
    CHECK("expand",
          shape_is(t, 2, s34e) && ft_stride(t, 0) == 0 && ft_storage_id(t) == ft_storage_id(r));
    ft_free(t);
    ft_free(r);

    int64_t idx[2] = {2, 0}, s2[1] = {2};
    ft_tensor *ix = i64(idx, s2, 1);
    OK(ft_index_select(a, 0, ix, &t));
    CHECK("index_select", close_to(t, (double[]){8, 9, 10, 11, 0, 1, 2, 3}, 8, 0));
    ft_free(t);
    ft_tensor *mask;
    OK(ft_binary_scalar(FT_GT, a, 8.5, &mask));
    CHECK("compare_is_bool", ft_get_dtype(mask) == FT_BOOL);
    OK(ft_masked_select(a, mask, &t));
    CHECK("masked_select", close_to(t, (double[]){9, 10, 11}, 3, 0));
    ft_free(t);
    OK(ft_clone(a, &t));
    OK(ft_masked_fill_(t, mask, -5));
    CHECK("masked_fill_", close_to(t, (double[]){0, 1, 2, 3, 4, 5, 6, 7, 8, -5, -5, -5}, 12, 0));
    ft_free(t);
    int64_t gi[6] = {3, 0, 1, 1, 2, 0}, s32[2] = {3, 2};
    ft_tensor *g = i64(gi, s32, 2);
    OK(ft_gather(a, 1, g, &t));
    CHECK("gather", close_to(t, (double[]){3, 0, 5, 5, 10, 8}, 6, 0));
    ft_free(t);

    /* cat / stack */
    const ft_tensor *two[2] = {a, a};
    OK(ft_cat(two, 2, 0, &t));
    int64_t s64[2] = {6, 4};
    CHECK("cat", shape_is(t, 2, s64));
    double cvals[24];
    OK(ft_copy_to_doubles(t, cvals, 24));
    CHECK("cat_values", cvals[12] == 0 && cvals[23] == 11 && cvals[11] == 11);
    ft_free(t);
    OK(ft_cat(two, 2, 1, &t));
    int64_t s38[2] = {3, 8};
    CHECK("cat_dim1", shape_is(t, 2, s38));
    ft_free(t);
    OK(ft_stack(two, 2, 1, &t));
    int64_t s324[3] = {3, 2, 4};
    CHECK("stack", shape_is(t, 3, s324));
    OK(ft_copy_to_doubles(t, cvals, 24));
    CHECK("stack_values", cvals[4] == 0 && cvals[8] == 4);
    ft_free(t);
    CHECK("cat_empty_list", ft_cat(two, 0, 0, &t) == FT_ERR);

    ft_free(g);
    ft_free(mask);
    ft_free(ix);
    ft_free(a);
}

/* ---------------------------------------------------------------- elementwise */

static double gelu_ref(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }
static double sigmoid_ref(double x) { return 1 / (1 + exp(-x)); }

static double unop_ref(ft_unop op, double x) {
    switch (op) {
    case FT_NEG: return -x;
    case FT_ABS: return fabs(x);
    case FT_EXP: return exp(x);
    case FT_LOG: return log(x);
    case FT_LOG2: return log2(x);
    case FT_LOG1P: return log1p(x);
    case FT_EXPM1: return expm1(x);
    case FT_SQRT: return sqrt(x);
    case FT_RSQRT: return 1 / sqrt(x);
    case FT_SIN: return sin(x);
    case FT_COS: return cos(x);
    case FT_TAN: return tan(x);
    case FT_TANH: return tanh(x);
    case FT_SIGMOID: return sigmoid_ref(x);
    case FT_RELU: return x > 0 ? x : 0;
    case FT_FLOOR: return floor(x);
    case FT_CEIL: return ceil(x);
    case FT_ROUND: return nearbyint(x); /* half to even, like torch */
    case FT_TRUNC: return trunc(x);
    case FT_SIGN: return (x > 0) - (x < 0);
    case FT_RECIPROCAL: return 1 / x;
    case FT_SQUARE: return x * x;
    case FT_LOGICAL_NOT: return x == 0;
    case FT_ISNAN: return isnan(x);
    case FT_ISFINITE: return isfinite(x);
    case FT_ERF: return erf(x);
    case FT_GELU: return gelu_ref(x);
    case FT_SILU: return x * sigmoid_ref(x);
    default: return NAN;
    }
}

static void test_elementwise(void) {
    int64_t s4[1] = {4};
    double av[4] = {1.5, -2, 0.25, 3}, bv[4] = {0.5, 4, -0.75, 2};
    ft_tensor *a = f64(av, s4, 1), *b = f64(bv, s4, 1), *t;

    static const struct {
        ft_binop op;
        const char *name;
    } bops[] = {
        {FT_ADD, "binary_add"},
        {FT_SUB, "binary_sub"},
        {FT_MUL, "binary_mul"},
        {FT_DIV, "binary_div"},
        {FT_POW, "binary_pow"},
        {FT_REMAINDER, "binary_remainder"},
        {FT_MAXIMUM, "binary_maximum"},
        {FT_MINIMUM, "binary_minimum"},
        {FT_ATAN2, "binary_atan2"},
        {FT_EQ, "binary_eq"},
        {FT_NE, "binary_ne"},
        {FT_LT, "binary_lt"},
        {FT_LE, "binary_le"},
        {FT_GT, "binary_gt"},
        {FT_GE, "binary_ge"},
        {FT_LOGICAL_AND, "binary_logical_and"},
        {FT_LOGICAL_OR, "binary_logical_or"},
    };
    double pa[4] = {1.5, 2, 0.25, 3}; /* positive base for pow */
    ft_tensor *ap = f64(pa, s4, 1);
    for (size_t k = 0; k < sizeof bops / sizeof *bops; k++) {
        double want[4];
        const double *x = bops[k].op == FT_POW ? pa : av;
        for (int i = 0; i < 4; i++) {
            double p = x[i], q = bv[i];
            switch (bops[k].op) {
            case FT_ADD: want[i] = p + q; break;
            case FT_SUB: want[i] = p - q; break;
            case FT_MUL: want[i] = p * q; break;
            case FT_DIV: want[i] = p / q; break;
            case FT_POW: want[i] = pow(p, q); break;
            case FT_REMAINDER: want[i] = p - floor(p / q) * q; break; /* Python-style sign */
            case FT_MAXIMUM: want[i] = p > q ? p : q; break;
            case FT_MINIMUM: want[i] = p < q ? p : q; break;
            case FT_ATAN2: want[i] = atan2(p, q); break;
            case FT_EQ: want[i] = p == q; break;
            case FT_NE: want[i] = p != q; break;
            case FT_LT: want[i] = p < q; break;
            case FT_LE: want[i] = p <= q; break;
            case FT_GT: want[i] = p > q; break;
            case FT_GE: want[i] = p >= q; break;
            case FT_LOGICAL_AND: want[i] = p != 0 && q != 0; break;
            case FT_LOGICAL_OR: want[i] = p != 0 || q != 0; break;
            default: want[i] = NAN;
            }
        }
        t = binary(bops[k].op, bops[k].op == FT_POW ? ap : a, b);
        int is_bool = bops[k].op >= FT_EQ;
        CHECK(bops[k].name,
              close_to(t, want, 4, 1e-15) && ft_get_dtype(t) == (is_bool ? FT_BOOL : FT_FLOAT64));
        ft_free(t);
    }
    /* equal values make eq/le/ge true somewhere */
    t = binary(FT_EQ, a, a);
    CHECK("binary_eq_self", close_to(t, (double[]){1, 1, 1, 1}, 4, 0));
    ft_free(t);

    /* Broadcasting: [2,1] + [3] -> [2,3] */
    int64_t s21[2] = {2, 1}, s3[1] = {3};
    ft_tensor *c21 = f64((double[]){10, 20}, s21, 2), *r3 = f64((double[]){1, 2, 3}, s3, 1);
    t = binary(FT_ADD, c21, r3);
    CHECK("broadcast_add", ft_dim(t) == 2 && close_to(t, (double[]){11, 12, 13, 21, 22, 23}, 6, 0));
    ft_free(t);
    ft_free(c21);
    ft_free(r3);
    int64_t s5[1] = {5};
    ft_tensor *five = wave(s5, 1, 0, 1);
    CHECK("broadcast_mismatch_fails", ft_binary(FT_ADD, a, five, &t) == FT_ERR);
    ft_free(five);

    /* Scalars on either side: a - 2, 2 - a, 2 / a, 2 ^ a. */
    OK(ft_binary_scalar(FT_SUB, a, 2, &t));
    CHECK("binary_scalar_sub", close_to(t, (double[]){-0.5, -4, -1.75, 1}, 4, 0));
    ft_free(t);
    OK(ft_scalar_binary(FT_SUB, 2, a, &t));
    CHECK("scalar_binary_sub", close_to(t, (double[]){0.5, 4, 1.75, -1}, 4, 0));
    ft_free(t);
    OK(ft_scalar_binary(FT_DIV, 2, a, &t));
    CHECK("scalar_binary_div", close_to(t, (double[]){2 / 1.5, -1, 8, 2.0 / 3}, 4, 1e-15));
    ft_free(t);
    OK(ft_scalar_binary(FT_POW, 2, a, &t));
    CHECK("scalar_binary_pow",
          close_to(t, (double[]){pow(2, 1.5), 0.25, pow(2, 0.25), 8}, 4, 1e-15));
    ft_free(t);
    OK(ft_scalar_binary(FT_MAXIMUM, 0.5, a, &t));
    CHECK("scalar_binary_maximum", close_to(t, (double[]){1.5, 0.5, 0.5, 3}, 4, 0));
    ft_free(t);
    OK(ft_binary_scalar(FT_ATAN2, a, 1, &t));
    CHECK("binary_scalar_atan2",
          close_to(t, (double[]){atan2(1.5, 1), atan2(-2, 1), atan2(0.25, 1), atan2(3, 1)}, 4,
                   1e-15));
    ft_free(t);
    OK(ft_binary_scalar(FT_LE, a, 1.5, &t));
    CHECK("binary_scalar_le",
          ft_get_dtype(t) == FT_BOOL && close_to(t, (double[]){1, 1, 1, 0}, 4, 0));
    ft_free(t);

    /* Lua numbers promote like Python scalars: int64 + 1 stays int64, float32 * 2 stays float32,
     * int64 + 0.5 becomes the default float type. */
    int64_t iv[3] = {1, 2, 3};
    ft_tensor *ia = i64(iv, s3, 1);
    OK(ft_binary_scalar(FT_ADD, ia, 1, &t));
    CHECK("scalar_int_stays_int",
          ft_get_dtype(t) == FT_INT64 && close_to(t, (double[]){2, 3, 4}, 3, 0));
    ft_free(t);
    OK(ft_binary_scalar(FT_ADD, ia, 0.5, &t));
    CHECK("scalar_float_promotes",
          ft_get_dtype(t) == FT_FLOAT32 && close_to(t, (double[]){1.5, 2.5, 3.5}, 3, 0));
    ft_free(t);
    OK(ft_binary_scalar(FT_DIV, ia, 2, &t));
    CHECK("int_div_is_true_div",
          ft_get_dtype(t) == FT_FLOAT32 && close_to(t, (double[]){0.5, 1, 1.5}, 3, 0));
    ft_free(t);
    float f3[3] = {1, 2, 3};
    ft_tensor *fa = f32(f3, s3, 1);
    OK(ft_binary_scalar(FT_MUL, fa, 2, &t));
    CHECK("scalar_keeps_float32", ft_get_dtype(t) == FT_FLOAT32);
    ft_free(t);
    OK(ft_binary_scalar(FT_MUL, fa, 0.1, &t));
    CHECK("scalar_keeps_float32_frac", ft_get_dtype(t) == FT_FLOAT32);
    ft_free(t);

    /* Scalars outside int64's range (1e300, +-inf, NaN) must stay floating point: the shim
     * checks the range before converting (the conversion itself would be undefined). */
    struct {
        const char *name;
        ft_binop op;
        double v, want;
    } huge[] = {
        {"scalar_1e300_promotes", FT_ADD, 1e300, INFINITY},
        {"scalar_minus_inf_promotes", FT_MUL, -INFINITY, -INFINITY},
        {"scalar_nan_promotes", FT_ADD, NAN, NAN},
        {"scalar_9.3e18_promotes", FT_SUB, 9.3e18, -9.3e18},
    };
    for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
        OK(ft_binary_scalar(huge[k].op, ia, huge[k].v, &t));
        double got[3];
        OK(ft_copy_to_doubles(t, got, 3));
        int same = 1;
        for (int i = 0; i < 3; i++)
            same &= isnan(huge[k].want)   ? isnan(got[i])
                    : isinf(huge[k].want) ? got[i] == huge[k].want
                                          : fabs(got[i] - huge[k].want) <= 1e-6 * 9.3e18;
        CHECK(huge[k].name, ft_get_dtype(t) == FT_FLOAT32 && same);
        ft_free(t);
    }
    double d3[3] = {1, 2, 3};
    ft_tensor *da = f64(d3, s3, 1);
    OK(ft_binary_scalar(FT_ADD, da, 1e300, &t));
    CHECK("scalar_1e300_float64",
          ft_get_dtype(t) == FT_FLOAT64 && close_to(t, (double[]){1e300, 1e300, 1e300}, 3, 1e-15));
    ft_free(t);
    OK(ft_scalar_binary(FT_SUB, -INFINITY, da, &t));
    CHECK("scalar_minus_inf_first",
          ft_get_dtype(t) == FT_FLOAT64 && isinf(item_at(t, 2)) && item_at(t, 2) < 0);
    ft_free(t);
    OK(ft_fill_(da, NAN));
    CHECK("fill_nan", isnan(item_at(da, 0)) && isnan(item_at(da, 2)));
    ft_free(da);
    OK(ft_binary_scalar(FT_ADD, ia, 4611686018427387904.0, &t)); /* 2^62: exact, stays int64 */
    CHECK("scalar_2p62_stays_int", ft_get_dtype(t) == FT_INT64);
    ft_free(t);

    /* In place */
    ft_tensor *c;
    OK(ft_clone(a, &c));
    OK(ft_binary_(FT_MUL, c, b));
    CHECK("binary_inplace", close_to(c, (double[]){0.75, -8, -0.1875, 6}, 4, 0));
    OK(ft_binary_scalar_(FT_ADD, c, 1));
    CHECK("binary_scalar_inplace", close_to(c, (double[]){1.75, -7, 0.8125, 7}, 4, 0));
    OK(ft_binary_(FT_MAXIMUM, c, b));
    CHECK("maximum_inplace", close_to(c, (double[]){1.75, 4, 0.8125, 7}, 4, 0));
    OK(ft_binary_scalar_(FT_MINIMUM, c, 2));
    CHECK("minimum_scalar_inplace", close_to(c, (double[]){1.75, 2, 0.8125, 2}, 4, 0));
    OK(ft_binary_scalar_(FT_GT, c, 1));
    CHECK("compare_inplace_keeps_dtype",
          ft_get_dtype(c) == FT_FLOAT64 && close_to(c, (double[]){1, 1, 0, 1}, 4, 0));
    OK(ft_copy_(c, a));
    OK(ft_add_scaled_(c, b, -2));
    CHECK("add_scaled_", close_to(c, (double[]){0.5, -10, 1.75, -1}, 4, 0));
    OK(ft_copy_(c, a));
    OK(ft_addcmul_(c, a, b, 0.5));
    CHECK("addcmul_", close_to(c, (double[]){1.875, -6, 0.15625, 6}, 4, 1e-15));
    OK(ft_copy_(c, a));
    OK(ft_addcdiv_(c, a, b, 2));
    CHECK("addcdiv_", close_to(c, (double[]){7.5, -3, 0.25 - 2.0 / 3, 6}, 4, 1e-15));
    OK(ft_copy_(c, a));
    OK(ft_lerp_(c, b, 0.25));
    CHECK("lerp_", close_to(c, (double[]){1.25, -0.5, 0, 2.75}, 4, 1e-15));
    ft_free(c);

    /* Every unary op against libm at values inside its domain. */
    double ux[4] = {0.3, 1.7, 2.5, 0.5};
    double sx[4] = {-1.3, 0.2, 2.5, -0.5};
    ft_tensor *pos = f64(ux, s4, 1), *mixed = f64(sx, s4, 1);
    static const char *unames[FT_NUNOPS] = {
        "neg",    "abs",         "exp",   "log",      "log2",  "log1p", "expm1",
        "sqrt",   "rsqrt",       "sin",   "cos",      "tan",   "tanh",  "sigmoid",
        "relu",   "floor",       "ceil",  "round",    "trunc", "sign",  "reciprocal",
        "square", "logical_not", "isnan", "isfinite", "erf",   "gelu",  "silu"};
    for (int op = 0; op < FT_NUNOPS; op++) {
        int needs_pos =
            op == FT_LOG || op == FT_LOG2 || op == FT_LOG1P || op == FT_SQRT || op == FT_RSQRT;
        const double *x = needs_pos ? ux : sx;
        double want[4];
        for (int i = 0; i < 4; i++) want[i] = unop_ref((ft_unop)op, x[i]);
        char name[64];
        snprintf(name, sizeof name, "unary_%s", unames[op]);
        t = unary((ft_unop)op, needs_pos ? pos : mixed);
        CHECK(name, close_to(t, want, 4, 1e-14));
        ft_free(t);
        /* In place gives the same numbers (bool-valued ops are written back as 0/1). */
        OK(ft_clone(needs_pos ? pos : mixed, &c));
        snprintf(name, sizeof name, "unary_inplace_%s", unames[op]);
        CHECK(name, ft_unary_((ft_unop)op, c) == FT_OK && close_to(c, want, 4, 1e-14));
        ft_free(c);
    }
    CHECK("unary_bad_op", ft_unary((ft_unop)99, a, &t) == FT_ERR);
    double nanv[3] = {NAN, INFINITY, 1};
    ft_tensor *nn = f64(nanv, s3, 1);
    t = unary(FT_ISNAN, nn);
    CHECK("isnan", ft_get_dtype(t) == FT_BOOL && close_to(t, (double[]){1, 0, 0}, 3, 0));
    ft_free(t);
    t = unary(FT_ISFINITE, nn);
    CHECK("isfinite", close_to(t, (double[]){0, 0, 1}, 3, 0));
    ft_free(t);
    ft_free(nn);

    /* clamp, where, allclose */
    OK(ft_clamp(mixed, 1, -1, 1, 1, &t));
    CHECK("clamp", close_to(t, (double[]){-1, 0.2, 1, -0.5}, 4, 0));
    ft_free(t);
    OK(ft_clamp(mixed, 0, 0, 1, 0, &t));
    CHECK("clamp_max_only", close_to(t, (double[]){-1.3, 0, 0, -0.5}, 4, 0));
    ft_free(t);
    OK(ft_clamp(mixed, 1, 0, 0, 0, &t));
    CHECK("clamp_min_only", close_to(t, (double[]){0, 0.2, 2.5, 0}, 4, 0));
    ft_free(t);
    CHECK("clamp_no_bounds_fails", ft_clamp(mixed, 0, 0, 0, 0, &t) == FT_ERR);
    ft_tensor *cond = binary(FT_GT, a, b);
    OK(ft_where(cond, a, b, &t));
    CHECK("where", close_to(t, (double[]){1.5, 4, 0.25, 3}, 4, 0));
    ft_free(t);
    int yes = -1;
    ft_tensor *a2;
    OK(ft_binary_scalar(FT_ADD, a, 1e-9, &a2));
    OK(ft_allclose(a, a2, 1e-5, 1e-8, &yes));
    CHECK("allclose_true", yes == 1);
    OK(ft_allclose(a, b, 1e-5, 1e-8, &yes));
    CHECK("allclose_false", yes == 0);
    OK(ft_equal(a, a2, &yes));
    CHECK("equal_false_when_close", yes == 0);
    ft_free(a2);

    ft_free(cond);
    ft_free(pos);
    ft_free(mixed);
    ft_free(fa);
    ft_free(ia);
    ft_free(ap);
    ft_free(a);
    ft_free(b);
}

/* ---------------------------------------------------------------- reductions, matmul */

static void test_reductions(void) {
    int64_t s23[2] = {2, 3};
    double v[6] = {1, -2, 3, 4, 0.5, -6};
    ft_tensor *a = f64(v, s23, 2), *t;
    double sum = 0.5, mean = 0.5 / 6, prod = 1 * -2 * 3 * 4 * 0.5 * -6, ss = 0, sq = 0;
    for (int i = 0; i < 6; i++) {
        ss += (v[i] - mean) * (v[i] - mean);
        sq += v[i] * v[i];
    }
    double var = ss / 5, lse = 0;
    for (int i = 0; i < 6; i++) lse += exp(v[i]);
    lse = log(lse);
    struct {
        ft_reduceop op;
        const char *name;
        double want;
    } all[] = {
        {FT_SUM, "reduce_sum", sum},
        {FT_MEAN, "reduce_mean", mean},
        {FT_PROD, "reduce_prod", prod},
        {FT_MAX, "reduce_max", 4},
        {FT_MIN, "reduce_min", -6},
        {FT_ARGMAX, "reduce_argmax", 3},
        {FT_ARGMIN, "reduce_argmin", 5},
        {FT_STD, "reduce_std", sqrt(var)},
        {FT_VAR, "reduce_var", var},
        {FT_NORM, "reduce_norm", sqrt(sq)},
        {FT_ALL, "reduce_all_", 1},
        {FT_ANY, "reduce_any", 1},
        {FT_LOGSUMEXP, "reduce_logsumexp", lse},
    };
    for (size_t k = 0; k < sizeof all / sizeof *all; k++) {
        t = reduce(all[k].op, a);
        CHECK(all[k].name, ft_dim(t) == 0 && close_to(t, &all[k].want, 1, 1e-14));
        ft_free(t);
    }
    t = reduce(FT_ARGMAX, a);
    CHECK("argmax_int64", ft_get_dtype(t) == FT_INT64);
    ft_free(t);
    CHECK("reduce_all_cumsum_fails", ft_reduce_all(FT_CUMSUM, a, &t) == FT_ERR);

    /* all/any on float, int and bool, through "!= 0" */
    double zv[3] = {0, 2, 0};
    int64_t s3[1] = {3};
    ft_tensor *z = f64(zv, s3, 1);
    t = reduce(FT_ALL, z);
    CHECK("all_float_false", item(t) == 0 && ft_get_dtype(t) == FT_BOOL);
    ft_free(t);
    t = reduce(FT_ANY, z);
    CHECK("any_float_true", item(t) == 1);
    ft_free(t);
    ft_tensor *zi;
    OK(ft_to(z, FT_INT32, FT_CPU, &zi));
    t = reduce(FT_ANY, zi);
    CHECK("any_int32", item(t) == 1);
    ft_free(t);
    ft_free(zi);
    ft_free(z);
    int64_t iv[3] = {1, 2, 3};
    ft_tensor *ia = i64(iv, s3, 1);
    t = reduce(FT_SUM, ia);
    CHECK("sum_int64", ft_get_dtype(t) == FT_INT64 && item(t) == 6);
    ft_free(t);
    ft_free(ia);

    /* Over one dim of [[1,-2,3],[4,0.5,-6]] */
    struct {
        ft_reduceop op;
        int dim;
        const char *name;
        int n;
        double want[3];
    } dims[] = {
        {FT_SUM, 1, "dim_sum", 2, {2, -1.5}},
        {FT_MEAN, 0, "dim_mean", 3, {2.5, -0.75, -1.5}},
        {FT_PROD, 1, "dim_prod", 2, {-6, -12}},
        {FT_MAX, 0, "dim_max", 3, {4, 0.5, 3}},
        {FT_MIN, 1, "dim_min", 2, {-2, -6}},
        {FT_ARGMAX, 1, "dim_argmax", 2, {2, 0}},
        {FT_ARGMIN, 0, "dim_argmin", 3, {0, 0, 1}},
        {FT_VAR, 0, "dim_var", 3, {4.5, 3.125, 40.5}},
        {FT_STD, 0, "dim_std", 3, {sqrt(4.5), sqrt(3.125), sqrt(40.5)}},
        {FT_NORM, 1, "dim_norm", 2, {sqrt(14), sqrt(52.25)}},
        {FT_ALL, 1, "dim_all", 2, {1, 1}},
        {FT_ANY, 0, "dim_any", 3, {1, 1, 1}},
        {FT_LOGSUMEXP,
         1,
         "dim_logsumexp",
         2,
         {log(exp(1) + exp(-2) + exp(3)), log(exp(4) + exp(0.5) + exp(-6))}},
        {FT_SUM, -1, "dim_negative", 2, {2, -1.5}},
    };
    for (size_t k = 0; k < sizeof dims / sizeof *dims; k++) {
        OK(ft_reduce_dim(dims[k].op, a, dims[k].dim, 0, &t));
        CHECK(dims[k].name, ft_dim(t) == 1 && close_to(t, dims[k].want, dims[k].n, 1e-14));
        ft_free(t);
    }
    OK(ft_reduce_dim(FT_MAX, a, 1, 1, &t));
    int64_t s21[2] = {2, 1};
    CHECK("dim_keepdim", shape_is(t, 2, s21) && close_to(t, (double[]){3, 4}, 2, 0));
    ft_free(t);
    OK(ft_reduce_dim(FT_ARGMAX, a, 0, 1, &t));
    int64_t s13[2] = {1, 3};
    CHECK("dim_argmax_keepdim", shape_is(t, 2, s13) && ft_get_dtype(t) == FT_INT64);
    ft_free(t);
    OK(ft_reduce_dim(FT_CUMSUM, a, 1, 0, &t));
    CHECK("dim_cumsum",
          shape_is(t, 2, s23) && close_to(t, (double[]){1, -1, 2, 4, 4.5, -1.5}, 6, 0));
    ft_free(t);
    CHECK("dim_out_of_range",
          ft_reduce_dim(FT_SUM, a, 2, 0, &t) == FT_ERR && strstr(ft_last_error(), "ange") != NULL);
    CHECK("dim_out_of_range_neg", ft_reduce_dim(FT_MAX, a, -3, 0, &t) == FT_ERR);
    CHECK("dim_bad_op", ft_reduce_dim((ft_reduceop)77, a, 0, 0, &t) == FT_ERR);

    /* topk / sort */
    ft_tensor *vals, *idx;
    OK(ft_topk(a, 2, 1, 1, &vals, &idx));
    CHECK("topk_values", close_to(vals, (double[]){3, 1, 4, 0.5}, 4, 0));
    CHECK("topk_indices",
          ft_get_dtype(idx) == FT_INT64 && close_to(idx, (double[]){2, 0, 0, 1}, 4, 0));
    ft_free(vals);
    ft_free(idx);
    OK(ft_topk(a, 1, 0, 0, &vals, &idx));
    CHECK("topk_smallest",
          close_to(vals, (double[]){1, -2, -6}, 3, 0) && close_to(idx, (double[]){0, 0, 1}, 3, 0));
    ft_free(vals);
    ft_free(idx);
    vals = idx = NULL;
    CHECK("topk_k_too_big", ft_topk(a, 4, 1, 1, &vals, &idx) == FT_ERR && !vals && !idx);
    OK(ft_sort(a, 1, 0, &vals, &idx));
    CHECK("sort_values", close_to(vals, (double[]){-2, 1, 3, -6, 0.5, 4}, 6, 0));
    CHECK("sort_indices", close_to(idx, (double[]){1, 0, 2, 2, 1, 0}, 6, 0));
    ft_free(vals);
    ft_free(idx);
    OK(ft_sort(a, 0, 1, &vals, &idx));
    CHECK("sort_descending", close_to(vals, (double[]){4, 0.5, 3, 1, -2, -6}, 6, 0));
    ft_free(vals);
    ft_free(idx);

    /* matmul: [2,3] @ [3,2] */
    int64_t s32[2] = {3, 2};
    ft_tensor *b = f64((double[]){1, 2, 3, 4, 5, 6}, s32, 2);
    OK(ft_matmul(a, b, &t));
    /* row0: 1*1-2*3+3*5 = 10, 1*2-2*4+3*6 = 12; row1: 4+1.5-30 = -24.5, 8+2-36 = -26 */
    int64_t s22[2] = {2, 2};
    CHECK("matmul", shape_is(t, 2, s22) && close_to(t, (double[]){10, 12, -24.5, -26}, 4, 1e-15));
    ft_free(t);
    /* batched: [2,2,3] @ [3,2] */
    const ft_tensor *aa[2] = {a, a};
    ft_tensor *ab;
    OK(ft_stack(aa, 2, 0, &ab));
    OK(ft_matmul(ab, b, &t));
    int64_t s222[3] = {2, 2, 2};
    CHECK("matmul_batched",
          shape_is(t, 3, s222) &&
              close_to(t, (double[]){10, 12, -24.5, -26, 10, 12, -24.5, -26}, 8, 1e-15));
    ft_free(t);
    ft_free(ab);

    /* The error path: a failing call reports, trims the backtrace, and writes nothing. */
    t = (ft_tensor *)&sum;
    ft_status st = ft_matmul(a, a, &t);
    const char *msg = ft_last_error();
    CHECK("error_status", st == FT_ERR);
    CHECK("error_out_untouched", t == (ft_tensor *)&sum);
    CHECK("error_message", msg && strlen(msg) > 0);
    CHECK("error_no_backtrace", !strstr(msg, "Exception raised from") && !strstr(msg, "frame #"));
    printf("# matmul error: %s\n", msg);
    CHECK("error_null_handle", ft_matmul(NULL, a, &t) == FT_ERR && strlen(ft_last_error()) > 0);
    CHECK("error_bad_dtype", ft_empty(s23, 2, (ft_dtype)42, FT_CPU, &t) == FT_ERR);
    CHECK("error_bad_ndim", ft_empty(s23, FT_MAX_DIMS + 1, FT_FLOAT32, FT_CPU, &t) == FT_ERR);
    int64_t neg[2] = {2, -3};
    CHECK("error_negative_size", ft_empty(neg, 2, FT_FLOAT32, FT_CPU, &t) == FT_ERR);

    /* A huge allocation fails cleanly: 2^46 float32 = 256 TiB, beyond any address space. */
    int64_t huge[2] = {INT64_C(1) << 23, INT64_C(1) << 23};
    fflush(stdout); /* keep any allocator warning on stderr off our lines */
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer aborts on absurd sizes unless allowed to return NULL. */
    const char *asan = getenv("ASAN_OPTIONS");
    if (!asan || !strstr(asan, "allocator_may_return_null=1")) {
        SKIP("huge_alloc_fails", "ASan build without allocator_may_return_null=1");
    } else
#endif
    {
        st = ft_empty(huge, 2, FT_FLOAT32, FT_CPU, &t);
        printf("# huge allocation: status %d: %.200s\n", st, ft_last_error());
        CHECK("huge_alloc_fails", st == FT_ERR_OOM || st == FT_ERR);
        CHECK("huge_alloc_is_oom", st == FT_ERR_OOM);
    }
    CHECK("after_oom_still_works", ft_matmul(a, b, &t) == FT_OK);
    ft_free(t);

    ft_free(b);
    ft_free(a);
}

/* ---------------------------------------------------------------- random */

static void test_random(void) {
    int64_t s5[1] = {5}, s100[1] = {100};
    ft_tensor *x, *y;
    OK(ft_manual_seed(42));
    OK(ft_randn(s5, 1, FT_FLOAT32, FT_CPU, &x));
    OK(ft_manual_seed(42));
    OK(ft_randn(s5, 1, FT_FLOAT32, FT_CPU, &y));
    int eq = 0;
    OK(ft_equal(x, y, &eq));
    CHECK("seed_reproducible", eq == 1);
    expect_py("randn_seed42", x, 1e-12);
    py("torch.manual_seed(42); out('randn_seed42', torch.randn(5))");
    ft_free(y);
    OK(ft_randn(s5, 1, FT_FLOAT32, FT_CPU, &y));
    OK(ft_equal(x, y, &eq));
    CHECK("seed_advances", eq == 0);
    ft_free(x);
    ft_free(y);
    OK(ft_manual_seed(7));
    OK(ft_rand(s100, 1, FT_FLOAT64, FT_CPU, &x));
    expect_py("rand_seed7", x, 1e-15);
    py("torch.manual_seed(7); out('rand_seed7', torch.rand(100, dtype=torch.float64))");
    double v[100];
    OK(ft_copy_to_doubles(x, v, 100));
    int inr = 1;
    for (int i = 0; i < 100; i++) inr &= v[i] >= 0 && v[i] < 1;
    CHECK("rand_range", inr);
    ft_free(x);

    int64_t big[1] = {20000};
    OK(ft_empty(big, 1, FT_FLOAT64, FT_CPU, &x));
    OK(ft_uniform_(x, -2, 3));
    ft_tensor *mn = reduce(FT_MIN, x), *mx = reduce(FT_MAX, x), *me = reduce(FT_MEAN, x), *sd;
    CHECK("uniform_range", item(mn) >= -2 && item(mx) < 3 && fabs(item(me) - 0.5) < 0.05);
    ft_free(mn);
    ft_free(mx);
    ft_free(me);
    OK(ft_normal_(x, 1, 2));
    me = reduce(FT_MEAN, x);
    sd = reduce(FT_STD, x);
    /* 20000 samples: mean within 5 sigma/sqrt(n) = 0.07, std within ~3% */
    CHECK("normal_moments", fabs(item(me) - 1) < 0.07 && fabs(item(sd) - 2) < 0.06);
    ft_free(me);
    ft_free(sd);
    OK(ft_fill_(x, 1));
    OK(ft_bernoulli(x, &y));
    me = reduce(FT_MIN, y);
    CHECK("bernoulli_one", item(me) == 1);
    ft_free(me);
    ft_free(y);
    OK(ft_fill_(x, 0.3));
    OK(ft_bernoulli(x, &y));
    me = reduce(FT_MEAN, y);
    CHECK("bernoulli_mean", fabs(item(me) - 0.3) < 0.02);
    ft_free(me);
    ft_free(y);
    ft_free(x);

    /* kaiming_normal_: std = gain / sqrt(fan); weight [out=64, in=32, 3, 3]. */
    int64_t ws[4] = {64, 32, 3, 3};
    OK(ft_empty(ws, 4, FT_FLOAT32, FT_CPU, &x));
    OK(ft_kaiming_normal_(x, 0, 1, 1)); /* relu gain sqrt(2), fan_in = 32*9 */
    sd = reduce(FT_STD, x);
    double want = sqrt(2.0 / (32 * 9));
    CHECK("kaiming_fan_in_relu", fabs(item(sd) / want - 1) < 0.03);
    ft_free(sd);
    OK(ft_kaiming_normal_(x, 0, 0, 1)); /* fan_out = 64*9 */
    sd = reduce(FT_STD, x);
    want = sqrt(2.0 / (64 * 9));
    CHECK("kaiming_fan_out", fabs(item(sd) / want - 1) < 0.03);
    ft_free(sd);
    OK(ft_kaiming_normal_(x, 1, 1, 0)); /* leaky_relu, a=1: gain sqrt(2/(1+1)) = 1 */
    sd = reduce(FT_STD, x);
    want = sqrt(1.0 / (32 * 9));
    CHECK("kaiming_leaky", fabs(item(sd) / want - 1) < 0.03);
    ft_free(sd);
    ft_free(x);
}

/* ---------------------------------------------------------------- NN ops against PyTorch */

static void test_nn(void) {
    static const int64_t one[2] = {1, 1}, two[2] = {2, 2}, zero[2] = {0, 0};
    ft_tensor *t;

    /* conv2d: x [2,4,7,6], w [6,2,3,3] (groups 2), stride 2, padding 1, dilation 1 */
    int64_t xs[4] = {2, 4, 7, 6}, wsz[4] = {6, 2, 3, 3}, bs[1] = {6};
    ft_tensor *x = wave(xs, 4, 0.1, 1), *w = wave(wsz, 4, 0.7, 0.5), *b = wave(bs, 1, 2, 1);
    py_tensor("x", x);
    py_tensor("w", w);
    py_tensor("b", b);
    OK(ft_conv2d(x, w, b, two, one, one, 2, &t));
    expect_py("conv2d", t, 1e-12);
    py("out('conv2d', F.conv2d(x, w, b, stride=2, padding=1, groups=2))");
    ft_free(t);
    /* no bias, dilation 2, float32 */
    int64_t w2s[4] = {3, 4, 3, 3};
    ft_tensor *w2 = wave(w2s, 4, 1.1, 0.3), *x32, *w32;
    OK(ft_to(x, FT_FLOAT32, FT_CPU, &x32));
    OK(ft_to(w2, FT_FLOAT32, FT_CPU, &w32));
    py_tensor("w2", w2);
    OK(ft_conv2d(x32, w32, NULL, one, two, two, 1, &t));
    CHECK("conv2d_float32_dtype", ft_get_dtype(t) == FT_FLOAT32);
    expect_py("conv2d_float32_dilated", t, 1e-5);
    py("out('conv2d_float32_dilated', F.conv2d(x.float(), w2.float(), None, stride=1, padding=2, dilation=2))");
    ft_free(t);
    CHECK("conv2d_bad_channels", ft_conv2d(x, w2, NULL, one, one, one, 2, &t) == FT_ERR);
    ft_free(x32);
    ft_free(w32);
    ft_free(w2);

    /* linear: x [3,5], w [4,5], b [4] */
    int64_t lxs[2] = {3, 5}, lws[2] = {4, 5}, lbs[1] = {4};
    ft_tensor *lx = wave(lxs, 2, 0.3, 1), *lw = wave(lws, 2, 1.9, 1), *lb = wave(lbs, 1, 0.2, 1);
    py_tensor("lx", lx);
    py_tensor("lw", lw);
    py_tensor("lb", lb);
    OK(ft_linear(lx, lw, lb, &t));
    expect_py("linear", t, 1e-13);
    py("out('linear', F.linear(lx, lw, lb))");
    ft_free(t);
    OK(ft_linear(lx, lw, NULL, &t));
    expect_py("linear_nobias", t, 1e-13);
    py("out('linear_nobias', F.linear(lx, lw))");
    ft_free(t);
    ft_free(lx);
    ft_free(lw);
    ft_free(lb);

    /* pooling on x [2,4,7,6] */
    static const int64_t k3[2] = {3, 3}, k2[2] = {2, 2}, o32[2] = {3, 2};
    OK(ft_max_pool2d(x, k3, two, one, 0, &t));
    expect_py("max_pool2d", t, 0);
    py("out('max_pool2d', F.max_pool2d(x, 3, 2, 1))");
    ft_free(t);
    OK(ft_max_pool2d(x, k2, two, zero, 1, &t));
    expect_py("max_pool2d_ceil", t, 0);
    py("out('max_pool2d_ceil', F.max_pool2d(x, 2, 2, 0, ceil_mode=True))");
    ft_free(t);
    OK(ft_avg_pool2d(x, k3, two, one, 1, &t));
    expect_py("avg_pool2d_ceil_pad", t, 1e-14);
    py("out('avg_pool2d_ceil_pad', F.avg_pool2d(x, 3, 2, 1, ceil_mode=True))");
    ft_free(t);
    OK(ft_adaptive_avg_pool2d(x, o32, &t));
    expect_py("adaptive_avg_pool2d", t, 1e-14);
    py("out('adaptive_avg_pool2d', F.adaptive_avg_pool2d(x, (3, 2)))");
    ft_free(t);
    OK(ft_adaptive_max_pool2d(x, o32, &t));
    expect_py("adaptive_max_pool2d", t, 0);
    py("out('adaptive_max_pool2d', F.adaptive_max_pool2d(x, (3, 2)))");
    ft_free(t);

    /* softmax family, losses: logits [4,5], target [4] */
    int64_t zs[2] = {4, 5}, ts[1] = {4}, cws[1] = {5};
    ft_tensor *z = wave(zs, 2, 0.4, 3), *tg = i64((int64_t[]){2, 0, 4, 1}, ts, 1);
    ft_tensor *cw = f64((double[]){1, 2, 0.5, 1, 3}, cws, 1);
    py_tensor("z", z);
    py_tensor("tg", tg);
    py_tensor("cw", cw);
    OK(ft_softmax(z, 1, &t));
    expect_py("softmax", t, 1e-14);
    py("out('softmax', F.softmax(z, 1))");
    ft_free(t);
    OK(ft_softmax(z, 0, &t));
    expect_py("softmax_dim0", t, 1e-14);
    py("out('softmax_dim0', F.softmax(z, 0))");
    ft_free(t);
    OK(ft_log_softmax(z, -1, &t));
    expect_py("log_softmax", t, 1e-14);
    py("out('log_softmax', F.log_softmax(z, -1))");
    ft_tensor *logp = t;
    OK(ft_cross_entropy(z, tg, NULL, FT_REDUCE_MEAN, 0, &t));
    CHECK("cross_entropy_0dim", ft_dim(t) == 0);
    expect_py("cross_entropy", t, 1e-14);
    py("out('cross_entropy', F.cross_entropy(z, tg))");
    ft_free(t);
    OK(ft_cross_entropy(z, tg, cw, FT_REDUCE_MEAN, 0.1, &t));
    expect_py("cross_entropy_weight_smooth", t, 1e-14);
    py("out('cross_entropy_weight_smooth', F.cross_entropy(z, tg, weight=cw, label_smoothing=0.1))");
    ft_free(t);
    OK(ft_cross_entropy(z, tg, NULL, FT_REDUCE_NONE, 0, &t));
    expect_py("cross_entropy_none", t, 1e-14);
    py("out('cross_entropy_none', F.cross_entropy(z, tg, reduction='none'))");
    ft_free(t);
    OK(ft_cross_entropy(z, tg, NULL, FT_REDUCE_SUM, 0, &t));
    expect_py("cross_entropy_sum", t, 1e-14);
    py("out('cross_entropy_sum', F.cross_entropy(z, tg, reduction='sum'))");
    ft_free(t);
    CHECK("cross_entropy_bad_reduction",
          ft_cross_entropy(z, tg, NULL, (ft_reduction)5, 0, &t) == FT_ERR);
    OK(ft_nll_loss(logp, tg, FT_REDUCE_MEAN, &t));
    expect_py("nll_loss", t, 1e-14);
    py("out('nll_loss', F.nll_loss(F.log_softmax(z, -1), tg))");
    ft_free(t);
    ft_tensor *z2 = wave(zs, 2, 2.2, 1);
    py_tensor("z2", z2);
    OK(ft_mse_loss(z, z2, FT_REDUCE_MEAN, &t));
    expect_py("mse_loss", t, 1e-14);
    py("out('mse_loss', F.mse_loss(z, z2))");
    ft_free(t);
    OK(ft_mse_loss(z, z2, FT_REDUCE_NONE, &t));
    expect_py("mse_loss_none", t, 1e-14);
    py("out('mse_loss_none', F.mse_loss(z, z2, reduction='none'))");
    ft_free(t);
    /* multi-label: targets in {0,1} as float, per-class pos_weight */
    ft_tensor *mt;
    OK(ft_binary_scalar(FT_GT, z2, 0, &t));
    OK(ft_to(t, FT_FLOAT64, FT_CPU, &mt));
    ft_free(t);
    py_tensor("mt", mt);
    OK(ft_bce_with_logits(z, mt, NULL, NULL, FT_REDUCE_MEAN, &t));
    expect_py("bce_with_logits", t, 1e-14);
    py("out('bce_with_logits', F.binary_cross_entropy_with_logits(z, mt))");
    ft_free(t);
    OK(ft_bce_with_logits(z, mt, NULL, cw, FT_REDUCE_NONE, &t));
    expect_py("bce_with_logits_pos_weight", t, 1e-14);
    py("out('bce_with_logits_pos_weight', F.binary_cross_entropy_with_logits(z, mt, pos_weight=cw, reduction='none'))");
    ft_free(t);
    ft_free(mt);
    /* layer_norm over the last dim, with and without affine parameters */
    int64_t ln[1] = {5};
    OK(ft_layer_norm(z, ln, 1, cw, cw, 1e-5, &t));
    expect_py("layer_norm", t, 1e-12);
    py("out('layer_norm', F.layer_norm(z, [5], cw, cw, 1e-5))");
    ft_free(t);
    OK(ft_layer_norm(z, zs, 2, NULL, NULL, 1e-5, &t));
    expect_py("layer_norm_2d", t, 1e-12);
    py("out('layer_norm_2d', F.layer_norm(z, [4, 5]))");
    ft_free(t);
    ft_free(z2);
    ft_free(logp);
    ft_free(cw);
    ft_free(tg);
    ft_free(z);

    /* grid_sample / affine_grid: img [1,2,5,6], grid [1,3,4,2] partly outside [-1,1] */
    int64_t is[4] = {1, 2, 5, 6}, gs[4] = {1, 3, 4, 2};
    ft_tensor *img = wave(is, 4, 0.9, 1), *grid = wave(gs, 4, 0.5, 1.2);
    py_tensor("img", img);
    py_tensor("grid", grid);
    static const struct {
        ft_interp m;
        ft_padding_mode p;
        int ac;
        const char *name, *pm, *pp;
    } gsv[] = {
        {FT_INTERP_BILINEAR, FT_PAD_ZEROS, 0, "grid_sample_bilinear_zeros", "bilinear", "zeros"},
        {FT_INTERP_BILINEAR, FT_PAD_BORDER, 1, "grid_sample_bilinear_border_ac", "bilinear",
         "border"},
        {FT_INTERP_NEAREST, FT_PAD_REFLECTION, 0, "grid_sample_nearest_reflection", "nearest",
         "reflection"},
        {FT_INTERP_BICUBIC, FT_PAD_ZEROS, 0, "grid_sample_bicubic", "bicubic", "zeros"},
        {FT_INTERP_BICUBIC, FT_PAD_REFLECTION, 1, "grid_sample_bicubic_reflection_ac", "bicubic",
         "reflection"},
    };
    for (size_t k = 0; k < sizeof gsv / sizeof *gsv; k++) {
        OK(ft_grid_sample(img, grid, gsv[k].m, gsv[k].p, gsv[k].ac, &t));
        expect_py(gsv[k].name, t, 1e-12);
        py("out('%s', F.grid_sample(img, grid, mode='%s', padding_mode='%s', align_corners=%s))",
           gsv[k].name, gsv[k].pm, gsv[k].pp, gsv[k].ac ? "True" : "False");
        ft_free(t);
    }
    int64_t th_s[3] = {1, 2, 3};
    ft_tensor *theta = f64((double[]){0.9, -0.2, 0.1, 0.3, 1.1, -0.05}, th_s, 3);
    py_tensor("theta", theta);
    int64_t size[4] = {1, 2, 4, 5};
    OK(ft_affine_grid(theta, size, 0, &t));
    int64_t gsh[4] = {1, 4, 5, 2};
    CHECK("affine_grid_shape", shape_is(t, 4, gsh));
    expect_py("affine_grid", t, 1e-14);
    py("out('affine_grid', F.affine_grid(theta, [1, 2, 4, 5], align_corners=False))");
    ft_tensor *sampled;
    OK(ft_grid_sample(img, t, FT_INTERP_BILINEAR, FT_PAD_ZEROS, 0, &sampled));
    expect_py("affine_then_sample", sampled, 1e-12);
    py("out('affine_then_sample', F.grid_sample(img, F.affine_grid(theta, [1,2,4,5], align_corners=False), align_corners=False))");
    ft_free(sampled);
    ft_free(t);
    OK(ft_affine_grid(theta, size, 1, &t));
    expect_py("affine_grid_ac", t, 1e-14);
    py("out('affine_grid_ac', F.affine_grid(theta, [1, 2, 4, 5], align_corners=True))");
    ft_free(t);
    ft_free(theta);
    ft_free(grid);

    /* interpolate img [1,2,5,6]: up, down, antialiased down */
    static const struct {
        int64_t hw[2];
        ft_interp m;
        int ac, aa;
        const char *name, *py;
    } iv[] = {
        {{9, 11},
         FT_INTERP_BILINEAR,
         0,
         0,
         "interp_bilinear_up",
         "mode='bilinear', align_corners=False"},
        {{9, 11},
         FT_INTERP_BILINEAR,
         1,
         0,
         "interp_bilinear_up_ac",
         "mode='bilinear', align_corners=True"},
        {{3, 4},
         FT_INTERP_BILINEAR,
         0,
         0,
         "interp_bilinear_down",
         "mode='bilinear', align_corners=False"},
        {{3, 2},
         FT_INTERP_BILINEAR,
         0,
         1,
         "interp_bilinear_aa",
         "mode='bilinear', align_corners=False, antialias=True"},
        {{2, 3},
         FT_INTERP_BICUBIC,
         0,
         1,
         "interp_bicubic_aa",
         "mode='bicubic', align_corners=False, antialias=True"},
        {{8, 7},
         FT_INTERP_BICUBIC,
         0,
         0,
         "interp_bicubic_up",
         "mode='bicubic', align_corners=False"},
        {{8, 7},
         FT_INTERP_BICUBIC,
         1,
         0,
         "interp_bicubic_up_ac",
         "mode='bicubic', align_corners=True"},
        {{8, 4}, FT_INTERP_NEAREST, 0, 0, "interp_nearest", "mode='nearest'"},
        {{3, 3}, FT_INTERP_NEAREST, 0, 1, "interp_nearest_ignores_aa", "mode='nearest'"},
    };
    for (size_t k = 0; k < sizeof iv / sizeof *iv; k++) {
        OK(ft_interpolate(img, iv[k].hw, iv[k].m, iv[k].ac, iv[k].aa, &t));
        char name[64];
        snprintf(name, sizeof name, "%s_shape", iv[k].name);
        CHECK(name, ft_size(t, 2) == iv[k].hw[0] && ft_size(t, 3) == iv[k].hw[1]);
        expect_py(iv[k].name, t, 1e-12);
        py("out('%s', F.interpolate(img, size=(%d, %d), %s))", iv[k].name, (int)iv[k].hw[0],
           (int)iv[k].hw[1], iv[k].py);
        ft_free(t);
    }
    /* Antialiasing a shrink must differ from plain bilinear (else the flag did nothing). */
    ft_tensor *p1, *p2;
    OK(ft_interpolate(img, iv[3].hw, FT_INTERP_BILINEAR, 0, 0, &p1));
    OK(ft_interpolate(img, iv[3].hw, FT_INTERP_BILINEAR, 0, 1, &p2));
    int same = 1;
    OK(ft_allclose(p1, p2, 1e-6, 1e-9, &same));
    CHECK("interp_antialias_differs", same == 0);
    ft_free(p1);
    ft_free(p2);
    ft_free(img);

    /* batch_norm in training mode updates running stats; eval uses them; NULL stats work. */
    int64_t bxs[4] = {3, 4, 2, 3}, cs[1] = {4};
    ft_tensor *bx = wave(bxs, 4, 0.2, 2), *gamma = wave(cs, 1, 1.0, 1), *beta = wave(cs, 1, 3.0, 1);
    ft_tensor *rm, *rv;
    OK(ft_full(cs, 1, 0, FT_FLOAT64, FT_CPU, &rm));
    OK(ft_full(cs, 1, 1, FT_FLOAT64, FT_CPU, &rv));
    py_tensor("bx", bx);
    py_tensor("gamma", gamma);
    py_tensor("beta", beta);
    py("rm = torch.zeros(4, dtype=torch.float64); rv = torch.ones(4, dtype=torch.float64)");
    OK(ft_batch_norm(bx, gamma, beta, rm, rv, 1, 0.1, 1e-5, &t));
    expect_py("batch_norm_train", t, 1e-12);
    expect_py("batch_norm_running_mean", rm, 1e-14);
    expect_py("batch_norm_running_var", rv, 1e-14);
    py("out('batch_norm_train', F.batch_norm(bx, rm, rv, gamma, beta, training=True, momentum=0.1, eps=1e-5))");
    py("out('batch_norm_running_mean', rm); out('batch_norm_running_var', rv)");
    ft_free(t);
    OK(ft_batch_norm(bx, gamma, beta, rm, rv, 0, 0.1, 1e-5, &t));
    expect_py("batch_norm_eval", t, 1e-12);
    py("out('batch_norm_eval', F.batch_norm(bx, rm, rv, gamma, beta, training=False, eps=1e-5))");
    ft_free(t);
    OK(ft_batch_norm(bx, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5, &t));
    expect_py("batch_norm_no_stats", t, 1e-12);
    py("out('batch_norm_no_stats', F.batch_norm(bx, None, None, training=True, eps=1e-5))");
    /* independent check: per-channel mean 0 of the normalised output */
    ft_tensor *perm_t, *flat;
    int64_t pm[4] = {1, 0, 2, 3}, fl[2] = {4, -1};
    OK(ft_permute(t, pm, 4, &perm_t));
    OK(ft_reshape(perm_t, fl, 2, &flat));
    ft_tensor *cm;
    OK(ft_reduce_dim(FT_MEAN, flat, 1, 0, &cm));
    CHECK("batch_norm_zero_mean", close_to(cm, (double[]){0, 0, 0, 0}, 4, 1e-12));
    ft_free(cm);
    ft_free(flat);
    ft_free(perm_t);
    ft_free(t);
    ft_free(rm);
    ft_free(rv);
    ft_free(gamma);
    ft_free(beta);
    ft_free(bx);

    /* dropout: eval is identity; training zeroes or scales by 1/(1-p) */
    OK(ft_dropout(x, 0.5, 0, &t));
    int eq = 0;
    OK(ft_equal(t, x, &eq));
    CHECK("dropout_eval_identity", eq == 1);
    ft_free(t);
    OK(ft_dropout(x, 0.5, 1, &t));
    int64_t n = ft_numel(x);
    double *xv = malloc((size_t)n * sizeof *xv), *dv = malloc((size_t)n * sizeof *dv);
    OK(ft_copy_to_doubles(x, xv, n));
    OK(ft_copy_to_doubles(t, dv, n));
    int good = 1, zeros = 0;
    for (int64_t i = 0; i < n; i++) {
        if (dv[i] == 0)
            zeros++;
        else
            good &= fabs(dv[i] - 2 * xv[i]) < 1e-14;
    }
    CHECK("dropout_train", good && zeros > n / 4 && zeros < 3 * n / 4);
    free(xv);
    free(dv);
    ft_free(t);

    ft_free(x);
    ft_free(w);
    ft_free(b);
}

/* ---------------------------------------------------------------- autograd */

/* f(x) = sum(tanh(W x + c) * x_rep) with float64; W [3,4], x [4] -> through matmul, tanh, mul. */
static double composite(const ft_tensor *W, const ft_tensor *x, ft_tensor **out_graph) {
    ft_tensor *wx, *th, *sq, *s, *x3;
    OK(ft_matmul(W, x, &wx)); /* [3] */
    OK(ft_binary_scalar(FT_ADD, wx, 0.3, &th));
    ft_free(wx);
    wx = unary(FT_TANH, th);
    ft_free(th);
    OK(ft_narrow(x, 0, 1, 3, &x3)); /* x[1:4] */
    sq = binary(FT_MUL, wx, x3);
    OK(ft_reduce_all(FT_SUM, sq, &s));
    ft_tensor *e = unary(FT_EXP, s); /* a final nonlinearity */
    double v = item(e);
    ft_free(wx);
    ft_free(x3);
    ft_free(sq);
    ft_free(s);
    if (out_graph)
        *out_graph = e;
    else
        ft_free(e);
    return v;
}

static void test_autograd(void) {
    int64_t s3[1] = {3};
    double xv[3] = {1.5, -2, 0.5};
    ft_tensor *x = f64(xv, s3, 1), *g = NULL, *y, *s;
    OK(ft_grad(x, &g));
    CHECK("grad_undefined_is_null", g == NULL);
    OK(ft_set_requires_grad(x, 1));
    CHECK("requires_grad", ft_requires_grad(x) && ft_is_leaf(x));
    y = binary(FT_MUL, x, x);
    CHECK("nonleaf", !ft_is_leaf(y) && ft_requires_grad(y));
    s = reduce(FT_SUM, y);
    OK(ft_backward(s, NULL, 1));
    OK(ft_grad(x, &g));
    CHECK("grad_x_squared", g && close_to(g, (double[]){3, -4, 1}, 3, 0));
    ft_free(g);
    OK(ft_backward(s, NULL, 0)); /* retained graph: a second pass accumulates */
    OK(ft_grad(x, &g));
    CHECK("grad_accumulates", g && close_to(g, (double[]){6, -8, 2}, 3, 0));
    ft_free(g);
    CHECK("backward_freed_graph_fails", ft_backward(s, NULL, 0) == FT_ERR);
    CHECK("backward_nonscalar_needs_grad", ft_backward(y, NULL, 0) == FT_ERR);
    OK(ft_set_grad(x, NULL));
    OK(ft_grad(x, &g));
    CHECK("set_grad_null_clears", g == NULL);
    /* backward with an explicit gradient on a non-scalar */
    ft_tensor *y2 = binary(FT_MUL, x, x);
    ft_tensor *go = f64((double[]){1, 0.5, -1}, s3, 1);
    OK(ft_backward(y2, go, 0));
    OK(ft_grad(x, &g));
    CHECK("backward_with_grad", g && close_to(g, (double[]){3, -2, -1}, 3, 0));
    ft_free(g);
    OK(ft_set_grad(x, go));
    OK(ft_grad(x, &g));
    CHECK("set_grad", g && close_to(g, (double[]){1, 0.5, -1}, 3, 0));
    ft_free(g);
    int64_t s2[1] = {2};
    ft_tensor *wrong = f64((double[]){1, 2}, s2, 1);
    CHECK("set_grad_shape_mismatch", ft_set_grad(x, wrong) == FT_ERR);
    ft_free(wrong);
    ft_free(go);
    ft_free(y2);
    ft_free(s);
    ft_free(y);

    /* grad mode off: results do not require grad */
    CHECK("grad_enabled_default", ft_grad_enabled() == 1);
    ft_set_grad_enabled(0);
    y = binary(FT_MUL, x, x);
    CHECK("no_grad_mode", !ft_requires_grad(y) && ft_grad_enabled() == 0);
    ft_free(y);
    ft_set_grad_enabled(1);
    ft_tensor *dx;
    OK(ft_detach(x, &dx));
    CHECK("detach_no_grad", !ft_requires_grad(dx));
    ft_free(dx);
    int64_t is3[1] = {3};
    ft_tensor *ints = i64((int64_t[]){1, 2, 3}, is3, 1);
    CHECK("requires_grad_int_fails", ft_set_requires_grad(ints, 1) == FT_ERR);
    ft_free(ints);
    ft_free(x);

    /* Finite differences on a composite function (central, h = 1e-6, float64). */
    int64_t ws[2] = {3, 4}, xs[1] = {4};
    ft_tensor *W = wave(ws, 2, 0.3, 0.7), *x4 = wave(xs, 1, 1.1, 1), *e;
    OK(ft_set_requires_grad(x4, 1));
    OK(ft_set_requires_grad(W, 1));
    composite(W, x4, &e);
    OK(ft_backward(e, NULL, 0));
    ft_tensor *gx, *gw;
    OK(ft_grad(x4, &gx));
    OK(ft_grad(W, &gw));
    ft_free(e);
    double an_x[4], an_w[12], base[4], wbase[12];
    OK(ft_copy_to_doubles(gx, an_x, 4));
    OK(ft_copy_to_doubles(gw, an_w, 12));
    ft_free(gx);
    ft_free(gw);
    ft_set_grad_enabled(0);
    OK(ft_copy_to_doubles(x4, base, 4));
    OK(ft_copy_to_doubles(W, wbase, 12));
    const double h = 1e-6;
    int good = 1;
    for (int i = 0; i < 4; i++) {
        double p[4];
        memcpy(p, base, sizeof p);
        p[i] += h;
        ft_tensor *xp = f64(p, xs, 1);
        double fp = composite(W, xp, NULL);
        ft_free(xp);
        p[i] -= 2 * h;
        ft_tensor *xm = f64(p, xs, 1);
        double fm = composite(W, xm, NULL);
        ft_free(xm);
        double num = (fp - fm) / (2 * h);
        if (fabs(num - an_x[i]) > 1e-6 * (1 + fabs(num))) {
            printf("# d/dx[%d]: numeric %.10g, autograd %.10g\n", i, num, an_x[i]);
            good = 0;
        }
    }
    CHECK("finite_diff_x", good);
    good = 1;
    for (int i = 0; i < 12; i++) {
        double p[12];
        memcpy(p, wbase, sizeof p);
        p[i] += h;
        ft_tensor *wp = f64(p, ws, 2);
        double fp = composite(wp, x4, NULL);
        ft_free(wp);
        p[i] -= 2 * h;
        ft_tensor *wm = f64(p, ws, 2);
        double fm = composite(wm, x4, NULL);
        ft_free(wm);
        double num = (fp - fm) / (2 * h);
        if (fabs(num - an_w[i]) > 1e-6 * (1 + fabs(num))) {
            printf("# d/dW[%d]: numeric %.10g, autograd %.10g\n", i, num, an_w[i]);
            good = 0;
        }
    }
    CHECK("finite_diff_W", good);
    ft_set_grad_enabled(1);
    ft_free(W);
    ft_free(x4);

    /* NN ops are differentiable too: d/dz cross_entropy(z, t) vs PyTorch. */
    int64_t zs[2] = {2, 3}, ts[1] = {2};
    ft_tensor *z = wave(zs, 2, 0.6, 2), *tg = i64((int64_t[]){1, 2}, ts, 1), *loss, *gz;
    py_tensor("gz_in", z);
    OK(ft_set_requires_grad(z, 1));
    OK(ft_cross_entropy(z, tg, NULL, FT_REDUCE_MEAN, 0.05, &loss));
    OK(ft_backward(loss, NULL, 0));
    OK(ft_grad(z, &gz));
    expect_py("cross_entropy_grad", gz, 1e-14);
    py("gz_in.requires_grad_(); F.cross_entropy(gz_in, torch.tensor([1, 2]), label_smoothing=0.05).backward(); out('cross_entropy_grad', gz_in.grad)");
    ft_free(gz);
    ft_free(loss);
    ft_free(tg);
    ft_free(z);
}

int main(void) {
    test_runtime();
    test_creation();
    test_views();
    test_elementwise();
    test_reductions();
    test_random();
    test_nn();
    test_autograd();
    run_python_checks();
    free(py_src);
    return check_exit();
}
