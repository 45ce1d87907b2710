/* ftlua.h: what the Lua modules share. Every Lua-facing C file includes this.
 *
 * Boundary rules (docs/design.md):
 * - Call the shim (ft_torch.h), then check its status with ftl_check. ftl_check raises the Lua
 *   error only after the shim returned, so no C++ frame is ever skipped by longjmp.
 * - A tensor handle is pushed to Lua with ftl_push_tensor, which takes ownership. From then on
 *   Lua's GC (or :free(), or <close>) frees it; C code must not keep the raw handle around.
 */
#ifndef FTLUA_H
#define FTLUA_H

#include <lauxlib.h>
#include <lua.h>

#include "torch/ft_torch.h"

#define FTLUA_VERSION "0.1.0"
#define FTL_TENSOR_MT "ftlua.Tensor" /* registry name of the tensor metatable */

/* The module library entry: `require "ftlua"` from a stock lua5.4 lands here. */
int luaopen_ftlua(lua_State *L);
/* Submodule entries, each returning its table (the ft table holds them as fields). */
int luaopen_ftlua_tensor(lua_State *L);
int luaopen_ftlua_model(lua_State *L);
int luaopen_ftlua_weights(lua_State *L);
int luaopen_ftlua_data(lua_State *L); /* ft.data; ftlua.c also merges it into ft.vision */
int luaopen_ftlua_learner_core(lua_State *L); /* ft.learner_core: schedules, Adam, lr_find, ... */
int luaopen_ftlua_learner(lua_State *L);      /* ft.Learner, ft.metrics, ft.slice, ... */
int luaopen_ftlua_plot(lua_State *L);
int luaopen_ftlua_untar(lua_State *L); /* ft.untar_data, ft.URLs (weights/untar.c) */
int luaopen_ftlua_dist(lua_State *L);  /* ft.dist: process groups over c10d (dist/dist.c) */
int luaopen_ftlua_io(lua_State *L);    /* ft.io: atomic writes (tensor/atomic_lua.c) */

/* T.save / T.load: safetensors files (tensor/tensor_io.c). */
int ftl_tensor_save(lua_State *L);
int ftl_tensor_load(lua_State *L);

/* Tensor userdata. h is NULL after :free(); `counted` is the bytes this handle added to the
 * live-bytes tracker (see tensor/memory.c), subtracted again when the handle is freed. */
typedef struct {
    ft_tensor *h;
    size_t counted;
} ftl_tensor;

/* Raise a Lua error "what: <libtorch message>" if st is not FT_OK. */
void ftl_check(lua_State *L, ft_status st, const char *what);
/* Push a new tensor userdata owning h (h may not be NULL). If making the userdata raises a
 * memory error, h is kept aside and freed by the next push (tensor.c): it never leaks. */
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

/* Live-bytes tracking that steps Lua's GC as libtorch memory grows (tensor/memory.c). */
void ftl_mem_add(lua_State *L, size_t nbytes);
void ftl_mem_sub(size_t nbytes);
size_t ftl_mem_live(void);

#endif /* FTLUA_H */
