/* sha256.h: SHA-256 (FIPS 180-4) in plain C, to check downloaded weights against the hash
 * prefix in their file name (torch.hub's rule). No Lua, no libtorch. */
#ifndef FTLUA_SHA256_H
#define FTLUA_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];     /* the running hash */
    uint64_t nbytes;   /* message length so far */
    uint8_t block[64]; /* a partial block waiting for more bytes */
    size_t nblock;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, uint8_t digest[32]); /* c must be re-initialised after this */

/* One call: digest of len bytes. */
void sha256(const void *data, size_t len, uint8_t digest[32]);
/* 64 lowercase hex digits and a NUL. */
void sha256_hex(const uint8_t digest[32], char hex[65]);
/* Digest of everything readable from fd (from its current position) or of the file at path.
 * Return 0, or -1 with a message in err. */
int sha256_fd(int fd, uint8_t digest[32], char *err, size_t errlen);
int sha256_file(const char *path, uint8_t digest[32], char *err, size_t errlen);

#endif
