/* safetensors.c: the safetensors reader (and the dtype table and messages the writer shares).
 * See safetensors.h and docs/safetensors.md. The header's JSON parser is safetensors_json.c,
 * the writer safetensors_write.c.
 *
 * The reader trusts nothing in the header: N is checked against the real length before the
 * header is touched; every string, integer and array is parsed by a small strict JSON parser
 * that bounds-checks each byte; shape products and offsets are checked for overflow and
 * against the data buffer's real size; the buffer must be covered exactly once.
 */
#include "io/errbuf.h"
#include "io/safetensors_internal.h"

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
    {"BOOL", FT_BOOL, 1},   {"U8", FT_UINT8, 1},      {"I8", FT_INT8, 1},   {"I16", FT_INT16, 2},
    {"F16", FT_FLOAT16, 2}, {"BF16", FT_BFLOAT16, 2}, {"I32", FT_INT32, 4}, {"F32", FT_FLOAT32, 4},
    {"F64", FT_FLOAT64, 8}, {"I64", FT_INT64, 8},     {"U16", -1, 2},       {"U32", -1, 4},
    {"U64", -1, 8},         {"F8_E4M3", -1, 1},       {"F8_E5M2", -1, 1},   {"F8_E8M0", -1, 1},
    {"F4", -1, 0},          {"F6_E2M3", -1, 0},       {"F6_E3M2", -1, 0},   {"C64", -1, 8},
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

void st_set_err(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    errbuf_vset_prefixed(err, errlen, "safetensors", fmt, ap);
    va_end(ap);
}

static void format_shape(char *buf, size_t len, const uint64_t *shape, int ndim) {
    size_t used = 0;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%" PRIu64, i ? ", " : "", shape[i]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

/* ---------------------------------------------------------------- validation */

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *st_find_duplicate(const char **names, int n) {
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
static int check_entry(const st_raw_entry *r, const uint8_t *data, uint64_t data_len, st_entry *out,
                       char *err, size_t errlen) {
    int d = -1;
    for (int i = 0; i < NDTYPES_ST; i++)
        if (strcmp(DTYPES[i].name, r->dtype) == 0) d = i;
    if (d < 0) {
        st_set_err(err, errlen, "tensor " NAME_FMT ": unknown dtype \"%.40s\"", NAME_ARG(r->name),
                   r->dtype);
        return -1;
    }
    if (DTYPES[d].ft < 0) {
        st_set_err(err, errlen, "tensor " NAME_FMT ": unsupported dtype %s", NAME_ARG(r->name),
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
            st_set_err(err, errlen, "tensor " NAME_FMT ": shape %s has too many elements",
                       NAME_ARG(r->name), shape);
            return -1;
        }
        nonzero *= s;
        numel *= s;
    }
    size_t esize = DTYPES[d].size;
    if (numel > UINT64_MAX / esize || numel * esize > (uint64_t)SIZE_MAX) {
        st_set_err(err, errlen, "tensor " NAME_FMT ": shape %s is too large", NAME_ARG(r->name),
                   shape);
        return -1;
    }
    uint64_t need = numel * esize;
    if (r->end < r->begin) {
        st_set_err(err, errlen,
                   "tensor " NAME_FMT ": data_offsets [%" PRIu64 ", %" PRIu64 "] end before begin",
                   NAME_ARG(r->name), r->begin, r->end);
        return -1;
    }
    if (r->end > data_len) {
        st_set_err(err, errlen,
                   "tensor " NAME_FMT ": data_offsets [%" PRIu64 ", %" PRIu64
                   "] run past the end of the %" PRIu64 "-byte data buffer",
                   NAME_ARG(r->name), r->begin, r->end, data_len);
        return -1;
    }
    if (r->end - r->begin != need) {
        st_set_err(err, errlen,
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
static int check_coverage(const st_raw_entry *r, int n, uint64_t data_len, char *err,
                          size_t errlen) {
    span *s = malloc((n > 0 ? (size_t)n : 1) * sizeof *s);
    if (!s) {
        st_set_err(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) s[i] = (span){r[i].begin, r[i].end, i};
    qsort(s, (size_t)n, sizeof *s, cmp_span);
    uint64_t at = 0;
    int prev = -1; /* the entry that ends at `at` */
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        if (s[k].begin < at) {
            st_set_err(err, errlen, "tensors " NAME_FMT " and " NAME_FMT " overlap",
                       NAME_ARG(r[prev].name), NAME_ARG(r[s[k].i].name));
            rc = -1;
        } else if (s[k].begin > at) {
            st_set_err(err, errlen, "hole in data buffer at byte %" PRIu64, at);
            rc = -1;
        } else {
            at = s[k].end; /* end >= begin was checked, so `at` never goes back */
            prev = s[k].i;
        }
    }
    if (rc == 0 && at != data_len) {
        st_set_err(err, errlen,
                   "hole in data buffer at byte %" PRIu64 " (the buffer has %" PRIu64 " bytes)", at,
                   data_len);
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

/* The checks before anything is allocated: not a .pth read by mistake, the 8-byte header
 * length, and a header that fits in the file and starts with '{'. */
static int check_prefix(const uint8_t *buf, size_t len, uint64_t *hlen_out, char *err,
                        size_t errlen) {
    /* A PyTorch checkpoint read by mistake: a zip (torch.save since 1.6) or a bare pickle
     * (protocol 2..5, the legacy format) would otherwise read as an absurd header length. Those
     * first bytes can also be a header length (0x0280 is 640), so only without the '{'. */
    int json_at_8 = buf && len >= 9 && buf[8] == '{';
    if (buf && !json_at_8 &&
        ((len >= 4 && !memcmp(buf, "PK\x03\x04", 4)) ||
         (len >= 2 && buf[0] == 0x80 && buf[1] >= 2 && buf[1] <= 5))) {
        st_set_err(err, errlen,
                   "not a safetensors file (this looks like a PyTorch .pth: use "
                   "ft.weights.load)");
        return -1;
    }
    if (!buf || len < 8) {
        st_set_err(err, errlen, "file too small (%zu bytes) for the 8-byte header length", len);
        return -1;
    }
    uint64_t hlen = read_u64le(buf);
    if (hlen > len - 8) {
        st_set_err(err, errlen, "header length %" PRIu64 " exceeds file size %zu", hlen, len);
        return -1;
    }
    if (hlen > ST_MAX_HEADER) {
        st_set_err(err, errlen, "header length %" PRIu64 " exceeds the limit of %u bytes", hlen,
                   ST_MAX_HEADER);
        return -1;
    }
    if (hlen == 0 || buf[8] != '{') {
        st_set_err(err, errlen, "not a safetensors file (header does not start with '{')");
        return -1;
    }
    *hlen_out = hlen;
    return 0;
}

/* No two tensors share a name and no two metadata pairs a key (the entries keep header order:
 * sort a copy of the names). */
static int check_names(const st_file *f, const st_raw_entry *raw, int nraw, char *err,
                       size_t errlen) {
    const char **names = malloc((size_t)(nraw > f->nmeta ? nraw : f->nmeta) * sizeof *names + 1);
    if (!names) {
        st_set_err(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < nraw; i++) names[i] = raw[i].name;
    const char *dup = st_find_duplicate(names, nraw);
    if (dup) st_set_err(err, errlen, "duplicate tensor name " NAME_FMT, NAME_ARG(dup));
    if (!dup) {
        for (int i = 0; i < f->nmeta; i++) names[i] = f->meta[i].key;
        dup = st_find_duplicate(names, f->nmeta);
        if (dup) st_set_err(err, errlen, "duplicate __metadata__ key " NAME_FMT, NAME_ARG(dup));
    }
    free(names);
    return dup ? -1 : 0;
}

/* Check every entry against the data buffer, fill f->entries, then check the tiling. */
static int check_entries(st_file *f, const st_raw_entry *raw, int nraw, const uint8_t *data,
                         uint64_t data_len, char *err, size_t errlen) {
    if (!(f->entries = malloc((nraw > 0 ? (size_t)nraw : 1) * sizeof *f->entries))) {
        st_set_err(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < nraw; i++)
        if (check_entry(&raw[i], data, data_len, &f->entries[i], err, errlen)) return -1;
    return check_coverage(raw, nraw, data_len, err, errlen);
}

st_file *new_st_file_from_buffer(const uint8_t *buf, size_t len, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    uint64_t hlen;
    if (check_prefix(buf, len, &hlen, err, errlen)) return NULL;
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->strings = malloc((size_t)hlen + 1))) {
        st_set_err(err, errlen, "out of memory for a %" PRIu64 "-byte header", hlen);
        free_st_file(f);
        return NULL;
    }
    f->header_len = (size_t)hlen;
    st_raw_entry *raw = NULL;
    int nraw = 0;
    int rc = st_parse_header(buf + 8, (size_t)hlen, f->strings, (size_t)hlen + 1, &f->meta,
                             &f->nmeta, &raw, &nraw, err, errlen);
    if (rc == 0) rc = check_names(f, raw, nraw, err, errlen);
    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_len = (uint64_t)(len - 8 - (size_t)hlen);
    if (rc == 0) rc = check_entries(f, raw, nraw, data, data_len, err, errlen);
    free(raw);
    if (rc) {
        free_st_file(f);
        return NULL;
    }
    f->n = nraw;
    return f;
}

st_file *new_st_file_from_path(const char *path, char *err, size_t errlen) {
    char msg[512];
    if (!path) {
        st_set_err(err, errlen, "no path");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* O_NONBLOCK: a FIFO can't hang us */
    if (fd < 0) {
        st_set_err(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st_set_err(err, errlen, "'%s' is not a regular file", path);
        close(fd);
        return NULL;
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        st_set_err(err, errlen, "'%s' is too large", path);
        close(fd);
        return NULL;
    }
    size_t len = (size_t)sb.st_size;
    void *map = NULL;
    int mapped = 0;
    if (len >= 8) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
            map = NULL;
        else
            mapped = 1;
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
            st_set_err(err, errlen, "cannot read '%s': %s", path,
                       map ? strerror(errno) : "out of memory");
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
        st_set_err(err, errlen, "%s: %s", path, detail);
        if (mapped)
            munmap(map, len);
        else
            free(map);
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
        if (f->mapped)
            munmap(f->map, f->map_len);
        else
            free(f->map);
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
