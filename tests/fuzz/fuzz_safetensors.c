/* fuzz_safetensors.c: libFuzzer target for the safetensors reader.
 *
 * Any input must either be rejected with a "safetensors: " message or parse into entries
 * whose data lies inside the input and tiles the data buffer. What parses must also survive a
 * round trip: re-encoding the header with new_st_header and parsing again gives the same
 * names, dtypes, shapes, offsets and metadata.
 *
 * Built with -DFUZZ_SEED_MAIN (see tests/fuzz/run.sh) this file is instead a program that
 * writes seed files into argv[1] and a libFuzzer dictionary to argv[2].
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

#define FUZZ_ASSERT(c)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_safetensors: %s:%d: %s\n", __FILE__, __LINE__, #c);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int by_data(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->data != y->data) return x->data < y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Re-encode f's header (tensors laid out in data order, so the offsets stay the same), parse
 * the result, and compare. */
static void round_trip(const st_file *f, const uint8_t *data, size_t size) {
    size_t data_at = 8 + f->header_len, data_len = size - data_at;
    const st_entry **order = malloc((size_t)(f->n + 1) * sizeof *order);
    st_tensor_in *in = calloc((size_t)f->n + 1, sizeof *in);
    FUZZ_ASSERT(order && in);
    for (int i = 0; i < f->n; i++) order[i] = &f->entries[i];
    qsort(order, (size_t)f->n, sizeof *order, by_data);
    for (int i = 0; i < f->n; i++) {
        in[i].name = order[i]->name;
        in[i].dtype = order[i]->dtype;
        in[i].ndim = order[i]->ndim;
        memcpy(in[i].shape, order[i]->shape, sizeof in[i].shape);
        in[i].nbytes = order[i]->nbytes;
    }
    char err[512];
    size_t hlen;
    char *hdr = new_st_header(in, f->n, f->meta, f->nmeta, &hlen, err, sizeof err);
    if (!hdr) fprintf(stderr, "re-encode failed: %s\n", err);
    FUZZ_ASSERT(hdr != NULL && hlen % 8 == 0);
    uint8_t *file = malloc(8 + hlen + data_len);
    FUZZ_ASSERT(file);
    for (int i = 0; i < 8; i++) file[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(file + 8, hdr, hlen);
    if (data_len) memcpy(file + 8 + hlen, data + data_at, data_len);
    st_file *g = new_st_file_from_buffer(file, 8 + hlen + data_len, err, sizeof err);
    if (!g) fprintf(stderr, "re-parse failed: %s\n", err);
    FUZZ_ASSERT(g != NULL && g->n == f->n && g->nmeta == f->nmeta);
    for (int i = 0; i < f->n; i++) {
        const st_entry *a = &f->entries[i], *b = st_find(g, a->name);
        FUZZ_ASSERT(b && b->dtype == a->dtype && b->ndim == a->ndim && b->nbytes == a->nbytes);
        FUZZ_ASSERT(memcmp(a->shape, b->shape, sizeof a->shape) == 0);
        FUZZ_ASSERT((size_t)(a->data - data) - data_at == (size_t)(b->data - file) - (8 + hlen));
    }
    for (int i = 0; i < f->nmeta; i++) {
        FUZZ_ASSERT(strcmp(f->meta[i].key, g->meta[i].key) == 0);
        FUZZ_ASSERT(strcmp(f->meta[i].value, g->meta[i].value) == 0);
    }
    free_st_file(g);
    free(file);
    free(hdr);
    free(in);
    free(order);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    st_file *f = new_st_file_from_buffer(data, size, err, sizeof err);
    if (!f) {
        FUZZ_ASSERT(strncmp(err, "safetensors: ", 13) == 0);
        return 0;
    }
    size_t data_at = 8 + f->header_len;
    FUZZ_ASSERT(data_at <= size && f->header_len <= ST_MAX_HEADER);
    uint64_t total = 0;
    unsigned sum = 0;
    for (int i = 0; i < f->n; i++) {
        const st_entry *e = &f->entries[i];
        FUZZ_ASSERT(e->ndim >= 0 && e->ndim <= FT_MAX_DIMS);
        FUZZ_ASSERT(e->data >= data + data_at && e->nbytes <= (size_t)(data + size - e->data));
        uint64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            FUZZ_ASSERT(e->shape[d] >= 0);
            numel *= (uint64_t)e->shape[d];
        }
        FUZZ_ASSERT(numel * st_dtype_size(e->dtype) == e->nbytes);
        FUZZ_ASSERT(strlen(e->name) < f->header_len);
        for (size_t k = 0; k < e->nbytes; k++) sum += e->data[k]; /* ASan checks each byte */
        total += e->nbytes;
    }
    FUZZ_ASSERT(total == size - data_at);
    for (int i = 0; i < f->nmeta; i++)
        FUZZ_ASSERT(strlen(f->meta[i].key) + strlen(f->meta[i].value) < f->header_len);
    round_trip(f, data, size);
    free_st_file(f);
    return (int)(sum & 0); /* libFuzzer wants 0 */
}

#ifdef FUZZ_SEED_MAIN
/* Seeds: small valid files from the writer, plus hand-written headers that exercise escapes,
 * whitespace and metadata. */
static void seed(const char *dir, const char *name, const st_tensor_in *t, int n, const st_kv *meta,
                 int nmeta) {
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/seed_%s.safetensors", dir, name);
    if (st_write(path, t, n, meta, nmeta, err, sizeof err)) fprintf(stderr, "%s\n", err);
}

static void seed_raw(const char *dir, const char *name, const char *hdr, size_t datalen) {
    char path[1024];
    snprintf(path, sizeof path, "%s/seed_%s.safetensors", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp) return;
    uint64_t n = strlen(hdr);
    for (int i = 0; i < 8; i++) fputc((int)(n >> (8 * i) & 0xff), fp);
    fputs(hdr, fp);
    for (size_t i = 0; i < datalen; i++) fputc((int)(i * 13 & 0xff), fp);
    fclose(fp);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR [DICT]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    static uint8_t bytes[256];
    for (int i = 0; i < 256; i++) bytes[i] = (uint8_t)(i * 31 + 7);
    st_tensor_in all[] = {
        {"w", FT_FLOAT32, 2, {2, 3}, bytes, 24},    {"d", FT_FLOAT64, 1, {2}, bytes, 16},
        {"h", FT_FLOAT16, 1, {3}, bytes, 6},        {"bf", FT_BFLOAT16, 2, {1, 2}, bytes, 4},
        {"l", FT_INT64, 0, {0}, bytes, 8},          {"i", FT_INT32, 1, {2}, bytes, 8},
        {"s", FT_INT16, 1, {1}, bytes, 2},          {"c", FT_INT8, 1, {3}, bytes, 3},
        {"u", FT_UINT8, 1, {4}, bytes, 4},          {"m", FT_BOOL, 1, {2}, bytes, 2},
        {"empty", FT_FLOAT32, 2, {0, 5}, bytes, 0},
    };
    st_kv meta[] = {{"format", "pt"}, {"q\"\\\n", "\xc3\xa9\xf0\x9f\x98\x80"}};
    seed(dir, "all_dtypes", all, 11, meta, 2);
    seed(dir, "one", all, 1, NULL, 0);
    seed(dir, "scalar", &all[4], 1, NULL, 0);
    seed(dir, "empty_tensor", &all[10], 1, meta, 1);
    seed(dir, "nothing", NULL, 0, NULL, 0);
    seed(dir, "meta_only", NULL, 0, meta, 2);
    seed_raw(dir, "whitespace",
             "{ \"a\" : {\"shape\":[ 2 ],\r\n\t\"data_offsets\" : [0,8],\"dtype\":\"F32\"} ,"
             " \"__metadata__\" : {\"k\":\"v\"} }       ",
             8);
    seed_raw(dir, "escapes",
             "{\"\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\":"
             "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
             1);
    seed_raw(dir, "unsorted",
             "{\"b\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[4,8]},"
             "\"a\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[0,4]},"
             "\"z\":{\"dtype\":\"BOOL\",\"shape\":[0,7],\"data_offsets\":[8,8]}}",
             8);
    if (argc > 2) { /* libFuzzer dictionary: one "token" a line, \" \\ and \xNN escaped */
        FILE *fp = fopen(argv[2], "w");
        static const char *tokens[] = {
            "\"dtype\"",
            "\"shape\"",
            "\"data_offsets\"",
            "\"__metadata__\"",
            "\"F32\"",
            "\"F64\"",
            "\"F16\"",
            "\"BF16\"",
            "\"I64\"",
            "\"I32\"",
            "\"I16\"",
            "\"I8\"",
            "\"U8\"",
            "\"BOOL\"",
            "\"U16\"",
            "\"F8_E4M3\"",
            "\\u0000",
            "\\ud83d\\ude00",
            "\\u00e9",
            "\\\"",
            "18446744073709551615",
            "9223372036854775807",
            "4294967296",
            "[]",
            "[0,0]",
            "{}",
            "\":\"",
            "\xf0\x9f\x98\x80",
            "\xed\xa0\x80",
        };
        for (size_t i = 0; fp && i < sizeof tokens / sizeof tokens[0]; i++) {
            fputc('"', fp);
            for (const unsigned char *c = (const unsigned char *)tokens[i]; *c; c++) {
                if (*c == '"' || *c == '\\')
                    fprintf(fp, "\\%c", *c);
                else if (*c < 0x20 || *c >= 0x7f)
                    fprintf(fp, "\\x%02X", *c);
                else
                    fputc(*c, fp);
            }
            fputs("\"\n", fp);
        }
        if (fp) fclose(fp);
    }
    return 0;
}
#endif
