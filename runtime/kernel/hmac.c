/* hmac.c: HMAC-SHA256 = H((K ^ opad) || H((K ^ ipad) || message)), K padded to the block size
 * (hashed first when longer). See hmac.h. */
#include <string.h>

#include "kernel/hmac.h"

#define BLOCK 64

void ftk_hmac_init(ftk_hmac *h, const void *key, size_t keylen) {
    uint8_t k[BLOCK] = {0}, pad[BLOCK];
    if (keylen > BLOCK)
        sha256(key, keylen, k);
    else
        memcpy(k, key, keylen);
    for (int i = 0; i < BLOCK; i++) pad[i] = k[i] ^ 0x36;
    sha256_init(&h->inner);
    sha256_update(&h->inner, pad, BLOCK);
    for (int i = 0; i < BLOCK; i++) pad[i] = k[i] ^ 0x5c;
    sha256_init(&h->outer);
    sha256_update(&h->outer, pad, BLOCK);
}

void ftk_hmac_hex(const ftk_hmac *h, const void *const *parts, const size_t *lens, int n,
                  char hex[65]) {
    sha256_ctx c = h->inner;
    uint8_t d[32];
    for (int i = 0; i < n; i++) sha256_update(&c, parts[i], lens[i]);
    sha256_final(&c, d);
    c = h->outer;
    sha256_update(&c, d, sizeof d);
    sha256_final(&c, d);
    sha256_hex(d, hex);
}

int ftk_equal_ct(const char *a, size_t na, const char *b, size_t nb) {
    if (na != nb) return 0;
    unsigned diff = 0;
    for (size_t i = 0; i < na; i++) diff |= (unsigned char)a[i] ^ (unsigned char)b[i];
    return diff == 0;
}
