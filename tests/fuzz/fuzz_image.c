/* fuzz_image.c: libFuzzer target for image decoding (and Resize on whatever decodes).
 * FUZZ_SOURCES: runtime/data/image.c
 * FUZZ_LDLIBS: -lturbojpeg -lm
 * FUZZ_SEED_MAIN: built with -DFUZZ_SEED_MAIN, `prog CORPUS_DIR DICT_FILE` writes a tiny valid
 * JPEG, PNG, GIF and BMP as seeds, and a dictionary of their markers.
 *
 * Any input must give an image or NULL with a message naming the input, never a crash, leak or
 * read past the buffer. The last byte picks a DCT-scaled decode and the Resize method.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"

static void check_image(const uint8_t *data, size_t size) {
    char err[256] = "";
    uint8_t last = size ? data[size - 1] : 0;
    ftd_image *im =
        ftd_image_new_from_memory(data, size, "fuzz", (last & 1) ? 16 : 0, err, sizeof err);
    if (!im) {
        if (strncmp(err, "fuzz: ", 6) != 0) abort(); /* every failure names the input */
        return;
    }
    if (im->w <= 0 || im->h <= 0 || (uint64_t)im->w * im->h > ftd_image_max_pixels()) abort();
    /* Touch every pixel (ASan sees a short buffer) and resize small results. */
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)im->w * im->h * 3; i++) sum += im->rgb[i];
    if ((uint64_t)im->w * im->h <= (1u << 16)) {
        int method = (last >> 1) & 3, pad = method >= FTL_RESIZE_PAD;
        ftd_image *r = ftd_image_resize(im, 1 + (last >> 4), 1 + (last & 7), method, 0.3, 0.7);
        if (!r && !pad) abort(); /* only pad may refuse (absurd aspect ratios) */
        ftd_image_free(r);
    }
    ftd_image_free(im);
    (void)sum;
}

#ifndef FUZZ_SEED_MAIN
/* A lying header may ask for the cap's worth of pixels; keep that within libFuzzer's memory
 * limit and fast (the cap itself is what we test, not how much RAM there is). */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    ftd_image_set_max_pixels(1u << 20);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_image(data, size);
    return 0;
}
#else
#include <turbojpeg.h>

static void put(const char *dir, const char *name, const void *b, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) exit(1);
    fclose(f);
    check_image(b, n); /* the seeds themselves must decode */
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    /* An 8x6 picture, encoded by TurboJPEG (4:2:0 and greyscale). */
    uint8_t rgb[8 * 6 * 3];
    for (int i = 0; i < 8 * 6 * 3; i++) rgb[i] = (uint8_t)(i * 37);
    tjhandle tj = tjInitCompress();
    for (int grey = 0; grey < 2; grey++) {
        unsigned char *jpg = NULL;
        unsigned long n = 0;
        if (tjCompress2(tj, rgb, 8, 0, 6, TJPF_RGB, &jpg, &n, grey ? TJSAMP_GRAY : TJSAMP_420, 75,
                        0))
            return 1;
        put(argv[1], grey ? "grey.jpg" : "rgb.jpg", jpg, n);
        tjFree(jpg);
    }
    tjDestroy(tj);
    /* A 1x1 GIF with a transparent index, and a 1x1 RGBA PNG (stored zlib block). */
    static const uint8_t gif[] = "GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\x00\x00\x00\x00\xff"
                                 "!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00"
                                 "\x00\x02\x02\x44\x01\x00;";
    put(argv[1], "one.gif", gif, sizeof gif - 1);
    static const uint8_t png[] =
        "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
        "\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\x0dIDAT\x78\x9c\x63\x10\x68\xf8\x50\x0f"
        "\x00\x04\x24\x02\x00\xbe\xeb\x33\x97\x00\x00\x00\x00IEND\xae\x42\x60\x82";
    put(argv[1], "one.png", png, sizeof png - 1);
    /* A 2x2 24-bit BMP: 14-byte file header, 40-byte info header, rows padded to 4 bytes. */
    uint8_t bmp[54 + 16] = {'B', 'M', 70, 0, 0, 0, 0, 0, 0, 0,  54, 0, 0, 0, 40, 0,  0, 0, 2,
                            0,   0,   0,  2, 0, 0, 0, 1, 0, 24, 0,  0, 0, 0, 0,  16, 0, 0, 0};
    for (int i = 54; i < 70; i++) bmp[i] = (uint8_t)(i * 11);
    put(argv[1], "two.bmp", bmp, sizeof bmp);
    FILE *d = fopen(argv[2], "w");
    if (!d) return 1;
    fputs("soi=\"\\xff\\xd8\\xff\"\nsof0=\"\\xff\\xc0\"\nsof2=\"\\xff\\xc2\"\ndht=\"\\xff\\xc4\"\n"
          "dqt=\"\\xff\\xdb\"\nsos=\"\\xff\\xda\"\neoi=\"\\xff\\xd9\"\ndri=\"\\xff\\xdd\"\n"
          "adobe=\"Adobe\"\nihdr=\"IHDR\"\nidat=\"IDAT\"\niend=\"IEND\"\nplte=\"PLTE\"\n"
          "trns=\"tRNS\"\ngif89=\"GIF89a\"\ngce=\"!\\xf9\\x04\"\nimg=\",\\x00\\x00\\x00\\x00\"\n"
          "bm=\"BM\"\n",
          d);
    fclose(d);
    return 0;
}
#endif
