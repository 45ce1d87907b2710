/* grid.c: show_batch's picture: images in a grid, each with its label underneath, as a PNG
 * (stb_image_write). Labels are drawn with stb_easy_font, whose glyphs come as axis-aligned
 * quads: we fill each quad's rectangle, scaled up 2x for readability. Labels are wrapped, never
 * cut, and the cells grow to fit their words. The file is written whole or not at all
 * (plot/plot_file.h). Plain C, no Lua. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "plot/plot_file.h"

#include "base/stb_begin.h"
#define STB_IMAGE_WRITE_STATIC /* private copy: no clash with another user in the library */
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include "base/stb_end.h"
#include <stb/stb_easy_font.h>
#include <stb/stb_image_write.h>

#define PAD        6 /* pixels around and between cells */
#define FONT_SCALE 2 /* stb_easy_font's glyphs are ~7 px tall: too small for a photo grid */
#define LINE_H     (10 * FONT_SCALE) /* one line of a label (one line + 6 px: the old fixed band) */
#define MAX_LINES  8 /* a label wraps to at most this many lines (more is dropped) */
#define MAX_CHARS  255
#define MIN_CELL   128                   /* smaller images are scaled up so their label fits */
#define MAX_TEXT_W (30 * 6 * FONT_SCALE) /* a cell grows to fit a word of up to ~30 characters */

/* A label as plain characters, each with its colour: labels may colour their text with the
 * terminal's codes ESC[31m (red), ESC[32m (green), ESC[0m (black again), so that the same
 * string reads right in a terminal and in the picture (show_results marks wrong predictions). */
typedef struct {
    char c[MAX_CHARS + 1];
    unsigned char col[MAX_CHARS + 1]; /* 0 black, 1 red, 2 green */
    int n;
} label_text;

static void parse_label(const char *s, label_text *t) {
    int col = 0;
    t->n = 0;
    for (; *s && t->n < MAX_CHARS; s++) {
        if (*s == '\033' && s[1] == '[') { /* ESC [ digits m */
            const char *e = s + 2;
            int code = 0;
            while (*e >= '0' && *e <= '9') code = code * 10 + (*e++ - '0');
            if (*e == 'm') {
                col = code == 31 ? 1 : code == 32 ? 2 : 0;
                s = e;
                continue;
            }
        }
        if (*s == '\r' || *s == '\t') continue;
        t->c[t->n] = *s;
        t->col[t->n++] = (unsigned char)col;
    }
    t->c[t->n] = '\0';
}

/* Width in pixels of n characters of s (no newlines). */
static int text_w(const char *s, int n) {
    char tmp[MAX_CHARS + 1];
    memcpy(tmp, s, (size_t)n);
    tmp[n] = '\0';
    return stb_easy_font_width(tmp) * FONT_SCALE;
}

static int breaks_after(char c) { return c == ' ' || c == '/'; }

/* The widest run between break points (a word that should not be split), in pixels. */
static int widest_word(const label_text *t) {
    int best = 0, start = 0;
    for (int i = 0; i <= t->n; i++) {
        if (i == t->n || t->c[i] == '\n' || breaks_after(t->c[i])) {
            int end = i < t->n && t->c[i] == '/' ? i + 1 : i;
            if (end > start) {
                int w = text_w(t->c + start, end - start);
                if (w > best) best = w;
            }
            start = i + 1;
        }
    }
    return best;
}

/* Wrap t into lines no wider than maxw: break after a space or '/', else after '_', else
 * anywhere; '\\n' always breaks. Fills starts/lens; returns the line count (<= MAX_LINES). */
static int wrap(const label_text *t, int maxw, int *starts, int *lens) {
    int nl = 0, pos = 0;
    while (pos < t->n && nl < MAX_LINES) {
        while (pos < t->n && t->c[pos] == ' ') pos++;
        if (pos >= t->n) break;
        int end = pos, best_soft = -1, best_us = -1;
        /* a space may pass the edge: it ends the line, and is not drawn */
        while (end < t->n && t->c[end] != '\n' &&
               (t->c[end] == ' ' || text_w(t->c + pos, end - pos + 1) <= maxw)) {
            end++;
            if (breaks_after(t->c[end - 1]))
                best_soft = end;
            else if (t->c[end - 1] == '_')
                best_us = end;
        }
        int cut = end;
        if (end < t->n && t->c[end] != '\n') /* the line is full: cut at the best break */
            cut = best_soft > pos ? best_soft : best_us > pos ? best_us : end > pos ? end : pos + 1;
        starts[nl] = pos;
        lens[nl] = cut - pos;
        while (lens[nl] > 1 && t->c[pos + lens[nl] - 1] == ' ') lens[nl]--; /* centred without it */
        nl++;
        pos = cut < t->n && t->c[cut] == '\n' ? cut + 1 : cut;
    }
    return nl;
}

/* Text in one colour with its top-left corner at (x, y), clipped to the canvas. */
static void draw_text(uint8_t *img, int W, int H, int x, int y, const char *text,
                      const uint8_t rgb[3]) {
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
                memcpy(img + ((size_t)py * W + px) * 3, rgb, 3);
    }
    free(vb);
}

/* One wrapped line, centred in [x0, x0 + cw), each colour run drawn in its colour. */
static void draw_line(uint8_t *img, int W, int H, int x0, int cw, int y, const label_text *t,
                      int start, int len) {
    static const uint8_t COLOURS[3][3] = {{0, 0, 0}, {200, 0, 0}, {0, 130, 0}};
    char run[MAX_CHARS + 1];
    int x = x0 + (cw - text_w(t->c + start, len)) / 2;
    for (int i = start; i < start + len;) {
        int j = i;
        while (j < start + len && t->col[j] == t->col[i]) j++;
        memcpy(run, t->c + i, (size_t)(j - i));
        run[j - i] = '\0';
        draw_text(img, W, H, x, y, run, COLOURS[t->col[i]]);
        x += text_w(t->c + i, j - i);
        i = j;
    }
}

int ftd_grid_write_png(const char *path, const uint8_t *imgs, int n, int h, int w,
                       const char *const *labels, int ncols, int *out_w, int *out_h, char *err,
                       size_t errlen) {
    if (n < 1 || h < 1 || w < 1 || !imgs || !path) {
        snprintf(err, errlen, "write_grid: nothing to show");
        return -1;
    }
    if (ncols < 1 || ncols > n) ncols = n;
    int nrows = (n + ncols - 1) / ncols;
    int sw = (MIN_CELL + w - 1) / w, sh = (MIN_CELL + h - 1) / h;
    int scale = sw > sh ? sw : sh;
    if (scale < 1) scale = 1;
    int iw = w * scale, ch = h * scale;
    /* The labels decide the cell's width (its longest word, up to MAX_TEXT_W) and the band's
     * height (the most lines any label wraps to): nothing is cut. */
    label_text *texts = labels ? calloc((size_t)n, sizeof *texts) : NULL;
    if (labels && !texts) {
        snprintf(err, errlen, "write_grid: out of memory");
        return -1;
    }
    int cw = iw;
    for (int i = 0; labels && i < n; i++) {
        parse_label(labels[i] ? labels[i] : "", &texts[i]);
        int ww = widest_word(&texts[i]) + 4;
        if (ww > cw) cw = ww > MAX_TEXT_W ? (MAX_TEXT_W > iw ? MAX_TEXT_W : iw) : ww;
    }
    int lines = 0, starts[MAX_LINES], lens[MAX_LINES];
    for (int i = 0; labels && i < n; i++) {
        int nl = wrap(&texts[i], cw, starts, lens);
        if (nl > lines) lines = nl;
    }
    int band = labels ? lines * LINE_H + 6 : 0;
    int W = ncols * (cw + PAD) + PAD, H = nrows * (ch + band + PAD) + PAD;
    uint8_t *canvas = malloc((size_t)W * H * 3);
    if (!canvas) {
        free(texts);
        snprintf(err, errlen, "write_grid: out of memory for a %dx%d picture", W, H);
        return -1;
    }
    memset(canvas, 255, (size_t)W * H * 3);
    for (int i = 0; i < n; i++) {
        int x0 = PAD + (i % ncols) * (cw + PAD), y0 = PAD + (i / ncols) * (ch + band + PAD);
        int xi = x0 + (cw - iw) / 2;
        const uint8_t *im = imgs + (size_t)i * h * w * 3;
        for (int y = 0; y < ch; y++)
            for (int x = 0; x < iw; x++)
                memcpy(canvas + ((size_t)(y0 + y) * W + xi + x) * 3,
                       im + ((size_t)(y / scale) * w + x / scale) * 3, 3);
        if (!texts) continue;
        int nl = wrap(&texts[i], cw, starts, lens);
        for (int l = 0; l < nl; l++)
            draw_line(canvas, W, H, x0, cw, y0 + ch + 4 + l * LINE_H, &texts[i], starts[l],
                      lens[l]);
    }
    free(texts);
    int len = 0;
    unsigned char *png = stbi_write_png_to_mem(canvas, W * 3, W, H, 3, &len);
    free(canvas);
    if (!png) {
        snprintf(err, errlen, "cannot write '%s': out of memory encoding the PNG", path);
        return -1;
    }
    int rc = ftp_fig_write(path, png, (size_t)len, err, errlen); /* temp file, checked, renamed */
    STBIW_FREE(png);
    if (rc != 0) return -1;
    if (out_w) *out_w = W;
    if (out_h) *out_h = H;
    return 0;
}
