/* safetensors.h: read and write the safetensors format. Pure C11: no libtorch, no Lua.
 *
 * File layout: u64 little-endian N, then N bytes of UTF-8 JSON (starting with '{', maybe
 * right-padded with spaces), then the data buffer. The reader validates everything (JSON
 * grammar, dtypes, shapes, offsets, full coverage of the buffer) before handing out entries,
 * and never allocates from a header field it has not checked against the real file length.
 * Every error message starts with "safetensors: ". See docs/safetensors.md.
 */
#ifndef FT_SAFETENSORS_H
#define FT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "io/dtype.h"

#define ST_MAX_HEADER 100000000u /* readers reject a larger header, as the format says */

typedef struct {
    const char *name; /* UTF-8, NUL-terminated, owned by the st_file */
    ft_dtype dtype;
    int ndim; /* 0 for a scalar */
    int64_t shape[FT_MAX_DIMS];
    const uint8_t *data; /* little-endian C order; points into the file's bytes */
    size_t nbytes;       /* numel * element size; may be 0 */
} st_entry;

typedef struct {
    const char *key;
    const char *value;
} st_kv;

typedef struct {
    int n;
    st_entry *entries; /* in header order */
    int nmeta;
    st_kv *meta;       /* "__metadata__" pairs, in header order */
    size_t header_len; /* N */
    /* private */
    char *strings; /* decoded names, keys and values */
    void *map;     /* the mapped (or read) file, for new_st_file_from_path */
    size_t map_len;
    int mapped;
} st_file;

/* Parse and validate buf[0..len). Entries point into buf, which must outlive the st_file.
 * Returns NULL and writes a message to err on any problem. */
st_file *new_st_file_from_buffer(const uint8_t *buf, size_t len, char *err, size_t errlen);
/* Map (or read) the file at path, then the same as above; messages name the path. */
st_file *new_st_file_from_path(const char *path, char *err, size_t errlen);
void free_st_file(st_file *f); /* NULL is fine */

const st_entry *st_find(const st_file *f, const char *name); /* NULL when absent */
const char *st_meta_get(const st_file *f, const char *key);  /* NULL when absent */

/* A tensor to write. data holds nbytes (= numel * element size) of little-endian C-order
 * elements; with st_write_fill it may be NULL and the callback supplies the bytes. */
typedef struct {
    const char *name;
    ft_dtype dtype;
    int ndim;
    int64_t shape[FT_MAX_DIMS];
    const void *data;
    size_t nbytes;
} st_tensor_in;

/* Fill dst with tensor i's nbytes; return 0, or nonzero after writing a message to err. */
typedef int (*st_fill_fn)(void *ctx, int i, void *dst, size_t nbytes, char *err, size_t errlen);

/* Write path atomically (path.tmp.<pid>, fsync, rename). Tensors are laid out in the order
 * given; the header lists "__metadata__" (if nmeta > 0) and then the tensors in that order.
 * Returns 0, or -1 with a message in err (and no file left behind). */
int st_write(const char *path, const st_tensor_in *t, int n, const st_kv *meta, int nmeta,
             char *err, size_t errlen);
/* Same, but tensor i's bytes come from fill(ctx, i, ...) into a scratch buffer, so only one
 * tensor's bytes need to be in memory at a time. */
int st_write_fill(const char *path, const st_tensor_in *t, int n, const st_kv *meta, int nmeta,
                  st_fill_fn fill, void *ctx, char *err, size_t errlen);

/* The JSON header st_write would write, space-padded to a multiple of 8 bytes, with offsets
 * assigned in the order given. Returns a malloc'd buffer of *len bytes (free with free()), or
 * NULL with a message in err. Also validates names, dtypes, shapes and nbytes. */
char *new_st_header(const st_tensor_in *t, int n, const st_kv *meta, int nmeta, size_t *len,
                    char *err, size_t errlen);

const char *st_dtype_name(ft_dtype dtype); /* "F32", "BF16", ...; "?" when out of range */
size_t st_dtype_size(ft_dtype dtype);      /* bytes per element; 0 when out of range */

#endif /* FT_SAFETENSORS_H */
