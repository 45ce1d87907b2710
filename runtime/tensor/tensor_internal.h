/* tensor_internal.h: what the files of the tensor module share among themselves. */
#ifndef FTL_TENSOR_INTERNAL_H
#define FTL_TENSOR_INTERNAL_H

#include "ftlua.h"

/* Creation options: a dtype string or {dtype=, device=, requires_grad=}. */
typedef struct {
    ft_dtype dtype;
    int device;
    int requires_grad;
} ftl_opts;
void ftl_check_opts(lua_State *L, int idx, ftl_opts *o);

/* Push one element tensor's value as a Lua number, integer or boolean (by dtype). */
void ftl_push_scalar(lua_State *L, const ft_tensor *t);

/* Method registration into the methods table on top of the stack (metatable just below). */
void ftl_register_ops(lua_State *L);
void ftl_register_index(lua_State *L);

/* __tostring: PyTorch-style text plus a footer with dtype, device and shape. */
int ftl_tensor_tostring(lua_State *L, const ft_tensor *t);

#endif
