/* image.c: decode JPEG/PNG/GIF/BMP to RGB, and fastai's Resize with PIL's bilinear resampling.
 *
 * JPEG goes through libjpeg-turbo's TurboJPEG API: on this machine it decodes the pets photos
 * about 2x faster than stb_image (522 vs 237..272 img/s on one core, busy machine), and with its
 * default (accurate) DCT and fancy upsampling it is the library PIL uses, so pixels match PIL
 * exactly. TJFLAG_FASTDCT measured -2..+13% here and changes pixels, so it is not used.
 * PNG, GIF, BMP (and CMYK JPEGs, which TurboJPEG cannot turn into RGB) go through stb_image.
 */
#include "data/image.h"
#include "io/errbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

/* stb_image, compiled here only, all static so it can't clash with another copy in the library. */
#include "base/stb_begin.h"
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO /* we read files ourselves, to name them in errors */
#define STBI_NO_LINEAR
#define STBI_ONLY_JPEG /* only for CMYK JPEGs */
#define STBI_ONLY_PNG
#define STBI_ONLY_GIF
#define STBI_ONLY_BMP
#define STBI_MAX_DIMENSIONS (1 << 20)
#define STBI_MALLOC(sz)     malloc(sz) /* so ftd_image can adopt stb's pixels and free() them */
#define STBI_REALLOC(p, sz) realloc(p, sz)
#define STBI_FREE(p)        free(p)
#if defined(__clang__)
/* On a zero-length PNG IDAT stb computes NULL + 0 and memcpy(NULL, p, 0): harmless, but UBSan
 * stops the fuzzer there, so those two checks are off for stb's functions only. */
#pragma clang attribute push(                                                                      \
    __attribute__((no_sanitize("pointer-overflow", "nonnull-attribute"))), apply_to = function)
#endif
#include <stb/stb_image.h>
#if defined(__clang__)
#pragma clang attribute pop
#endif
#include "base/stb_end.h"
#if defined(__GNUC__)
/* This stb version declares a static function it never defines; GCC reports that at the end of
 * the file, after the pop, so this one warning stays off for the file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

#define MAX_FILE_BYTES ((size_t)1 << 30)

/* 0: not read yet from FTLUA_MAX_IMAGE_PIXELS. */
static _Atomic uint64_t max_pixels = 0;

static uint64_t default_max_pixels(void) {
    const char *v = getenv("FTLUA_MAX_IMAGE_PIXELS");
    if (!v || !*v) return FTL_IMAGE_MAX_PIXELS;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || n == 0 || v[0] == '-') {
        fprintf(stderr,
                "warning: FTLUA_MAX_IMAGE_PIXELS='%s' is not a positive whole number of "
                "pixels; using %llu\n",
                v, (unsigned long long)FTL_IMAGE_MAX_PIXELS);
        return FTL_IMAGE_MAX_PIXELS;
    }
    return n;
}

void ftd_image_set_max_pixels(uint64_t n) {
    atomic_store_explicit(&max_pixels, n ? n : default_max_pixels(), memory_order_relaxed);
}

uint64_t ftd_image_max_pixels(void) {
    uint64_t n = atomic_load_explicit(&max_pixels, memory_order_relaxed);
    if (!n) { /* first use: threads racing here all store the same value */
        n = default_max_pixels();
        atomic_store_explicit(&max_pixels, n, memory_order_relaxed);
    }
    return n;
}

static int too_big(int w, int h) {
    return w <= 0 || h <= 0 || (uint64_t)w * (uint64_t)h > ftd_image_max_pixels();
}

ftd_image *ftd_image_new(int w, int h) {
    if (too_big(w, h)) return NULL;
    ftd_image *im = malloc(sizeof *im);
    if (!im) return NULL;
    im->w = w;
    im->h = h;
    im->rgb = malloc((size_t)w * h * 3);
    if (!im->rgb) {
        free(im);
        return NULL;
    }
    return im;
}

void ftd_image_free(ftd_image *im) {
    if (!im) return;
    free(im->rgb);
    free(im);
}

__attribute__((format(printf, 4, 5))) static void set_err(char *err, size_t errlen,
                                                          const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    errbuf_vset_prefixed(err, errlen, name ? name : "(image)", fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- decoding */

/* The size a header claims, checked against the cap before anything is allocated: over the cap,
 * -1 and an error that says the size and the cap; over half of it, a warning (Pillow's
 * DecompressionBombWarning) and 0. */
static int check_size(const char *name, const char *kind, int64_t w, int64_t h, char *err,
                      size_t errlen) {
    uint64_t cap = ftd_image_max_pixels();
    uint64_t pixels = w > 0 && h > 0 ? (uint64_t)w * (uint64_t)h : 0;
    if (pixels > cap) {
        set_err(err, errlen, name,
                "%s is %lldx%lld (%llu pixels), over the cap of %llu pixels "
                "(a decompression bomb?); if the image is real, raise the cap with "
                "FTLUA_MAX_IMAGE_PIXELS",
                kind, (long long)w, (long long)h, (unsigned long long)pixels,
                (unsigned long long)cap);
        return -1;
    }
    if (pixels > cap / 2)
        fprintf(stderr,
                "warning: %s: %s is %lldx%lld (%llu pixels), over %llu: a decompression "
                "bomb? (decoding it; over %llu pixels is refused, see FTLUA_MAX_IMAGE_PIXELS)\n",
                name ? name : "(image)", kind, (long long)w, (long long)h,
                (unsigned long long)pixels, (unsigned long long)(cap / 2), (unsigned long long)cap);
    return 0;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static uint32_t le16(const uint8_t *p) { return (uint32_t)p[1] << 8 | p[0]; }

/* The width and height the header of a PNG, GIF or BMP claims: 0, or -1 when it is too short to
 * say (stb then names what is wrong). GIF: the logical screen, which is what stb decodes. */
static int header_size(const char *kind, const uint8_t *b, size_t len, int64_t *w, int64_t *h) {
    if (!strcmp(kind, "PNG") && len >= 24 && !memcmp(b + 12, "IHDR", 4)) {
        *w = be32(b + 16), *h = be32(b + 20);
    } else if (!strcmp(kind, "GIF") && len >= 10) {
        *w = le16(b + 6), *h = le16(b + 8);
    } else if (!strcmp(kind, "BMP") && len >= 26) {
        if (le32(b + 14) == 12) { /* OS/2 BITMAPCOREHEADER: 16-bit sizes */
            *w = le16(b + 18), *h = le16(b + 20);
        } else {
            *w = (int32_t)le32(b + 18), *h = (int32_t)le32(b + 22);
            if (*h < 0) *h = -*h; /* top-down rows */
        }
    } else {
        return -1;
    }
    return 0;
}

/* The colour PIL gives GIF pixels stb leaves transparent (alpha 0): PIL maps every pixel of the
 * first frame through its palette, including the transparent index, and fills the screen
 * outside the frame with the transparent index, or index 0 without one. So: palette[transparent
 * index or 0] of the first frame's palette (local, else global). Black if there is none. */
static void gif_fill_colour(const uint8_t *b, size_t len, uint8_t rgb[3]) {
    memset(rgb, 0, 3);
    if (len < 13) return;
    const uint8_t *global = (b[10] & 0x80) ? b + 13 : NULL;
    int nglobal = global ? 2 << (b[10] & 7) : 0;
    size_t i = 13 + 3 * (size_t)nglobal;
    int trans = 0;
    const uint8_t *pal = global;
    int npal = nglobal;
    while (i < len) {
        if (b[i] == 0x21 && i + 2 < len) { /* extension: label, then sub-blocks */
            if (b[i + 1] == 0xF9 && i + 6 < len && b[i + 2] == 4 && (b[i + 3] & 1))
                trans = b[i + 6];
            i += 2;
            while (i < len && b[i]) i += 1 + (size_t)b[i];
            i++;
        } else if (b[i] == 0x2C && i + 9 < len) { /* first image descriptor */
            if (b[i + 9] & 0x80) {
                pal = b + i + 10;
                npal = 2 << (b[i + 9] & 7);
            }
            break;
        } else {
            return;
        }
    }
    if (pal && trans < npal && pal + 3 * (size_t)trans + 3 <= b + len)
        memcpy(rgb, pal + 3 * trans, 3);
}

/* stb trusts PNG chunk lengths: a chunk claiming gigabytes makes it realloc that much before it
 * finds the data missing. Walk the chunks first; 0, or -1 with why[] filled. */
static int png_chunks_fit(const uint8_t *b, size_t len, char *why, size_t whylen) {
    size_t i = 8;
    while (i + 12 <= len) {
        uint32_t n =
            (uint32_t)b[i] << 24 | (uint32_t)b[i + 1] << 16 | (uint32_t)b[i + 2] << 8 | b[i + 3];
        if (n > len - i - 12) {
            snprintf(why, whylen, "chunk '%.4s' of %u bytes, %zu left", (const char *)b + i + 4, n,
                     len - i - 12);
            return -1;
        }
        if (!memcmp(b + i + 4, "IEND", 4)) return 0;
        i += 12 + (size_t)n;
    }
    return 0; /* no IEND: let stb judge what is there */
}

/* stb reads missing BMP pixels as zeros; PIL says "image file is truncated". For the plain
 * (uncompressed) layouts, the header says how many bytes the rows take: 0, or -1 with why[]. */
static int bmp_truncated(const uint8_t *b, size_t len, char *why, size_t whylen) {
    if (len < 34) return 0; /* too short for a size: stb judges it */
    uint32_t offset = le32(b + 10), hsize = le32(b + 14);
    if (hsize < 40) return 0;
    int64_t w = (int32_t)le32(b + 18), h = (int32_t)le32(b + 22);
    uint32_t bpp = le16(b + 28), comp = le32(b + 30);
    if (h < 0) h = -h;
    if (w <= 0 || (comp != 0 && comp != 3) || !bpp || bpp > 32) return 0; /* RLE: stb checks */
    uint64_t need = offset + (uint64_t)((w * bpp + 31) / 32 * 4) * (uint64_t)h;
    if (need <= len) return 0;
    snprintf(why, whylen, "%zu bytes, the header needs %llu", len, (unsigned long long)need);
    return -1;
}

/* stb decodes a GIF whose first frame's data is cut short, filling in the rest; PIL says "image
 * file is truncated". Walk to the first frame and its data sub-blocks: 0, or -1 with why[]. */
static int gif_truncated(const uint8_t *b, size_t len, char *why, size_t whylen) {
    if (len < 13) return 0; /* stb judges it */
    size_t i = 13 + ((b[10] & 0x80) ? 3 * (size_t)(2 << (b[10] & 7)) : 0);
    while (i < len && b[i] == 0x21) { /* extensions: label, then sub-blocks up to a 0 */
        i += 2;
        while (i < len && b[i]) i += 1 + (size_t)b[i];
        i++;
    }
    if (i < len && b[i] == 0x2C) { /* the first frame: descriptor, palette, LZW size, blocks */
        if (i + 10 <= len && (b[i + 9] & 0x80)) i += 3 * (size_t)(2 << (b[i + 9] & 7));
        i += 11;
        while (i < len && b[i]) i += 1 + (size_t)b[i];
        if (i < len) return 0; /* the frame's terminating 0 is there */
    } else if (i < len) {
        return 0; /* not a layout we follow: stb judges it */
    }
    snprintf(why, whylen, "%zu bytes, the first frame's data ends past them", len);
    return -1;
}

/* stb path: PNG, GIF (first frame), BMP, CMYK JPEG. req_comp=3 replicates grey and drops alpha,
 * which is what PIL's convert('RGB') does for L, LA, P (with or without transparency) and RGBA. */
static ftd_image *decode_stb(const uint8_t *buf, size_t len, const char *name, const char *kind,
                             char *err, size_t errlen) {
    if (len > INT_MAX) {
        set_err(err, errlen, name, "%s file too large (%zu bytes)", kind, len);
        return NULL;
    }
    int w, h, c;
    char why[96];
    if (!strcmp(kind, "PNG") && png_chunks_fit(buf, len, why, sizeof why)) {
        set_err(err, errlen, name, "truncated or corrupt PNG (%s)", why);
        return NULL;
    }
    /* The claimed size first: stb refuses big images as "unknown image type". */
    int64_t hw, hh;
    if (header_size(kind, buf, len, &hw, &hh) == 0 && check_size(name, kind, hw, hh, err, errlen))
        return NULL;
    if (!strcmp(kind, "BMP") && bmp_truncated(buf, len, why, sizeof why)) {
        set_err(err, errlen, name, "truncated BMP (%s)", why);
        return NULL;
    }
    if (!strcmp(kind, "GIF") && gif_truncated(buf, len, why, sizeof why)) {
        set_err(err, errlen, name, "truncated GIF (%s)", why);
        return NULL;
    }
    if (!stbi_info_from_memory(buf, (int)len, &w, &h, &c)) {
        set_err(err, errlen, name, "corrupt %s header (%s)", kind, stbi_failure_reason());
        return NULL;
    }
    if (too_big(w, h)) { /* the header check above covers this; stb may read it differently */
        if (!check_size(name, kind, w, h, err, errlen))
            set_err(err, errlen, name, "corrupt %s header (size %dx%d)", kind, w, h);
        return NULL;
    }
    ftd_image *im = malloc(sizeof *im);
    if (!im) {
        set_err(err, errlen, name, "out of memory");
        return NULL;
    }
    if (c == 1 && stbi_is_16_bit_from_memory(buf, (int)len)) {
        /* 16-bit grey PNG: PIL holds it as mode I and convert('RGB') clips at 255, it does not
         * scale down like stb's 8-bit conversion would. */
        uint16_t *g = stbi_load_16_from_memory(buf, (int)len, &im->w, &im->h, &c, 1);
        im->rgb = g ? malloc((size_t)im->w * im->h * 3) : NULL;
        if (im->rgb)
            for (size_t i = 0; i < (size_t)im->w * im->h; i++)
                memset(im->rgb + 3 * i, g[i] > 255 ? 255 : g[i], 3);
        free(g);
    } else if (!strcmp(kind, "GIF")) {
        /* Ask for alpha to find the pixels stb filled in, then colour them the way PIL does. */
        uint8_t fill[3], *p = stbi_load_from_memory(buf, (int)len, &im->w, &im->h, &c, 4);
        gif_fill_colour(buf, len, fill);
        im->rgb = p;
        for (size_t i = 0; p && i < (size_t)im->w * im->h; i++) /* RGBA -> RGB in place */
            memmove(p + 3 * i, p[4 * i + 3] ? p + 4 * i : fill, 3);
        uint8_t *smaller = p ? realloc(p, (size_t)im->w * im->h * 3) : NULL;
        if (smaller) im->rgb = smaller;
    } else {
        im->rgb = stbi_load_from_memory(buf, (int)len, &im->w, &im->h, &c, 3);
    }
    if (!im->rgb) {
        set_err(err, errlen, name, "corrupt or truncated %s (%s)", kind, stbi_failure_reason());
        free(im);
        return NULL;
    }
    return im;
}

/* The largest DCT scale 1/d (d in 8, 4, 2) whose decoded shorter side is still >= min_side. */
static int jpeg_denominator(int w, int h, int min_side) {
    int s = w < h ? w : h;
    if (min_side <= 0) return 1;
    for (int d = 8; d > 1; d /= 2)
        if ((s + d - 1) / d >= min_side) return d;
    return 1;
}

/* draft_above: DCT scaling only for images of more pixels than this. */
static ftd_image *decode_jpeg(const uint8_t *buf, size_t len, const char *name, int min_side,
                              uint64_t draft_above, char *err, size_t errlen) {
    tjhandle tj = tjInitDecompress();
    if (!tj) {
        set_err(err, errlen, name, "cannot start libjpeg-turbo (%s)", tjGetErrorStr2(NULL));
        return NULL;
    }
    ftd_image *im = NULL;
    int w = 0, h = 0, subsamp = -1, cs = -1;
    if (tjDecompressHeader3(tj, buf, (unsigned long)len, &w, &h, &subsamp, &cs) != 0) {
        set_err(err, errlen, name, "corrupt JPEG header (%s)", tjGetErrorStr2(tj));
    } else if (w <= 0 || h <= 0 || cs < 0) { /* a header cut short can "succeed" without a frame */
        set_err(err, errlen, name, "corrupt or truncated JPEG header (no frame)");
    } else if (check_size(name, "JPEG", w, h, err, errlen)) {
        /* err says the size and the cap */
    } else if (cs == TJCS_CMYK || cs == TJCS_YCCK) {
        im = decode_stb(buf, len, name, "CMYK JPEG", err, errlen); /* TurboJPEG: no CMYK->RGB */
    } else {
        int d = (uint64_t)w * h > draft_above ? jpeg_denominator(w, h, min_side) : 1;
        tjscalingfactor sf = {1, d};
        im = ftd_image_new(TJSCALED(w, sf), TJSCALED(h, sf));
        if (!im) {
            set_err(err, errlen, name, "out of memory for a %dx%d image", w, h);
        } else if (tjDecompress2(tj, buf, (unsigned long)len, im->rgb, im->w, 0, im->h, TJPF_RGB,
                                 TJFLAG_LIMITSCANS) != 0) {
            /* A warning means libjpeg recovered and filled in the picture. PIL accepts those
             * ("Corrupt JPEG data: ... extraneous bytes"), except running out of data, which PIL
             * reports as "image file is truncated": so do we. */
            const char *msg = tjGetErrorStr2(tj);
            if (tjGetErrorCode(tj) != TJERR_WARNING || strstr(msg, "Premature end")) {
                set_err(err, errlen, name, "corrupt or truncated JPEG (%s)", msg);
                ftd_image_free(im);
                im = NULL;
            }
        }
    }
    tjDestroy(tj);
    return im;
}

static ftd_image *decode_memory(const void *data, size_t len, const char *name, int min_side,
                                uint64_t draft_above, char *err, size_t errlen) {
    const uint8_t *b = data;
    if (!name) name = "(memory)";
    if (!b || len == 0) {
        set_err(err, errlen, name, "empty file");
        return NULL;
    }
    /* By content: the pets data has a GIF and a PNG named .jpg. */
    if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        return decode_jpeg(b, len, name, min_side, draft_above, err, errlen);
    if (len >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8))
        return decode_stb(b, len, name, "PNG", err, errlen);
    if (len >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6)))
        return decode_stb(b, len, name, "GIF", err, errlen);
    if (len >= 2 && b[0] == 'B' && b[1] == 'M') return decode_stb(b, len, name, "BMP", err, errlen);
    set_err(err, errlen, name,
            "not a JPEG, PNG, GIF or BMP image (starts with %02x %02x %02x %02x)", b[0],
            len > 1 ? b[1] : 0, len > 2 ? b[2] : 0, len > 3 ? b[3] : 0);
    return NULL;
}

ftd_image *ftd_image_new_from_memory(const void *data, size_t len, const char *name, int min_side,
                                     char *err, size_t errlen) {
    return decode_memory(data, len, name, min_side, 0, err, errlen);
}

static ftd_image *decode_file(const char *path, int min_side, uint64_t draft_above, char *err,
                              size_t errlen) {
    /* O_NONBLOCK: opening a FIFO named x.jpg must not wait for a writer that never comes. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, path, "cannot open (%s)", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_err(err, errlen, path, "cannot read (%s)", strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, path, "not a file but a %s",
                S_ISDIR(st.st_mode)    ? "folder"
                : S_ISFIFO(st.st_mode) ? "FIFO (named pipe)"
                : S_ISSOCK(st.st_mode) ? "socket"
                                       : "device");
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size >= MAX_FILE_BYTES) {
        set_err(err, errlen, path, "file of %lld bytes, over the limit of %zu",
                (long long)st.st_size, MAX_FILE_BYTES - 1);
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        set_err(err, errlen, path, "cannot read (%s)", strerror(errno));
        close(fd);
        return NULL;
    }
    /* Read to EOF in a growing buffer: the size may change under us (/proc, a file being
     * written); the cap still holds. */
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap || cap >= MAX_FILE_BYTES) break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    ftd_image *im = NULL;
    if (!buf) {
        set_err(err, errlen, path, "out of memory reading the file");
    } else if (ferror(f)) {
        set_err(err, errlen, path, "cannot read (%s)", strerror(errno));
    } else if (len == cap) {
        set_err(err, errlen, path, "file larger than %zu bytes", MAX_FILE_BYTES);
    } else {
        im = decode_memory(buf, len, path, min_side, draft_above, err, errlen);
    }
    free(buf);
    fclose(f);
    return im;
}

ftd_image *ftd_image_new_from_file(const char *path, int min_side, char *err, size_t errlen) {
    return decode_file(path, min_side, 0, err, errlen);
}

ftd_image *ftd_image_new_item_from_file(const char *path, int min_side, char *err, size_t errlen) {
    return decode_file(path, min_side, FTL_IMAGE_DRAFT_PIXELS, err, errlen);
}

/* ---------------------------------------------------------------- PIL bilinear resampling */

/* PIL resamples in two passes (horizontal, then vertical, rounding to uint8 in between), each a
 * 1-D convolution with a triangle filter whose support grows with the downscale factor. Weights
 * are normalised per output pixel, then turned into fixed point with 22 fractional bits. We do
 * the same arithmetic, so the result is PIL's to the bit. */
#define FIX_BITS 22

typedef struct {
    int ksize;  /* taps per output pixel (padded with zero weights) */
    int *first; /* [out] first input index */
    int *count; /* [out] taps used */
    int32_t *k; /* [out, ksize] fixed-point weights */
} taps;

static void free_taps(taps *t) {
    free(t->first);
    free(t->count);
    free(t->k);
}

static int new_taps(taps *t, int in, int out) {
    double scale = (double)in / out;
    double fscale = scale < 1.0 ? 1.0 : scale; /* antialias: widen the filter when shrinking */
    double support = 1.0 * fscale;             /* the triangle's support is 1 */
    double inv = 1.0 / fscale;
    t->ksize = (int)ceil(support) * 2 + 1;
    t->first = malloc(sizeof(int) * out);
    t->count = malloc(sizeof(int) * out);
    t->k = calloc((size_t)out * t->ksize, sizeof(int32_t));
    double *wt = malloc(sizeof(double) * t->ksize);
    if (!t->first || !t->count || !t->k || !wt) {
        free(wt);
        free_taps(t);
        return -1;
    }
    for (int i = 0; i < out; i++) {
        double center = (i + 0.5) * scale;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int n = hi - lo;
        double sum = 0;
        for (int j = 0; j < n; j++) {
            double x = fabs((j + lo - center + 0.5) * inv);
            wt[j] = x < 1.0 ? 1.0 - x : 0.0;
            sum += wt[j];
        }
        for (int j = 0; j < n; j++) {
            double v = sum != 0.0 ? wt[j] / sum : wt[j];
            t->k[(size_t)i * t->ksize + j] =
                (int32_t)(v < 0 ? v * (1 << FIX_BITS) - 0.5 : v * (1 << FIX_BITS) + 0.5);
        }
        t->first[i] = lo;
        t->count[i] = n;
    }
    free(wt);
    return 0;
}

static inline uint8_t fix_to_u8(int32_t s) {
    s >>= FIX_BITS;
    return (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
}

/* One row of the horizontal pass: in [*, 3] -> o [dw, 3] with the taps t. */
static void resample_row(const uint8_t *in, const taps *t, int dw, uint8_t *o) {
    for (int x = 0; x < dw; x++) {
        const int32_t *k = t->k + (size_t)x * t->ksize;
        const uint8_t *p = in + (size_t)t->first[x] * 3;
        int32_t s0 = 1 << (FIX_BITS - 1), s1 = s0, s2 = s0;
        for (int j = 0; j < t->count[x]; j++, p += 3) {
            s0 += p[0] * k[j];
            s1 += p[1] * k[j];
            s2 += p[2] * k[j];
        }
        o[3 * x] = fix_to_u8(s0);
        o[3 * x + 1] = fix_to_u8(s1);
        o[3 * x + 2] = fix_to_u8(s2);
    }
}

/* One output row of the vertical pass: the n rows rp weighted by the taps k, byte by byte. */
static void resample_column(const uint8_t *const *rp, const int32_t *k, int n, size_t rowbytes,
                            uint8_t *o) {
    for (size_t x = 0; x < rowbytes; x++) {
        int32_t s = 1 << (FIX_BITS - 1);
        for (int j = 0; j < n; j++) s += rp[j][x] * k[j];
        o[x] = fix_to_u8(s);
    }
}

/* Resample a virtual [ch, cw] region to [dh, dw]. Region pixel (y, x) is source pixel
 * (ymap[y], xmap[x]), or black where a map holds -1; a NULL map is the identity. The source has
 * sh rows, stride bytes apart. Padding is virtual: each source row goes through the horizontal
 * pass once, however often the mirror repeats it, so a very elongated image padded to a square
 * costs about what its own pixels cost. */
static int resample_region(const uint8_t *src, size_t stride, int sh, const int *xmap, int cw,
                           const int *ymap, int ch, uint8_t *dst, int dw, int dh) {
    int need_h = dw != cw, need_v = dh != ch;
    int W = need_h ? dw : cw; /* row width after the horizontal pass */
    size_t rowbytes = (size_t)W * 3;
    taps th = {0}, tv = {0};
    uint8_t *rows = NULL, *done = NULL, *gather = NULL;
    const uint8_t **rp = NULL;
    int rc = -1;
    if ((need_h && new_taps(&th, cw, dw)) || (need_v && new_taps(&tv, ch, dh))) goto out;
    rows = calloc((size_t)sh + 1, rowbytes); /* [sh+1, W, 3]: passed rows, then a black one */
    done = calloc((size_t)sh, 1);
    gather = xmap ? malloc((size_t)cw * 3) : NULL;
    rp = malloc(sizeof *rp * (size_t)(need_v ? tv.ksize : 1));
    if (!rows || !done || (xmap && !gather) || !rp) goto out;
    const uint8_t *black = rows + (size_t)sh * rowbytes;

    /* Horizontal pass, only over the rows the vertical pass will read (as PIL does). */
    int r0 = need_v ? tv.first[0] : 0;
    int r1 = need_v ? tv.first[dh - 1] + tv.count[dh - 1] : ch;
    for (int y = r0; y < r1; y++) {
        int sy = ymap ? ymap[y] : y;
        if (sy < 0 || done[sy]) continue;
        done[sy] = 1;
        const uint8_t *in = src + (size_t)sy * stride;
        if (xmap) {
            for (int x = 0; x < cw; x++) {
                if (xmap[x] < 0)
                    memset(gather + 3 * (size_t)x, 0, 3);
                else
                    memcpy(gather + 3 * (size_t)x, in + 3 * (size_t)xmap[x], 3);
            }
            in = gather;
        }
        uint8_t *o = rows + (size_t)sy * rowbytes;
        if (need_h)
            resample_row(in, &th, dw, o);
        else
            memcpy(o, in, rowbytes);
    }

    /* Vertical pass (or a copy of the passed rows). */
    for (int y = 0; y < dh; y++) {
        int n = need_v ? tv.count[y] : 1, first = need_v ? tv.first[y] : y;
        for (int j = 0; j < n; j++) {
            int sy = ymap ? ymap[first + j] : first + j;
            rp[j] = sy < 0 ? black : rows + (size_t)sy * rowbytes;
        }
        uint8_t *o = dst + (size_t)y * rowbytes;
        if (need_v)
            resample_column(rp, tv.k + (size_t)y * tv.ksize, n, rowbytes, o);
        else
            memcpy(o, rp[0], rowbytes);
    }
    rc = 0;
out:
    free_taps(&th);
    free_taps(&tv);
    free(rows);
    free(done);
    free(gather);
    free(rp);
    return rc;
}

int ftd_image_resample(const uint8_t *src, int sw, int sh, size_t src_stride, uint8_t *dst, int dw,
                       int dh) {
    if (!src || !dst || sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0) return -1;
    return resample_region(src, src_stride, sh, NULL, sw, NULL, sh, dst, dw, dh);
}

/* ---------------------------------------------------------------- fastai Resize */

/* numpy.pad(mode='reflect') index: mirror about the end pixels without repeating them. */
static int reflect_index(int i, int n) {
    if (n <= 1) return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

ftd_image *ftd_image_resize(const ftd_image *src, int out_w, int out_h, int method, double px,
                            double py) {
    if (!src || !src->rgb || out_w <= 0 || out_h <= 0 || method < FTL_RESIZE_CROP ||
        method > FTL_RESIZE_PAD_ZEROS)
        return NULL;
    int w = src->w, h = src->h;
    /* Region [cw, ch] at (x0, y0), in fastai's double arithmetic (int() truncates like C). */
    int cw = w, ch = h, x0 = 0, y0 = 0;
    if (method != FTL_RESIZE_SQUISH) {
        double rw = (double)w / out_w, rh = (double)h / out_h;
        double m = method == FTL_RESIZE_CROP ? (rw < rh ? rw : rh) : (rw > rh ? rw : rh);
        cw = (int)(m * out_w);
        ch = (int)(m * out_h);
        if (cw < 1) cw = 1; /* a 1-pixel-wide photo: keep one column rather than fail */
        if (ch < 1) ch = 1;
        if (method == FTL_RESIZE_CROP) {
            if (cw > w) cw = w;
            if (ch > h) ch = h;
        }
        x0 = (int)(px * (w - cw));
        y0 = (int)(py * (h - ch));
    }
    /* Padding a sliver (a 1 x 60000 "photo") to a square would mean filtering a billion virtual
     * pixels: refuse regions over 64x the image's pixels (aspect beyond 64:1) and 2^24. */
    uint64_t region = (uint64_t)cw * ch, pixels = (uint64_t)w * h;
    if (region > 64 * pixels && region > (1u << 24)) return NULL;
    ftd_image *out = ftd_image_new(out_w, out_h);
    if (!out) return NULL;
    int rc;
    if (x0 >= 0 && y0 >= 0 && x0 + cw <= w && y0 + ch <= h) {
        /* Inside the image: resample the window in place. */
        rc = ftd_image_resample(src->rgb + ((size_t)y0 * w + x0) * 3, cw, ch, (size_t)w * 3,
                                out->rgb, out_w, out_h);
    } else {
        /* fastai crops to the part inside the image, [cy0,cy1) x [cx0,cx1), then pads that part
         * out to [ch, cw]: maps from region pixels to source pixels (-1: black). */
        int cx0 = x0 > 0 ? x0 : 0, cx1 = x0 + cw < w ? x0 + cw : w;
        int cy0 = y0 > 0 ? y0 : 0, cy1 = y0 + ch < h ? y0 + ch : h;
        int zeros = method == FTL_RESIZE_PAD_ZEROS;
        int *xmap = malloc(sizeof(int) * cw), *ymap = malloc(sizeof(int) * ch);
        rc = -1;
        if (xmap && ymap) {
            for (int x = 0; x < cw; x++) {
                int sx = x0 + x;
                xmap[x] = (sx >= cx0 && sx < cx1) ? sx
                          : zeros                 ? -1
                                                  : cx0 + reflect_index(sx - cx0, cx1 - cx0);
            }
            for (int y = 0; y < ch; y++) {
                int sy = y0 + y;
                ymap[y] = (sy >= cy0 && sy < cy1) ? sy
                          : zeros                 ? -1
                                                  : cy0 + reflect_index(sy - cy0, cy1 - cy0);
            }
            rc = resample_region(src->rgb, (size_t)w * 3, h, xmap, cw, ymap, ch, out->rgb, out_w,
                                 out_h);
        }
        free(xmap);
        free(ymap);
    }
    if (rc) {
        ftd_image_free(out);
        return NULL;
    }
    return out;
}
