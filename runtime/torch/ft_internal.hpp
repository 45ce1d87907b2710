// ft_internal.hpp: what the shim's C++ files share (ft_torch.cpp, ft_dist.cpp). Never included
// from C.
#ifndef FT_INTERNAL_HPP
#define FT_INTERNAL_HPP

#include <ATen/ATen.h>

#include "torch/ft_torch.h"

struct ft_tensor {
    at::Tensor t;
};

namespace ft_internal {
// Inside a catch (...) handler: classify the exception, keep its message for ft_last_error().
ft_status fail_current() noexcept;
// Set ft_last_error() to msg (a C++ backtrace trimmed) and return code.
ft_status set_error(ft_status code, const char *msg) noexcept;
} // namespace ft_internal

#endif
