/* grid.c: show_batch's picture: images in a grid, each with its label underneath, as a PNG
 * (stb_image_write). Labels are drawn with stb_easy_font, whose glyphs come as axis-aligned
 * quads: we fill each quad's rectangle, scaled up 2x for readability. Plain C, no Lua. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wconversion"
#endif
#define STB_IMAGE_WRITE_STATIC /* private copy: no clash with another user in the library */
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#include <stb/stb_easy_font.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#define PAD 6        /* pixels around and between cells */
#define FONT_SCALE 2 /* stb_easy_font's glyphs are ~7 px tall: too small for a photo grid */
#define BAND (10 * FONT_SCALE + 6) /* label height under each image */
#define MIN_CELL 128 /* smaller images are scaled up so their label fits */

/* Black text with its top-left corner at (x, y), clipped to the canvas. */
static void draw_text(uint8_t *img, int W, int H, int x, int y, const char *text) {
    static const size_t VB = 64 * 1024; /* ~270 bytes a character: room for ~240 */
    char *vb = malloc(VB);
    if (!vb) return; /* a missing label is not worth failing the picture for */
    int nq = stb_easy_font_print(0, 0, (char *)text, NULL, vb, (int)VB);
    for (int q = 0; q < nq; q++) {
        float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
        for (int v = 0; v < 4; v++) { /* vertex: x, y, z floats then 4 colour bytes */
            float vx, vy;
            memcpy(&vx, vb + (4 * q + v) * 16, 4);
            memcpy(&vy, vb + (4 * q + v) * 16 + 4, 4);
            x0 = vx < x0 ? vx : x0;
            x1 = vx > x1 ? vx : x1;
            y0 = vy < y0 ? vy : y0;
            y1 = vy > y1 ? vy : y1;
        }
        int ax = x + (int)(x0 * FONT_SCALE), bx = x + (int)(x1 * FONT_SCALE);
        int ay = y + (int)(y0 * FONT_SCALE), by = y + (int)(y1 * FONT_SCALE);
        for (int py = ay < 0 ? 0 : ay; py < by && py < H; py++)
            for (int px = ax < 0 ? 0 : ax; px < bx && px < W; px++)
                memset(img + ((size_t)py * W + px) * 3, 0, 3);
    }
    free(vb);
}

int ftl_grid_write_png(const char *path, const uint8_t *imgs, int n, int h, int w,
                       const char *const *labels, int ncols, int *out_w, int *out_h, char *err,
                       size_t errlen) {
    if (n < 1 || h < 1 || w < 1 || !imgs || !path) {
        snprintf(err, errlen, "show_batch: nothing to show");
        return -1;
    }
    if (ncols < 1 || ncols > n) ncols = n;
    int nrows = (n + ncols - 1) / ncols;
    int sw = (MIN_CELL + w - 1) / w, sh = (MIN_CELL + h - 1) / h;
    int scale = sw > sh ? sw : sh;
    if (scale < 1) scale = 1;
    int cw = w * scale, ch = h * scale, band = labels ? BAND : 0;
    int W = ncols * (cw + PAD) + PAD, H = nrows * (ch + band + PAD) + PAD;
    uint8_t *canvas = malloc((size_t)W * H * 3);
    if (!canvas) {
        snprintf(err, errlen, "show_batch: out of memory for a %dx%d picture", W, H);
        return -1;
    }
    memset(canvas, 255, (size_t)W * H * 3);
    for (int i = 0; i < n; i++) {
        int x0 = PAD + (i % ncols) * (cw + PAD), y0 = PAD + (i / ncols) * (ch + band + PAD);
        const uint8_t *im = imgs + (size_t)i * h * w * 3;
        for (int y = 0; y < ch; y++)
            for (int x = 0; x < cw; x++)
                memcpy(canvas + ((size_t)(y0 + y) * W + x0 + x) * 3,
                       im + ((size_t)(y / scale) * w + x / scale) * 3, 3);
        if (!labels || !labels[i]) continue;
        /* Shorten the label until it fits the cell, marking the cut with "..". */
        char text[256];
        snprintf(text, sizeof text, "%s", labels[i]);
        size_t len = strlen(text);
        while (len > 2 && stb_easy_font_width(text) * FONT_SCALE > cw) {
            text[--len] = '\0';
            text[len - 1] = text[len - 2] = '.';
        }
        int tw = stb_easy_font_width(text) * FONT_SCALE;
        draw_text(canvas, W, H, x0 + (cw - tw) / 2, y0 + ch + 4, text);
    }
    int ok = stbi_write_png(path, W, H, 3, canvas, W * 3);
    free(canvas);
    if (!ok) {
        snprintf(err, errlen, "show_batch: cannot write '%s'", path);
        return -1;
    }
    if (out_w) *out_w = W;
    if (out_h) *out_h = H;
    return 0;
}
