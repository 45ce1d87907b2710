/* hmac.h: HMAC-SHA256 (RFC 2104) over the project's own SHA-256 (weights/sha256.c): Jupyter
 * signs every message with it, keyed by the connection file's "key". */
#ifndef FTK_HMAC_H
#define FTK_HMAC_H

#include <stddef.h>
#include <stdint.h>

#include "weights/sha256.h"

/* The key's inner and outer pads, hashed once; each message copies them. */
typedef struct {
    sha256_ctx inner, outer;
} ftk_hmac;

void ftk_hmac_init(ftk_hmac *h, const void *key, size_t keylen);
/* The MAC of the concatenation of n parts, as 64 lowercase hex digits and a NUL. */
void ftk_hmac_hex(const ftk_hmac *h, const void *const *parts, const size_t *lens, int n,
                  char hex[65]);
/* Compares two strings in time that does not depend on where they differ. 1 when equal. */
int ftk_equal_ct(const char *a, size_t na, const char *b, size_t nb);

#endif
