/* test_safetensors.c: the safetensors reader and writer (runtime/io/safetensors.c).
 *
 * References: tests/py/safetensors_ref.py (an independent Python writer/reader, with torch for
 * the dtype bytes), exact expected messages written by hand, and byte-level invariants.
 * Tensor values follow the formula shared with the Python reference (formula() there). */
#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "io/atomic.h"
#include "io/safetensors.h"

static char tdir[64];   /* this run's scratch directory */
static char py[512];    /* "/usr/bin/python3 ROOT/tests/py/safetensors_ref.py", or "" */
static char no_py[600]; /* why the Python checks are skipped */

/* ---------------------------------------------------------------- values */

/* float32 -> float16 bits, for values that are exact in float16 (all formula values are). */
static uint16_t tv_f16(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    uint16_t sign = (uint16_t)(b >> 16 & 0x8000);
    if ((b & 0x7fffffff) == 0) return sign;
    int e = (int)(b >> 23 & 0xff) - 127 + 15;
    return (uint16_t)(sign | (uint16_t)(e << 10) | (uint16_t)(b >> 13 & 0x3ff));
}

/* Element i of a formula tensor, as little-endian bytes (the host is little-endian). */
static void tv_encode(ft_dtype dt, int64_t i, uint8_t *dst) {
    double f = (double)(i % 17) * 0.25 - 2.0;
    float f32 = (float)f;
    uint32_t bits;
    switch (dt) {
    case FT_FLOAT32: memcpy(dst, &f32, 4); break;
    case FT_FLOAT64: memcpy(dst, &f, 8); break;
    case FT_FLOAT16: {
        uint16_t h = tv_f16(f32);
        memcpy(dst, &h, 2);
    } break;
    case FT_BFLOAT16:
        memcpy(&bits, &f32, 4);
        {
            uint16_t h = (uint16_t)(bits >> 16);
            memcpy(dst, &h, 2);
        }
        break;
    case FT_INT8: {
        int8_t v = (int8_t)((i % 11) * 3 - 15);
        memcpy(dst, &v, 1);
    } break;
    case FT_INT16: {
        int16_t v = (int16_t)((i % 11) * 3000 - 15000);
        memcpy(dst, &v, 2);
    } break;
    case FT_INT32: {
        int32_t v = (int32_t)((i % 11) * 100000000 - 500000000);
        memcpy(dst, &v, 4);
    } break;
    case FT_INT64: {
        int64_t v = ((i % 11) - 5) * ((int64_t)1 << 40) + i;
        memcpy(dst, &v, 8);
    } break;
    case FT_UINT8: dst[0] = (uint8_t)((i * 37) % 256); break;
    case FT_BOOL: dst[0] = i % 3 == 0; break;
    default: break;
    }
}

typedef struct {
    const char *name;
    ft_dtype dtype;
    int ndim;
    int64_t shape[FT_MAX_DIMS];
} spec;

/* The tensors used for round trips and the Python cross-check: every dtype, a scalar, an
 * empty tensor, 16 dims, and names that need JSON escapes or are not ASCII. */
static const spec SPEC[] = {
    {"w", FT_FLOAT32, 2, {2, 3}},
    {"d", FT_FLOAT64, 1, {4}},
    {"h", FT_FLOAT16, 2, {3, 1}},
    {"bf", FT_BFLOAT16, 1, {5}},
    {"l", FT_INT64, 2, {2, 2}},
    {"i", FT_INT32, 1, {3}},
    {"s", FT_INT16, 1, {2}},
    {"c", FT_INT8, 1, {7}},
    {"u", FT_UINT8, 1, {10}},
    {"m", FT_BOOL, 2, {2, 3}},
    {"scalar", FT_FLOAT32, 0, {0}},
    {"empty", FT_FLOAT32, 2, {0, 4}},
    {"layer.0.bias", FT_FLOAT16, 4, {1, 1, 1, 2}},
    {"\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80", FT_INT8, 1, {2}}, /* é✓😀 */
    {"q\"b\\s/", FT_UINT8, 1, {1}},
    {"c\x01", FT_BOOL, 0, {0}},
    {"dims16", FT_FLOAT64, 16, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2}},
};
#define NSPEC ((int)(sizeof SPEC / sizeof SPEC[0]))
static const st_kv META[] = {{"format", "pt"}, {"note", "\xc3\xa9 \"q\" \\ b"}, {"empty", ""}};
#define NMETA 3
/* The same, as the JSON spec the Python reference's `write` takes. */
static const char *SPEC_JSON =
    "{\"tensors\":[[\"w\",\"F32\",[2,3]],[\"d\",\"F64\",[4]],[\"h\",\"F16\",[3,1]],"
    "[\"bf\",\"BF16\",[5]],[\"l\",\"I64\",[2,2]],[\"i\",\"I32\",[3]],[\"s\",\"I16\",[2]],"
    "[\"c\",\"I8\",[7]],[\"u\",\"U8\",[10]],[\"m\",\"BOOL\",[2,3]],[\"scalar\",\"F32\",[]],"
    "[\"empty\",\"F32\",[0,4]],[\"layer.0.bias\",\"F16\",[1,1,1,2]],"
    "[\"\\u00e9\\u2713\\ud83d\\ude00\",\"I8\",[2]],[\"q\\\"b\\\\s/\",\"U8\",[1]],"
    "[\"c\\u0001\",\"BOOL\",[]],[\"dims16\",\"F64\",[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,2]]],"
    "\"metadata\":{\"format\":\"pt\",\"note\":\"\\u00e9 \\\"q\\\" \\\\ b\",\"empty\":\"\"}}";

static int64_t spec_numel(const spec *s) {
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= s->shape[d];
    return n;
}

static uint8_t *spec_bytes(const spec *s, size_t *nbytes) {
    size_t es = st_dtype_size(s->dtype);
    int64_t n = spec_numel(s);
    *nbytes = (size_t)n * es;
    uint8_t *b = malloc(*nbytes ? *nbytes : 1);
    for (int64_t i = 0; i < n; i++) tv_encode(s->dtype, i, b + (size_t)i * es);
    return b;
}

/* Fill t[] from SPEC; free the data with free_spec_inputs. */
static void spec_inputs(st_tensor_in *t) {
    for (int k = 0; k < NSPEC; k++) {
        memset(&t[k], 0, sizeof t[k]);
        t[k].name = SPEC[k].name;
        t[k].dtype = SPEC[k].dtype;
        t[k].ndim = SPEC[k].ndim;
        memcpy(t[k].shape, SPEC[k].shape, sizeof t[k].shape);
        t[k].data = spec_bytes(&SPEC[k], &t[k].nbytes);
    }
}

static void free_spec_inputs(st_tensor_in *t) {
    for (int k = 0; k < NSPEC; k++) free((void *)t[k].data);
}

/* Does f hold exactly SPEC (in order, same bytes) and META? Reports the first difference. */
static int matches_spec(const st_file *f, char *why, size_t whylen) {
    if (f->n != NSPEC) return snprintf(why, whylen, "%d tensors, want %d", f->n, NSPEC), 0;
    for (int k = 0; k < NSPEC; k++) {
        const st_entry *e = &f->entries[k];
        const spec *s = &SPEC[k];
        if (strcmp(e->name, s->name) != 0)
            return snprintf(why, whylen, "entry %d is '%s', want '%s'", k, e->name, s->name), 0;
        if (e->dtype != s->dtype || e->ndim != s->ndim)
            return snprintf(why, whylen, "'%s': dtype/ndim differ", s->name), 0;
        for (int d = 0; d < s->ndim; d++)
            if (e->shape[d] != s->shape[d])
                return snprintf(why, whylen, "'%s': shape differs at dim %d", s->name, d), 0;
        size_t nb;
        uint8_t *want = spec_bytes(s, &nb);
        int same = e->nbytes == nb && memcmp(e->data, want, nb) == 0;
        free(want);
        if (!same) return snprintf(why, whylen, "'%s': bytes differ", s->name), 0;
    }
    if (f->nmeta != NMETA) return snprintf(why, whylen, "%d metadata, want %d", f->nmeta, NMETA), 0;
    for (int k = 0; k < NMETA; k++)
        if (strcmp(f->meta[k].key, META[k].key) || strcmp(f->meta[k].value, META[k].value))
            return snprintf(why, whylen, "metadata %d differs", k), 0;
    return 1;
}

/* ---------------------------------------------------------------- files */

static char *tpath(const char *name) {
    static char buf[8][256];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 256, "%s/%s", tdir, name);
    return p;
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(b, 1, (size_t)n, fp);
    fclose(fp);
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len) {
    FILE *fp = fopen(path, "wb");
    if (fp) {
        fwrite(b, 1, len, fp);
        fclose(fp);
    }
}

/* A file with header length n (8 bytes LE), the header bytes, and datalen bytes of data. */
static uint8_t *make_file(uint64_t n, const char *hdr, size_t hlen, size_t datalen, size_t *len) {
    *len = 8 + hlen + datalen;
    uint8_t *b = malloc(*len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(n >> (8 * i));
    memcpy(b + 8, hdr, hlen);
    for (size_t i = 0; i < datalen; i++) b[8 + hlen + i] = (uint8_t)(i * 7 + 1);
    return b;
}

/* Count files in tdir whose name contains ".tmp." (left-behind temporaries). */
static int count_tmp(void) {
    DIR *d = opendir(tdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (af_is_temp_name(e->d_name)) n++;
    if (d) closedir(d);
    return n;
}

/* Run cmd, return its whole stdout (malloc'd) or NULL. */
static char *run_capture(const char *cmd) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    size_t got;
    while ((got = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2) out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    if (pclose(p) != 0) {
        fprintf(stderr, "command failed: %s\n%s\n", cmd, out);
        free(out);
        return NULL;
    }
    return out;
}

/* ---------------------------------------------------------------- round trips */

static void test_round_trip(void) {
    st_tensor_in t[NSPEC];
    char err[512], why[256] = "";
    spec_inputs(t);
    int rc = st_write(tpath("rt.safetensors"), t, NSPEC, META, NMETA, err, sizeof err);
    CHECK("write_ok", rc == 0);
    if (rc) printf("    %s\n", err);
    st_file *f = new_st_file_from_path(tpath("rt.safetensors"), err, sizeof err);
    CHECK("read_back_ok", f != NULL);
    CHECK("read_back_matches", f && matches_spec(f, why, sizeof why));
    if (*why) printf("    %s\n", why);
    CHECK("header_padded_to_8", f && f->header_len % 8 == 0);
    CHECK("no_tmp_left", count_tmp() == 0);
    if (f) {
        const st_entry *e = st_find(f, "scalar");
        CHECK("scalar_is_0_dim", e && e->ndim == 0 && e->nbytes == 4);
        e = st_find(f, "empty");
        CHECK("empty_has_no_bytes", e && e->nbytes == 0 && e->ndim == 2 && e->shape[0] == 0);
        CHECK("find_missing_is_null", st_find(f, "nope") == NULL);
        CHECK("meta_get", st_meta_get(f, "format") && strcmp(st_meta_get(f, "format"), "pt") == 0);
        CHECK("meta_get_missing", st_meta_get(f, "nope") == NULL);
    }
    free_st_file(f);

    /* The same bytes parse from memory, and rewriting over an existing file works. */
    size_t len;
    uint8_t *b = slurp(tpath("rt.safetensors"), &len);
    f = new_st_file_from_buffer(b, len, err, sizeof err);
    CHECK("from_buffer_matches", f && matches_spec(f, why, sizeof why));
    free_st_file(f);
    free(b);
    rc = st_write(tpath("rt.safetensors"), t, 2, NULL, 0, err, sizeof err);
    f = new_st_file_from_path(tpath("rt.safetensors"), err, sizeof err);
    CHECK("overwrite", rc == 0 && f && f->n == 2 && f->nmeta == 0);
    free_st_file(f);

    /* An empty file: {} and no data. */
    rc = st_write(tpath("none.safetensors"), NULL, 0, NULL, 0, err, sizeof err);
    b = slurp(tpath("none.safetensors"), &len);
    CHECK("empty_file_bytes",
          rc == 0 && b && len == 16 && memcmp(b + 8, "{}      ", 8) == 0 && b[0] == 8 && b[1] == 0);
    f = new_st_file_from_path(tpath("none.safetensors"), err, sizeof err);
    CHECK("empty_file_reads", f && f->n == 0 && f->nmeta == 0);
    free_st_file(f);
    free(b);

    /* A larger tensor goes through the mmap path. */
    spec big = {"big", FT_FLOAT32, 2, {1000, 1001}};
    st_tensor_in bt = {.name = "big", .dtype = FT_FLOAT32, .ndim = 2, .shape = {1000, 1001}};
    bt.data = spec_bytes(&big, &bt.nbytes);
    rc = st_write(tpath("big.safetensors"), &bt, 1, NULL, 0, err, sizeof err);
    f = new_st_file_from_path(tpath("big.safetensors"), err, sizeof err);
    CHECK("big_round_trip", rc == 0 && f && f->n == 1 && f->entries[0].nbytes == bt.nbytes &&
                                memcmp(f->entries[0].data, bt.data, bt.nbytes) == 0);
    CHECK("big_data_aligned", f && ((uintptr_t)f->entries[0].data % 8) == 0);
    free_st_file(f);
    free((void *)bt.data);
    free_spec_inputs(t);
}

typedef struct {
    const st_tensor_in *t;
    int fail_at;
} fill_ctx;

static int fill_from(void *ctx, int i, void *dst, size_t nbytes, char *err, size_t errlen) {
    fill_ctx *c = ctx;
    if (i == c->fail_at) {
        snprintf(err, errlen, "device copy failed");
        return 1;
    }
    memcpy(dst, c->t[i].data, nbytes);
    return 0;
}

static void test_write_fill(void) {
    st_tensor_in t[NSPEC], nodata[NSPEC];
    char err[512] = "", why[256] = "";
    spec_inputs(t);
    memcpy(nodata, t, sizeof t);
    for (int k = 0; k < NSPEC; k++) nodata[k].data = NULL;
    fill_ctx c = {t, -1};
    int rc = st_write_fill(tpath("fill.safetensors"), nodata, NSPEC, META, NMETA, fill_from, &c,
                           err, sizeof err);
    st_file *f = new_st_file_from_path(tpath("fill.safetensors"), err, sizeof err);
    CHECK("fill_round_trip", rc == 0 && f && matches_spec(f, why, sizeof why));
    free_st_file(f);

    c.fail_at = 3;
    rc = st_write_fill(tpath("fill_fails.safetensors"), nodata, NSPEC, META, NMETA, fill_from, &c,
                       err, sizeof err);
    CHECK("fill_failure_reported", rc != 0 && strstr(err, "tensor 'bf': device copy failed"));
    CHECK("fill_failure_leaves_nothing",
          access(tpath("fill_fails.safetensors"), F_OK) != 0 && count_tmp() == 0);
    free_spec_inputs(t);
}

static void test_write_errors(void) {
    char err[512];
    float x[3] = {1, 2, 3};
    st_tensor_in a = {
        .name = "a", .dtype = FT_FLOAT32, .ndim = 1, .shape = {3}, .data = x, .nbytes = 12};
    st_tensor_in two[2] = {a, a};
    struct {
        const char *name, *want;
        st_tensor_in t;
        int n;
    } cases[] = {
        {"write_rejects_bad_nbytes", "nbytes 8 does not match", a, 1},
        {"write_rejects_17_dims", "17 dims (at most 16)", a, 1},
        {"write_rejects_negative_dim", "negative size", a, 1},
        {"write_rejects_bad_utf8", "not valid UTF-8", a, 1},
        {"write_rejects_reserved_name", "'__metadata__' is reserved", a, 1},
        {"write_rejects_bad_dtype", "unsupported dtype", a, 1},
    };
    cases[0].t.nbytes = 8;
    cases[1].t.ndim = 17;
    cases[2].t.shape[0] = -3;
    cases[3].t.name = "bad\xff";
    cases[4].t.name = "__metadata__";
    cases[5].t.dtype = FT_NDTYPES;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int rc =
            st_write(tpath("bad.safetensors"), &cases[k].t, cases[k].n, NULL, 0, err, sizeof err);
        CHECK(cases[k].name,
              rc != 0 && strstr(err, cases[k].want) && strncmp(err, "safetensors: ", 13) == 0);
    }
    int rc = st_write(tpath("bad.safetensors"), two, 2, NULL, 0, err, sizeof err);
    CHECK("write_rejects_duplicate_name", rc != 0 && strstr(err, "duplicate tensor name 'a'"));
    st_kv dm[2] = {{"k", "1"}, {"k", "2"}};
    rc = st_write(tpath("bad.safetensors"), &a, 1, dm, 2, err, sizeof err);
    CHECK("write_rejects_duplicate_meta", rc != 0 && strstr(err, "duplicate metadata key 'k'"));
    st_kv bm = {"k", "\xc0\x80"};
    rc = st_write(tpath("bad.safetensors"), &a, 1, &bm, 1, err, sizeof err);
    CHECK("write_rejects_bad_utf8_meta", rc != 0 && strstr(err, "not valid UTF-8"));
    CHECK("write_errors_leave_nothing",
          access(tpath("bad.safetensors"), F_OK) != 0 && count_tmp() == 0);
    rc = st_write("/nonexistent-dir/x.safetensors", &a, 1, NULL, 0, err, sizeof err);
    CHECK("write_to_missing_dir",
          rc != 0 && strstr(err, "cannot write '/nonexistent-dir/x.safetensors': No such file"));
}

/* ---------------------------------------------------------------- hostile files */

typedef struct {
    const char *name;
    const char *hdr; /* the JSON header */
    size_t hlen;     /* 0: strlen(hdr) */
    size_t datalen;
    const char *want; /* NULL: valid; else a substring of the error */
    int c_only;       /* 1: ftlua is deliberately stricter than the format (see the doc) */
} bad_case;

#define F32_2 "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
static const bad_case CASES[] = {
    /* valid variants */
    {"valid_minimal", "{}", 0, 0, NULL, 0},
    {"valid_space_padding", "{\"a\":" F32_2 "[0,8]}}       ", 0, 8, NULL, 0},
    {"valid_json_whitespace",
     "{ \"a\" :\n\t{ \"shape\" : [ 2 ] , \"data_offsets\":[0 ,8],\r\n"
     "\"dtype\":\"F32\" } }  ",
     0, 8, NULL, 0},
    {"valid_metadata_last", "{\"a\":" F32_2 "[0,8]},\"__metadata__\":{\"x\":\"y\"}}", 0, 8, NULL,
     0},
    {"valid_empty_metadata", "{\"__metadata__\":{}}", 0, 0, NULL, 0},
    {"valid_header_order_not_offset_order", "{\"b\":" F32_2 "[8,16]},\"a\":" F32_2 "[0,8]}}", 0, 16,
     NULL, 0},
    {"valid_empty_tensors_on_boundaries",
     "{\"e\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[8,8]},\"a\":" F32_2
     "[0,8]},\"z\":{\"dtype\":\"U8\",\"shape\":[3,0],\"data_offsets\":[0,0]}}",
     0, 8, NULL, 0},
    {"valid_scalar", "{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}", 0, 8, NULL,
     0},
    {"valid_escaped_names", "{\"\\u00e9\\ud83d\\ude00\\n\\/\":" F32_2 "[0,8]}}", 0, 8, NULL, 0},
    /* the header length */
    {"not_brace_space", " {}", 0, 0, "not a safetensors file (header does not start with '{')", 0},
    {"not_brace_array", "[]", 0, 0, "header does not start with '{'", 0},
    {"zero_header_length", "", 0, 4, "header does not start with '{'", 0},
    /* JSON grammar */
    {"trailing_bytes", "{} x", 0, 0, "header JSON at byte 11: unexpected bytes after", 0},
    {"nul_padding", "{}\0\0\0\0\0\0", 8, 0, "unexpected bytes after", 0},
    {"missing_colon", "{\"a\" 1}", 0, 0, "header JSON at byte 13: expected ':'", 0},
    {"trailing_comma", "{\"a\":" F32_2 "[0,8]},}", 0, 8, "expected a string", 0},
    {"unterminated_object", "{\"a\":" F32_2 "[0,8]}", 0, 8, "expected ',' or '}'", 0},
    {"unterminated_string", "{\"abc", 0, 0, "unterminated string", 0},
    {"bare_key", "{a:1}", 0, 0, "expected a string", 0},
    {"tensor_not_object", "{\"w\":3}", 0, 0, "tensor 'w' must be an object", 0},
    {"tensor_null", "{\"w\":null}", 0, 0, "must be an object", 0},
    {"raw_control_char", "{\"a\x01\":" F32_2 "[0,8]}}", 0, 8, "control character 0x01", 0},
    {"bad_escape", "{\"a\\x\":" F32_2 "[0,8]}}", 0, 8, "bad escape", 0},
    {"lone_high_surrogate", "{\"\\ud800\":" F32_2 "[0,8]}}", 0, 8, "surrogate", 0},
    {"lone_low_surrogate", "{\"\\udc00\":" F32_2 "[0,8]}}", 0, 8, "surrogate", 0},
    {"bad_hex", "{\"\\u00g0\":" F32_2 "[0,8]}}", 0, 8, "bad hex digit", 0},
    {"nul_escape", "{\"a\\u0000b\":" F32_2 "[0,8]}}", 0, 8, "\\u0000", 1},
    {"invalid_utf8", "{\"\xff\":" F32_2 "[0,8]}}", 0, 8, "invalid UTF-8", 0},
    {"overlong_utf8", "{\"\xc0\x80\":" F32_2 "[0,8]}}", 0, 8, "invalid UTF-8", 0},
    {"surrogate_utf8", "{\"\xed\xa0\x80\":" F32_2 "[0,8]}}", 0, 8, "invalid UTF-8", 0},
    {"truncated_utf8", "{\"\xe2\x9c\":" F32_2 "[0,8]}}", 0, 8, "invalid UTF-8", 0},
    {"negative_dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, 0,
     "negative", 0},
    {"fraction_dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 0, 4,
     "not a fraction", 0},
    {"exponent_dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 0, 4,
     "not a fraction", 0},
    {"leading_zero", "{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 0, 8,
     "leading zero", 0},
    {"string_dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 0, 8,
     "expected a non-negative integer", 0},
    {"huge_integer",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,8]}}", 0, 8,
     "integer too large", 0},
    {"shape_not_array", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 0, 8,
     "expected '['", 0},
    {"dtype_not_string", "{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8,
     "expected a string", 0},
    /* entries */
    {"missing_dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8, "lacks \"dtype\"", 0},
    {"missing_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0, 8, "lacks \"data_offsets\"",
     0},
    {"empty_entry", "{\"a\":{}}", 0, 0, "empty tensor entry", 0},
    {"unknown_field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":[]}}",
     0, 8, "unknown field \"x\"", 0},
    {"duplicate_field",
     "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8,
     "duplicate field \"dtype\"", 0},
    {"offsets_three", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 0, 8,
     "data_offsets has more than 2", 0},
    {"offsets_one", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 0, 8,
     "must have 2 elements, has 1", 0},
    {"dims_17",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
     0, 4, "shape has more than 16 elements", 1},
    {"unknown_dtype", "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8,
     "tensor 'a': unknown dtype \"F33\"", 0},
    {"unsupported_u16", "{\"a\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 0, 4,
     "tensor 'a': unsupported dtype U16", 1},
    {"unsupported_u64", "{\"a\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 0, 8,
     "unsupported dtype U64", 1},
    {"unsupported_f8", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 0, 2,
     "unsupported dtype F8_E4M3", 1},
    {"unsupported_c64", "{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 0, 8,
     "unsupported dtype C64", 0},
    {"duplicate_name", "{\"w\":" F32_2 "[0,8]},\"w\":" F32_2 "[8,16]}}", 0, 16,
     "duplicate tensor name 'w'", 0},
    {"duplicate_name_escaped", "{\"w\":" F32_2 "[0,8]},\"\\u0077\":" F32_2 "[8,16]}}", 0, 16,
     "duplicate tensor name 'w'", 0},
    {"duplicate_metadata", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, 0,
     "duplicate \"__metadata__\"", 0},
    {"duplicate_metadata_key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, 0,
     "duplicate __metadata__ key 'k'", 0},
    {"metadata_int_value", "{\"__metadata__\":{\"k\":1}}", 0, 0,
     "__metadata__ value for 'k' must be a string", 0},
    {"metadata_list_value", "{\"__metadata__\":{\"k\":[\"a\"]}}", 0, 0, "must be a string", 0},
    {"metadata_not_object", "{\"__metadata__\":\"x\"}", 0, 0, "__metadata__ must be an object", 0},
    /* offsets and sizes that lie */
    {"size_mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8,
     "safetensors: tensor 'w': data_offsets [0, 8] but shape [3] of F32 needs 12 bytes", 0},
    {"end_before_begin", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,4]}}", 0, 8,
     "end before begin", 0},
    {"offsets_past_end", "{\"w\":" F32_2 "[8,16]}}", 0, 8,
     "run past the end of the 8-byte data buffer", 0},
    {"offsets_huge", "{\"w\":" F32_2 "[18446744073709551615,18446744073709551615]}}", 0, 8,
     "run past the end", 0},
    {"shape_huge",
     "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 0, 8,
     "is too large", 0},
    {"shape_product_overflow",
     "{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 0, 8,
     "has too many elements", 0},
    {"shape_wraps_to_small",
     "{\"w\":{\"dtype\":\"U8\",\"shape\":[2,9223372036854775812],\"data_offsets\":[0,8]}}", 0, 8,
     "has too many elements", 0},
    {"overlap", "{\"a\":" F32_2 "[0,8]},\"b\":" F32_2 "[4,12]}}", 0, 12,
     "tensors 'a' and 'b' overlap", 0},
    {"overlap_same_range", "{\"a\":" F32_2 "[0,8]},\"b\":" F32_2 "[0,8]}}", 0, 8,
     "tensors 'a' and 'b' overlap", 0},
    {"empty_inside_tensor",
     "{\"a\":" F32_2 "[0,8]},\"e\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}}", 0, 8,
     "tensors 'a' and 'e' overlap", 0},
    {"hole", "{\"a\":" F32_2 "[0,8]},\"b\":" F32_2 "[16,24]}}", 0, 24,
     "hole in data buffer at byte 8", 0},
    {"hole_at_start", "{\"a\":" F32_2 "[8,16]}}", 0, 16, "hole in data buffer at byte 0", 0},
    {"trailing_data", "{\"a\":" F32_2 "[0,8]}}", 0, 40, "hole in data buffer at byte 8", 0},
    {"data_without_tensors", "{}", 0, 1, "hole in data buffer at byte 0", 0},
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

static void test_hostile(void) {
    char err[512], name[128];
    for (int k = 0; k < NCASES; k++) {
        const bad_case *c = &CASES[k];
        size_t hlen = c->hlen ? c->hlen : strlen(c->hdr), len;
        uint8_t *b = make_file(hlen, c->hdr, hlen, c->datalen, &len);
        st_file *f = new_st_file_from_buffer(b, len, err, sizeof err);
        snprintf(name, sizeof name, "hostile_%s", c->name);
        if (!c->want) {
            CHECK(name, f != NULL);
            if (!f) printf("    %s\n", err);
        } else {
            CHECK(name,
                  f == NULL && strstr(err, c->want) && strncmp(err, "safetensors: ", 13) == 0);
            if (f || !strstr(err, c->want)) printf("    got: %s\n", f ? "(accepted)" : err);
        }
        free_st_file(f);
        free(b);
    }

    /* Lying header lengths. */
    size_t len;
    uint8_t *b = make_file(12345678, "{}", 2, 90, &len);
    st_file *f = new_st_file_from_buffer(b, len, err, sizeof err);
    CHECK("header_length_past_file",
          !f && strcmp(err, "safetensors: header length 12345678 exceeds file size 100") == 0);
    free(b);
    b = make_file(UINT64_MAX, "{}", 2, 0, &len);
    f = new_st_file_from_buffer(b, len, err, sizeof err);
    CHECK("header_length_u64_max",
          !f && strstr(err, "header length 18446744073709551615 exceeds file size 10"));
    free(b);
    b = make_file(1, "{}", 2, 0, &len); /* N cuts the JSON short: "}" is data */
    f = new_st_file_from_buffer(b, len, err, sizeof err);
    CHECK("header_length_too_short", !f && strstr(err, "header JSON at byte 9: expected a string"));
    free(b);
    int small_ok = 1;
    for (size_t n = 0; n < 8; n++) {
        uint8_t *tiny = calloc(n ? n : 1, 1);
        f = new_st_file_from_buffer(tiny, n, err, sizeof err);
        if (f || !strstr(err, "file too small")) small_ok = 0;
        free_st_file(f);
        free(tiny);
    }
    CHECK("shorter_than_8_bytes", small_ok);
    CHECK("null_buffer", new_st_file_from_buffer(NULL, 0, err, sizeof err) == NULL);
    /* Over the 100 MB limit: calloc leaves the untouched pages unmapped. */
    size_t huge = 8 + (size_t)ST_MAX_HEADER + 1;
    b = calloc(huge, 1);
    if (b) {
        uint64_t n = ST_MAX_HEADER + 1;
        for (int i = 0; i < 8; i++) b[i] = (uint8_t)(n >> (8 * i));
        b[8] = '{';
        f = new_st_file_from_buffer(b, huge, err, sizeof err);
        CHECK("header_over_100MB",
              !f && strstr(err, "header length 100000001 exceeds the limit of 100000000 bytes"));
        free(b);
    } else {
        SKIP("header_over_100MB", "cannot allocate 100 MB");
    }

    /* Messages locate JSON errors by file byte. */
    b = make_file(7, "{\"a\" 1}", 7, 0, &len);
    f = new_st_file_from_buffer(b, len, err, sizeof err);
    CHECK("json_error_offset",
          !f && strcmp(err, "safetensors: header JSON at byte 13: expected ':'") == 0);
    free(b);
}

/* Every prefix of a valid file is invalid; every one-byte change parses or fails cleanly, and
 * what parses keeps the invariants (data inside the buffer, buffer covered exactly). */
static void test_truncation_and_mutation(void) {
    char err[512];
    st_tensor_in t[NSPEC];
    spec_inputs(t);
    int rc = st_write(tpath("small.safetensors"), t, 6, META, 1, err, sizeof err);
    free_spec_inputs(t);
    size_t len;
    uint8_t *file = slurp(tpath("small.safetensors"), &len);
    if (rc || !file) {
        CHECK("truncation_setup", 0);
        return;
    }
    int bad = 0;
    for (size_t n = 0; n < len && !bad; n++) {
        uint8_t *b = malloc(n ? n : 1); /* exact size, so ASan sees any overread */
        memcpy(b, file, n);
        st_file *f = new_st_file_from_buffer(b, n, err, sizeof err);
        if (f || strncmp(err, "safetensors: ", 13) != 0)
            bad = 1, printf("    prefix %zu accepted\n", n);
        free_st_file(f);
        free(b);
    }
    CHECK("every_truncation_rejected", !bad);
    for (size_t n = 0; n < len; n += 37) {
        spit(tpath("trunc.safetensors"), file, n);
        st_file *f = new_st_file_from_path(tpath("trunc.safetensors"), err, sizeof err);
        if (f || !strstr(err, tpath("trunc.safetensors"))) bad = 1;
        free_st_file(f);
    }
    CHECK("truncated_files_rejected_with_path", !bad);

    static const uint8_t vals[] = {0,   1,   0xff, 0x80, '"', '\\', '{', '}',
                                   '[', ']', ',',  ':',  '0', '9',  ' '};
    int accepted = 0;
    uint8_t *b = malloc(len);
    for (size_t pos = 0; pos < len && !bad; pos++) {
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(b, file, len);
            b[pos] = vals[v];
            st_file *f = new_st_file_from_buffer(b, len, err, sizeof err);
            if (!f) continue;
            accepted++;
            uint64_t total = 0;
            size_t data_at = 8 + f->header_len;
            for (int i = 0; i < f->n; i++) {
                const st_entry *e = &f->entries[i];
                size_t off = (size_t)(e->data - b);
                if (off < data_at || off + e->nbytes > len) bad = 1;
                total += e->nbytes;
            }
            if (total != len - data_at) bad = 1;
            free_st_file(f);
        }
    }
    free(b);
    CHECK("mutations_keep_invariants", !bad);
    CHECK("some_mutations_accepted", accepted > 0); /* e.g. data bytes: proves the loop ran */
    free(file);
}

static void test_path_errors(void) {
    char err[512];
    st_file *f = new_st_file_from_path(tpath("missing.safetensors"), err, sizeof err);
    CHECK("path_missing", !f && strstr(err, "cannot open") && strstr(err, "missing.safetensors"));
    f = new_st_file_from_path(tdir, err, sizeof err);
    CHECK("path_directory", !f && strstr(err, "is not a regular file"));
    spit(tpath("zero.safetensors"), (const uint8_t *)"", 0);
    f = new_st_file_from_path(tpath("zero.safetensors"), err, sizeof err);
    CHECK("path_empty_file", !f && strstr(err, "zero.safetensors: file too small (0 bytes)"));
    spit(tpath("text.safetensors"), (const uint8_t *)"hello world, not a model\n", 25);
    f = new_st_file_from_path(tpath("text.safetensors"), err, sizeof err);
    CHECK("path_text_file", !f && strstr(err, "exceeds file size 25"));
}

/* ---------------------------------------------------------------- the Python reference */

static void test_python(void) {
    if (!*py) {
        SKIP("python_reads_c_file", no_py);
        SKIP("c_reads_python_file", no_py);
        SKIP("bytes_identical_to_python", no_py);
        SKIP("python_agrees_on_hostile_files", no_py);
        return;
    }
    char err[512], why[256] = "", cmd[4096];
    st_tensor_in t[NSPEC];
    spec_inputs(t);
    int rc = st_write(tpath("c.safetensors"), t, NSPEC, META, NMETA, err, sizeof err);
    free_spec_inputs(t);

    /* C wrote it; Python reads it with torch and checks every value against the formula. */
    snprintf(cmd, sizeof cmd, "%s verify %s", py, tpath("c.safetensors"));
    char *out = rc == 0 ? run_capture(cmd) : NULL;
    char want[4096] = "";
    size_t w = 0;
    for (int k = 0; k < NSPEC; k++) {
        w += (size_t)snprintf(want + w, sizeof want - w, "tensor %s %s [", SPEC[k].name,
                              st_dtype_name(SPEC[k].dtype));
        for (int d = 0; d < SPEC[k].ndim; d++)
            w += (size_t)snprintf(want + w, sizeof want - w, d ? ",%" PRId64 : "%" PRId64,
                                  SPEC[k].shape[d]);
        w += (size_t)snprintf(want + w, sizeof want - w, "] ok\n");
    }
    for (int k = 0; k < NMETA; k++)
        w +=
            (size_t)snprintf(want + w, sizeof want - w, "meta %s=%s\n", META[k].key, META[k].value);
    CHECK("python_reads_c_file", out && strcmp(out, want) == 0);
    if (out && strcmp(out, want) != 0) printf("    python printed:\n%s    want:\n%s", out, want);
    free(out);

    /* Python wrote it (torch made the bytes); C reads the formula's values. */
    snprintf(cmd, sizeof cmd, "%s write %s '%s'", py, tpath("py.safetensors"), SPEC_JSON);
    out = run_capture(cmd);
    st_file *f = out ? new_st_file_from_path(tpath("py.safetensors"), err, sizeof err) : NULL;
    CHECK("c_reads_python_file", f && matches_spec(f, why, sizeof why));
    if (*why || (out && !f)) printf("    %s %s\n", why, f ? "" : err);
    free_st_file(f);
    free(out);

    /* Same tensors, same order: the two writers agree to the byte. */
    size_t la = 0, lb = 0;
    uint8_t *a = slurp(tpath("c.safetensors"), &la), *b = slurp(tpath("py.safetensors"), &lb);
    CHECK("bytes_identical_to_python", a && b && la == lb && memcmp(a, b, la) == 0);
    free(a);
    free(b);

    /* Both readers agree on every hostile case (except where we are stricter on purpose). */
    size_t used = (size_t)snprintf(cmd, sizeof cmd, "%s check", py);
    for (int k = 0; k < NCASES; k++) {
        char fname[64];
        size_t hlen = CASES[k].hlen ? CASES[k].hlen : strlen(CASES[k].hdr), len;
        uint8_t *buf = make_file(hlen, CASES[k].hdr, hlen, CASES[k].datalen, &len);
        snprintf(fname, sizeof fname, "case%02d.st", k);
        spit(tpath(fname), buf, len);
        free(buf);
        used += (size_t)snprintf(cmd + used, sizeof cmd - used, " %s", tpath(fname));
    }
    out = used < sizeof cmd ? run_capture(cmd) : NULL;
    int disagree = out == NULL;
    for (int k = 0; k < NCASES && out; k++) {
        char fname[64], key[320];
        snprintf(fname, sizeof fname, "case%02d.st", k);
        snprintf(key, sizeof key, "%s\t%s", tpath(fname), CASES[k].want ? "invalid" : "valid");
        int py_agrees = strstr(out, key) != NULL;
        if (!py_agrees && !CASES[k].c_only) {
            printf("    python disagrees on %s\n", CASES[k].name);
            disagree = 1;
        }
        if (py_agrees && CASES[k].c_only) { /* keep the c_only marks honest */
            printf("    %s is marked c_only but python agrees\n", CASES[k].name);
            disagree = 1;
        }
    }
    CHECK("python_agrees_on_hostile_files", !disagree);
    free(out);
}

int main(void) {
    snprintf(tdir, sizeof tdir, "/tmp/ft_st_XXXXXX");
    if (!mkdtemp(tdir)) {
        perror("mkdtemp");
        return 1;
    }
    const char *python = getenv("FTLUA_PYTHON") ? getenv("FTLUA_PYTHON") : "/usr/bin/python3";
    const char *root = getenv("FTLUA_ROOT") ? getenv("FTLUA_ROOT") : ".";
    char probe[600];
    /* find_spec, not import: the probe should not cost a torch import. */
    snprintf(probe, sizeof probe,
             "%s -c 'import importlib.util as u, sys; sys.exit(u.find_spec(\"torch\") is None)' "
             ">/dev/null 2>&1",
             python);
    snprintf(no_py, sizeof no_py, "%s has no torch (apt-get install python3-torch)", python);
    if (system(probe) == 0)
        snprintf(py, sizeof py, "PYTHONIOENCODING=utf-8 %s %s/tests/py/safetensors_ref.py", python,
                 root);

    test_round_trip();
    test_write_fill();
    test_write_errors();
    test_hostile();
    test_truncation_and_mutation();
    test_path_errors();
    test_python();

    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", tdir);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", tdir);
    return check_exit();
}
