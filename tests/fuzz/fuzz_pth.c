/* fuzz_pth.c: libFuzzer target for the checkpoint reader (runtime/io/pth.c, pth_load.c, zip.c).
 *
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iruntime \
 *         tests/fuzz/fuzz_pth.c runtime/io/pth.c runtime/io/pth_load.c runtime/io/pickle.c \
 *         runtime/io/zip.c runtime/io/dtype.c -o fuzz_pth
 *   ./fuzz_pth tests/fuzz/seeds/fuzz_pth
 *
 * Any input must give a result or an error message, never a crash, a leak or a read outside
 * the input. For results, the first and last byte of every storage and of every tensor view
 * are read so that AddressSanitizer checks the bounds the parser promises.
 * Seeds: real torch.save files in tests/fuzz/seeds/fuzz_pth/ (make_pth_fixtures.py --seeds). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/pth.h"

#define TOK(lit)                                                                                   \
    { lit, sizeof(lit) - 1 }
static const struct {
    const char *s;
    size_t n;
} tokens[] = {
    TOK("PK\3\4"),
    TOK("PK\1\2"),
    TOK("PK\5\6"),
    TOK("PK\6\6"),
    TOK("PK\6\7"),
    TOK("/data.pkl"),
    TOK("/data/"),
    TOK("/byteorder"),
    TOK("little"),
    TOK("big"),
    TOK("/constants.pkl"),
    TOK("ctorch._utils\n_rebuild_tensor_v2\n"),
    TOK("ctorch._utils\n_rebuild_parameter\n"),
    TOK("ccollections\nOrderedDict\n"),
    TOK("ctorch\nFloatStorage\n"),
    TOK("ctorch\nBoolStorage\n"),
    TOK("ctorch\nHalfStorage\n"),
    TOK("ctorch\nSize\n"),
    TOK("X\7\0\0\0storage"),
    TOK("\x80\2\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."), /* legacy magic number */
    TOK("\x80\2M\xe9\3."),                                          /* legacy protocol 1001 */
};

#ifdef FUZZ_SEED_MAIN
/* tests/fuzz/run.sh builds this with -DFUZZ_SEED_MAIN and runs `prog CORPUS DICT`: the seeds
 * are already in tests/fuzz/seeds/fuzz_pth/, so this only writes the libFuzzer dictionary. */
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    FILE *d = fopen(argv[2], "w");
    if (!d) return 1;
    for (size_t k = 0; k < sizeof(tokens) / sizeof(tokens[0]); k++) {
        fputc('"', d);
        for (size_t i = 0; i < tokens[k].n; i++) {
            unsigned char c = (unsigned char)tokens[k].s[i];
            if (c >= 32 && c < 127 && c != '"' && c != '\\')
                fputc(c, d);
            else
                fprintf(d, "\\x%02x", c);
        }
        fputs("\"\n", d);
    }
    return fclose(d) != 0;
}
#else
static volatile uint8_t sink;

static void touch(const pth_file *f) {
    for (int k = 0; k < f->n_storages; k++) {
        const pth_storage *s = &f->storages[k];
        if (s->nbytes) sink ^= s->data[0] ^ s->data[s->nbytes - 1];
    }
    for (int k = 0; k < f->n_entries; k++) {
        const pth_entry *e = &f->entries[k];
        sink ^= (uint8_t)e->name[strlen(e->name)];
        if (!e->numel) continue;
        int64_t last = 0;
        for (int d = 0; d < e->ndim; d++) last += (e->shape[d] - 1) * e->stride[d];
        size_t es = ft_dtype_size(e->dtype);
        sink ^= e->data[0] ^ e->data[(size_t)last * es + es - 1];
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The root, and a key path as a nested checkpoint would use. */
    static const char *paths[] = {NULL, "model"};
    for (int k = 0; k < 2; k++) {
        char err[256];
        err[0] = 1;
        pth_file *f = new_pth_file_from_buffer(data, size, paths[k], err, sizeof(err));
        if (f)
            touch(f);
        else if (err[0] == 1 || err[0] == 0)
            abort(); /* every refusal must say why */
        free_pth_file(f);
    }
    (void)tokens;
    return 0;
}
#endif
