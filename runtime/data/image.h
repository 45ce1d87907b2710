/* image.h: decode photos to RGB and fastai's Resize, in plain C (no libtorch, no Lua).
 *
 * Decoding goes by content, never by the file's extension: JPEG (libjpeg-turbo), PNG, GIF (first
 * frame) and BMP (stb_image). Grey, grey+alpha, palette and RGBA all become RGB the way PIL's
 * Image.convert('RGB') does it: grey is replicated and alpha is dropped (not composited).
 * A bad file never crashes: the constructors return NULL and write "<name>: <reason>" to err.
 * Only regular files are read: a FIFO or a device named x.jpg is refused, never waited on.
 *
 * Resize is fastai's Resize(size, method) for PIL images: pick a region (crop / squish / pad),
 * then resample it with PIL's Image.resize(BILINEAR), which is antialiased (the triangle filter
 * is widened by the downscale factor) and computed in the same fixed point, so results match PIL.
 */
#ifndef FTL_IMAGE_H
#define FTL_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Decompression bombs: a header may claim any size (a 761-byte JPEG can claim 16000x16000, 768 MB
 * decoded). Like Pillow (Image.MAX_IMAGE_PIXELS = 89478485), an image over half the cap decodes
 * with a warning on stderr, and one over the cap is refused with an error that says its size and
 * the cap, for every format, before anything is allocated. The default cap is 2 x 89478485
 * pixels (512 MiB as RGB). The environment variable FTLUA_MAX_IMAGE_PIXELS sets it for a run;
 * ftd_image_set_max_pixels sets it for the process (a fuzzer wants it lower); set either before
 * decoding threads start. */
#define FTL_IMAGE_WARN_PIXELS 89478485ull
#define FTL_IMAGE_MAX_PIXELS  (2 * FTL_IMAGE_WARN_PIXELS)
void ftd_image_set_max_pixels(uint64_t n); /* 0 restores the default (or the environment's) */
uint64_t ftd_image_max_pixels(void);

typedef struct {
    int w, h;
    uint8_t *rgb; /* [h,w,3], rows packed */
} ftd_image;

/* An image with uninitialised pixels; NULL when w, h are not positive, over the pixel cap, or no
 * memory. */
ftd_image *ftd_image_new(int w, int h);
void ftd_image_free(ftd_image *im); /* NULL is fine */

/* Decode a file or a buffer. name only labels error messages. On failure: NULL, and when err is
 * not NULL, err gets "<name>: <reason>" (truncated to errlen).
 * min_side > 0 lets a JPEG be decoded at 1/2, 1/4 or 1/8 scale (libjpeg-turbo's DCT scaling, the
 * same as PIL's Image.draft) when its shorter side stays >= min_side; 0 always decodes full size.
 * Other formats are always full size. Thread-safe (the pixel cap is the only shared setting). */
ftd_image *ftd_image_new_from_file(const char *path, int min_side, char *err, size_t errlen);
/* The same for a dataset item (loader.c): only a JPEG of more than FTL_IMAGE_DRAFT_PIXELS is
 * decoded at a DCT scale (keeping its shorter side >= min_side), so photos of the usual sizes
 * give PIL's pixels exactly, and a 12-megapixel camera photo costs a quarter of them. */
#define FTL_IMAGE_DRAFT_PIXELS (1u << 22)
ftd_image *ftd_image_new_item_from_file(const char *path, int min_side, char *err, size_t errlen);
ftd_image *ftd_image_new_from_memory(const void *data, size_t len, const char *name, int min_side,
                                     char *err, size_t errlen);

/* fastai's Resize methods (vision/augment.py, ResizeMethod and PadMode). */
enum {
    FTL_RESIZE_CROP = 0,     /* largest region with the target's aspect, at (px, py), then resize */
    FTL_RESIZE_SQUISH = 1,   /* the whole image, aspect not kept (px, py unused) */
    FTL_RESIZE_PAD = 2,      /* smallest region with the target's aspect that holds the image;
                                outside pixels are a mirror image (PadMode.Reflection, fastai's
                                default: numpy 'reflect', the edge pixel not repeated) */
    FTL_RESIZE_PAD_ZEROS = 3 /* the same region, padded with black (PadMode.Zeros) */
};

/* fastai's Resize((out_w, out_h), method) on a PIL image, with its pcts = (px, py) in [0,1]:
 * train draws px, py ~ U(0,1), valid uses 0.5, 0.5. The region is (cw, ch) = (int(m*out_w),
 * int(m*out_h)) with m = min (crop) or max (pad) of w/out_w, h/out_h, at top-left
 * (int(px*(w-cw)), int(py*(h-ch))), computed in double like Python. Returns a new
 * [out_h,out_w,3] image, or NULL on bad arguments / no memory, or when pad would make a region
 * over 64x the image's pixels (and over 2^24): an aspect ratio beyond 64:1, a broken image. */
ftd_image *ftd_image_resize(const ftd_image *src, int out_w, int out_h, int method, double px,
                            double py);

/* PIL's Image.resize((dw, dh), BILINEAR) of a [sh,sw,3] region whose rows are src_stride bytes
 * apart, into packed [dh,dw,3] dst. Returns 0, or -1 on bad sizes / no memory. */
int ftd_image_resample(const uint8_t *src, int sw, int sh, size_t src_stride, uint8_t *dst, int dw,
                       int dh);

#endif
