/* augment_cuda.h: the CUDA twin of ftd_aug_batch (augment.h). Built only when the build has CUDA
 * (FT_WITH_CUDA, nvcc): augment_cuda.cu runs the same per-pixel function, ftd_aug_pixel, in a
 * CUDA kernel, so CPU and GPU agree to float rounding on the same draws.
 *
 * A workspace holds what one thread reuses from batch to batch: a CUDA stream, a pinned staging
 * buffer for the uint8 batch, and device buffers for it and the per-image plans. Each loader
 * worker owns one.
 */
#ifndef FTL_AUGMENT_CUDA_H
#define FTL_AUGMENT_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "data/augment.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ftd_aug_cuda ftd_aug_cuda;

/* A workspace on cuda:device; NULL with err when CUDA is unusable. */
ftd_aug_cuda *ftd_aug_cuda_new(int device, char *err, size_t errlen);
void ftd_aug_cuda_free(ftd_aug_cuda *c); /* NULL is fine */

/* ftd_aug_batch on the GPU: src is the host uint8 batch [n,h,w,3]; dst is DEVICE memory for
 * float32 [n,3,S,S] on the workspace's device. Plans are made on the host (ftd_aug_plan_make),
 * pixels on the device. Returns 0 once dst is written (the stream is synchronised), or -1 with
 * err (bad arguments, a CUDA error). */
int ftd_aug_cuda_batch(ftd_aug_cuda *c, const uint8_t *src, int n, int h, int w,
                       const ftd_aug_params *per_image, int out_size, const float mean[3],
                       const float std[3], float *dst, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
