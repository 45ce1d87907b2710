/* idx.c: MNIST's IDX files (yann.lecun.com/exdb/mnist), gzip'd or not, to tensors. Debian ships
 * Fashion-MNIST this way (/usr/share/datasets/fashion-mnist/, files *-idx?-ubyte.gz).
 *
 * Layout: two zero bytes, a type code, the number of dims; then each dim as a big-endian uint32;
 * then the data in C order, big-endian. zlib's gzread reads plain files too. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data/data.h"

static int idx_dtype(int code, ft_dtype *dt) {
    switch (code) {
    case 0x08: *dt = FT_UINT8; return 0;
    case 0x09: *dt = FT_INT8; return 0;
    case 0x0B: *dt = FT_INT16; return 0;
    case 0x0C: *dt = FT_INT32; return 0;
    case 0x0D: *dt = FT_FLOAT32; return 0;
    case 0x0E: *dt = FT_FLOAT64; return 0;
    default: return -1;
    }
}

/* Read exactly len bytes (gzread takes an unsigned int count). Returns the bytes read. */
static size_t gz_read_all(gzFile f, void *dst, size_t len) {
    size_t got = 0;
    while (got < len) {
        size_t chunk = len - got > (1u << 30) ? (1u << 30) : len - got;
        int r = gzread(f, (char *)dst + got, (unsigned)chunk);
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

/* Reads path into a new tensor; on failure returns NULL with err. Owns nothing on return. */
static ft_tensor *read_idx(const char *path, char *err, size_t errlen) {
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open (%s)", path, errno ? strerror(errno) : "zlib");
        return NULL;
    }
    unsigned char head[4] = {0};
    int64_t shape[FT_MAX_DIMS];
    ft_dtype dt = FT_UINT8;
    uint8_t *data = NULL;
    ft_tensor *out = NULL;
    if (gz_read_all(f, head, 4) != 4 || head[0] != 0 || head[1] != 0 || idx_dtype(head[2], &dt) ||
        head[3] == 0 || head[3] > FT_MAX_DIMS) {
        snprintf(err, errlen, "%s: not an IDX file (it starts with %02x %02x %02x %02x)", path,
                 head[0], head[1], head[2], head[3]);
        goto done;
    }
    int ndim = head[3];
    size_t esize = ft_dtype_size(dt), count = 1;
    for (int d = 0; d < ndim; d++) {
        unsigned char b[4];
        if (gz_read_all(f, b, 4) != 4) {
            snprintf(err, errlen, "%s: truncated IDX header", path);
            goto done;
        }
        shape[d] = (int64_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
        if (shape[d] && count > ((size_t)1 << 40) / (size_t)shape[d]) {
            snprintf(err, errlen, "%s: IDX dims too large", path);
            goto done;
        }
        count *= (size_t)shape[d];
    }
    size_t nbytes = count * esize;
    data = malloc(nbytes ? nbytes : 1);
    if (!data) {
        snprintf(err, errlen, "%s: out of memory for %zu bytes", path, nbytes);
        goto done;
    }
    size_t got = gz_read_all(f, data, nbytes);
    if (got != nbytes) {
        int zerr = 0;
        const char *zmsg = gzerror(f, &zerr);
        snprintf(err, errlen, "%s: truncated: %zu of %zu data bytes%s%s", path, got, nbytes,
                 zerr < 0 ? ": " : "", zerr < 0 ? zmsg : "");
        goto done;
    }
    if (esize > 1) /* big-endian to host */
        for (size_t i = 0; i < count; i++) {
            uint8_t *p = data + i * esize;
            int probe = 1;
            if (*(char *)&probe) /* little-endian host */
                for (size_t a = 0, b = esize - 1; a < b; a++, b--) {
                    uint8_t t = p[a];
                    p[a] = p[b];
                    p[b] = t;
                }
        }
    if (ft_from_data(data, dt, shape, ndim, &out) != FT_OK) {
        snprintf(err, errlen, "%s: %s", path, ft_last_error());
        out = NULL;
    }
done:
    free(data);
    gzclose(f);
    return out;
}

/* read_idx(path) -> tensor of the file's dtype and shape (uint8 [60000,28,28] for images). */
int ftl_data_read_idx(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    char err[1024];
    ft_tensor *t = read_idx(path, err, sizeof err);
    if (!t) return luaL_error(L, "read_idx: %s", err);
    ftl_push_tensor(L, t);
    return 1;
}
