/* test_sha256.c: runtime/weights/sha256.c against the FIPS 180-4 example vectors (NIST's
 * "SHA256.pdf" and the long-message vector), incremental updates split at every offset, and the
 * sha256sum program on a random file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "weights/sha256.h"

static int hex_of(const void *data, size_t len, const char *want) {
    uint8_t d[32];
    char hex[65];
    sha256(data, len, d);
    sha256_hex(d, hex);
    if (strcmp(hex, want) != 0) printf("# got %s\n# want %s\n", hex, want);
    return strcmp(hex, want) == 0;
}

int main(void) {
    CHECK("sha256 empty",
          hex_of("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK("sha256 abc",
          hex_of("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK("sha256 448-bit message",
          hex_of(m448, strlen(m448),
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    const char *m896 =
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
        "klmnopqrlmnopqrsmnopqrstnopqrstu";
    CHECK("sha256 896-bit message",
          hex_of(m896, strlen(m896),
                 "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"));

    /* A million 'a's, fed in uneven pieces so the block buffering is exercised. */
    sha256_ctx c;
    sha256_init(&c);
    char as[1024]; /* pieces are at most 1009 bytes */
    memset(as, 'a', sizeof as);
    size_t left = 1000000, piece = 1;
    while (left) {
        size_t n = piece < left ? piece : left;
        sha256_update(&c, as, n);
        left -= n;
        piece = piece % 997 + 13;
    }
    uint8_t d[32];
    char hex[65];
    sha256_final(&c, d);
    sha256_hex(d, hex);
    CHECK("sha256 a million a's",
          strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);

    /* Every length 0..200 and every split point: two updates equal one call. */
    uint8_t msg[200];
    for (int k = 0; k < 200; k++) msg[k] = (uint8_t)(k * 7 + 3);
    int split_ok = 1;
    for (size_t len = 0; len <= sizeof msg; len++) {
        uint8_t whole[32];
        sha256(msg, len, whole);
        for (size_t at = 0; at <= len; at++) {
            sha256_init(&c);
            sha256_update(&c, msg, at);
            sha256_update(&c, msg + at, len - at);
            sha256_final(&c, d);
            if (memcmp(d, whole, 32) != 0) split_ok = 0;
        }
    }
    CHECK("sha256 split updates equal one call", split_ok);

    /* A random file of an odd size: our file hash equals sha256sum's. */
    char path[] = "/tmp/ftlua_sha256_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        SKIP("sha256 file vs sha256sum", "cannot make a temp file");
        return check_exit();
    }
    srand(12345);
    size_t size = 3 * 1000 * 1000 + 17;
    uint8_t *buf = malloc(size);
    for (size_t k = 0; k < size; k++) buf[k] = (uint8_t)(rand() >> 7);
    int wrote = write(fd, buf, size) == (ssize_t)size;
    close(fd);
    free(buf);
    char err[256], cmd[128], want[65] = "";
    int ok = wrote && sha256_file(path, d, err, sizeof err) == 0;
    sha256_hex(d, hex);
    snprintf(cmd, sizeof cmd, "sha256sum %s", path);
    FILE *p = popen(cmd, "r");
    int have = p && fscanf(p, "%64s", want) == 1;
    if (p) pclose(p);
    if (!have)
        SKIP("sha256 file vs sha256sum", "sha256sum not available");
    else
        CHECK("sha256 file vs sha256sum", ok && strcmp(hex, want) == 0);
    CHECK("sha256 missing file is an error",
          sha256_file("/nonexistent/x", d, err, sizeof err) == -1 &&
              strstr(err, "/nonexistent/x") != NULL);
    unlink(path);
    return check_exit();
}
