/* safetensors_write.c: the safetensors writer. See safetensors.h and docs/safetensors.md.
 *
 * The caller's tensors and metadata are checked first (UTF-8 names, dtypes, shapes against
 * nbytes, duplicates), then the header is built with offsets in the order given, and the file
 * is written atomically (io/atomic.h): the path holds the old file or the new one, whole.
 */
#include "io/safetensors_internal.h"

#include "io/atomic.h"
#include "io/strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
            if (*c < 0x20)
                sb_printf(s, "\\u%04x", *c);
            else
                sb_put(s, (const char *)c, 1);
        }
    }
    sb_put(s, "\"", 1);
}

static int valid_utf8(const char *str) {
    const uint8_t *s = (const uint8_t *)str;
    size_t n = strlen(str);
    for (size_t i = 0; i < n;) {
        size_t k = st_utf8_len(s + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

/* Check the caller's tensors and metadata. */
static int check_inputs(const st_tensor_in *t, int n, const st_kv *meta, int nmeta, char *err,
                        size_t errlen) {
    if (n < 0 || nmeta < 0 || (n > 0 && !t) || (nmeta > 0 && !meta)) {
        st_set_err(err, errlen, "bad tensor or metadata count");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const st_tensor_in *x = &t[i];
        if (!x->name || !valid_utf8(x->name)) {
            st_set_err(err, errlen, "tensor %d: name is missing or not valid UTF-8", i + 1);
            return -1;
        }
        if (strcmp(x->name, "__metadata__") == 0) {
            st_set_err(err, errlen, "'__metadata__' is reserved and cannot name a tensor");
            return -1;
        }
        size_t esize = st_dtype_size(x->dtype);
        if (esize == 0) {
            st_set_err(err, errlen, "tensor " NAME_FMT ": unsupported dtype %d", NAME_ARG(x->name),
                       (int)x->dtype);
            return -1;
        }
        if (x->ndim < 0 || x->ndim > FT_MAX_DIMS) {
            st_set_err(err, errlen, "tensor " NAME_FMT ": %d dims (at most %d)", NAME_ARG(x->name),
                       x->ndim, FT_MAX_DIMS);
            return -1;
        }
        uint64_t numel = 1, nonzero = 1;
        for (int d = 0; d < x->ndim; d++) {
            if (x->shape[d] < 0) {
                st_set_err(err, errlen, "tensor " NAME_FMT ": negative size in shape",
                           NAME_ARG(x->name));
                return -1;
            }
            uint64_t s = (uint64_t)x->shape[d];
            if (s == 0) {
                numel = 0;
                continue;
            }
            if (nonzero > (uint64_t)INT64_MAX / s) {
                st_set_err(err, errlen, "tensor " NAME_FMT ": shape too large", NAME_ARG(x->name));
                return -1;
            }
            nonzero *= s;
            numel *= s;
        }
        if (numel > (uint64_t)SIZE_MAX / esize || numel * esize != (uint64_t)x->nbytes) {
            st_set_err(err, errlen,
                       "tensor " NAME_FMT ": nbytes %zu does not match its shape and dtype",
                       NAME_ARG(x->name), x->nbytes);
            return -1;
        }
    }
    for (int i = 0; i < nmeta; i++) {
        if (!meta[i].key || !meta[i].value || !valid_utf8(meta[i].key) ||
            !valid_utf8(meta[i].value)) {
            st_set_err(err, errlen, "metadata %d: key or value missing or not valid UTF-8", i + 1);
            return -1;
        }
    }
    int most = n > nmeta ? n : nmeta;
    const char **names = malloc((size_t)most * sizeof *names + 1);
    if (!names) {
        st_set_err(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) names[i] = t[i].name;
    const char *dup = st_find_duplicate(names, n);
    if (dup) st_set_err(err, errlen, "duplicate tensor name " NAME_FMT, NAME_ARG(dup));
    if (!dup) {
        for (int i = 0; i < nmeta; i++) names[i] = meta[i].key;
        dup = st_find_duplicate(names, nmeta);
        if (dup) st_set_err(err, errlen, "duplicate metadata key " NAME_FMT, NAME_ARG(dup));
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
        for (int d = 0; d < t[i].ndim; d++)
            sb_printf(&s, d ? ",%" PRId64 : "%" PRId64, t[i].shape[d]);
        sb_printf(&s, "],\"data_offsets\":[%" PRIu64 ",", off);
        off += t[i].nbytes;
        sb_printf(&s, "%" PRIu64 "]}", off);
    }
    sb_puts(&s, "}");
    while (!s.oom && s.len % 8) sb_puts(&s, " "); /* so the data buffer starts 8-aligned */
    if (s.oom) {
        sb_free(&s);
        st_set_err(err, errlen, "out of memory building the header");
        return NULL;
    }
    if (s.len > ST_MAX_HEADER) {
        sb_free(&s);
        st_set_err(err, errlen, "header of %zu bytes exceeds the limit of %u bytes", s.len,
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
        st_set_err(err, errlen, "no path");
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
            st_set_err(err, errlen, "tensor " NAME_FMT ": no data", NAME_ARG(t[i].name));
            return -1;
        }
        if (t[i].nbytes > most) most = t[i].nbytes;
        if (total > UINT64_MAX - t[i].nbytes) {
            free(header);
            st_set_err(err, errlen, "tensors total more than 2^64 bytes");
            return -1;
        }
        total += t[i].nbytes;
    }
    void *scratch = NULL;
    if (fill && most > 0 && !(scratch = malloc(most))) {
        free(header);
        st_set_err(err, errlen, "out of memory for a %zu-byte tensor", most);
        return -1;
    }
    /* a temp next to path, renamed over it at the end: path is the old file or the new one */
    af_file af;
    char aerr[512];
    if (af_open(&af, path, aerr, sizeof aerr) != 0) {
        st_set_err(err, errlen, "%s", aerr);
        free(header);
        free(scratch);
        return -1;
    }
    int fd = af.fd;
    uint8_t n8[8];
    for (int i = 0; i < 8; i++) n8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int rc = write_all(fd, n8, 8) || write_all(fd, header, hlen) ? -1 : 0;
    if (rc) st_set_err(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    for (int i = 0; i < n && rc == 0; i++) {
        const void *src = t[i].data;
        if (fill) {
            char why[256] = "the fill callback failed";
            if (t[i].nbytes && fill(ctx, i, scratch, t[i].nbytes, why, sizeof why)) {
                st_set_err(err, errlen, "tensor " NAME_FMT ": %s", NAME_ARG(t[i].name), why);
                rc = -1;
                break;
            }
            src = scratch;
        }
        if (t[i].nbytes && write_all(fd, src, t[i].nbytes)) {
            st_set_err(err, errlen, "cannot write '%s': %s", path, strerror(errno));
            rc = -1;
        }
    }
    if (rc == 0 && af_commit(&af, aerr, sizeof aerr) != 0) {
        st_set_err(err, errlen, "%s", aerr);
        rc = -1;
    }
    if (rc != 0) af_abort(&af);
    free(header);
    free(scratch);
    return rc;
}

int st_write(const char *path, const st_tensor_in *t, int n, const st_kv *meta, int nmeta,
             char *err, size_t errlen) {
    return st_write_fill(path, t, n, meta, nmeta, NULL, NULL, err, errlen);
}
