// ft_torch.cpp: the libtorch shim behind ft_torch.h, its core: the error channel, the runtime
// (version, CUDA devices, threads, seed, grad mode), tensor lifetime and metadata, and tensors
// in and out (creation, copies to C buffers, conversion). Tensor maths is ft_tensor_ops.cpp;
// NN ops, autograd and module support are ft_nn.cpp; what they share is ft_internal.hpp.
//
// Every exported function runs its body inside guard(), which turns any C++ exception into an
// ft_status plus a message in a thread-local buffer. Results are built completely before the
// out parameters are written, so a failing call leaves them untouched.
//
// Portability: the shim must compile against Debian's libtorch 1.13 and libtorch 2.x. We never
// spell c10::optional/std::optional: optional arguments get a plain value (implicit conversion)
// or are left at their defaults; an absent optional tensor is passed as an undefined at::Tensor,
// which ATen treats as "none".

// GCC's sanitizer builds (make asan) report a false -Wmaybe-uninitialized inside c10's
// optional<Generator>; it points into libtorch's headers, not at this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/core/grad_mode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "torch/ft_internal.hpp"

using namespace ft_internal;

namespace {

// ---------------------------------------------------------------- errors

// Fixed-size and thread-local: reporting an error must not need an allocation (OOM path).
thread_local char g_err[1024];

} // namespace

ft_status ft_internal::set_error(ft_status code, const char *msg) noexcept {
    if (!msg) msg = "(no message)";
    snprintf(g_err, sizeof g_err, "%s", msg);
    // Belt and braces: never show a C++ backtrace to Lua users.
    char *bt = strstr(g_err, "Exception raised from");
    if (bt) *bt = '\0';
    size_t n = strlen(g_err);
    while (n > 0 && (g_err[n - 1] == '\n' || g_err[n - 1] == ' ')) g_err[--n] = '\0';
    if (n == 0) snprintf(g_err, sizeof g_err, "libtorch error (no message)");
    return code;
}

namespace {

bool looks_like_oom(const char *m) {
    return strstr(m, "out of memory") || strstr(m, "not enough memory") ||
           strstr(m, "can't allocate memory");
}

} // namespace

// Called from inside a catch(...) handler: rethrow to classify the exception.
// ft_dist.cpp reports its errors through the same buffer.
ft_status ft_internal::fail_current() noexcept {
    try {
        throw;
    } catch (const c10::OutOfMemoryError &e) {
        return set_error(FT_ERR_OOM, e.what_without_backtrace());
    } catch (const c10::Error &e) {
        const char *m = e.what_without_backtrace();
        return set_error(looks_like_oom(m) ? FT_ERR_OOM : FT_ERR, m);
    } catch (const std::bad_alloc &) {
        return set_error(FT_ERR_OOM, "out of memory (std::bad_alloc)");
    } catch (const std::exception &e) {
        return set_error(FT_ERR, e.what());
    } catch (...) {
        return set_error(FT_ERR, "unknown C++ exception");
    }
}

extern "C" {

// ---------------------------------------------------------------- errors and dtypes

const char *ft_last_error(void) noexcept { return g_err; }

void ft_set_last_error(const char *fmt, ...) noexcept {
    char msg[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap); /* fmt may name g_err itself: format aside first */
    va_end(ap);
    memcpy(g_err, msg, sizeof g_err);
}

// ---------------------------------------------------------------- runtime

// The version of the libtorch actually loaded (its build settings say TORCH_VERSION=...), not
// that of the headers we compiled against; the headers' when the library does not say.
const char *ft_torch_version(void) noexcept {
    static char version[32];
    if (version[0]) return version;
    snprintf(version, sizeof version, "%s", TORCH_VERSION);
    try {
        std::string config = at::show_config();
        size_t at = config.find("TORCH_VERSION=");
        if (at != std::string::npos) {
            at += strlen("TORCH_VERSION=");
            size_t end = config.find_first_of(", \n", at);
            std::string v =
                config.substr(at, end == std::string::npos ? std::string::npos : end - at);
            if (!v.empty() && v.size() < sizeof version)
                snprintf(version, sizeof version, "%s", v.c_str());
        }
    } catch (...) {}
    return version;
}

int ft_cuda_available(void) noexcept {
    try {
        return torch::cuda::is_available() ? 1 : 0;
    } catch (...) {
        fail_current(); // the answer is "no"; ft_last_error() says why
        return 0;
    }
}

int ft_cuda_device_count(void) noexcept {
    try {
        return (int)torch::cuda::device_count();
    } catch (...) {
        fail_current();
        return 0;
    }
}

int ft_default_device(void) noexcept { return ft_cuda_available() ? 0 : FT_CPU; }

// at::manual_seed seeds the CPU generator and, when CUDA is present, every CUDA device.
ft_status ft_manual_seed(uint64_t seed) noexcept {
    return guard([&] { at::manual_seed(seed); });
}

ft_status ft_set_num_threads(int n) noexcept {
    return guard([&] {
        if (n < 1) bad_arg("set_num_threads", "thread count", n);
        at::set_num_threads(n);
    });
}

int ft_get_num_threads(void) noexcept { return at::get_num_threads(); }
int ft_grad_enabled(void) noexcept { return at::GradMode::is_enabled() ? 1 : 0; }
void ft_set_grad_enabled(int enabled) noexcept { at::GradMode::set_enabled(enabled != 0); }

ft_status ft_synchronize(int device) noexcept {
    return guard([&] {
        if (device == FT_CPU) return;
        dev(device); // validates the index
        torch::cuda::synchronize((int64_t)device);
    });
}

// ---------------------------------------------------------------- lifetime

void ft_free(ft_tensor *t) noexcept { delete t; }

ft_status ft_shallow_copy(const ft_tensor *t, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t)); });
}

// ---------------------------------------------------------------- metadata
// These cannot fail on a valid handle; on NULL/undefined handles or bad dims they return
// 0 (or -1 for sizes and strides) instead of throwing.

int ft_defined(const ft_tensor *t) noexcept { return t && t->t.defined(); }
int ft_dim(const ft_tensor *t) noexcept { return ft_defined(t) ? (int)t->t.dim() : 0; }

int64_t ft_size(const ft_tensor *t, int dim) noexcept {
    return (dim >= 0 && dim < ft_dim(t)) ? t->t.sizes()[dim] : -1;
}
int64_t ft_stride(const ft_tensor *t, int dim) noexcept {
    return (dim >= 0 && dim < ft_dim(t)) ? t->t.strides()[dim] : -1;
}
int64_t ft_numel(const ft_tensor *t) noexcept { return ft_defined(t) ? t->t.numel() : 0; }
int64_t ft_storage_offset(const ft_tensor *t) noexcept {
    return ft_defined(t) ? t->t.storage_offset() : 0;
}

ft_dtype ft_get_dtype(const ft_tensor *t) noexcept {
    // FT_NDTYPES when not one of ours (e.g. complex): callers treat it as unknown.
    return ft_defined(t) ? dtype_of(t->t.scalar_type()) : FT_NDTYPES;
}

int ft_device(const ft_tensor *t) noexcept {
    if (!ft_defined(t) || !t->t.is_cuda()) return FT_CPU;
    return t->t.device().index();
}

int ft_is_contiguous(const ft_tensor *t) noexcept { return ft_defined(t) && t->t.is_contiguous(); }
int ft_requires_grad(const ft_tensor *t) noexcept { return ft_defined(t) && t->t.requires_grad(); }
int ft_is_leaf(const ft_tensor *t) noexcept { return ft_defined(t) && t->t.is_leaf(); }

size_t ft_storage_nbytes(const ft_tensor *t) noexcept {
    return (ft_defined(t) && t->t.has_storage()) ? t->t.storage().nbytes() : 0;
}

// The StorageImpl is shared by every view of a tensor, so its address identifies the storage.
const void *ft_storage_id(const ft_tensor *t) noexcept {
    return (ft_defined(t) && t->t.has_storage()) ? t->t.storage().unsafeGetStorageImpl() : nullptr;
}

// ---------------------------------------------------------------- creation

ft_status ft_from_data(const void *data, ft_dtype dtype, const int64_t *shape, int ndim,
                       ft_tensor **out) noexcept {
    return guard([&] {
        at::Tensor r = at::empty(shape_ref(shape, ndim), opts(E(dtype), FT_CPU));
        size_t nbytes = (size_t)r.numel() * ft_dtype_size(dtype);
        if (nbytes > 0) {
            if (!data) throw std::invalid_argument("from_data: NULL data");
            // memcpy rather than from_blob: the source may not be aligned for its dtype.
            memcpy(r.data_ptr(), data, nbytes);
        }
        put(out, std::move(r));
    });
}

ft_status ft_empty(const int64_t *shape, int ndim, ft_dtype dtype, int device,
                   ft_tensor **out) noexcept {
    return guard([&] { put(out, at::empty(shape_ref(shape, ndim), opts(E(dtype), device))); });
}

ft_status ft_full(const int64_t *shape, int ndim, double value, ft_dtype dtype, int device,
                  ft_tensor **out) noexcept {
    return guard([&] {
        put(out, at::full(shape_ref(shape, ndim), at::Scalar(value), opts(E(dtype), device)));
    });
}

ft_status ft_rand(const int64_t *shape, int ndim, ft_dtype dtype, int device,
                  ft_tensor **out) noexcept {
    return guard([&] { put(out, at::rand(shape_ref(shape, ndim), opts(E(dtype), device))); });
}

ft_status ft_randn(const int64_t *shape, int ndim, ft_dtype dtype, int device,
                   ft_tensor **out) noexcept {
    return guard([&] { put(out, at::randn(shape_ref(shape, ndim), opts(E(dtype), device))); });
}

ft_status ft_randint(int64_t low, int64_t high, const int64_t *shape, int ndim, ft_dtype dtype,
                     int device, ft_tensor **out) noexcept {
    return guard(
        [&] { put(out, at::randint(low, high, shape_ref(shape, ndim), opts(E(dtype), device))); });
}

ft_status ft_randperm(int64_t n, int device, ft_tensor **out) noexcept {
    return guard([&] { put(out, at::randperm(n, opts(FT_INT64, device))); });
}

ft_status ft_arange(double start, double end, double step, ft_dtype dtype, int device,
                    ft_tensor **out) noexcept {
    return guard([&] {
        put(out, at::arange(at::Scalar(start), at::Scalar(end), at::Scalar(step),
                            opts(E(dtype), device)));
    });
}

ft_status ft_linspace(double start, double end, int64_t steps, ft_dtype dtype, int device,
                      ft_tensor **out) noexcept {
    return guard([&] {
        put(out, at::linspace(at::Scalar(start), at::Scalar(end), steps, opts(E(dtype), device)));
    });
}

ft_status ft_eye(int64_t n, ft_dtype dtype, int device, ft_tensor **out) noexcept {
    return guard([&] { put(out, at::eye(n, opts(E(dtype), device))); });
}

// ---------------------------------------------------------------- data out

ft_status ft_copy_to_buffer(const ft_tensor *t, void *dst, size_t nbytes) noexcept {
    return guard([&] {
        const at::Tensor &a = T(t);
        size_t need = (size_t)a.numel() * a.element_size();
        if (nbytes != need) bad_arg("copy_to_buffer", "byte count", (long long)nbytes);
        if (need == 0) return;
        if (!dst) throw std::invalid_argument("copy_to_buffer: NULL destination");
        // detach: reading data must not be recorded by autograd.
        at::Tensor c = a.detach().cpu().contiguous();
        memcpy(dst, c.data_ptr(), need);
    });
}

ft_status ft_copy_to_doubles(const ft_tensor *t, double *dst, int64_t n) noexcept {
    return guard([&] {
        const at::Tensor &a = T(t);
        if (n != a.numel()) bad_arg("copy_to_doubles", "element count", (long long)n);
        if (n == 0) return;
        if (!dst) throw std::invalid_argument("copy_to_doubles: NULL destination");
        at::Tensor c = a.detach().cpu().to(at::kDouble).contiguous();
        memcpy(dst, c.data_ptr(), (size_t)n * sizeof(double));
    });
}

ft_status ft_item(const ft_tensor *t, double *out) noexcept {
    return guard([&] {
        const at::Tensor &a = T(t);
        if (a.numel() != 1) bad_arg("item", "element count (need exactly 1)", a.numel());
        if (!out) throw std::invalid_argument("item: NULL out parameter");
        *out = a.detach().cpu().to(at::kDouble).item<double>();
    });
}

// The first element's address, for our own kernels (ft_torch.h); NULL when t is undefined, and
// NULL with a message in ft_last_error() when libtorch refuses.
void *ft_data_ptr(const ft_tensor *t) noexcept {
    try {
        return t && t->t.defined() ? t->t.data_ptr() : nullptr;
    } catch (...) {
        fail_current();
        return nullptr;
    }
}

// ---------------------------------------------------------------- conversion and copies

// Like torch's .to(): returns the same tensor when dtype and device already match.
ft_status ft_to(const ft_tensor *t, ft_dtype dtype, int device, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).to(dev(device), st(E(dtype)))); });
}

ft_status ft_clone(const ft_tensor *t, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).clone()); });
}

ft_status ft_contiguous(const ft_tensor *t, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).contiguous()); });
}

ft_status ft_contiguous_channels_last(const ft_tensor *t, ft_tensor **out) noexcept {
    return guard([&] {
        const at::Tensor &a = T(t);
        if (a.dim() != 4) bad_arg("contiguous_channels_last", "number of dims (need 4)", a.dim());
        put(out, a.contiguous(at::MemoryFormat::ChannelsLast));
    });
}

ft_status ft_detach(const ft_tensor *t, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).detach()); });
}

ft_status ft_copy_(ft_tensor *dst, const ft_tensor *src) noexcept {
    return guard([&] { M(dst).copy_(T(src)); });
}

ft_status ft_fill_(ft_tensor *t, double value) noexcept {
    return guard([&] { M(t).fill_(lua_scalar(value)); });
}

// Pinned host memory only exists when CUDA does. Without CUDA (or for a tensor that is not on
// the CPU) pinning is meaningless, so we return a new handle to the same tensor instead of an
// error: callers can pin unconditionally.
ft_status ft_pin_memory(const ft_tensor *t, ft_tensor **out) noexcept {
    return guard([&] {
        const at::Tensor &a = T(t);
        if (!a.is_cpu() || !torch::cuda::is_available() || a.is_pinned())
            put(out, a);
        else
            put(out, a.pin_memory());
    });
}

} // extern "C"
