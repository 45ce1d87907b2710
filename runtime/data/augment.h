/* augment.h: fastai's batch augmentation (aug_transforms) as one fused pass, in plain C.
 *
 * fastai's train batch pipeline is IntToFloatTensor -> AffineCoordTfm (Flip, Warp, Rotate, Zoom
 * fused into one grid_sample) -> RandomResizedCropGPU (crop, then a second grid_sample to size)
 * -> LightingTfm (Brightness, Contrast in logit space) -> Normalize. Here both coordinate steps
 * are composed into ONE 3x3 projective map from output pixel to source pixel, sampled once
 * (bilinear, reflection padding, align_corners=True: torch.grid_sample semantics), then lighting
 * and normalisation, written as float32 [N,3,S,S].
 *
 * Two halves:
 * - the RANDOM DRAWS (ftd_aug_draw): a seeded PCG32 of our own fills one ftd_aug_params per
 *   image, with fastai's ranges and probabilities; the valid split uses ftd_aug_valid_params,
 *   which draws nothing;
 * - the KERNEL (ftd_aug_batch): applies given params. It is ftd_aug_plan_make once per image
 *   (host) plus ftd_aug_pixel per output pixel, a static inline function a CUDA kernel can share.
 *
 * Where this differs from fastai (measured in tests/c/test_image.c against fastai's own steps):
 * - fastai resamples twice (affine at full size, then the crop to S); we resample once, from the
 *   composed map, which is sharper (one bilinear blur instead of two);
 * - fastai's _grid_sample area-averages first when the crop is over 2x the output (460 -> 448,
 *   about a 2x2 box blur, for every valid image and crops over 448 of a 460 input); we sample
 *   bilinearly from the full image. On pets photos the two gaps together are 0.01..0.09 mean
 *   abs in normalised units (texture-rich photos most); with no affine and a crop under 2x the
 *   output we equal fastai to float rounding;
 * - RandomResizedCropGPU draws one crop per batch; so do we (cfg.crop_per_image = 0), while the
 *   other draws are per image, as in fastai. Our RNG is not torch's: same distributions, not
 *   the same numbers.
 */
#ifndef FTL_AUGMENT_H
#define FTL_AUGMENT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define FTL_AUG_FN static inline __host__ __device__
#else
#define FTL_AUG_FN static inline
#endif

/* ---------------------------------------------------------------- random draws */

typedef struct {
    uint64_t state, inc;
} ftd_aug_rng; /* PCG32 (O'Neill, pcg-random.org): small, fast, reproducible everywhere */

/* Same (seed, stream) -> same sequence. Different streams are independent (e.g. one per worker). */
void ftd_aug_rng_seed(ftd_aug_rng *r, uint64_t seed, uint64_t stream);
uint32_t ftd_aug_rng_u32(ftd_aug_rng *r);
double ftd_aug_rng_uniform(ftd_aug_rng *r, double lo, double hi); /* [lo, hi) with 53 bits */
int ftd_aug_rng_int(ftd_aug_rng *r, int lo, int hi);              /* [lo, hi] inclusive */

/* aug_transforms' arguments (fastai vision/augment.py) plus RandomResizedCropGPU's. */
typedef struct {
    int do_flip;               /* horizontal flip, p = 0.5 */
    double max_rotate;         /* degrees: U(-max, max) */
    double min_zoom, max_zoom; /* U(min, max), centre U(0,1) per axis */
    double max_warp;           /* perspective corner offsets U(-max, max) */
    double max_lighting; /* brightness U(.5(1-m), .5(1+m)); contrast exp U(log(1-m), -log(1-m)) */
    double p_affine;     /* each of rotate, zoom, warp x, warp y is applied with this p */
    double p_lighting;   /* each of brightness, contrast */
    double min_scale, max_scale; /* RandomResizedCrop area fraction; min_scale >= 1: no crop */
    double ratio_lo, ratio_hi; /* RandomResizedCrop aspect (w/h) range; (1,1) for aug_transforms */
    int crop_per_image;        /* 0: one crop for the whole batch, as fastai; 1: one per image */
} ftd_aug_config;

/* aug_transforms(size=S, min_scale=0.75): flip, rotate 10, zoom 1..1.1, warp .2, lighting .2,
 * p_affine .75, p_lighting .75, crop area U(.75, 1) with square ratio. */
ftd_aug_config ftd_aug_default_config(void);

/* One image's draws: the neutral values mean "not applied". Coordinates follow fastai: x is the
 * column, normalised coordinates run -1..1 over pixel centres. */
typedef struct {
    int flip;                  /* 1: mirror horizontally */
    double rotate;             /* degrees, 0 when not drawn */
    double zoom;               /* >= 1 (fastai's scale s = 1/zoom); 1 when not drawn */
    double zoom_col, zoom_row; /* zoom centre pcts in [0,1]: c = (1-s)*(2*pct-1) */
    double warp_x, warp_y;     /* perspective magnitudes, 0 when not drawn */
    int lighting;              /* 0 on valid: skip the logit-space step (and its clamp) */
    double brightness;         /* b in (0,1): x = sigmoid(logit(x) + logit(b)); 0.5 neutral */
    double contrast;           /* c > 0: x = sigmoid(logit(x) * c); 1 neutral */
    int crop_x, crop_y, crop_w, crop_h; /* RandomResizedCrop window on the [h,w] input, pixels */
} ftd_aug_params;

/* Train: fill out[0..n) for n images of h x w, advancing rng. cfg NULL means the defaults. */
void ftd_aug_draw(ftd_aug_rng *rng, const ftd_aug_config *cfg, int n, int h, int w,
                  ftd_aug_params *out);
/* Valid: no randomness. fastai's valid crop (the centre region with an allowed ratio, the whole
 * image for square inputs), no affine, no lighting. */
ftd_aug_params ftd_aug_valid_params(const ftd_aug_config *cfg, int h, int w);

/* ---------------------------------------------------------------- the kernel */

/* One image's params turned into what each pixel needs. */
typedef struct {
    double m[9]; /* output pixel (x, y, 1) -> homogeneous source pixel, row-major 3x3 */
    int lighting;
    float bright_logit, contrast;
    float mean[3], inv_std[3]; /* normalise: (x - mean) * inv_std, x in [0,1] */
} ftd_aug_plan;

extern const float ftl_aug_imagenet_mean[3]; /* 0.485, 0.456, 0.406 */
extern const float ftl_aug_imagenet_std[3];  /* 0.229, 0.224, 0.225 */

/* Compose crop (RandomResizedCrop), flip, rotate, zoom and warp for an [h,w] input and an
 * [S,S] output, the way fastai orders them. mean/std NULL: ImageNet stats. Returns 0, or -1 for
 * bad sizes or a crop outside the image. */
int ftd_aug_plan_make(const ftd_aug_params *p, int h, int w, int out_size, const float mean[3],
                      const float std[3], ftd_aug_plan *plan);

/* Apply per-image params to src [N,H,W,3] uint8, writing dst [N,3,S,S] float32, threads over
 * rows of the whole batch (nthreads <= 1: the calling thread only). Returns 0, or -1 on bad
 * arguments. Results do not depend on nthreads. */
int ftd_aug_batch(const uint8_t *src, int n, int h, int w, const ftd_aug_params *per_image,
                  int out_size, const float mean[3], const float std[3], float *dst, int nthreads);

/* grid_sample's reflection padding with align_corners=True: mirror about the centres of the
 * first and last pixel as often as needed, then clamp. NaN and infinities land on pixel 0. */
FTL_AUG_FN double ftd_aug_reflect(double v, int n) {
    double span = n - 1;
    if (v >= 0 && v <= span) return v; /* the common case: inside */
    if (n <= 1 || !(fabs(v) < 1e18)) return 0;
    v = fabs(v);
    double extra = fmod(v, span);
    v = fmod(floor(v / span), 2.0) == 0.0 ? extra : span - extra;
    return v < 0 ? 0 : v > span ? span : v;
}

/* The 3 output floats (one per channel) of output pixel (x, y) for one [h,w,3] image. */
FTL_AUG_FN void ftd_aug_pixel(const ftd_aug_plan *p, const uint8_t *img, int h, int w, int y, int x,
                              float out[3]) {
    const double *m = p->m;
    double X = m[0] * x + m[1] * y + m[2];
    double Y = m[3] * x + m[4] * y + m[5];
    double Z = m[6] * x + m[7] * y + m[8];
    double sx = ftd_aug_reflect(X / Z, w), sy = ftd_aug_reflect(Y / Z, h);
    int x0 = (int)floor(sx), y0 = (int)floor(sy);
    float fx = (float)(sx - x0), fy = (float)(sy - y0);
    /* On the last row/column the fraction is 0, so reusing the pixel adds nothing. */
    int x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
    const uint8_t *r0 = img + (size_t)y0 * w * 3, *r1 = img + (size_t)y1 * w * 3;
    float w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy, w11 = fx * fy;
    for (int c = 0; c < 3; c++) {
        float v = (w00 * r0[3 * x0 + c] + w01 * r0[3 * x1 + c] + w10 * r1[3 * x0 + c] +
                   w11 * r1[3 * x1 + c]) *
                  (1.0f / 255.0f);
        if (p->lighting) { /* fastai's logit clamps to avoid infinities */
            v = v < 1e-7f ? 1e-7f : v > 1 - 1e-7f ? 1 - 1e-7f : v;
            float l = (logf(v / (1 - v)) + p->bright_logit) * p->contrast;
            v = 1.0f / (1.0f + expf(-l));
        }
        out[c] = (v - p->mean[c]) * p->inv_std[c];
    }
}

#endif
