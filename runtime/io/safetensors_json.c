/* safetensors_json.c: the strict JSON parser for the safetensors header. See safetensors.h.
 *
 * Every string, integer and array is parsed by a small parser that bounds-checks each byte;
 * strings are decoded (escapes, strict UTF-8) into an arena no larger than the raw header.
 * Only the shapes the format allows are accepted: an object of tensor entries (dtype, shape,
 * data_offsets) and at most one "__metadata__" object of strings.
 */
#include "io/safetensors_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *s; /* the header bytes */
    size_t len, pos;
    char *arena; /* decoded strings; never longer than the raw header */
    size_t arena_len, arena_cap;
    char *err;
    size_t errlen;
} parser;

__attribute__((format(printf, 2, 3))) static int fail(parser *p, const char *fmt, ...) {
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    st_set_err(p->err, p->errlen, "header JSON at byte %zu: %s", 8 + p->pos, msg);
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
size_t st_utf8_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c < 0x80)
        return 1;
    else if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c == 0xE0)
        need = 3, lo = 0xA0;
    else if (c == 0xED)
        need = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF)
        need = 3;
    else if (c == 0xF0)
        need = 4, lo = 0x90;
    else if (c == 0xF4)
        need = 4, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 4;
    else
        return 0;
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
            size_t n = st_utf8_len(p->s + p->pos, p->len - p->pos);
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

static int parse_entry(parser *p, st_raw_entry *e) {
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
                    !have_dtype   ? "dtype"
                    : !have_shape ? "shape"
                                  : "data_offsets");
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

/* One member of the top-level object: "__metadata__" or a tensor entry. */
static int parse_member(parser *p, int *seen_meta, st_kv **meta, int *nmeta, st_raw_entry **raw,
                        int *nraw, int *cap) {
    const char *key;
    skip_ws(p);
    size_t key_at = p->pos;
    if (parse_string(p, &key) || expect(p, ':')) return -1;
    if (strcmp(key, "__metadata__") == 0) {
        if ((*seen_meta)++) {
            p->pos = key_at;
            return fail(p, "duplicate \"__metadata__\"");
        }
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != '{')
            return fail(p, "__metadata__ must be an object of strings");
        return parse_metadata(p, meta, nmeta);
    }
    if (grow((void **)raw, cap, *nraw, sizeof **raw)) return fail(p, "out of memory");
    st_raw_entry *e = &(*raw)[*nraw];
    memset(e, 0, sizeof *e);
    e->name = key;
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != '{')
        return fail(p, "tensor '%.80s' must be an object", key);
    if (parse_entry(p, e)) return -1;
    (*nraw)++;
    return 0;
}

int st_parse_header(const uint8_t *hdr, size_t len, char *arena, size_t arena_cap, st_kv **meta,
                    int *nmeta, st_raw_entry **raw, int *nraw, char *err, size_t errlen) {
    parser p = {hdr, len, 0, arena, 0, arena_cap, err, errlen};
    int seen_meta = 0, cap = 0;
    p.pos = 1; /* past the '{' checked by the caller */
    skip_ws(&p);
    if (p.pos < p.len && p.s[p.pos] == '}') {
        p.pos++;
    } else {
        for (;;) {
            if (parse_member(&p, &seen_meta, meta, nmeta, raw, nraw, &cap)) return -1;
            int more = next_or_close(&p, '}');
            if (more < 0) return -1;
            if (!more) break;
        }
    }
    skip_ws(&p); /* the writer's space padding (any JSON whitespace is accepted) */
    if (p.pos != p.len) return fail(&p, "unexpected bytes after the header object");
    return 0;
}
