// ft_torch.cpp: the libtorch shim behind ft_torch.h.
//
// Every exported function runs its body inside guard(), which turns any C++ exception into an
// ft_status plus a message in a thread-local buffer. Results are built completely before the
// out parameters are written, so a failing call leaves them untouched.
//
// Portability: this file must compile against Debian's libtorch 1.13 and libtorch 2.x. We never
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
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/nn/init.h>
#include <torch/version.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "torch/ft_internal.hpp"

namespace {

// ---------------------------------------------------------------- errors

// Fixed-size and thread-local: reporting an error must not need an allocation (OOM path).
thread_local char g_err[1024];

ft_status set_error(ft_status code, const char *msg) noexcept {
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

bool looks_like_oom(const char *m) {
    return strstr(m, "out of memory") || strstr(m, "not enough memory") ||
           strstr(m, "can't allocate memory");
}

// Called from inside a catch(...) handler: rethrow to classify the exception.
ft_status fail_current() noexcept {
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

// The one place where exceptions stop: return guard([&] { ...body... });
template <class F> ft_status guard(F &&body) noexcept {
    try {
        body();
        return FT_OK;
    } catch (...) {
        return fail_current();
    }
}

[[noreturn]] void bad_arg(const char *fn, const char *what, long long v) {
    char buf[160];
    snprintf(buf, sizeof buf, "%s: invalid %s (%lld)", fn, what, v);
    throw std::invalid_argument(buf);
}

// C callers may put any int in an enum parameter (the Lua layer forwards user input). In C++
// even loading an out-of-range enum value is undefined, so read the bits as an int and check.
template <class Enum> int E(const Enum &e) {
    static_assert(sizeof(Enum) == sizeof(int), "C enums are int-sized");
    int v;
    memcpy(&v, &e, sizeof v);
    return v;
}

} // namespace

// ft_dist.cpp reports its errors through the same buffer.
ft_status ft_internal::fail_current() noexcept { return ::fail_current(); }
ft_status ft_internal::set_error(ft_status code, const char *msg) noexcept {
    return ::set_error(code, msg);
}

namespace {

// ---------------------------------------------------------------- handles

const at::Tensor &T(const ft_tensor *h) {
    if (!h) throw std::invalid_argument("NULL tensor handle");
    return h->t;
}
at::Tensor &M(ft_tensor *h) {
    if (!h) throw std::invalid_argument("NULL tensor handle");
    return h->t;
}
// NULL -> undefined tensor, which ATen reads as an absent optional argument.
at::Tensor opt(const ft_tensor *h) { return h ? h->t : at::Tensor(); }

void put(ft_tensor **out, at::Tensor r) {
    if (!out) throw std::invalid_argument("NULL out parameter");
    *out = new ft_tensor{std::move(r)};
}

// Two results: allocate both before writing either.
void put2(ft_tensor **a, ft_tensor **b, const std::tuple<at::Tensor, at::Tensor> &r) {
    if (!a || !b) throw std::invalid_argument("NULL out parameter");
    std::unique_ptr<ft_tensor> x(new ft_tensor{std::get<0>(r)});
    std::unique_ptr<ft_tensor> y(new ft_tensor{std::get<1>(r)});
    *a = x.release();
    *b = y.release();
}

// ---------------------------------------------------------------- dtypes, devices, shapes

// Indexed by ft_dtype (io/dtype.h, which also has the names and sizes); keep the enum's order.
const at::ScalarType kScalarTypes[FT_NDTYPES] = {
    at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kLong,
    at::kInt,   at::kShort,  at::kChar, at::kByte,     at::kBool,
};

// The one reverse lookup: FT_NDTYPES when s is not one of ours (e.g. complex).
ft_dtype dtype_of(at::ScalarType s) {
    for (int i = 0; i < FT_NDTYPES; i++)
        if (kScalarTypes[i] == s) return (ft_dtype)i;
    return FT_NDTYPES;
}

at::ScalarType st(int d) {
    if (d < 0 || d >= FT_NDTYPES) bad_arg("dtype", "dtype", d);
    return kScalarTypes[d];
}

at::Device dev(int d) {
    if (d == FT_CPU) return at::Device(at::kCPU);
    if (d < 0 || d > 127) bad_arg("device", "device index", d);
    // Checked here because libtorch's own message for a missing backend is a page of text.
    int n = ft_cuda_device_count();
    if (d >= n) {
        char buf[128];
        snprintf(buf, sizeof buf, "cuda:%d requested but %d CUDA device%s available", d, n,
                 n == 1 ? " is" : "s are");
        throw std::invalid_argument(buf);
    }
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(d));
}

at::TensorOptions opts(int d, int device) {
    return at::TensorOptions().dtype(st(d)).device(dev(device));
}

at::IntArrayRef shape_ref(const int64_t *shape, int ndim) {
    if (ndim < 0 || ndim > FT_MAX_DIMS) bad_arg("shape", "number of dims", ndim);
    if (ndim > 0 && !shape) throw std::invalid_argument("shape: NULL sizes");
    return at::IntArrayRef(shape, (size_t)ndim);
}

at::IntArrayRef pair(const int64_t *p, const char *what) {
    if (!p) throw std::invalid_argument(std::string("NULL ") + what);
    return at::IntArrayRef(p, 2);
}

// A Lua number as a Python-like scalar: integral values stay integers, so int64 + 1 stays int64
// and float32 + 1 stays float32, while 0.5 promotes an integer tensor to the default float type.
at::Scalar lua_scalar(double v) {
    // Range first: converting 1e300, inf or NaN to int64 is undefined behaviour.
    if (v >= -9.2e18 && v <= 9.2e18 && v == (double)(int64_t)v) return at::Scalar((int64_t)v);
    return at::Scalar(v);
}

// A "wrapped number" tensor takes part in type promotion like a Python scalar, which lets one
// tensor-tensor table serve ops that have no Scalar overload (maximum, atan2, logical_and, ...).
at::Tensor wrapped(double v) {
    at::Scalar s = lua_scalar(v);
    at::Tensor w = at::scalar_tensor(
        s, at::TensorOptions().dtype(s.isIntegral(false) ? at::kLong : at::kDouble));
    w.unsafeGetTensorImpl()->set_wrapped_number(true);
    return w;
}

// ---------------------------------------------------------------- op tables

at::Tensor binop(int op, const at::Tensor &a, const at::Tensor &b) {
    switch (op) {
    case FT_ADD: return at::add(a, b);
    case FT_SUB: return at::sub(a, b);
    case FT_MUL: return at::mul(a, b);
    case FT_DIV: return at::div(a, b);
    case FT_POW: return at::pow(a, b);
    case FT_REMAINDER: return at::remainder(a, b);
    case FT_MAXIMUM: return at::maximum(a, b);
    case FT_MINIMUM: return at::minimum(a, b);
    case FT_ATAN2: return at::atan2(a, b);
    case FT_EQ: return at::eq(a, b);
    case FT_NE: return at::ne(a, b);
    case FT_LT: return at::lt(a, b);
    case FT_LE: return at::le(a, b);
    case FT_GT: return at::gt(a, b);
    case FT_GE: return at::ge(a, b);
    case FT_LOGICAL_AND: return at::logical_and(a, b);
    case FT_LOGICAL_OR: return at::logical_or(a, b);
    case FT_NBINOPS: break;
    }
    bad_arg("binary", "op", op);
}

void binop_(int op, const at::Tensor &a, const at::Tensor &b) {
    switch (op) {
    case FT_ADD: a.add_(b); return;
    case FT_SUB: a.sub_(b); return;
    case FT_MUL: a.mul_(b); return;
    case FT_DIV: a.div_(b); return;
    case FT_POW: a.pow_(b); return;
    case FT_REMAINDER: a.remainder_(b); return;
    // No in-place maximum/minimum in ATen; copy_ keeps autograd history correct.
    case FT_MAXIMUM: a.copy_(at::maximum(a, b)); return;
    case FT_MINIMUM: a.copy_(at::minimum(a, b)); return;
    case FT_ATAN2: a.atan2_(b); return;
    case FT_EQ: a.eq_(b); return;
    case FT_NE: a.ne_(b); return;
    case FT_LT: a.lt_(b); return;
    case FT_LE: a.le_(b); return;
    case FT_GT: a.gt_(b); return;
    case FT_GE: a.ge_(b); return;
    case FT_LOGICAL_AND: a.logical_and_(b); return;
    case FT_LOGICAL_OR: a.logical_or_(b); return;
    case FT_NBINOPS: break;
    }
    bad_arg("binary_", "op", op);
}

// Unary ops that are a plain method with an in-place twin: X(enum, method).
// clang-format off
#define FT_SIMPLE_UNOPS(X)                                                                         \
    X(FT_NEG, neg) X(FT_ABS, abs) X(FT_EXP, exp) X(FT_LOG, log) X(FT_LOG2, log2)                   \
    X(FT_LOG1P, log1p) X(FT_EXPM1, expm1) X(FT_SQRT, sqrt) X(FT_RSQRT, rsqrt) X(FT_SIN, sin)       \
    X(FT_COS, cos) X(FT_TAN, tan) X(FT_TANH, tanh) X(FT_SIGMOID, sigmoid) X(FT_RELU, relu)         \
    X(FT_FLOOR, floor) X(FT_CEIL, ceil) X(FT_ROUND, round) X(FT_TRUNC, trunc) X(FT_SIGN, sign)     \
    X(FT_RECIPROCAL, reciprocal) X(FT_SQUARE, square) X(FT_LOGICAL_NOT, logical_not)               \
    X(FT_ERF, erf)
// clang-format on

at::Tensor unop(int op, const at::Tensor &a) {
    switch (op) {
#define X(e, m)                                                                                    \
    case e: return a.m();
        FT_SIMPLE_UNOPS(X)
#undef X
    case FT_ISNAN: return at::isnan(a);
    case FT_ISFINITE: return at::isfinite(a);
    case FT_GELU: return at::gelu(a); // exact (erf) form by default
    case FT_SILU: return at::silu(a);
    case FT_NUNOPS: break;
    }
    bad_arg("unary", "op", op);
}

void unop_(int op, at::Tensor &a) {
    switch (op) {
#define X(e, m)                                                                                    \
    case e: a.m##_(); return;
        FT_SIMPLE_UNOPS(X)
#undef X
    case FT_ISNAN: a.copy_(at::isnan(a)); return;
    case FT_ISFINITE: a.copy_(at::isfinite(a)); return;
    case FT_GELU: at::gelu_(a); return;
    case FT_SILU: at::silu_(a); return;
    case FT_NUNOPS: break;
    }
    bad_arg("unary_", "op", op);
}

at::Tensor reduce_all(int op, const at::Tensor &a) {
    switch (op) {
    case FT_SUM: return a.sum();
    case FT_MEAN: return a.mean();
    case FT_PROD: return a.prod();
    case FT_MAX: return a.max();
    case FT_MIN: return a.min();
    case FT_ARGMAX: return a.argmax();
    case FT_ARGMIN: return a.argmin();
    case FT_STD: return a.std(/*unbiased=*/true);
    case FT_VAR: return a.var(/*unbiased=*/true);
    case FT_NORM: return at::linalg_vector_norm(a);
    case FT_ALL: return a.ne(0).all(); // "!= 0" makes any dtype work
    case FT_ANY: return a.ne(0).any();
    case FT_LOGSUMEXP: return a.reshape({-1}).logsumexp(at::IntArrayRef{0});
    case FT_CUMSUM: throw std::invalid_argument("reduce_all: cumsum needs a dim");
    case FT_NREDUCEOPS: break;
    }
    bad_arg("reduce_all", "op", op);
}

at::Tensor reduce_dim(int op, const at::Tensor &a, int64_t d, bool keep) {
    at::IntArrayRef dims(&d, 1);
    switch (op) {
    case FT_SUM: return a.sum(dims, keep);
    case FT_MEAN: return a.mean(dims, keep);
    case FT_PROD: return a.prod(d, keep);
    case FT_MAX: return std::get<0>(a.max(d, keep));
    case FT_MIN: return std::get<0>(a.min(d, keep));
    case FT_ARGMAX: return a.argmax(d, keep);
    case FT_ARGMIN: return a.argmin(d, keep);
    case FT_STD: return a.std(dims, /*unbiased=*/true, keep);
    case FT_VAR: return a.var(dims, /*unbiased=*/true, keep);
    case FT_NORM: return at::linalg_vector_norm(a, at::Scalar(2.0), dims, keep);
    case FT_ALL: return a.ne(0).all(d, keep);
    case FT_ANY: return a.ne(0).any(d, keep);
    case FT_LOGSUMEXP: return a.logsumexp(dims, keep);
    case FT_CUMSUM: return a.cumsum(d);
    case FT_NREDUCEOPS: break;
    }
    bad_arg("reduce_dim", "op", op);
}

std::vector<at::Tensor> tensor_list(const ft_tensor *const *ts, int n) {
    if (n < 1 || !ts) bad_arg("cat/stack", "tensor count", n);
    std::vector<at::Tensor> v;
    v.reserve((size_t)n);
    for (int i = 0; i < n; i++) v.push_back(T(ts[i]));
    return v;
}

int64_t check_reduction(int r) {
    // ft_reduction matches at::Reduction: None = 0, Mean = 1, Sum = 2.
    if (r < FT_REDUCE_NONE || r > FT_REDUCE_SUM) bad_arg("loss", "reduction", r);
    return (int64_t)r;
}

} // namespace

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
        return 0;
    }
}

int ft_cuda_device_count(void) noexcept {
    try {
        return (int)torch::cuda::device_count();
    } catch (...) {
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

// ---------------------------------------------------------------- views and indexing

ft_status ft_view(const ft_tensor *t, const int64_t *shape, int ndim, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).view(shape_ref(shape, ndim))); });
}

ft_status ft_reshape(const ft_tensor *t, const int64_t *shape, int ndim, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).reshape(shape_ref(shape, ndim))); });
}

ft_status ft_permute(const ft_tensor *t, const int64_t *dims, int ndim, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).permute(shape_ref(dims, ndim))); });
}

ft_status ft_transpose(const ft_tensor *t, int dim0, int dim1, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).transpose((int64_t)dim0, (int64_t)dim1)); });
}

ft_status ft_narrow(const ft_tensor *t, int dim, int64_t start, int64_t length,
                    ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).narrow((int64_t)dim, start, length)); });
}

ft_status ft_select(const ft_tensor *t, int dim, int64_t index, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).select((int64_t)dim, index)); });
}

ft_status ft_squeeze(const ft_tensor *t, int dim, ft_tensor **out) noexcept {
    return guard([&] { put(out, dim < 0 ? T(t).squeeze() : T(t).squeeze((int64_t)dim)); });
}

ft_status ft_unsqueeze(const ft_tensor *t, int dim, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).unsqueeze((int64_t)dim)); });
}

ft_status ft_expand(const ft_tensor *t, const int64_t *shape, int ndim, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).expand(shape_ref(shape, ndim))); });
}

ft_status ft_flatten(const ft_tensor *t, int start_dim, int end_dim, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).flatten((int64_t)start_dim, (int64_t)end_dim)); });
}

ft_status ft_index_select(const ft_tensor *t, int dim, const ft_tensor *index,
                          ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).index_select((int64_t)dim, T(index))); });
}

ft_status ft_masked_select(const ft_tensor *t, const ft_tensor *mask, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).masked_select(T(mask))); });
}

ft_status ft_masked_fill_(ft_tensor *t, const ft_tensor *mask, double value) noexcept {
    return guard([&] { M(t).masked_fill_(T(mask), lua_scalar(value)); });
}

ft_status ft_gather(const ft_tensor *t, int dim, const ft_tensor *index, ft_tensor **out) noexcept {
    return guard([&] { put(out, T(t).gather((int64_t)dim, T(index))); });
}

ft_status ft_cat(const ft_tensor *const *ts, int n, int dim, ft_tensor **out) noexcept {
    return guard([&] { put(out, at::cat(tensor_list(ts, n), (int64_t)dim)); });
}

ft_status ft_stack(const ft_tensor *const *ts, int n, int dim, ft_tensor **out) noexcept {
    return guard([&] { put(out, at::stack(tensor_list(ts, n), (int64_t)dim)); });
}

// ---------------------------------------------------------------- elementwise maths

ft_status ft_binary(ft_binop op, const ft_tensor *a, const ft_tensor *b, ft_tensor **out) noexcept {
    return guard([&] { put(out, binop(E(op), T(a), T(b))); });
}

ft_status ft_binary_scalar(ft_binop op, const ft_tensor *a, double b, ft_tensor **out) noexcept {
    return guard([&] { put(out, binop(E(op), T(a), wrapped(b))); });
}

ft_status ft_scalar_binary(ft_binop op, double a, const ft_tensor *b, ft_tensor **out) noexcept {
    return guard([&] { put(out, binop(E(op), wrapped(a), T(b))); });
}

ft_status ft_binary_(ft_binop op, ft_tensor *a, const ft_tensor *b) noexcept {
    return guard([&] { binop_(E(op), M(a), T(b)); });
}

ft_status ft_binary_scalar_(ft_binop op, ft_tensor *a, double b) noexcept {
    return guard([&] { binop_(E(op), M(a), wrapped(b)); });
}

ft_status ft_add_scaled_(ft_tensor *a, const ft_tensor *b, double alpha) noexcept {
    return guard([&] { M(a).add_(T(b), lua_scalar(alpha)); });
}

ft_status ft_addcmul_(ft_tensor *t, const ft_tensor *a, const ft_tensor *b, double value) noexcept {
    return guard([&] { M(t).addcmul_(T(a), T(b), lua_scalar(value)); });
}

ft_status ft_addcdiv_(ft_tensor *t, const ft_tensor *a, const ft_tensor *b, double value) noexcept {
    return guard([&] { M(t).addcdiv_(T(a), T(b), lua_scalar(value)); });
}

ft_status ft_lerp_(ft_tensor *t, const ft_tensor *end, double weight) noexcept {
    return guard([&] { M(t).lerp_(T(end), at::Scalar(weight)); });
}

ft_status ft_unary(ft_unop op, const ft_tensor *a, ft_tensor **out) noexcept {
    return guard([&] { put(out, unop(E(op), T(a))); });
}

ft_status ft_unary_(ft_unop op, ft_tensor *a) noexcept {
    return guard([&] { unop_(E(op), M(a)); });
}

ft_status ft_clamp(const ft_tensor *a, int has_min, double min, int has_max, double max,
                   ft_tensor **out) noexcept {
    return guard([&] {
        if (!has_min && !has_max) throw std::invalid_argument("clamp: need a min or a max");
        // clamp_min then clamp_max equals torch.clamp, including min > max (all become max).
        at::Tensor r = T(a);
        if (has_min) r = r.clamp_min(lua_scalar(min));
        if (has_max) r = r.clamp_max(lua_scalar(max));
        put(out, std::move(r));
    });
}

ft_status ft_where(const ft_tensor *cond, const ft_tensor *a, const ft_tensor *b,
                   ft_tensor **out) noexcept {
    return guard([&] { put(out, at::where(T(cond), T(a), T(b))); });
}

ft_status ft_allclose(const ft_tensor *a, const ft_tensor *b, double rtol, double atol,
                      int *out) noexcept {
    return guard([&] {
        bool r = at::allclose(T(a), T(b), rtol, atol);
        if (!out) throw std::invalid_argument("allclose: NULL out parameter");
        *out = r ? 1 : 0;
    });
}

ft_status ft_equal(const ft_tensor *a, const ft_tensor *b, int *out) noexcept {
    return guard([&] {
        bool r = at::equal(T(a), T(b));
        if (!out) throw std::invalid_argument("equal: NULL out parameter");
        *out = r ? 1 : 0;
    });
}

// ---------------------------------------------------------------- reductions

ft_status ft_reduce_all(ft_reduceop op, const ft_tensor *a, ft_tensor **out) noexcept {
    return guard([&] { put(out, reduce_all(E(op), T(a))); });
}

ft_status ft_reduce_dim(ft_reduceop op, const ft_tensor *a, int dim, int keepdim,
                        ft_tensor **out) noexcept {
    return guard([&] { put(out, reduce_dim(E(op), T(a), (int64_t)dim, keepdim != 0)); });
}

ft_status ft_topk(const ft_tensor *a, int64_t k, int dim, int largest, ft_tensor **values,
                  ft_tensor **indices) noexcept {
    return guard([&] {
        put2(values, indices, at::topk(T(a), k, (int64_t)dim, largest != 0, /*sorted=*/true));
    });
}

ft_status ft_sort(const ft_tensor *a, int dim, int descending, ft_tensor **values,
                  ft_tensor **indices) noexcept {
    return guard([&] { put2(values, indices, at::sort(T(a), (int64_t)dim, descending != 0)); });
}

// ---------------------------------------------------------------- linear algebra

ft_status ft_matmul(const ft_tensor *a, const ft_tensor *b, ft_tensor **out) noexcept {
    return guard([&] { put(out, at::matmul(T(a), T(b))); });
}

// ---------------------------------------------------------------- random, in place

ft_status ft_uniform_(ft_tensor *t, double low, double high) noexcept {
    return guard([&] { M(t).uniform_(low, high); });
}

ft_status ft_normal_(ft_tensor *t, double mean, double std) noexcept {
    return guard([&] { M(t).normal_(mean, std); });
}

ft_status ft_bernoulli(const ft_tensor *p, ft_tensor **out) noexcept {
    return guard([&] { put(out, at::bernoulli(T(p))); });
}

ft_status ft_kaiming_normal_(ft_tensor *t, double a, int fan_in_mode,
                             int nonlinearity_relu) noexcept {
    return guard([&] {
        // Assigning alternatives keeps us independent of c10::variant vs std::variant.
        torch::nn::init::FanModeType mode = torch::kFanIn;
        if (!fan_in_mode) mode = torch::kFanOut;
        torch::nn::init::NonlinearityType nl = torch::kLeakyReLU;
        if (nonlinearity_relu) nl = torch::kReLU;
        torch::nn::init::kaiming_normal_(M(t), a, mode, nl);
    });
}

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
        return 0;
    }
}

void *ft_data_ptr(const ft_tensor *t) noexcept {
    try {
        return t && t->t.defined() ? t->t.data_ptr() : nullptr;
    } catch (...) {
        return nullptr;
    }
}

} // extern "C"
