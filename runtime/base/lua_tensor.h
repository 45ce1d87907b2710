/* lua_tensor.h: the tensor userdata, shared by every Lua module (base layer).
 *
 * Boundary rules (docs/design.md):
 * - Call the shim (ft_torch.h), then check its status with ftl_check. ftl_check raises the Lua
 *   error only after the shim returned, so no C++ frame is ever skipped by longjmp.
 * - A tensor handle is pushed to Lua with ftl_push_tensor, which takes ownership. From then on
 *   Lua's GC (or :free(), or <close>) frees it; C code must not keep the raw handle around.
 */
#ifndef FTL_LUA_TENSOR_H
#define FTL_LUA_TENSOR_H

#include <lauxlib.h>
#include <lua.h>
#include <stddef.h>

#include "torch/ft_torch.h"

#define FTL_TENSOR_MT "ftlua.Tensor" /* registry name of the tensor metatable */

/* Tensor userdata. h is NULL after :free(); `counted` is the bytes this handle added to the
 * live-bytes tracker (see base/memory.c), subtracted again when the handle is freed. */
typedef struct {
    ft_tensor *h;
    size_t counted;
} ftl_tensor;

/* Raise a Lua error "what: <libtorch message>" if st is not FT_OK. */
void ftl_check(lua_State *L, ft_status st, const char *what);
/* Push a new tensor userdata owning h (h may not be NULL). If making the userdata raises a
 * memory error, h is kept aside and freed by the next push (lua_tensor.c): it never leaks. */
void ftl_push_tensor(lua_State *L, ft_tensor *h);
/* The handle at idx, or a Lua error naming the argument ("expected tensor, got nil"). */
ft_tensor *ftl_check_tensor(lua_State *L, int idx);
/* The handle at idx, or NULL when the value is not a tensor; a freed tensor is a Lua error. */
ft_tensor *ftl_to_tensor(lua_State *L, int idx);
/* "cpu", "cuda", "cuda:N" (or nil -> default) to an ft device int; errors name the argument. */
int ftl_check_device(lua_State *L, int idx, int default_device);
void ftl_push_device(lua_State *L, int device); /* "cpu" or "cuda:N" */
/* "float32", "float", "int64", "long", ... to ft_dtype; errors list the accepted names. */
ft_dtype ftl_check_dtype(lua_State *L, int idx);
/* A shape from a table {2, 3} or from integer arguments starting at idx. Returns ndim. */
int ftl_check_shape(lua_State *L, int idx, int64_t shape[FT_MAX_DIMS]);

/* Live-bytes tracking that steps Lua's GC as libtorch memory grows (base/memory.c). */
void ftl_mem_add(lua_State *L, size_t nbytes);
void ftl_mem_sub(size_t nbytes);
size_t ftl_mem_live(void);
/* Frees the handle of a tensor userdata now (its __gc, __close and :free()); idempotent. */
void ftl_free_tensor_ud(ftl_tensor *ud);
/* A 1-based (negative from the end) dim argument to a 0-based dim; errors when out of range. */
int ftl_dim_arg(lua_State *L, int idx, int ndim);
/* T.memory(): live tensor bytes and GC pacing figures (base/memory.c). */
int ftl_mem_stats(lua_State *L);

#endif /* FTL_LUA_TENSOR_H */
