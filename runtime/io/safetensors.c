/* safetensors.c: the safetensors reader and writer. See safetensors.h and docs/safetensors.md.
 *
 * The reader trusts nothing in the header: N is checked against the real length before the
 * header is touched; every string, integer and array is parsed by a small strict JSON parser
 * that bounds-checks each byte; shape products and offsets are checked for overflow and
 * against the data buffer's real size; the buffer must be covered exactly once.
 */
#include "io/safetensors.h"

#include "io/atomic.h"
#include "io/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- dtypes */

static const struct {
    const char *name;
    int ft; /* ft_dtype, or -1 for a dtype of the format that ftlua cannot hold */
    size_t size;
} DTYPES[] = {
    {"BOOL", FT_BOOL, 1},      {"U8", FT_UINT8, 1},      {"I8", FT_INT8, 1},
    {"I16", FT_INT16, 2},      {"F16", FT_FLOAT16, 2},   {"BF16", FT_BFLOAT16, 2},
    {"I32", FT_INT32, 4},      {"F32", FT_FLOAT32, 4},   {"F64", FT_FLOAT64, 8},
    {"I64", FT_INT64, 8},      {"U16", -1, 2},           {"U32", -1, 4},
    {"U64", -1, 8},            {"F8_E4M3", -1, 1},       {"F8_E5M2", -1, 1},
    {"F8_E8M0", -1, 1},        {"F4", -1, 0},            {"F6_E2M3", -1, 0},
    {"F6_E3M2", -1, 0},        {"C64", -1, 8},
};
#define NDTYPES_ST ((int)(sizeof(DTYPES) / sizeof(DTYPES[0])))

const char *st_dtype_name(ft_dtype dtype) {
    for (int i = 0; i < NDTYPES_ST; i++)
        if (DTYPES[i].ft == (int)dtype) return DTYPES[i].name;
    return "?";
}

size_t st_dtype_size(ft_dtype dtype) {
    for (int i = 0; i < NDTYPES_ST; i++)
        if (DTYPES[i].ft == (int)dtype) return DTYPES[i].size;
    return 0;
}

/* ---------------------------------------------------------------- messages */

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen,
                                                          const char *fmt, ...) {
    if (!err || errlen == 0) return;
    int n = snprintf(err, errlen, "safetensors: ");
    if (n < 0 || (size_t)n >= errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Names in messages are cut short so a hostile 1 MB name cannot flood a log line. */
#define NAME_FMT "'%.80s%s'"
#define NAME_ARG(s) (s), (strlen(s) > 80 ? "..." : "")

static void format_shape(char *buf, size_t len, const uint64_t *shape, int ndim) {
    size_t used = 0;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%" PRIu64, i ? ", " : "", shape[i]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

/* ---------------------------------------------------------------- the JSON header parser */

typedef struct {
    const uint8_t *s; /* the header bytes */
    size_t len, pos;
    char *arena; /* decoded strings; never longer than the raw header */
    size_t arena_len, arena_cap;
    char *err;
    size_t errlen;
} parser;

/* A tensor entry as parsed, before validation against the buffer. */
typedef struct {
    const char *name;
    const char *dtype;
    int ndim;
    uint64_t shape[FT_MAX_DIMS];
    uint64_t begin, end;
    size_t at; /* header byte where the entry starts, for messages */
} raw_entry;

__attribute__((format(printf, 2, 3))) static int fail(parser *p, const char *fmt, ...) {
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    set_err(p->err, p->errlen, "header JSON at byte %zu: %s", 8 + p->pos, msg);
    return -1;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        uint8_t c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int expect(parser *p, char c) {
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, "expected '%c', got end of header", c);
    if (p->s[p->pos] != (uint8_t)c) return fail(p, "expected '%c'", c);
    p->pos++;
    return 0;
}

/* After a member: ',' (returns 1, more follow) or the closing bracket (returns 0). */
static int next_or_close(parser *p, char close) {
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ',') {
        p->pos++;
        return 1;
    }
    if (p->pos < p->len && p->s[p->pos] == (uint8_t)close) {
        p->pos++;
        return 0;
    }
    return fail(p, "expected ',' or '%c'", close);
}

static int put(parser *p, const uint8_t *bytes, size_t n) {
    if (n > p->arena_cap - p->arena_len) return fail(p, "string storage exhausted");
    memcpy(p->arena + p->arena_len, bytes, n);
    p->arena_len += n;
    return 0;
}

static int hex4(parser *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        if (p->pos >= p->len) return fail(p, "truncated \\u escape");
        uint8_t c = p->s[p->pos];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return fail(p, "bad hex digit in \\u escape");
        v = v * 16 + (uint32_t)d;
        p->pos++;
    }
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 (strict: no overlongs, surrogates,
 * or code points past U+10FFFF). */
static size_t utf8_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c < 0x80) return 1;
    else if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c == 0xE0) need = 3, lo = 0xA0;
    else if (c == 0xED) need = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) need = 3;
    else if (c == 0xF0) need = 4, lo = 0x90;
    else if (c == 0xF4) need = 4, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3) need = 4;
    else return 0;
    if (n < need) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return need;
}

static size_t utf8_encode(uint32_t cp, uint8_t out[4]) {
    if (cp < 0x80) return out[0] = (uint8_t)cp, 1;
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* A JSON string, decoded into the arena as NUL-terminated UTF-8. \u0000 is refused: C
 * strings would silently cut the name short (and two names could then collide). */
static int parse_string(parser *p, const char **out) {
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, "expected a string");
    p->pos++;
    size_t start = p->arena_len;
    for (;;) {
        if (p->pos >= p->len) return fail(p, "unterminated string");
        uint8_t c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) return fail(p, "control character 0x%02x in string", c);
        if (c != '\\') {
            size_t n = utf8_len(p->s + p->pos, p->len - p->pos);
            if (n == 0) return fail(p, "invalid UTF-8 in string");
            if (put(p, p->s + p->pos, n)) return -1;
            p->pos += n;
            continue;
        }
        p->pos++; /* the backslash */
        if (p->pos >= p->len) return fail(p, "unterminated string");
        uint8_t e = p->s[p->pos++], ch;
        switch (e) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (hex4(p, &cp)) return -1;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(p, "lone low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->pos + 2 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                    return fail(p, "high surrogate not followed by a low one");
                p->pos += 2;
                if (hex4(p, &lo)) return -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(p, "high surrogate not followed by a low one");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) return fail(p, "\\u0000 in a string is not supported");
            uint8_t u[4];
            if (put(p, u, utf8_encode(cp, u))) return -1;
            continue;
        }
        default: p->pos--; return fail(p, "bad escape '\\%c'", e >= 0x20 && e < 0x7f ? e : '?');
        }
        if (put(p, &ch, 1)) return -1;
    }
    uint8_t nul = 0;
    if (put(p, &nul, 1)) return -1;
    *out = p->arena + start;
    return 0;
}

/* A non-negative JSON integer that fits in u64. */
static int parse_uint(parser *p, uint64_t *out) {
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, "expected an integer, got end of header");
    uint8_t c = p->s[p->pos];
    if (c == '-') return fail(p, "negative numbers are not allowed");
    if (c < '0' || c > '9') return fail(p, "expected a non-negative integer");
    if (c == '0' && p->pos + 1 < p->len && p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '9')
        return fail(p, "leading zero in integer");
    uint64_t v = 0;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        uint64_t d = p->s[p->pos] - '0';
        if (v > (UINT64_MAX - d) / 10) return fail(p, "integer too large");
        v = v * 10 + d;
        p->pos++;
    }
    if (p->pos < p->len) {
        c = p->s[p->pos];
        if (c == '.' || c == 'e' || c == 'E') return fail(p, "expected an integer, not a fraction");
    }
    *out = v;
    return 0;
}

/* [u64, ...] with at most max elements; *n gets the count. */
static int parse_uint_array(parser *p, uint64_t *vals, int max, int *n, const char *what) {
    if (expect(p, '[')) return -1;
    *n = 0;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return 0;
    }
    for (;;) {
        if (*n == max) return fail(p, "%s has more than %d elements", what, max);
        if (parse_uint(p, &vals[(*n)++])) return -1;
        int more = next_or_close(p, ']');
        if (more < 0) return -1;
        if (!more) return 0;
    }
}

static int parse_entry(parser *p, raw_entry *e) {
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    e->at = p->pos;
    if (expect(p, '{')) return -1;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') return fail(p, "empty tensor entry");
    for (;;) {
        const char *key;
        size_t key_at = p->pos;
        if (parse_string(p, &key) || expect(p, ':')) return -1;
        if (strcmp(key, "dtype") == 0) {
            if (have_dtype++) goto dup;
            if (parse_string(p, &e->dtype)) return -1;
        } else if (strcmp(key, "shape") == 0) {
            if (have_shape++) goto dup;
            if (parse_uint_array(p, e->shape, FT_MAX_DIMS, &e->ndim, "shape")) return -1;
        } else if (strcmp(key, "data_offsets") == 0) {
            uint64_t off[2];
            int n;
            if (have_offsets++) goto dup;
            if (parse_uint_array(p, off, 2, &n, "data_offsets")) return -1;
            if (n != 2) return fail(p, "data_offsets must have 2 elements, has %d", n);
            e->begin = off[0];
            e->end = off[1];
        } else {
            p->pos = key_at;
            return fail(p, "unknown field \"%.40s\" in tensor entry", key);
        }
        int more = next_or_close(p, '}');
        if (more < 0) return -1;
        if (!more) break;
        continue;
    dup:
        p->pos = key_at;
        return fail(p, "duplicate field \"%s\" in tensor entry", key);
    }
    if (!have_dtype || !have_shape || !have_offsets) {
        p->pos = e->at;
        return fail(p, "tensor entry lacks \"%s\"",
                    !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    }
    return 0;
}

/* Grow *arr (of *cap elements of size sz) so that index n fits. */
static int grow(void **arr, int *cap, int n, size_t sz) {
    if (n < *cap) return 0;
    if (*cap > (1 << 28)) return -1;
    int ncap = *cap ? *cap * 2 : 16;
    void *a = realloc(*arr, (size_t)ncap * sz);
    if (!a) return -1;
    *arr = a;
    *cap = ncap;
    return 0;
}

static int parse_metadata(parser *p, st_kv **meta, int *nmeta) {
    int cap = 0;
    if (expect(p, '{')) return -1;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return 0;
    }
    for (;;) {
        const char *k, *v;
        if (parse_string(p, &k) || expect(p, ':')) return -1;
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != '"')
            return fail(p, "__metadata__ value for '%.80s' must be a string", k);
        if (parse_string(p, &v)) return -1;
        if (grow((void **)meta, &cap, *nmeta, sizeof **meta)) return fail(p, "out of memory");
        (*meta)[*nmeta].key = k;
        (*meta)[*nmeta].value = v;
        (*nmeta)++;
        int more = next_or_close(p, '}');
        if (more < 0) return -1;
        if (!more) return 0;
    }
}

/* ---------------------------------------------------------------- validation */

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that occurs twice, or NULL. names is sorted in place. */
static const char *find_duplicate(const char **names, int n) {
    qsort(names, (size_t)n, sizeof *names, cmp_str_ptr);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

typedef struct {
    uint64_t begin, end;
    int i;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->i - y->i;
}

/* Check one entry against the data buffer size and fill the public entry. */
static int check_entry(const raw_entry *r, const uint8_t *data, uint64_t data_len, st_entry *out,
                       char *err, size_t errlen) {
    int d = -1;
    for (int i = 0; i < NDTYPES_ST; i++)
        if (strcmp(DTYPES[i].name, r->dtype) == 0) d = i;
    if (d < 0) {
        set_err(err, errlen, "tensor " NAME_FMT ": unknown dtype \"%.40s\"", NAME_ARG(r->name),
                r->dtype);
        return -1;
    }
    if (DTYPES[d].ft < 0) {
        set_err(err, errlen, "tensor " NAME_FMT ": unsupported dtype %s", NAME_ARG(r->name),
                DTYPES[d].name);
        return -1;
    }
    char shape[FT_MAX_DIMS * 24 + 4];
    format_shape(shape, sizeof shape, r->shape, r->ndim);
    /* numel, refusing anything whose nonzero dims multiply past INT64_MAX: libtorch computes
     * strides in int64, and no real file has such a shape. */
    uint64_t numel = 1, nonzero = 1;
    for (int i = 0; i < r->ndim; i++) {
        uint64_t s = r->shape[i];
        if (s == 0) {
            numel = 0;
            continue;
        }
        if (nonzero > (uint64_t)INT64_MAX / s) {
            set_err(err, errlen, "tensor " NAME_FMT ": shape %s has too many elements",
                    NAME_ARG(r->name), shape);
            return -1;
        }
        nonzero *= s;
        numel *= s;
    }
    size_t esize = DTYPES[d].size;
    if (numel > UINT64_MAX / esize || numel * esize > (uint64_t)SIZE_MAX) {
        set_err(err, errlen, "tensor " NAME_FMT ": shape %s is too large", NAME_ARG(r->name),
                shape);
        return -1;
    }
    uint64_t need = numel * esize;
    if (r->end < r->begin) {
        set_err(err, errlen,
                "tensor " NAME_FMT ": data_offsets [%" PRIu64 ", %" PRIu64 "] end before begin",
                NAME_ARG(r->name), r->begin, r->end);
        return -1;
    }
    if (r->end > data_len) {
        set_err(err, errlen,
                "tensor " NAME_FMT ": data_offsets [%" PRIu64 ", %" PRIu64
                "] run past the end of the %" PRIu64 "-byte data buffer",
                NAME_ARG(r->name), r->begin, r->end, data_len);
        return -1;
    }
    if (r->end - r->begin != need) {
        set_err(err, errlen,
                "tensor " NAME_FMT ": data_offsets [%" PRIu64 ", %" PRIu64
                "] but shape %s of %s needs %" PRIu64 " bytes",
                NAME_ARG(r->name), r->begin, r->end, shape, DTYPES[d].name, need);
        return -1;
    }
    out->name = r->name;
    out->dtype = (ft_dtype)DTYPES[d].ft;
    out->ndim = r->ndim;
    for (int i = 0; i < FT_MAX_DIMS; i++) out->shape[i] = i < r->ndim ? (int64_t)r->shape[i] : 0;
    out->data = data + r->begin;
    out->nbytes = (size_t)need;
    return 0;
}

/* The tensors must tile [0, data_len) exactly: sorted by offset, each begins where the
 * previous ended. Empty tensors may sit anywhere on a boundary. */
static int check_coverage(const raw_entry *r, int n, uint64_t data_len, char *err,
                          size_t errlen) {
    span *s = malloc((size_t)(n ? n : 1) * sizeof *s);
    if (!s) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) s[i] = (span){r[i].begin, r[i].end, i};
    qsort(s, (size_t)n, sizeof *s, cmp_span);
    uint64_t at = 0;
    int prev = -1; /* the entry that ends at `at` */
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        if (s[k].begin < at) {
            set_err(err, errlen, "tensors " NAME_FMT " and " NAME_FMT " overlap",
                    NAME_ARG(r[prev].name), NAME_ARG(r[s[k].i].name));
            rc = -1;
        } else if (s[k].begin > at) {
            set_err(err, errlen, "hole in data buffer at byte %" PRIu64, at);
            rc = -1;
        } else {
            at = s[k].end; /* end >= begin was checked, so `at` never goes back */
            prev = s[k].i;
        }
    }
    if (rc == 0 && at != data_len) {
        set_err(err, errlen, "hole in data buffer at byte %" PRIu64 " (the buffer has %" PRIu64
                " bytes)", at, data_len);
        rc = -1;
    }
    free(s);
    return rc;
}

/* ---------------------------------------------------------------- reading */

static uint64_t read_u64le(const uint8_t *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

st_file *new_st_file_from_buffer(const uint8_t *buf, size_t len, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    /* A PyTorch checkpoint read by mistake: a zip (torch.save since 1.6) or a bare pickle
     * (protocol 2..5, the legacy format) would otherwise read as an absurd header length. Those
     * first bytes can also be a header length (0x0280 is 640), so only without the '{'. */
    int json_at_8 = buf && len >= 9 && buf[8] == '{';
    if (buf && !json_at_8 && ((len >= 4 && !memcmp(buf, "PK\x03\x04", 4)) ||
                              (len >= 2 && buf[0] == 0x80 && buf[1] >= 2 && buf[1] <= 5))) {
        set_err(err, errlen, "not a safetensors file (this looks like a PyTorch .pth: use "
                "ft.weights.load)");
        return NULL;
    }
    if (!buf || len < 8) {
        set_err(err, errlen, "file too small (%zu bytes) for the 8-byte header length", len);
        return NULL;
    }
    uint64_t hlen = read_u64le(buf);
    if (hlen > len - 8) {
        set_err(err, errlen, "header length %" PRIu64 " exceeds file size %zu", hlen, len);
        return NULL;
    }
    if (hlen > ST_MAX_HEADER) {
        set_err(err, errlen, "header length %" PRIu64 " exceeds the limit of %u bytes", hlen,
                ST_MAX_HEADER);
        return NULL;
    }
    if (hlen == 0 || buf[8] != '{') {
        set_err(err, errlen, "not a safetensors file (header does not start with '{')");
        return NULL;
    }
    st_file *f = calloc(1, sizeof *f);
    raw_entry *raw = NULL;
    const char **names = NULL;
    int nraw = 0, cap = 0;
    if (!f || !(f->strings = malloc((size_t)hlen + 1))) {
        set_err(err, errlen, "out of memory for a %" PRIu64 "-byte header", hlen);
        goto fail;
    }
    f->header_len = (size_t)hlen;
    parser p = {buf + 8, (size_t)hlen, 0, f->strings, 0, (size_t)hlen + 1, err, errlen};
    int seen_meta = 0;
    p.pos = 1; /* past the '{' checked above */
    skip_ws(&p);
    if (p.pos < p.len && p.s[p.pos] == '}') {
        p.pos++;
    } else {
        for (;;) {
            const char *key;
            size_t key_at;
            skip_ws(&p);
            key_at = p.pos;
            if (parse_string(&p, &key) || expect(&p, ':')) goto fail;
            if (strcmp(key, "__metadata__") == 0) {
                if (seen_meta++) {
                    p.pos = key_at;
                    fail(&p, "duplicate \"__metadata__\"");
                    goto fail;
                }
                skip_ws(&p);
                if (p.pos >= p.len || p.s[p.pos] != '{') {
                    fail(&p, "__metadata__ must be an object of strings");
                    goto fail;
                }
                if (parse_metadata(&p, &f->meta, &f->nmeta)) goto fail;
            } else {
                if (grow((void **)&raw, &cap, nraw, sizeof *raw)) {
                    fail(&p, "out of memory");
                    goto fail;
                }
                memset(&raw[nraw], 0, sizeof raw[nraw]);
                raw[nraw].name = key;
                skip_ws(&p);
                if (p.pos >= p.len || p.s[p.pos] != '{') {
                    fail(&p, "tensor '%.80s' must be an object", key);
                    goto fail;
                }
                if (parse_entry(&p, &raw[nraw])) goto fail;
                nraw++;
            }
            int more = next_or_close(&p, '}');
            if (more < 0) goto fail;
            if (!more) break;
        }
    }
    skip_ws(&p); /* the writer's space padding (any JSON whitespace is accepted) */
    if (p.pos != p.len) {
        fail(&p, "unexpected bytes after the header object");
        goto fail;
    }

    /* Duplicates: sort a copy of the names (the entries keep header order). */
    if (!(names = malloc((size_t)(nraw > f->nmeta ? nraw : f->nmeta) * sizeof *names + 1))) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < nraw; i++) names[i] = raw[i].name;
    const char *dup = find_duplicate(names, nraw);
    if (dup) {
        set_err(err, errlen, "duplicate tensor name " NAME_FMT, NAME_ARG(dup));
        goto fail;
    }
    for (int i = 0; i < f->nmeta; i++) names[i] = f->meta[i].key;
    dup = find_duplicate(names, f->nmeta);
    if (dup) {
        set_err(err, errlen, "duplicate __metadata__ key " NAME_FMT, NAME_ARG(dup));
        goto fail;
    }

    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_len = (uint64_t)(len - 8 - (size_t)hlen);
    if (!(f->entries = malloc((size_t)(nraw ? nraw : 1) * sizeof *f->entries))) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < nraw; i++)
        if (check_entry(&raw[i], data, data_len, &f->entries[i], err, errlen)) goto fail;
    if (check_coverage(raw, nraw, data_len, err, errlen)) goto fail;
    f->n = nraw;
    free(raw);
    free(names);
    return f;

fail:
    free(raw);
    free(names);
    free_st_file(f);
    return NULL;
}

st_file *new_st_file_from_path(const char *path, char *err, size_t errlen) {
    char msg[512];
    if (!path) {
        set_err(err, errlen, "no path");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* O_NONBLOCK: a FIFO can't hang us */
    if (fd < 0) {
        set_err(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        set_err(err, errlen, "'%s' is not a regular file", path);
        close(fd);
        return NULL;
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        set_err(err, errlen, "'%s' is too large", path);
        close(fd);
        return NULL;
    }
    size_t len = (size_t)sb.st_size;
    void *map = NULL;
    int mapped = 0;
    if (len >= 8) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) map = NULL;
        else mapped = 1;
    }
    if (!map) { /* too small to map usefully, or mmap refused: read it */
        map = malloc(len ? len : 1);
        size_t got = 0;
        while (map && got < len) {
            ssize_t r = read(fd, (char *)map + got, len - got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += (size_t)r;
        }
        if (!map || got != len) {
            set_err(err, errlen, "cannot read '%s': %s", path, map ? strerror(errno) : "out of memory");
            free(map);
            close(fd);
            return NULL;
        }
    }
    close(fd);
    st_file *f = new_st_file_from_buffer(map, len, msg, sizeof msg);
    if (!f) {
        /* msg is "safetensors: <detail>": put the path in the middle. */
        const char *detail = strncmp(msg, "safetensors: ", 13) == 0 ? msg + 13 : msg;
        set_err(err, errlen, "%s: %s", path, detail);
        if (mapped) munmap(map, len);
        else free(map);
        return NULL;
    }
    f->map = map;
    f->map_len = len;
    f->mapped = mapped;
    return f;
}

void free_st_file(st_file *f) {
    if (!f) return;
    if (f->map) {
        if (f->mapped) munmap(f->map, f->map_len);
        else free(f->map);
    }
    free(f->entries);
    free(f->meta);
    free(f->strings);
    free(f);
}

const st_entry *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->entries[i].name, name) == 0) return &f->entries[i];
    return NULL;
}

const char *st_meta_get(const st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

/* ---------------------------------------------------------------- writing */

/* A JSON string, escaped the way Python's json.dumps(ensure_ascii=False) does it, so that our
 * files and the reference writer's match byte for byte. */
static void sb_json_string(strbuf *s, const char *str) {
    sb_put(s, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)str; *c; c++) {
        switch (*c) {
        case '"': sb_put(s, "\\\"", 2); break;
        case '\\': sb_put(s, "\\\\", 2); break;
        case '\b': sb_put(s, "\\b", 2); break;
        case '\f': sb_put(s, "\\f", 2); break;
        case '\n': sb_put(s, "\\n", 2); break;
        case '\r': sb_put(s, "\\r", 2); break;
        case '\t': sb_put(s, "\\t", 2); break;
        default:
            if (*c < 0x20) sb_printf(s, "\\u%04x", *c);
            else sb_put(s, (const char *)c, 1);
        }
    }
    sb_put(s, "\"", 1);
}

static int valid_utf8(const char *str) {
    const uint8_t *s = (const uint8_t *)str;
    size_t n = strlen(str);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(s + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

/* Check the caller's tensors and metadata. */
static int check_inputs(const st_tensor_in *t, int n, const st_kv *meta, int nmeta, char *err,
                        size_t errlen) {
    if (n < 0 || nmeta < 0 || (n > 0 && !t) || (nmeta > 0 && !meta)) {
        set_err(err, errlen, "bad tensor or metadata count");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const st_tensor_in *x = &t[i];
        if (!x->name || !valid_utf8(x->name)) {
            set_err(err, errlen, "tensor %d: name is missing or not valid UTF-8", i + 1);
            return -1;
        }
        if (strcmp(x->name, "__metadata__") == 0) {
            set_err(err, errlen, "'__metadata__' is reserved and cannot name a tensor");
            return -1;
        }
        size_t esize = st_dtype_size(x->dtype);
        if (esize == 0) {
            set_err(err, errlen, "tensor " NAME_FMT ": unsupported dtype %d", NAME_ARG(x->name),
                    (int)x->dtype);
            return -1;
        }
        if (x->ndim < 0 || x->ndim > FT_MAX_DIMS) {
            set_err(err, errlen, "tensor " NAME_FMT ": %d dims (at most %d)", NAME_ARG(x->name),
                    x->ndim, FT_MAX_DIMS);
            return -1;
        }
        uint64_t numel = 1, nonzero = 1;
        for (int d = 0; d < x->ndim; d++) {
            if (x->shape[d] < 0) {
                set_err(err, errlen, "tensor " NAME_FMT ": negative size in shape",
                        NAME_ARG(x->name));
                return -1;
            }
            uint64_t s = (uint64_t)x->shape[d];
            if (s == 0) {
                numel = 0;
                continue;
            }
            if (nonzero > (uint64_t)INT64_MAX / s) {
                set_err(err, errlen, "tensor " NAME_FMT ": shape too large", NAME_ARG(x->name));
                return -1;
            }
            nonzero *= s;
            numel *= s;
        }
        if (numel > (uint64_t)SIZE_MAX / esize || numel * esize != (uint64_t)x->nbytes) {
            set_err(err, errlen, "tensor " NAME_FMT ": nbytes %zu does not match its shape and dtype",
                    NAME_ARG(x->name), x->nbytes);
            return -1;
        }
    }
    for (int i = 0; i < nmeta; i++) {
        if (!meta[i].key || !meta[i].value || !valid_utf8(meta[i].key) ||
            !valid_utf8(meta[i].value)) {
            set_err(err, errlen, "metadata %d: key or value missing or not valid UTF-8", i + 1);
            return -1;
        }
    }
    int most = n > nmeta ? n : nmeta;
    const char **names = malloc((size_t)most * sizeof *names + 1);
    if (!names) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) names[i] = t[i].name;
    const char *dup = find_duplicate(names, n);
    if (dup) set_err(err, errlen, "duplicate tensor name " NAME_FMT, NAME_ARG(dup));
    if (!dup) {
        for (int i = 0; i < nmeta; i++) names[i] = meta[i].key;
        dup = find_duplicate(names, nmeta);
        if (dup) set_err(err, errlen, "duplicate metadata key " NAME_FMT, NAME_ARG(dup));
    }
    free(names);
    return dup ? -1 : 0;
}

char *new_st_header(const st_tensor_in *t, int n, const st_kv *meta, int nmeta, size_t *len,
                    char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (check_inputs(t, n, meta, nmeta, err, errlen)) return NULL;
    strbuf s = {0};
    sb_puts(&s, "{");
    if (nmeta > 0) {
        sb_puts(&s, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i) sb_puts(&s, ",");
            sb_json_string(&s, meta[i].key);
            sb_puts(&s, ":");
            sb_json_string(&s, meta[i].value);
        }
        sb_puts(&s, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (i || nmeta > 0) sb_puts(&s, ",");
        sb_json_string(&s, t[i].name);
        sb_printf(&s, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].ndim; d++) sb_printf(&s, d ? ",%" PRId64 : "%" PRId64, t[i].shape[d]);
        sb_printf(&s, "],\"data_offsets\":[%" PRIu64 ",", off);
        off += t[i].nbytes;
        sb_printf(&s, "%" PRIu64 "]}", off);
    }
    sb_puts(&s, "}");
    while (!s.oom && s.len % 8) sb_puts(&s, " "); /* so the data buffer starts 8-aligned */
    if (s.oom) {
        sb_free(&s);
        set_err(err, errlen, "out of memory building the header");
        return NULL;
    }
    if (s.len > ST_MAX_HEADER) {
        sb_free(&s);
        set_err(err, errlen, "header of %zu bytes exceeds the limit of %u bytes", s.len,
                ST_MAX_HEADER);
        return NULL;
    }
    *len = s.len;
    return s.p;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int st_write_fill(const char *path, const st_tensor_in *t, int n, const st_kv *meta, int nmeta,
                  st_fill_fn fill, void *ctx, char *err, size_t errlen) {
    if (!path) {
        set_err(err, errlen, "no path");
        return -1;
    }
    size_t hlen = 0;
    char *header = new_st_header(t, n, meta, nmeta, &hlen, err, errlen);
    if (!header) return -1;
    size_t most = 0;
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!fill && !t[i].data && t[i].nbytes) {
            free(header);
            set_err(err, errlen, "tensor " NAME_FMT ": no data", NAME_ARG(t[i].name));
            return -1;
        }
        if (t[i].nbytes > most) most = t[i].nbytes;
        if (total > UINT64_MAX - t[i].nbytes) {
            free(header);
            set_err(err, errlen, "tensors total more than 2^64 bytes");
            return -1;
        }
        total += t[i].nbytes;
    }
    void *scratch = NULL;
    if (fill && most > 0 && !(scratch = malloc(most))) {
        free(header);
        set_err(err, errlen, "out of memory for a %zu-byte tensor", most);
        return -1;
    }
    /* a temp next to path, renamed over it at the end: path is the old file or the new one */
    ftl_atomic_file af;
    char aerr[512];
    if (ftl_atomic_open(&af, path, aerr, sizeof aerr) != 0) {
        set_err(err, errlen, "%s", aerr);
        free(header);
        free(scratch);
        return -1;
    }
    int fd = af.fd;
    uint8_t n8[8];
    for (int i = 0; i < 8; i++) n8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int rc = write_all(fd, n8, 8) || write_all(fd, header, hlen) ? -1 : 0;
    if (rc) set_err(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    for (int i = 0; i < n && rc == 0; i++) {
        const void *src = t[i].data;
        if (fill) {
            char why[256] = "the fill callback failed";
            if (t[i].nbytes && fill(ctx, i, scratch, t[i].nbytes, why, sizeof why)) {
                set_err(err, errlen, "tensor " NAME_FMT ": %s", NAME_ARG(t[i].name), why);
                rc = -1;
                break;
            }
            src = scratch;
        }
        if (t[i].nbytes && write_all(fd, src, t[i].nbytes)) {
            set_err(err, errlen, "cannot write '%s': %s", path, strerror(errno));
            rc = -1;
        }
    }
    if (rc == 0 && ftl_atomic_commit(&af, aerr, sizeof aerr) != 0) {
        set_err(err, errlen, "%s", aerr);
        rc = -1;
    }
    if (rc != 0) ftl_atomic_abort(&af);
    free(header);
    free(scratch);
    return rc;
}

int st_write(const char *path, const st_tensor_in *t, int n, const st_kv *meta, int nmeta,
             char *err, size_t errlen) {
    return st_write_fill(path, t, n, meta, nmeta, NULL, NULL, err, errlen);
}
