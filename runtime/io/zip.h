/* zip.h: a read-only ZIP directory over a buffer already in memory (ZIP64 included).
 *
 * Only what PyTorch checkpoints need: list entries, find one by name, and hand out a pointer
 * to a stored (uncompressed) entry's bytes. Nothing is decompressed and nothing is copied
 * except the entry names. Every offset and size is checked against the buffer, so a hostile
 * archive can only produce an error. The buffer must outlive the zip_archive.
 */
#ifndef FTLUA_ZIP_H
#define FTLUA_ZIP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name; /* NUL-terminated copy of the entry name */
    size_t name_len;
    int method;          /* 0 = stored; anything else is compressed and has no data pointer */
    uint32_t crc32;      /* from the central directory */
    uint64_t size;       /* uncompressed size */
    uint64_t csize;      /* size of the bytes in the file */
    const uint8_t *data; /* csize bytes inside the buffer */
} zip_entry;

typedef struct {
    size_t n; /* entries, in central-directory order */
    zip_entry *entries;
    const zip_entry **sorted; /* the entries sorted by name, for zip_find */
    char *names;              /* storage for the names */
} zip_archive;

/* Returns NULL and writes a message to err on anything malformed (duplicate names included). */
zip_archive *new_zip_archive(const uint8_t *buf, size_t len, char *err, size_t errlen);
void free_zip_archive(zip_archive *z);

/* The entry named exactly name (len bytes), or NULL. */
const zip_entry *zip_find(const zip_archive *z, const char *name, size_t len);

/* Standard CRC-32 (the one ZIP uses). */
uint32_t zip_crc32(const uint8_t *p, size_t n);

/* 1 when buf starts like a ZIP local file header ("PK\3\4") or an empty archive ("PK\5\6"). */
int zip_looks_like(const uint8_t *buf, size_t len);

#endif
