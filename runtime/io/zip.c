/* zip.c: see zip.h. The layout follows PKWARE's APPNOTE: end of central directory (EOCD),
 * optional ZIP64 EOCD locator and record, central directory headers, local headers. */
#include "io/zip.h"
#include "io/errbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL     0x04034b50u
#define SIG_CENTRAL   0x02014b50u
#define SIG_EOCD      0x06054b50u
#define SIG_EOCD64    0x06064b50u
#define SIG_LOCATOR64 0x07064b50u

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

__attribute__((format(printf, 3, 4))) static void *zfail(char *err, size_t errlen, const char *fmt,
                                                         ...) {
    va_list ap;
    va_start(ap, fmt);
    errbuf_vset(err, errlen, fmt, ap);
    va_end(ap);
    return NULL;
}

/* off + need <= len, without overflow */
static int fits(uint64_t off, uint64_t need, size_t len) { return off <= len && need <= len - off; }

int zip_looks_like(const uint8_t *buf, size_t len) {
    return len >= 4 && (rd32(buf) == SIG_LOCAL || rd32(buf) == SIG_EOCD);
}

uint32_t zip_crc32(const uint8_t *p, size_t n) {
    /* The 1 KB table costs ~2k operations to build: cheap next to any entry worth checking,
     * and building it per call keeps this function free of shared mutable state. */
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static int cmp_name(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}
static int cmp_entry(const void *a, const void *b) {
    const zip_entry *x = *(const zip_entry *const *)a, *y = *(const zip_entry *const *)b;
    return cmp_name(x->name, x->name_len, y->name, y->name_len);
}

/* Copies a name for an error message: at most 80 bytes, control bytes shown as '?'. */
static const char *safe(char out[96], const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k < 80; i++)
        out[k++] = ((unsigned char)s[i] < 32 || s[i] == 127) ? '?' : s[i];
    if (n > 80) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = 0;
    return out;
}

/* Finds the EOCD: the last signature whose comment runs exactly to the end of the buffer. */
static int find_eocd(const uint8_t *buf, size_t len, size_t *pos) {
    if (len < 22) return 0;
    size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0;
    for (size_t p = len - 22 + 1; p-- > lo;) {
        if (rd32(buf + p) == SIG_EOCD && p + 22 + rd16(buf + p + 20) == len) {
            *pos = p;
            return 1;
        }
    }
    return 0;
}

/* The central directory's place and size from the EOCD (or the ZIP64 record it points at). */
static int read_directory(const uint8_t *buf, size_t len, uint64_t *n_total, uint64_t *cd_size,
                          uint64_t *cd_off, char *err, size_t errlen) {
    size_t eocd;
    if (!find_eocd(buf, len, &eocd)) {
        zfail(err, errlen, "zip: no end-of-central-directory record (truncated file?)");
        return -1;
    }
    const uint8_t *e = buf + eocd;
    *n_total = rd16(e + 10), *cd_size = rd32(e + 12), *cd_off = rd32(e + 16);
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0 || rd16(e + 8) != rd16(e + 10)) {
        zfail(err, errlen, "zip: multi-disk archives are not supported");
        return -1;
    }
    /* ZIP64: a locator just before the EOCD points at the 64-bit record, whose counts win. */
    if (eocd >= 20 && rd32(e - 20) == SIG_LOCATOR64) {
        uint64_t off64 = rd64(e - 20 + 8);
        if (!fits(off64, 56, eocd - 20) || rd32(buf + off64) != SIG_EOCD64) {
            zfail(err, errlen, "zip: bad ZIP64 end-of-central-directory record");
            return -1;
        }
        const uint8_t *z = buf + off64;
        if (rd32(z + 16) != 0 || rd32(z + 20) != 0 || rd64(z + 24) != rd64(z + 32)) {
            zfail(err, errlen, "zip: multi-disk archives are not supported");
            return -1;
        }
        *n_total = rd64(z + 32);
        *cd_size = rd64(z + 40);
        *cd_off = rd64(z + 48);
    }
    if (!fits(*cd_off, *cd_size, len)) {
        zfail(err, errlen, "zip: central directory lies outside the file");
        return -1;
    }
    if (*n_total > *cd_size / 46) {
        zfail(err, errlen, "zip: central directory too small for %llu entries",
              (unsigned long long)*n_total);
        return -1;
    }
    return 0;
}

/* One saturated field's 64-bit value from a ZIP64 extra field; -1 when the field is short. */
static int read_zip64_field(uint64_t *v, const uint8_t **f, const uint8_t *fend) {
    if (*v != 0xFFFFFFFFu) return 0;
    if (fend - *f < 8) return -1;
    *v = rd64(*f);
    *f += 8;
    return 0;
}

/* ZIP64 extra field: the 64-bit values appear only for fields saturated at 0xFFFFFFFF.
 * Returns -1 when the field is too short for the values it must hold. */
static int read_zip64_extra(const uint8_t *x, size_t xlen, uint64_t *usize, uint64_t *csize,
                            uint64_t *lho) {
    const uint8_t *xend = x + xlen;
    while (xend - x >= 4) {
        uint16_t id = rd16(x), sz = rd16(x + 2);
        if (sz > xend - x - 4) break;
        if (id == 0x0001) {
            const uint8_t *f = x + 4, *fend = x + 4 + sz;
            if (read_zip64_field(usize, &f, fend) || read_zip64_field(csize, &f, fend) ||
                read_zip64_field(lho, &f, fend))
                return -1;
        }
        x += 4 + sz;
    }
    return 0;
}

/* The local header repeats the name and has its own extra field; the data follows it. */
static int check_local(const uint8_t *buf, size_t len, uint64_t lho, zip_entry *en, char *err,
                       size_t errlen) {
    char shown[96];
    const char *name = en->name;
    size_t nlen = en->name_len;
    if (!fits(lho, 30, len) || rd32(buf + lho) != SIG_LOCAL) {
        zfail(err, errlen, "zip: bad local header for '%s'", safe(shown, name, nlen));
        return -1;
    }
    const uint8_t *l = buf + lho;
    size_t lnlen = rd16(l + 26), lxlen = rd16(l + 28);
    uint64_t data_off = lho + 30 + lnlen + lxlen;
    if (!fits(lho + 30, lnlen + lxlen, len) || lnlen != nlen || memcmp(l + 30, name, nlen) != 0 ||
        rd16(l + 8) != en->method) {
        zfail(err, errlen, "zip: local header of '%s' disagrees with the central directory",
              safe(shown, name, nlen));
        return -1;
    }
    if (!fits(data_off, en->csize, len)) {
        zfail(err, errlen, "zip: data of '%s' runs past the end of the file (truncated?)",
              safe(shown, name, nlen));
        return -1;
    }
    if (en->method == 0 && en->csize != en->size) {
        zfail(err, errlen, "zip: stored entry '%s' has different sizes", safe(shown, name, nlen));
        return -1;
    }
    en->data = buf + data_off;
    return 0;
}

/* Central directory header i, at cd + *at: fill z->entries[i] (its name copied to
 * z->names + *name_at), check its local header, and move *at and *name_at past it. */
static int read_entry(zip_archive *z, size_t i, const uint8_t *buf, size_t len, const uint8_t *cd,
                      uint64_t cd_size, size_t *at, size_t *name_at, char *err, size_t errlen) {
    char shown[96];
    if (!fits(*at, 46, cd_size) || rd32(cd + *at) != SIG_CENTRAL) {
        zfail(err, errlen, "zip: bad central directory header %zu", i);
        return -1;
    }
    const uint8_t *h = cd + *at;
    uint16_t flags = rd16(h + 8), method = rd16(h + 10);
    uint64_t csize = rd32(h + 20), usize = rd32(h + 24), lho = rd32(h + 42);
    size_t nlen = rd16(h + 28), xlen = rd16(h + 30), clen = rd16(h + 32);
    if (!fits(*at + 46, nlen + xlen + clen, cd_size)) {
        zfail(err, errlen, "zip: central directory header %zu runs past the directory", i);
        return -1;
    }
    if (read_zip64_extra(h + 46 + nlen, xlen, &usize, &csize, &lho)) {
        zfail(err, errlen, "zip: short ZIP64 extra field in entry %zu", i);
        return -1;
    }
    zip_entry *en = &z->entries[i];
    char *name = z->names + *name_at;
    memcpy(name, h + 46, nlen);
    name[nlen] = 0;
    *name_at += nlen + 1;
    en->name = name;
    en->name_len = nlen;
    en->method = method;
    en->crc32 = rd32(h + 16);
    en->size = usize;
    en->csize = csize;
    if (memchr(name, 0, nlen)) {
        zfail(err, errlen, "zip: entry %zu has a NUL byte in its name", i);
        return -1;
    }
    if (flags & 1) {
        zfail(err, errlen, "zip: entry '%s' is encrypted", safe(shown, name, nlen));
        return -1;
    }
    if (check_local(buf, len, lho, en, err, errlen)) return -1;
    z->sorted[i] = en;
    *at += 46 + nlen + xlen + clen;
    return 0;
}

/* Sort the entries by name for zip_find, refusing a name that occurs twice. */
static int sort_unique(zip_archive *z, char *err, size_t errlen) {
    char shown[96];
    qsort(z->sorted, z->n, sizeof(zip_entry *), cmp_entry);
    for (size_t i = 1; i < z->n; i++) {
        if (cmp_entry(&z->sorted[i - 1], &z->sorted[i]) == 0) {
            zfail(err, errlen, "zip: duplicate entry '%s'",
                  safe(shown, z->sorted[i]->name, z->sorted[i]->name_len));
            return -1;
        }
    }
    return 0;
}

zip_archive *new_zip_archive(const uint8_t *buf, size_t len, char *err, size_t errlen) {
    uint64_t n_total, cd_size, cd_off;
    if (read_directory(buf, len, &n_total, &cd_size, &cd_off, err, errlen)) return NULL;
    zip_archive *z = calloc(1, sizeof(*z));
    if (!z) return zfail(err, errlen, "zip: out of memory");
    z->n = (size_t)n_total;
    /* Names total at most cd_size bytes, plus one NUL each. */
    z->entries = calloc(z->n ? z->n : 1, sizeof(zip_entry));
    z->sorted = calloc(z->n ? z->n : 1, sizeof(zip_entry *));
    z->names = malloc((size_t)cd_size + z->n + 1);
    if (!z->entries || !z->sorted || !z->names) {
        zfail(err, errlen, "zip: out of memory");
        goto bad;
    }
    size_t at = 0, name_at = 0;
    for (size_t i = 0; i < z->n; i++)
        if (read_entry(z, i, buf, len, buf + cd_off, cd_size, &at, &name_at, err, errlen)) goto bad;
    if (sort_unique(z, err, errlen)) goto bad;
    return z;
bad: /* the message is written before the names it may quote are freed */
    free_zip_archive(z);
    return NULL;
}

void free_zip_archive(zip_archive *z) {
    if (!z) return;
    free(z->entries);
    free(z->sorted);
    free(z->names);
    free(z);
}

const zip_entry *zip_find(const zip_archive *z, const char *name, size_t len) {
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const zip_entry *e = z->sorted[mid];
        int c = cmp_name(e->name, e->name_len, name, len);
        if (!c) return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
