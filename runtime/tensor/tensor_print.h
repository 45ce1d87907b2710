/* tensor_print.h: format a tensor exactly as PyTorch 1.13's repr does (default print options),
 * then add a Torch7-style footer line: "[float32 tensor of size 2x2 on cpu]".
 * Pure C: the caller hands over the values as doubles, so this needs no libtorch. */
#ifndef FTL_TENSOR_PRINT_H
#define FTL_TENSOR_PRINT_H

#include <stdint.h>

#include "torch/ft_torch.h"

#define FTL_PRINT_EDGEITEMS 3    /* items kept at each end of a summarized dim */
#define FTL_PRINT_THRESHOLD 1000 /* summarize when numel exceeds this */

/* Returns a malloc'd string (caller frees) or NULL on allocation failure.
 * vals: the elements in C order of the PRINTED data: when summarize is true this is PyTorch's
 *   get_summarized_data (every dim with full size > 2*FTL_PRINT_EDGEITEMS reduced to its first
 *   and last FTL_PRINT_EDGEITEMS entries), else the full data. float16/bfloat16/float32 values
 *   must already be rounded to their dtype.
 * shape: shape of vals. full_shape: the tensor's real shape (same ndim, at most FT_MAX_DIMS).
 * device: -1 for cpu, k for cuda:k. requires_grad: a leaf that requires grad. */
char *ftt_format_tensor(const double *vals, const int64_t *shape, const int64_t *full_shape,
                        int ndim, ft_dtype dtype, int device, int requires_grad, int summarize);

/* PyTorch's rule: summarize when numel > threshold (1000). */
int ftt_print_should_summarize(int64_t numel);

#endif
