/* augment.c: the random draws of fastai's aug_transforms, and the fused CPU kernel that applies
 * them (see augment.h for the pipeline and where it departs from fastai). */
#include "data/augment.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

const float ftl_aug_imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
const float ftl_aug_imagenet_std[3] = {0.229f, 0.224f, 0.225f};

/* ---------------------------------------------------------------- PCG32 */

void ftd_aug_rng_seed(ftd_aug_rng *r, uint64_t seed, uint64_t stream) {
    r->state = 0;
    r->inc = (stream << 1) | 1;
    ftd_aug_rng_u32(r);
    r->state += seed;
    ftd_aug_rng_u32(r);
}

uint32_t ftd_aug_rng_u32(ftd_aug_rng *r) {
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ULL + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((32 - rot) & 31));
}

double ftd_aug_rng_uniform(ftd_aug_rng *r, double lo, double hi) {
    uint32_t a = ftd_aug_rng_u32(r) >> 5, b = ftd_aug_rng_u32(r) >> 6; /* 27 + 26 bits */
    double u = (a * 67108864.0 + b) / 9007199254740992.0;
    return lo + (hi - lo) * u;
}

int ftd_aug_rng_int(ftd_aug_rng *r, int lo, int hi) {
    if (hi <= lo) return lo;
    uint32_t range = (uint32_t)((int64_t)hi - lo) + 1u;
    uint32_t limit = range ? (uint32_t)(-range) % range : 0; /* reject the biased low values */
    uint32_t u;
    do u = ftd_aug_rng_u32(r);
    while (range && u < limit);
    return range ? lo + (int)(u % range) : (int)u;
}

/* ---------------------------------------------------------------- draws */

ftd_aug_config ftd_aug_default_config(void) {
    ftd_aug_config c = {
        .do_flip = 1,
        .max_rotate = 10,
        .min_zoom = 1,
        .max_zoom = 1.1,
        .max_warp = 0.2,
        .max_lighting = 0.2,
        .p_affine = 0.75,
        .p_lighting = 0.75,
        .min_scale = 0.75,
        .max_scale = 1,
        .ratio_lo = 1,
        .ratio_hi = 1,
        .crop_per_image = 0,
    };
    return c;
}

/* RandomResizedCropGPU.before_call for an [h,w] input; rng NULL is the valid split. */
static void draw_crop(ftd_aug_rng *rng, const ftd_aug_config *c, int h, int w, ftd_aug_params *p) {
    p->crop_x = p->crop_y = 0;
    p->crop_w = w;
    p->crop_h = h;
    if (c->min_scale >= 1) return; /* aug_transforms adds no crop when min_scale == 1 */
    for (int attempt = 0; rng && attempt < 10; attempt++) {
        double area = ftd_aug_rng_uniform(rng, c->min_scale, c->max_scale) * w * h;
        double ratio = exp(ftd_aug_rng_uniform(rng, log(c->ratio_lo), log(c->ratio_hi)));
        int nw = (int)nearbyint(sqrt(area * ratio)), nh = (int)nearbyint(sqrt(area / ratio));
        if (nw <= w && nh <= h) { /* Python's round() is to even, like nearbyint */
            p->crop_w = nw;
            p->crop_h = nh;
            p->crop_y = ftd_aug_rng_int(rng, 0, h - nh);
            p->crop_x = ftd_aug_rng_int(rng, 0, w - nw);
            return;
        }
    }
    /* Fallback (and valid): the centre region with the nearest allowed ratio. */
    if ((double)w / h < c->ratio_lo)
        p->crop_h = (int)(w / c->ratio_lo);
    else if ((double)w / h > c->ratio_hi)
        p->crop_w = (int)(h * c->ratio_hi);
    p->crop_y = (h - p->crop_h) / 2;
    p->crop_x = (w - p->crop_w) / 2;
}

static ftd_aug_params neutral_params(void) {
    ftd_aug_params p = {
        .zoom = 1, .zoom_col = 0.5, .zoom_row = 0.5, .brightness = 0.5, .contrast = 1};
    return p;
}

/* fastai's _draw_mask: the value with probability p, else neutral. Both numbers are always drawn
 * so the stream advances the same way whatever the outcome. */
static double masked(ftd_aug_rng *r, double p, double lo, double hi, double neutral) {
    int on = ftd_aug_rng_uniform(r, 0, 1) < p;
    double v = ftd_aug_rng_uniform(r, lo, hi);
    return on ? v : neutral;
}

void ftd_aug_draw(ftd_aug_rng *rng, const ftd_aug_config *cfg, int n, int h, int w,
                  ftd_aug_params *out) {
    ftd_aug_config dflt = ftd_aug_default_config();
    const ftd_aug_config *c = cfg ? cfg : &dflt;
    double l = c->max_lighting;
    for (int i = 0; i < n; i++) {
        ftd_aug_params p = neutral_params();
        p.flip = c->do_flip && ftd_aug_rng_uniform(rng, 0, 1) < 0.5;
        p.rotate = masked(rng, c->p_affine, -c->max_rotate, c->max_rotate, 0);
        p.zoom = masked(rng, c->p_affine, c->min_zoom, c->max_zoom, 1);
        p.zoom_col = ftd_aug_rng_uniform(rng, 0, 1);
        p.zoom_row = ftd_aug_rng_uniform(rng, 0, 1);
        p.warp_x = masked(rng, c->p_affine, -c->max_warp, c->max_warp, 0);
        p.warp_y = masked(rng, c->p_affine, -c->max_warp, c->max_warp, 0);
        p.lighting = 1; /* fastai always runs LightingTfm on train, neutral or not */
        p.brightness = masked(rng, c->p_lighting, 0.5 * (1 - l), 0.5 * (1 + l), 0.5);
        p.contrast = l > 0 ? exp(masked(rng, c->p_lighting, log(1 - l), -log(1 - l), 0)) : 1;
        if (i == 0 || c->crop_per_image)
            draw_crop(rng, c, h, w, &p);
        else {
            p.crop_x = out[0].crop_x;
            p.crop_y = out[0].crop_y;
            p.crop_w = out[0].crop_w;
            p.crop_h = out[0].crop_h;
        }
        out[i] = p;
    }
}

ftd_aug_params ftd_aug_valid_params(const ftd_aug_config *cfg, int h, int w) {
    ftd_aug_config dflt = ftd_aug_default_config();
    ftd_aug_params p = neutral_params();
    draw_crop(NULL, cfg ? cfg : &dflt, h, w, &p);
    return p;
}

/* ---------------------------------------------------------------- plan */

static void matmul3(const double a[9], const double b[9], double out[9]) {
    double t[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            t[3 * i + j] = a[3 * i] * b[j] + a[3 * i + 1] * b[3 + j] + a[3 * i + 2] * b[6 + j];
    memcpy(out, t, sizeof t);
}

/* fastai's find_coeffs + apply_perspective: the homography taking the moved corners back to the
 * square's corners, i.e. output coords -> input coords. Solves its 8x8 system by Gaussian
 * elimination with partial pivoting. Returns -1 if singular (then: identity). */
static int warp_homography(double wx, double wy, double H[9]) {
    const double orig[4][2] = {{-1, -1}, {-1, 1}, {1, -1}, {1, 1}};
    const double targ[4][2] = {
        {-1 - wy, -1 - wx}, {-1 + wy, 1 + wx}, {1 + wy, -1 + wx}, {1 - wy, 1 - wx}};
    double A[8][9]; /* [A | b] */
    for (int i = 0; i < 4; i++) {
        double tx = targ[i][0], ty = targ[i][1], ox = orig[i][0], oy = orig[i][1];
        double r0[9] = {tx, ty, 1, 0, 0, 0, -ox * tx, -ox * ty, ox};
        double r1[9] = {0, 0, 0, tx, ty, 1, -oy * tx, -oy * ty, oy};
        memcpy(A[2 * i], r0, sizeof r0);
        memcpy(A[2 * i + 1], r1, sizeof r1);
    }
    for (int col = 0; col < 8; col++) {
        int piv = col;
        for (int r = col + 1; r < 8; r++)
            if (fabs(A[r][col]) > fabs(A[piv][col])) piv = r;
        if (fabs(A[piv][col]) < 1e-12) return -1;
        if (piv != col)
            for (int k = 0; k < 9; k++) {
                double t = A[col][k];
                A[col][k] = A[piv][k];
                A[piv][k] = t;
            }
        for (int r = 0; r < 8; r++) {
            if (r == col) continue;
            double f = A[r][col] / A[col][col];
            for (int k = col; k < 9; k++) A[r][k] -= f * A[col][k];
        }
    }
    for (int i = 0; i < 8; i++) H[i] = A[i][8] / A[i][i];
    H[8] = 1;
    return 0;
}

int ftd_aug_plan_make(const ftd_aug_params *p, int h, int w, int out_size, const float mean[3],
                      const float std[3], ftd_aug_plan *plan) {
    if (h <= 0 || w <= 0 || out_size <= 0 || p->crop_w <= 0 || p->crop_h <= 0 || p->crop_x < 0 ||
        p->crop_y < 0 || p->crop_x + p->crop_w > w || p->crop_y + p->crop_h > h)
        return -1;
    int S = out_size;
    /* A1: output pixel -> normalised coords (-1..1 over pixel centres, align_corners=True) of
     * fastai's affine output, through the crop: crop pixel = x*(cw-1)/(S-1), centre if S == 1. */
    double A1[9] = {0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (w > 1) {
        A1[0] = S > 1 ? 2.0 * (p->crop_w - 1) / ((double)(S - 1) * (w - 1)) : 0;
        A1[2] = 2.0 * (p->crop_x + (S > 1 ? 0 : (p->crop_w - 1) / 2.0)) / (w - 1) - 1;
    }
    if (h > 1) {
        A1[4] = S > 1 ? 2.0 * (p->crop_h - 1) / ((double)(S - 1) * (h - 1)) : 0;
        A1[5] = 2.0 * (p->crop_y + (S > 1 ? 0 : (p->crop_h - 1) / 2.0)) / (h - 1) - 1;
    }
    /* M = flip @ rotate @ zoom (fastai's aff_fs order), then _prepare_mat's aspect fix. */
    double th = p->rotate * (M_PI / 180.0), s = 1.0 / p->zoom;
    double F[9] = {p->flip ? -1 : 1, 0, 0, 0, 1, 0, 0, 0, 1};
    double R[9] = {cos(th), sin(th), 0, -sin(th), cos(th), 0, 0, 0, 1};
    double Zm[9] = {s, 0, (1 - s) * (2 * p->zoom_col - 1), 0, s, (1 - s) * (2 * p->zoom_row - 1), 0,
                    0, 1};
    double M[9];
    matmul3(F, R, M);
    matmul3(M, Zm, M);
    M[1] *= (double)h / w;
    M[3] *= (double)w / h;
    /* H: the warp acts on the affine's output coords (fastai's coord_fs run after the matrix). */
    double H[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    if ((p->warp_x != 0 || p->warp_y != 0) && warp_homography(p->warp_x, p->warp_y, H)) {
        double I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
        memcpy(H, I, sizeof I);
    }
    /* A2: normalised -> source pixel. */
    double A2[9] = {(w - 1) / 2.0, 0, (w - 1) / 2.0, 0, (h - 1) / 2.0, (h - 1) / 2.0, 0, 0, 1};
    double P[9];
    matmul3(A2, H, P);
    matmul3(P, M, P);
    matmul3(P, A1, P);
    memcpy(plan->m, P, sizeof P);
    plan->lighting = p->lighting;
    double b = p->brightness < 1e-7 ? 1e-7 : p->brightness > 1 - 1e-7 ? 1 - 1e-7 : p->brightness;
    plan->bright_logit = (float)log(b / (1 - b));
    plan->contrast = (float)p->contrast;
    if (!mean) mean = ftl_aug_imagenet_mean;
    if (!std) std = ftl_aug_imagenet_std;
    for (int c = 0; c < 3; c++) {
        plan->mean[c] = mean[c];
        plan->inv_std[c] = 1.0f / std[c];
    }
    return 0;
}

/* ---------------------------------------------------------------- batch kernel */

typedef struct {
    const uint8_t *src;
    int h, w, S;
    const ftd_aug_plan *plans;
    float *dst;
    long row0, row1; /* rows of the whole batch, [n*S) */
} aug_job;

static void *aug_rows(void *arg) {
    const aug_job *j = arg;
    size_t plane = (size_t)j->S * j->S;
    for (long r = j->row0; r < j->row1; r++) {
        int i = (int)(r / j->S), y = (int)(r % j->S);
        const uint8_t *img = j->src + (size_t)i * j->h * j->w * 3;
        float *o = j->dst + (size_t)i * 3 * plane + (size_t)y * j->S; /* [3,S,S] of image i */
        for (int x = 0; x < j->S; x++) {
            float v[3];
            ftd_aug_pixel(&j->plans[i], img, j->h, j->w, y, x, v);
            o[x] = v[0];
            o[plane + x] = v[1];
            o[2 * plane + x] = v[2];
        }
    }
    return NULL;
}

int ftd_aug_batch(const uint8_t *src, int n, int h, int w, const ftd_aug_params *per_image,
                  int out_size, const float mean[3], const float std[3], float *dst, int nthreads) {
    if (!src || !per_image || !dst || n < 0 || h <= 0 || w <= 0 || out_size <= 0) return -1;
    if (n == 0) return 0;
    ftd_aug_plan *plans = malloc(sizeof *plans * n);
    if (!plans) return -1;
    for (int i = 0; i < n; i++)
        if (ftd_aug_plan_make(&per_image[i], h, w, out_size, mean, std, &plans[i])) {
            free(plans);
            return -1;
        }
    long rows = (long)n * out_size;
    if (nthreads < 1) nthreads = 1;
    if (nthreads > 64) nthreads = 64;
    if (nthreads > rows) nthreads = (int)rows;
    aug_job jobs[64];
    pthread_t tid[64];
    int started[64] = {0};
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = (aug_job){
            src, h, w, out_size, plans, dst, rows * t / nthreads, rows * (t + 1) / nthreads};
        /* Thread 0 is the caller; if a thread can't start, the caller does its rows too. */
        if (t > 0) started[t] = pthread_create(&tid[t], NULL, aug_rows, &jobs[t]) == 0;
    }
    aug_rows(&jobs[0]);
    for (int t = 1; t < nthreads; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            aug_rows(&jobs[t]);
    }
    free(plans);
    return 0;
}
