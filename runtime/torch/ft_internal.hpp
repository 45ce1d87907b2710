// ft_internal.hpp: what the shim's C++ files share (ft_torch.cpp, ft_tensor_ops.cpp, ft_nn.cpp,
// ft_dist.cpp): the handle type, the error channel, guard() and the small readers that turn C
// arguments (handles, dtypes, devices, shapes, Lua numbers) into ATen ones. Never included
// from C.
#ifndef FT_INTERNAL_HPP
#define FT_INTERNAL_HPP

#include <ATen/ATen.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>

#include "torch/ft_torch.h"

struct ft_tensor {
    at::Tensor t;
};

namespace ft_internal {

// ---------------------------------------------------------------- errors

// Inside a catch (...) handler: classify the exception, keep its message for ft_last_error().
ft_status fail_current() noexcept;
// Set ft_last_error() to msg (a C++ backtrace trimmed) and return code.
ft_status set_error(ft_status code, const char *msg) noexcept;

// The one place where exceptions stop: return guard([&] { ...body... });
template <class F> ft_status guard(F &&body) noexcept {
    try {
        body();
        return FT_OK;
    } catch (...) {
        return fail_current();
    }
}

[[noreturn]] inline void bad_arg(const char *fn, const char *what, long long v) {
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

// ---------------------------------------------------------------- handles

inline const at::Tensor &T(const ft_tensor *h) {
    if (!h) throw std::invalid_argument("NULL tensor handle");
    return h->t;
}
inline at::Tensor &M(ft_tensor *h) {
    if (!h) throw std::invalid_argument("NULL tensor handle");
    return h->t;
}
// NULL -> undefined tensor, which ATen reads as an absent optional argument.
inline at::Tensor opt(const ft_tensor *h) { return h ? h->t : at::Tensor(); }

inline void put(ft_tensor **out, at::Tensor r) {
    if (!out) throw std::invalid_argument("NULL out parameter");
    *out = new ft_tensor{std::move(r)};
}

// Two results: allocate both before writing either.
inline void put2(ft_tensor **a, ft_tensor **b, const std::tuple<at::Tensor, at::Tensor> &r) {
    if (!a || !b) throw std::invalid_argument("NULL out parameter");
    std::unique_ptr<ft_tensor> x(new ft_tensor{std::get<0>(r)});
    std::unique_ptr<ft_tensor> y(new ft_tensor{std::get<1>(r)});
    *a = x.release();
    *b = y.release();
}

// ---------------------------------------------------------------- dtypes, devices, shapes

// Indexed by ft_dtype (io/dtype.h, which also has the names and sizes); keep the enum's order.
inline const at::ScalarType kScalarTypes[FT_NDTYPES] = {
    at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kLong,
    at::kInt,   at::kShort,  at::kChar, at::kByte,     at::kBool,
};

// The one reverse lookup: FT_NDTYPES when s is not one of ours (e.g. complex).
inline ft_dtype dtype_of(at::ScalarType s) {
    for (int i = 0; i < FT_NDTYPES; i++)
        if (kScalarTypes[i] == s) return (ft_dtype)i;
    return FT_NDTYPES;
}

inline at::ScalarType st(int d) {
    if (d < 0 || d >= FT_NDTYPES) bad_arg("dtype", "dtype", d);
    return kScalarTypes[d];
}

inline at::Device dev(int d) {
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

inline at::TensorOptions opts(int d, int device) {
    return at::TensorOptions().dtype(st(d)).device(dev(device));
}

inline at::IntArrayRef shape_ref(const int64_t *shape, int ndim) {
    if (ndim < 0 || ndim > FT_MAX_DIMS) bad_arg("shape", "number of dims", ndim);
    if (ndim > 0 && !shape) throw std::invalid_argument("shape: NULL sizes");
    return at::IntArrayRef(shape, (size_t)ndim);
}

inline at::IntArrayRef pair(const int64_t *p, const char *what) {
    if (!p) throw std::invalid_argument(std::string("NULL ") + what);
    return at::IntArrayRef(p, 2);
}

// A Lua number as a Python-like scalar: integral values stay integers, so int64 + 1 stays int64
// and float32 + 1 stays float32, while 0.5 promotes an integer tensor to the default float type.
inline at::Scalar lua_scalar(double v) {
    // Range first: converting 1e300, inf or NaN to int64 is undefined behaviour.
    if (v >= -9.2e18 && v <= 9.2e18 && v == (double)(int64_t)v) return at::Scalar((int64_t)v);
    return at::Scalar(v);
}

// A "wrapped number" tensor takes part in type promotion like a Python scalar, which lets one
// tensor-tensor table serve ops that have no Scalar overload (maximum, atan2, logical_and, ...).
inline at::Tensor wrapped(double v) {
    at::Scalar s = lua_scalar(v);
    at::Tensor w = at::scalar_tensor(
        s, at::TensorOptions().dtype(s.isIntegral(false) ? at::kLong : at::kDouble));
    w.unsafeGetTensorImpl()->set_wrapped_number(true);
    return w;
}

} // namespace ft_internal

#endif
