// ft_nn.cpp: the shim's NN ops (ft_torch.h): convolution, normalisation, pooling, losses,
// sampling and resizing, then autograd, and what runtime/model needs to move modules and run
// them in mixed precision (ft_convert_, autocast). See ft_torch.cpp for the rules every
// exported function follows.

// GCC's sanitizer builds (make asan) report a false -Wmaybe-uninitialized inside c10's
// optional<Generator>; it points into libtorch's headers, not at this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <stdexcept>

#include "torch/ft_internal.hpp"

using namespace ft_internal;

namespace {

int64_t check_reduction(int r) {
    // ft_reduction matches at::Reduction: None = 0, Mean = 1, Sum = 2.
    if (r < FT_REDUCE_NONE || r > FT_REDUCE_SUM) bad_arg("loss", "reduction", r);
    return (int64_t)r;
}

} // namespace

extern "C" {

// ---------------------------------------------------------------- NN ops

ft_status ft_conv2d(const ft_tensor *x, const ft_tensor *weight, const ft_tensor *bias,
                    const int64_t stride[2], const int64_t padding[2], const int64_t dilation[2],
                    int64_t groups, ft_tensor **out) noexcept {
    return guard([&] {
        put(out, at::conv2d(T(x), T(weight), opt(bias), pair(stride, "stride"),
                            pair(padding, "padding"), pair(dilation, "dilation"), groups));
    });
}

ft_status ft_batch_norm(const ft_tensor *x, const ft_tensor *weight, const ft_tensor *bias,
                        ft_tensor *running_mean, ft_tensor *running_var, int training,
                        double momentum, double eps, ft_tensor **out) noexcept {
    return guard([&] {
        // Running stats are updated in place through the shared TensorImpl.
        put(out, at::batch_norm(T(x), opt(weight), opt(bias), opt(running_mean), opt(running_var),
                                training != 0, momentum, eps, /*cudnn_enabled=*/true));
    });
}

ft_status ft_linear(const ft_tensor *x, const ft_tensor *weight, const ft_tensor *bias,
                    ft_tensor **out) noexcept {
    return guard([&] { put(out, at::linear(T(x), T(weight), opt(bias))); });
}

ft_status ft_max_pool2d(const ft_tensor *x, const int64_t kernel[2], const int64_t stride[2],
                        const int64_t padding[2], int ceil_mode, ft_tensor **out) noexcept {
    return guard([&] {
        static const int64_t one[2] = {1, 1};
        put(out, at::max_pool2d(T(x), pair(kernel, "kernel"), pair(stride, "stride"),
                                pair(padding, "padding"), at::IntArrayRef(one, 2), ceil_mode != 0));
    });
}

ft_status ft_avg_pool2d(const ft_tensor *x, const int64_t kernel[2], const int64_t stride[2],
                        const int64_t padding[2], int ceil_mode, ft_tensor **out) noexcept {
    return guard([&] {
        put(out, at::avg_pool2d(T(x), pair(kernel, "kernel"), pair(stride, "stride"),
                                pair(padding, "padding"), ceil_mode != 0,
                                /*count_include_pad=*/true));
    });
}

ft_status ft_adaptive_avg_pool2d(const ft_tensor *x, const int64_t out_hw[2],
                                 ft_tensor **out) noexcept {
    return guard([&] { put(out, at::adaptive_avg_pool2d(T(x), pair(out_hw, "output size"))); });
}

ft_status ft_adaptive_max_pool2d(const ft_tensor *x, const int64_t out_hw[2],
                                 ft_tensor **out) noexcept {
    return guard(
        [&] { put(out, std::get<0>(at::adaptive_max_pool2d(T(x), pair(out_hw, "output size")))); });
}

ft_status ft_dropout(const ft_tensor *x, double p, int training, ft_tensor **out) noexcept {
    return guard([&] { put(out, at::dropout(T(x), p, training != 0)); });
}

ft_status ft_softmax(const ft_tensor *x, int dim, ft_tensor **out) noexcept {
    return guard([&] { put(out, at::softmax(T(x), (int64_t)dim)); });
}

ft_status ft_log_softmax(const ft_tensor *x, int dim, ft_tensor **out) noexcept {
    return guard([&] { put(out, at::log_softmax(T(x), (int64_t)dim)); });
}

ft_status ft_cross_entropy(const ft_tensor *logits, const ft_tensor *target,
                           const ft_tensor *weight, ft_reduction reduction, double label_smoothing,
                           ft_tensor **out) noexcept {
    return guard([&] {
        put(out,
            at::cross_entropy_loss(T(logits), T(target), opt(weight), check_reduction(E(reduction)),
                                   /*ignore_index=*/-100, label_smoothing));
    });
}

ft_status ft_nll_loss(const ft_tensor *logp, const ft_tensor *target, ft_reduction reduction,
                      ft_tensor **out) noexcept {
    return guard([&] {
        put(out, at::nll_loss(T(logp), T(target), at::Tensor(), check_reduction(E(reduction)),
                              /*ignore_index=*/-100));
    });
}

ft_status ft_mse_loss(const ft_tensor *a, const ft_tensor *b, ft_reduction reduction,
                      ft_tensor **out) noexcept {
    return guard([&] { put(out, at::mse_loss(T(a), T(b), check_reduction(E(reduction)))); });
}

ft_status ft_bce_with_logits(const ft_tensor *logits, const ft_tensor *target,
                             const ft_tensor *weight, const ft_tensor *pos_weight,
                             ft_reduction reduction, ft_tensor **out) noexcept {
    return guard([&] {
        put(out,
            at::binary_cross_entropy_with_logits(T(logits), T(target), opt(weight), opt(pos_weight),
                                                 check_reduction(E(reduction))));
    });
}

ft_status ft_layer_norm(const ft_tensor *x, const int64_t *normalized_shape, int ndim,
                        const ft_tensor *weight, const ft_tensor *bias, double eps,
                        ft_tensor **out) noexcept {
    return guard([&] {
        put(out,
            at::layer_norm(T(x), shape_ref(normalized_shape, ndim), opt(weight), opt(bias), eps));
    });
}

// at::grid_sampler takes the same integer codes as our enums:
// mode bilinear 0, nearest 1, bicubic 2; padding zeros 0, border 1, reflection 2.
ft_status ft_grid_sample(const ft_tensor *x, const ft_tensor *grid, ft_interp mode,
                         ft_padding_mode padding, int align_corners, ft_tensor **out) noexcept {
    return guard([&] {
        int m = E(mode), p = E(padding);
        if (m < 0 || m > FT_INTERP_BICUBIC) bad_arg("grid_sample", "mode", m);
        if (p < 0 || p > FT_PAD_REFLECTION) bad_arg("grid_sample", "padding mode", p);
        put(out, at::grid_sampler(T(x), T(grid), (int64_t)m, (int64_t)p, align_corners != 0));
    });
}

ft_status ft_affine_grid(const ft_tensor *theta, const int64_t size[4], int align_corners,
                         ft_tensor **out) noexcept {
    return guard([&] {
        if (!size) throw std::invalid_argument("affine_grid: NULL size");
        put(out, at::affine_grid_generator(T(theta), at::IntArrayRef(size, 4), align_corners != 0));
    });
}

// The same kernels F.interpolate(size=...) picks; antialias selects the _aa variants, which
// only exist for bilinear and bicubic (nearest ignores the flag).
ft_status ft_interpolate(const ft_tensor *x, const int64_t out_hw[2], ft_interp mode,
                         int align_corners, int antialias, ft_tensor **out) noexcept {
    return guard([&] {
        const at::Tensor &a = T(x);
        at::IntArrayRef hw = pair(out_hw, "output size");
        bool ac = align_corners != 0;
        at::Tensor r;
        switch (E(mode)) {
        case FT_INTERP_NEAREST: r = at::upsample_nearest2d(a, hw); break;
        case FT_INTERP_BILINEAR:
            r = antialias ? at::_upsample_bilinear2d_aa(a, hw, ac)
                          : at::upsample_bilinear2d(a, hw, ac);
            break;
        case FT_INTERP_BICUBIC:
            r = antialias ? at::_upsample_bicubic2d_aa(a, hw, ac)
                          : at::upsample_bicubic2d(a, hw, ac);
            break;
        default: bad_arg("interpolate", "mode", E(mode));
        }
        put(out, std::move(r));
    });
}

// ---------------------------------------------------------------- autograd

ft_status ft_set_requires_grad(ft_tensor *t, int requires_grad) noexcept {
    return guard([&] { M(t).set_requires_grad(requires_grad != 0); });
}

ft_status ft_grad(const ft_tensor *t, ft_tensor **out) noexcept {
    return guard([&] {
        if (!out) throw std::invalid_argument("grad: NULL out parameter");
        at::Tensor g = T(t).grad();
        *out = g.defined() ? new ft_tensor{std::move(g)} : nullptr;
    });
}

ft_status ft_set_grad(ft_tensor *t, const ft_tensor *grad) noexcept {
    return guard([&] {
        at::Tensor &a = M(t);
        if (grad) {
            // mutable_grad() skips the checks Python's .grad setter does; do them here.
            const at::Tensor &g = T(grad);
            if (g.sizes() != a.sizes()) throw std::invalid_argument("set_grad: shape mismatch");
            if (g.scalar_type() != a.scalar_type())
                throw std::invalid_argument("set_grad: dtype mismatch");
            if (g.device() != a.device()) throw std::invalid_argument("set_grad: device mismatch");
            a.mutable_grad() = g;
        } else {
            a.mutable_grad() = at::Tensor();
        }
    });
}

ft_status ft_backward(const ft_tensor *t, const ft_tensor *grad, int retain_graph) noexcept {
    return guard([&] { T(t).backward(opt(grad), retain_graph != 0); });
}

} // extern "C"

// ---------------------------------------------------------------- modules (runtime/model)

// libtorch 2.4 replaced the per-device autocast functions (set_cpu_enabled,
// set_autocast_cpu_dtype, ...) by ones taking a device type, and deprecated the old ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define FT_AUTOCAST_BY_DEVICE_TYPE 1
#else
#define FT_AUTOCAST_BY_DEVICE_TYPE 0
#endif

namespace {

bool autocast_on(bool cuda) {
#if FT_AUTOCAST_BY_DEVICE_TYPE
    return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
    return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void autocast_set(bool cuda, bool enabled, at::ScalarType dtype) {
#if FT_AUTOCAST_BY_DEVICE_TYPE
    at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, dtype);
    at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, enabled);
#else
    if (cuda) {
        at::autocast::set_autocast_gpu_dtype(dtype);
        at::autocast::set_enabled(enabled);
    } else {
        at::autocast::set_autocast_cpu_dtype(dtype);
        at::autocast::set_cpu_enabled(enabled);
    }
#endif
}

at::ScalarType autocast_dtype(bool cuda) {
#if FT_AUTOCAST_BY_DEVICE_TYPE
    return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
#else
    return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

} // namespace

extern "C" {

ft_status ft_convert_(ft_tensor *t, int dtype, int device, int memory_format) noexcept {
    return guard([&] {
        at::Tensor &a = M(t);
        if (memory_format < FT_KEEP_FORMAT || memory_format > FT_CHANNELS_LAST)
            bad_arg("convert_", "memory format", memory_format);
        at::ScalarType s = a.scalar_type();
        if (dtype >= 0 && a.is_floating_point()) s = st(dtype);
        at::Device d = device == FT_SAME_DEVICE ? a.device() : dev(device);
        auto fix_format = [&](at::Tensor r) {
            if (memory_format == FT_CHANNELS_LAST && r.dim() == 4)
                return r.contiguous(at::MemoryFormat::ChannelsLast);
            if (memory_format == FT_CONTIGUOUS_FORMAT) return r.contiguous();
            return r;
        };
        // Build everything first, then swap: a failure leaves t untouched.
        at::Tensor r = fix_format(a.detach().to(d, s));
        at::Tensor g = a.grad();
        at::Tensor g2 = g.defined() ? fix_format(g.to(d, s)) : at::Tensor();
        a.set_data(r);
        if (g.defined()) a.mutable_grad() = g2;
    });
}

ft_status ft_autocast_enter(int cuda, ft_dtype dtype, ft_autocast_state *saved) noexcept {
    return guard([&] {
        if (!saved) throw std::invalid_argument("autocast: NULL state");
        at::ScalarType s = st(E(dtype));
        if (s != at::kBFloat16 && s != at::kHalf)
            throw std::invalid_argument("autocast: dtype must be bfloat16 or float16");
        if (cuda && !torch::cuda::is_available())
            throw std::invalid_argument("autocast: CUDA is not available");
        ft_dtype was = dtype_of(autocast_dtype(cuda != 0));
        if (was == FT_NDTYPES) throw std::invalid_argument("autocast: unsupported dtype");
        ft_autocast_state prev = {cuda != 0, autocast_on(cuda != 0) ? 1 : 0, was};
        autocast_set(cuda != 0, true, s);
        at::autocast::increment_nesting();
        *saved = prev;
    });
}

ft_status ft_autocast_exit(const ft_autocast_state *saved) noexcept {
    return guard([&] {
        if (!saved) throw std::invalid_argument("autocast: NULL state");
        // The cache holds the low-precision copies of weights made inside the region.
        if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
        autocast_set(saved->cuda != 0, saved->enabled != 0, st(E(saved->dtype)));
    });
}

int ft_autocast_enabled(int cuda) noexcept {
    try {
        return autocast_on(cuda != 0) ? 1 : 0;
    } catch (...) {
        fail_current();
        return 0;
    }
}

} // extern "C"
