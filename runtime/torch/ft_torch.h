/* ft_torch.h: the flat C API over libtorch. The only door between C and C++.
 *
 * Rules (see docs/design.md):
 * - Handles are opaque. An ft_tensor* owns one reference to a torch::Tensor; free it with ft_free.
 * - Every call that can fail returns ft_status. FT_OK is 0. On failure the call has written
 *   nothing to its out parameters and ft_last_error() holds libtorch's message, trimmed of its
 *   C++ backtrace. The message is thread-local and lives until the next failing call.
 * - No C++ exception ever leaves this API: every export is FT_NOEXCEPT (noexcept in C++).
 *   Callers (the Lua bindings) raise a Lua error only after the call returned, so a longjmp
 *   never crosses a C++ frame.
 * - Metadata getters (ft_dim, ft_size, ...) cannot fail on a valid handle and return plain values.
 * - Dims and indices here are 0-based, as in libtorch; the Lua layer converts from 1-based.
 * - Devices are ints: FT_CPU (-1) or k >= 0 for cuda:k.
 */
#ifndef FT_TORCH_H
#define FT_TORCH_H

#include <stddef.h>
#include <stdint.h>

#include "io/dtype.h"

#ifdef __cplusplus
extern "C" {
/* Nothing here throws: the shim catches every exception (see the rules above). */
#define FT_NOEXCEPT noexcept
#else
#define FT_NOEXCEPT
#endif

typedef struct ft_tensor ft_tensor; /* opaque: a heap-allocated torch::Tensor */

typedef int ft_status;
#define FT_OK      0
#define FT_ERR     1 /* libtorch raised an error: bad shape, bad argument, ... */
#define FT_ERR_OOM 2 /* an allocation failed (host or device): the caller may collect and retry */

#define FT_CPU (-1)
/* ft_dtype, FT_MAX_DIMS, ft_dtype_name/_size/_is_floating: io/dtype.h (no libtorch needed) */

const char *ft_last_error(void) FT_NOEXCEPT;
/* The C layers above the shim that call it (the model's C core, the learner's) report their own
 * failures through the same slot: set the message, return FT_ERR / NULL / -1. One channel, so a
 * caller never has to know which layer failed (docs/design.md, "Errors"). */
void ft_set_last_error(const char *fmt, ...) FT_NOEXCEPT __attribute__((format(printf, 1, 2)));

/* ---------------------------------------------------------------- runtime */
const char *ft_torch_version(void) FT_NOEXCEPT; /* e.g. "1.13.0" */
int ft_cuda_available(void) FT_NOEXCEPT;
int ft_cuda_device_count(void) FT_NOEXCEPT;
int ft_default_device(void) FT_NOEXCEPT; /* 0 (cuda:0) when CUDA is available, else FT_CPU */
ft_status ft_manual_seed(uint64_t seed) FT_NOEXCEPT; /* seeds CPU and every CUDA device */
ft_status ft_set_num_threads(int n) FT_NOEXCEPT;     /* intra-op threads */
int ft_get_num_threads(void) FT_NOEXCEPT;
int ft_grad_enabled(void) FT_NOEXCEPT; /* thread-local autograd mode */
void ft_set_grad_enabled(int enabled) FT_NOEXCEPT;
/* Waits for the queued kernels of cuda:device (for timing). FT_CPU is a no-op: CPU ops are
 * synchronous. */
ft_status ft_synchronize(int device) FT_NOEXCEPT;

/* ---------------------------------------------------------------- lifetime */
void ft_free(ft_tensor *t) FT_NOEXCEPT; /* NULL is fine */
/* new handle, same tensor */
ft_status ft_shallow_copy(const ft_tensor *t, ft_tensor **out) FT_NOEXCEPT;

/* ---------------------------------------------------------------- metadata (no status) */
int ft_defined(const ft_tensor *t) FT_NOEXCEPT;
int ft_dim(const ft_tensor *t) FT_NOEXCEPT;
int64_t ft_size(const ft_tensor *t, int dim) FT_NOEXCEPT;   /* dim in [0, ft_dim) */
int64_t ft_stride(const ft_tensor *t, int dim) FT_NOEXCEPT; /* in elements */
int64_t ft_numel(const ft_tensor *t) FT_NOEXCEPT;
int64_t ft_storage_offset(const ft_tensor *t) FT_NOEXCEPT;
ft_dtype ft_get_dtype(const ft_tensor *t) FT_NOEXCEPT;
int ft_device(const ft_tensor *t) FT_NOEXCEPT; /* FT_CPU or the cuda index */
int ft_is_contiguous(const ft_tensor *t) FT_NOEXCEPT;
int ft_requires_grad(const ft_tensor *t) FT_NOEXCEPT;
int ft_is_leaf(const ft_tensor *t) FT_NOEXCEPT;
size_t ft_storage_nbytes(const ft_tensor *t) FT_NOEXCEPT; /* bytes of the underlying storage */
/* identity of the storage (for sharing checks) */
const void *ft_storage_id(const ft_tensor *t) FT_NOEXCEPT;

/* ---------------------------------------------------------------- creation */
/* Copies numel(shape) elements of dtype from data (C order) into a new CPU tensor. */
ft_status ft_from_data(const void *data, ft_dtype dtype, const int64_t *shape, int ndim,
                       ft_tensor **out) FT_NOEXCEPT;
ft_status ft_empty(const int64_t *shape, int ndim, ft_dtype dtype, int device,
                   ft_tensor **out) FT_NOEXCEPT;
ft_status ft_full(const int64_t *shape, int ndim, double value, ft_dtype dtype, int device,
                  ft_tensor **out) FT_NOEXCEPT;
ft_status ft_rand(const int64_t *shape, int ndim, ft_dtype dtype, int device,
                  ft_tensor **out) FT_NOEXCEPT;
ft_status ft_randn(const int64_t *shape, int ndim, ft_dtype dtype, int device,
                   ft_tensor **out) FT_NOEXCEPT;
ft_status ft_randint(int64_t low, int64_t high, const int64_t *shape, int ndim, ft_dtype dtype,
                     int device, ft_tensor **out) FT_NOEXCEPT; /* values in [low, high) */
ft_status ft_randperm(int64_t n, int device, ft_tensor **out) FT_NOEXCEPT; /* int64 */
ft_status ft_arange(double start, double end, double step, ft_dtype dtype, int device,
                    ft_tensor **out) FT_NOEXCEPT;
ft_status ft_linspace(double start, double end, int64_t steps, ft_dtype dtype, int device,
                      ft_tensor **out) FT_NOEXCEPT;
ft_status ft_eye(int64_t n, ft_dtype dtype, int device, ft_tensor **out) FT_NOEXCEPT;

/* ---------------------------------------------------------------- data out */
/* Copies t (any device, any strides) to dst as contiguous C-order elements of t's dtype.
 * nbytes must equal numel * dtype size. */
ft_status ft_copy_to_buffer(const ft_tensor *t, void *dst, size_t nbytes) FT_NOEXCEPT;
/* Same, converting every element to double (bool -> 0/1). n must equal numel. */
ft_status ft_copy_to_doubles(const ft_tensor *t, double *dst, int64_t n) FT_NOEXCEPT;
ft_status ft_item(const ft_tensor *t, double *out) FT_NOEXCEPT; /* exactly one element */

/* ---------------------------------------------------------------- conversion and copies */
ft_status ft_to(const ft_tensor *t, ft_dtype dtype, int device, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_clone(const ft_tensor *t, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_contiguous(const ft_tensor *t, ft_tensor **out) FT_NOEXCEPT;
/* 4-D only */
ft_status ft_contiguous_channels_last(const ft_tensor *t, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_detach(const ft_tensor *t, ft_tensor **out) FT_NOEXCEPT;
/* in place, broadcasting src */
ft_status ft_copy_(ft_tensor *dst, const ft_tensor *src) FT_NOEXCEPT;
ft_status ft_fill_(ft_tensor *t, double value) FT_NOEXCEPT;
ft_status ft_pin_memory(const ft_tensor *t, ft_tensor **out) FT_NOEXCEPT;

/* ---------------------------------------------------------------- views and indexing */
/* -1 infers */
ft_status ft_view(const ft_tensor *t, const int64_t *shape, int ndim, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_reshape(const ft_tensor *t, const int64_t *shape, int ndim,
                     ft_tensor **out) FT_NOEXCEPT;
ft_status ft_permute(const ft_tensor *t, const int64_t *dims, int ndim,
                     ft_tensor **out) FT_NOEXCEPT;
ft_status ft_transpose(const ft_tensor *t, int dim0, int dim1, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_narrow(const ft_tensor *t, int dim, int64_t start, int64_t length,
                    ft_tensor **out) FT_NOEXCEPT;
ft_status ft_select(const ft_tensor *t, int dim, int64_t index, ft_tensor **out) FT_NOEXCEPT;
/* dim < 0: all */
ft_status ft_squeeze(const ft_tensor *t, int dim, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_unsqueeze(const ft_tensor *t, int dim, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_expand(const ft_tensor *t, const int64_t *shape, int ndim,
                    ft_tensor **out) FT_NOEXCEPT;
ft_status ft_flatten(const ft_tensor *t, int start_dim, int end_dim, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_index_select(const ft_tensor *t, int dim, const ft_tensor *index,
                          ft_tensor **out) FT_NOEXCEPT;
ft_status ft_masked_select(const ft_tensor *t, const ft_tensor *mask, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_masked_fill_(ft_tensor *t, const ft_tensor *mask, double value) FT_NOEXCEPT;
ft_status ft_gather(const ft_tensor *t, int dim, const ft_tensor *index,
                    ft_tensor **out) FT_NOEXCEPT;
ft_status ft_cat(const ft_tensor *const *ts, int n, int dim, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_stack(const ft_tensor *const *ts, int n, int dim, ft_tensor **out) FT_NOEXCEPT;

/* ---------------------------------------------------------------- elementwise maths */
/* clang-format off */
typedef enum {
    FT_ADD = 0, FT_SUB, FT_MUL, FT_DIV, FT_POW, FT_REMAINDER, FT_MAXIMUM, FT_MINIMUM, FT_ATAN2,
    FT_EQ, FT_NE, FT_LT, FT_LE, FT_GT, FT_GE, FT_LOGICAL_AND, FT_LOGICAL_OR,
    FT_NBINOPS
} ft_binop;
/* clang-format on */

/* clang-format off */
typedef enum {
    FT_NEG = 0, FT_ABS, FT_EXP, FT_LOG, FT_LOG2, FT_LOG1P, FT_EXPM1, FT_SQRT, FT_RSQRT, FT_SIN,
    FT_COS, FT_TAN, FT_TANH, FT_SIGMOID, FT_RELU, FT_FLOOR, FT_CEIL, FT_ROUND, FT_TRUNC, FT_SIGN,
    FT_RECIPROCAL, FT_SQUARE, FT_LOGICAL_NOT, FT_ISNAN, FT_ISFINITE, FT_ERF, FT_GELU, FT_SILU,
    FT_NUNOPS
} ft_unop;
/* clang-format on */

/* out = a op b, broadcasting; for FT_ADD/FT_SUB, alpha scales b (a + alpha*b). */
ft_status ft_binary(ft_binop op, const ft_tensor *a, const ft_tensor *b,
                    ft_tensor **out) FT_NOEXCEPT;
ft_status ft_binary_scalar(ft_binop op, const ft_tensor *a, double b, ft_tensor **out) FT_NOEXCEPT;
/* a op b */
ft_status ft_scalar_binary(ft_binop op, double a, const ft_tensor *b, ft_tensor **out) FT_NOEXCEPT;
/* in place: a = a op b */
ft_status ft_binary_(ft_binop op, ft_tensor *a, const ft_tensor *b) FT_NOEXCEPT;
ft_status ft_binary_scalar_(ft_binop op, ft_tensor *a, double b) FT_NOEXCEPT;
/* a += alpha*b */
ft_status ft_add_scaled_(ft_tensor *a, const ft_tensor *b, double alpha) FT_NOEXCEPT;
ft_status ft_addcmul_(ft_tensor *t, const ft_tensor *a, const ft_tensor *b,
                      double value) FT_NOEXCEPT;
ft_status ft_addcdiv_(ft_tensor *t, const ft_tensor *a, const ft_tensor *b,
                      double value) FT_NOEXCEPT;
ft_status ft_lerp_(ft_tensor *t, const ft_tensor *end, double weight) FT_NOEXCEPT;
ft_status ft_unary(ft_unop op, const ft_tensor *a, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_unary_(ft_unop op, ft_tensor *a) FT_NOEXCEPT;
/* has_min/has_max select which bounds apply. */
ft_status ft_clamp(const ft_tensor *a, int has_min, double min, int has_max, double max,
                   ft_tensor **out) FT_NOEXCEPT;
ft_status ft_where(const ft_tensor *cond, const ft_tensor *a, const ft_tensor *b,
                   ft_tensor **out) FT_NOEXCEPT;
ft_status ft_allclose(const ft_tensor *a, const ft_tensor *b, double rtol, double atol,
                      int *out) FT_NOEXCEPT;
/* same shape and values */
ft_status ft_equal(const ft_tensor *a, const ft_tensor *b, int *out) FT_NOEXCEPT;

/* ---------------------------------------------------------------- reductions */
/* clang-format off */
typedef enum {
    FT_SUM = 0, FT_MEAN, FT_PROD, FT_MAX, FT_MIN, FT_ARGMAX, FT_ARGMIN, FT_STD, FT_VAR,
    FT_NORM, FT_ALL, FT_ANY, FT_LOGSUMEXP, FT_CUMSUM,
    FT_NREDUCEOPS
} ft_reduceop;
/* clang-format on */

/* Over all elements; result is 0-dim. FT_STD/FT_VAR are unbiased. FT_CUMSUM is not allowed. */
ft_status ft_reduce_all(ft_reduceop op, const ft_tensor *a, ft_tensor **out) FT_NOEXCEPT;
/* Over one dim. FT_MAX/FT_MIN give values; FT_ARGMAX/FT_ARGMIN give int64 indices. */
ft_status ft_reduce_dim(ft_reduceop op, const ft_tensor *a, int dim, int keepdim,
                        ft_tensor **out) FT_NOEXCEPT;
ft_status ft_topk(const ft_tensor *a, int64_t k, int dim, int largest, ft_tensor **values,
                  ft_tensor **indices) FT_NOEXCEPT;
ft_status ft_sort(const ft_tensor *a, int dim, int descending, ft_tensor **values,
                  ft_tensor **indices) FT_NOEXCEPT;

/* ---------------------------------------------------------------- linear algebra */
ft_status ft_matmul(const ft_tensor *a, const ft_tensor *b, ft_tensor **out) FT_NOEXCEPT;

/* ---------------------------------------------------------------- random, in place */
ft_status ft_uniform_(ft_tensor *t, double low, double high) FT_NOEXCEPT;
ft_status ft_normal_(ft_tensor *t, double mean, double std) FT_NOEXCEPT;
/* p in [0,1], same shape */
ft_status ft_bernoulli(const ft_tensor *p, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_kaiming_normal_(ft_tensor *t, double a, int fan_in_mode,
                             int nonlinearity_relu) FT_NOEXCEPT;

/* ---------------------------------------------------------------- NN ops */
/* Pairs are {h, w}. bias may be NULL. */
ft_status ft_conv2d(const ft_tensor *x, const ft_tensor *weight, const ft_tensor *bias,
                    const int64_t stride[2], const int64_t padding[2], const int64_t dilation[2],
                    int64_t groups, ft_tensor **out) FT_NOEXCEPT;
/* weight, bias, running stats may be NULL. In training mode running stats are updated in place. */
ft_status ft_batch_norm(const ft_tensor *x, const ft_tensor *weight, const ft_tensor *bias,
                        ft_tensor *running_mean, ft_tensor *running_var, int training,
                        double momentum, double eps, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_linear(const ft_tensor *x, const ft_tensor *weight, const ft_tensor *bias,
                    ft_tensor **out) FT_NOEXCEPT;
ft_status ft_max_pool2d(const ft_tensor *x, const int64_t kernel[2], const int64_t stride[2],
                        const int64_t padding[2], int ceil_mode, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_avg_pool2d(const ft_tensor *x, const int64_t kernel[2], const int64_t stride[2],
                        const int64_t padding[2], int ceil_mode, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_adaptive_avg_pool2d(const ft_tensor *x, const int64_t out_hw[2],
                                 ft_tensor **out) FT_NOEXCEPT;
ft_status ft_adaptive_max_pool2d(const ft_tensor *x, const int64_t out_hw[2],
                                 ft_tensor **out) FT_NOEXCEPT;
ft_status ft_dropout(const ft_tensor *x, double p, int training, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_softmax(const ft_tensor *x, int dim, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_log_softmax(const ft_tensor *x, int dim, ft_tensor **out) FT_NOEXCEPT;

typedef enum { FT_REDUCE_NONE = 0, FT_REDUCE_MEAN, FT_REDUCE_SUM } ft_reduction;
/* logits [N,C], target int64 [N]. weight may be NULL. */
ft_status ft_cross_entropy(const ft_tensor *logits, const ft_tensor *target,
                           const ft_tensor *weight, ft_reduction reduction, double label_smoothing,
                           ft_tensor **out) FT_NOEXCEPT;
ft_status ft_nll_loss(const ft_tensor *logp, const ft_tensor *target, ft_reduction reduction,
                      ft_tensor **out) FT_NOEXCEPT;
ft_status ft_mse_loss(const ft_tensor *a, const ft_tensor *b, ft_reduction reduction,
                      ft_tensor **out) FT_NOEXCEPT;
/* Multi-label loss: sigmoid + binary cross entropy, stable. target is float, same shape as
 * logits. weight (per element, broadcast) and pos_weight (per class) may be NULL. */
ft_status ft_bce_with_logits(const ft_tensor *logits, const ft_tensor *target,
                             const ft_tensor *weight, const ft_tensor *pos_weight,
                             ft_reduction reduction, ft_tensor **out) FT_NOEXCEPT;
/* Normalises over the last ndim dims (sizes normalized_shape); weight/bias may be NULL. */
ft_status ft_layer_norm(const ft_tensor *x, const int64_t *normalized_shape, int ndim,
                        const ft_tensor *weight, const ft_tensor *bias, double eps,
                        ft_tensor **out) FT_NOEXCEPT;

typedef enum { FT_INTERP_BILINEAR = 0, FT_INTERP_NEAREST, FT_INTERP_BICUBIC } ft_interp;
typedef enum { FT_PAD_ZEROS = 0, FT_PAD_BORDER, FT_PAD_REFLECTION } ft_padding_mode;
/* x [N,C,H,W], grid [N,Ho,Wo,2] in [-1,1]. */
ft_status ft_grid_sample(const ft_tensor *x, const ft_tensor *grid, ft_interp mode,
                         ft_padding_mode padding, int align_corners, ft_tensor **out) FT_NOEXCEPT;
/* theta [N,2,3] -> grid [N,H,W,2] for size {N,C,H,W}. */
ft_status ft_affine_grid(const ft_tensor *theta, const int64_t size[4], int align_corners,
                         ft_tensor **out) FT_NOEXCEPT;
/* Resize x [N,C,H,W] to out_hw; antialias applies to bilinear/bicubic when shrinking. */
ft_status ft_interpolate(const ft_tensor *x, const int64_t out_hw[2], ft_interp mode,
                         int align_corners, int antialias, ft_tensor **out) FT_NOEXCEPT;

/* ---------------------------------------------------------------- autograd */
ft_status ft_set_requires_grad(ft_tensor *t, int requires_grad) FT_NOEXCEPT;
/* *out is NULL (and FT_OK) when t has no gradient yet. */
ft_status ft_grad(const ft_tensor *t, ft_tensor **out) FT_NOEXCEPT;
ft_status ft_set_grad(ft_tensor *t, const ft_tensor *grad) FT_NOEXCEPT; /* grad NULL clears it */
/* grad may be NULL for a scalar t. */
ft_status ft_backward(const ft_tensor *t, const ft_tensor *grad, int retain_graph) FT_NOEXCEPT;

/* ---------------------------------------------------------------- modules (runtime/model) */
/* Memory formats for ft_convert_. */
#define FT_KEEP_FORMAT       0
#define FT_CONTIGUOUS_FORMAT 1
#define FT_CHANNELS_LAST     2
#define FT_SAME_DEVICE       (-2) /* ft_convert_: leave the device as it is */

/* Converts t's data in place, like torch's `param.data = param.data.to(...)`: t keeps its
 * identity (every handle sharing t's tensor sees the new data), its requires_grad and its
 * autograd metadata; its gradient, if any, is converted the same way. As in torch's
 * Module.to, dtype applies to floating-point tensors only (integer buffers keep theirs);
 * dtype < 0 keeps the dtype. device is FT_CPU, a cuda index or FT_SAME_DEVICE. memory_format
 * FT_CHANNELS_LAST applies to 4-D tensors only; others are left as they are. */
ft_status ft_convert_(ft_tensor *t, int dtype, int device, int memory_format) FT_NOEXCEPT;

/* Autocast (mixed precision) on one device type: cuda != 0 for CUDA, else the CPU. enter
 * saves the previous state in *saved and turns autocast on with dtype (float16 or bfloat16);
 * exit restores *saved and clears the cast-weights cache when the outermost region ends.
 * The state is thread-local, as in libtorch. */
typedef struct {
    int cuda;
    int enabled;
    ft_dtype dtype;
} ft_autocast_state;
ft_status ft_autocast_enter(int cuda, ft_dtype dtype, ft_autocast_state *saved) FT_NOEXCEPT;
ft_status ft_autocast_exit(const ft_autocast_state *saved) FT_NOEXCEPT;
int ft_autocast_enabled(int cuda) FT_NOEXCEPT;

/* The first element's address (CPU or CUDA memory), for our own kernels that write straight
 * into a tensor (the CUDA augmentation); NULL when t is undefined, or when libtorch refused
 * (then ft_last_error() says why). */
void *ft_data_ptr(const ft_tensor *t) FT_NOEXCEPT;

#ifdef __cplusplus
}
#endif
#endif /* FT_TORCH_H */
