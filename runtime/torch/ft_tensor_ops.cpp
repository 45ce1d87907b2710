// ft_tensor_ops.cpp: the shim's tensor maths (ft_torch.h): views and indexing, elementwise
// maths, reductions, linear algebra and random fills, with the op tables that map our enums to
// ATen. See ft_torch.cpp for the rules every exported function follows (guard(), results built
// before out parameters are written).

// GCC's sanitizer builds (make asan) report a false -Wmaybe-uninitialized inside c10's
// optional<Generator>; it points into libtorch's headers, not at this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <stdexcept>
#include <vector>

#include "torch/ft_internal.hpp"

using namespace ft_internal;

namespace {

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

} // namespace

extern "C" {

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

} // extern "C"
