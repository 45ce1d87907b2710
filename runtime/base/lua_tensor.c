/* lua_tensor.c: the tensor userdata and the readers of tensor-like arguments, for every module.
 *
 * A tensor is a full userdata holding one shim handle (ftl_tensor). Like liolib's file handles it
 * is created "closed" (h = NULL) first and filled after, so a memory error in between leaves a
 * consistent object. The tensor module (tensor/tensor.c) owns the metatable's methods; this file
 * only needs its registry name.
 */
#include <stdio.h>
#include <string.h>

#include "base/lua_tensor.h"

void ftl_check(lua_State *L, ft_status st, const char *what) {
    if (st == FT_OK) return;
    /* The shim's message is thread-local and stable until the next failure; copy it anyway so
     * nothing we call while building the error can overwrite it. */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", ft_last_error());
    if (st == FT_ERR_OOM) luaL_error(L, "%s: out of memory: %s", what, msg);
    luaL_error(L, "%s: %s", what, msg);
}

/* A handle waiting for its userdata. If allocating the userdata raises a memory error, the
 * handle is left here and the next push frees it: no leak, and no pcall on the hot path. */
static _Thread_local ft_tensor *orphan;

void ftl_push_tensor(lua_State *L, ft_tensor *h) {
    if (orphan) {
        ft_free(orphan);
        orphan = NULL;
    }
    orphan = h;
    ftl_tensor *ud = lua_newuserdatauv(L, sizeof(ftl_tensor), 0); /* may raise */
    ud->h = NULL;                                                 /* "closed" until filled */
    ud->counted = 0;
    luaL_setmetatable(L, FTL_TENSOR_MT);
    ud->h = h;
    orphan = NULL;
    ud->counted = ft_storage_nbytes(h);
    ftl_mem_add(L, ud->counted);
}

ft_tensor *ftl_to_tensor(lua_State *L, int idx) {
    ftl_tensor *ud = luaL_testudata(L, idx, FTL_TENSOR_MT);
    if (ud && !ud->h) luaL_argerror(L, idx, "attempt to use a freed tensor");
    return ud ? ud->h : NULL;
}

ft_tensor *ftl_check_tensor(lua_State *L, int idx) {
    ftl_tensor *ud = luaL_testudata(L, idx, FTL_TENSOR_MT);
    if (!ud) {
        luaL_typeerror(L, idx, "tensor");
        return NULL;
    }
    if (!ud->h) luaL_argerror(L, idx, "attempt to use a freed tensor");
    return ud->h;
}

void ftl_free_tensor_ud(ftl_tensor *ud) {
    if (!ud->h) return;
    ft_free(ud->h);
    ud->h = NULL;
    ftl_mem_sub(ud->counted);
    ud->counted = 0;
}

static const struct {
    const char *name;
    ft_dtype dtype;
} DTYPE_NAMES[] = {
    {"float32", FT_FLOAT32},   {"float", FT_FLOAT32},   {"float64", FT_FLOAT64},
    {"double", FT_FLOAT64},    {"float16", FT_FLOAT16}, {"half", FT_FLOAT16},
    {"bfloat16", FT_BFLOAT16}, {"int64", FT_INT64},     {"long", FT_INT64},
    {"int32", FT_INT32},       {"int", FT_INT32},       {"int16", FT_INT16},
    {"short", FT_INT16},       {"int8", FT_INT8},       {"uint8", FT_UINT8},
    {"byte", FT_UINT8},        {"bool", FT_BOOL},
};

ft_dtype ftl_check_dtype(lua_State *L, int idx) {
    const char *s = luaL_checkstring(L, idx);
    if (strncmp(s, "torch.", 6) == 0) s += 6; /* accept PyTorch spellings too */
    for (size_t i = 0; i < sizeof DTYPE_NAMES / sizeof DTYPE_NAMES[0]; i++)
        if (strcmp(s, DTYPE_NAMES[i].name) == 0) return DTYPE_NAMES[i].dtype;
    luaL_argerror(L, idx,
                  lua_pushfstring(L,
                                  "unknown dtype '%s' (use float32, float64, float16, bfloat16, "
                                  "int64, int32, int16, int8, uint8 or bool)",
                                  s));
    return FT_FLOAT32;
}

int ftl_check_device(lua_State *L, int idx, int default_device) {
    if (lua_isnoneornil(L, idx)) return default_device;
    const char *s = luaL_checkstring(L, idx);
    if (strcmp(s, "cpu") == 0) return FT_CPU;
    if (strcmp(s, "cuda") == 0) return 0;
    int k;
    char tail;
    if (sscanf(s, "cuda:%d%c", &k, &tail) == 1 && k >= 0) return k;
    luaL_argerror(
        L, idx, lua_pushfstring(L, "unknown device '%s' (use \"cpu\", \"cuda\" or \"cuda:N\")", s));
    return FT_CPU;
}

void ftl_push_device(lua_State *L, int device) {
    if (device == FT_CPU)
        lua_pushliteral(L, "cpu");
    else
        lua_pushfstring(L, "cuda:%d", device);
}

int ftl_check_shape(lua_State *L, int idx, int64_t shape[FT_MAX_DIMS]) {
    int ndim = 0;
    if (lua_istable(L, idx)) {
        lua_Integer n = luaL_len(L, idx);
        if (n > FT_MAX_DIMS) luaL_argerror(L, idx, "too many dimensions (at most 16)");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, idx, i);
            int isint;
            lua_Integer d = lua_tointegerx(L, -1, &isint);
            lua_pop(L, 1);
            if (!isint || d < 0)
                luaL_argerror(
                    L, idx,
                    lua_pushfstring(L, "shape entry %d must be a non-negative integer", (int)i));
            shape[ndim++] = d;
        }
        return ndim;
    }
    while (lua_type(L, idx + ndim) == LUA_TNUMBER) {
        if (ndim == FT_MAX_DIMS) luaL_argerror(L, idx, "too many dimensions (at most 16)");
        lua_Integer d = luaL_checkinteger(L, idx + ndim);
        if (d < 0) luaL_argerror(L, idx + ndim, "size must be non-negative");
        shape[ndim] = d;
        ndim++;
    }
    if (ndim == 0 && !lua_isnoneornil(L, idx)) luaL_typeerror(L, idx, "shape table or sizes");
    return ndim;
}

int ftl_dim_arg(lua_State *L, int idx, int ndim) {
    lua_Integer d = luaL_checkinteger(L, idx);
    int n = ndim > 0 ? ndim : 1; /* 0-dim tensors accept dim 1 / -1 like PyTorch's 0 / -1 */
    if (d < 0) d += n + 1;
    if (d < 1 || d > n)
        luaL_argerror(
            L, idx,
            lua_pushfstring(L, "dim %d out of range for a %d-dim tensor (use 1..%d or negative)",
                            (int)luaL_checkinteger(L, idx), ndim, n));
    return (int)d - 1;
}
