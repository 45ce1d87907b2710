/* tensor.c: the `tensor` Lua module (ft.tensor), entry file.
 *
 * A tensor is a full userdata holding one shim handle (ftl_tensor). Like liolib's file handles it
 * is created "closed" (h = NULL) first and filled after, so a memory error in between leaves a
 * consistent object. __gc and __close free the handle; :free() does it early.
 *
 * Conventions are Torch7's and Lua's: dims and indices are 1-based, negative ones count from the
 * end. This file holds the module table, the metatable and the constructors (the userdata itself
 * and its readers live in base/lua_tensor.c, for every module); the methods live in tensor_ops.c
 * (maths), tensor_index.c (indexing and views), tensor_print.c (formatting), tensor_io.c
 * (safetensors) and memory.c (GC pacing).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ftlua.h"
#include "tensor/tensor_internal.h"
#include "tensor/tensor_print.h"

/* Options after a shape: a dtype string, or a table {dtype=, device=, requires_grad=}. */
void ftl_check_opts(lua_State *L, int idx, ftl_opts *o) {
    o->dtype = FT_FLOAT32;
    o->device = FT_CPU;
    o->requires_grad = 0;
    if (lua_isnoneornil(L, idx)) return;
    if (lua_type(L, idx) == LUA_TSTRING) {
        o->dtype = ftl_check_dtype(L, idx);
        return;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    int top = lua_gettop(L);
    if (lua_getfield(L, idx, "dtype") != LUA_TNIL) o->dtype = ftl_check_dtype(L, top + 1);
    if (lua_getfield(L, idx, "device") != LUA_TNIL)
        o->device = ftl_check_device(L, top + 2, FT_CPU);
    lua_getfield(L, idx, "requires_grad");
    o->requires_grad = lua_toboolean(L, -1);
    lua_settop(L, top);
}

/* Apply requires_grad from options to the tensor on top of the stack. */
static int finish_new(lua_State *L, const ftl_opts *o) {
    if (o->requires_grad)
        ftl_check(L, ft_set_requires_grad(ftl_check_tensor(L, -1), 1), "requires_grad");
    return 1;
}

/* ---------------------------------------------------------------- constructors */

/* T.tensor{{1,2},{3,4}} -- nested tables (or a number) to a new tensor; float32 by default. */
typedef struct {
    int64_t shape[FT_MAX_DIMS];
    int ndim;
    int has_bool;
    int64_t filled;
    double *vals;
} nested_reader;

static void nested_shape(lua_State *L, int idx, nested_reader *r) {
    /* Shape from the first element at each level; every level is checked later in nested_fill. */
    lua_pushvalue(L, idx);
    while (lua_istable(L, -1)) {
        if (r->ndim == FT_MAX_DIMS) luaL_error(L, "tensor: nested table deeper than 16 levels");
        r->shape[r->ndim++] = (int64_t)luaL_len(L, -1);
        if (luaL_len(L, -1) == 0) break;
        lua_geti(L, -1, 1);
        lua_remove(L, -2);
    }
    if (lua_isboolean(L, -1)) r->has_bool = 1;
    lua_pop(L, 1);
}

static void nested_fill(lua_State *L, int level, nested_reader *r, char *path, size_t pathlen) {
    /* The value to read is on top of the stack. */
    if (level == r->ndim) {
        int t = lua_type(L, -1);
        if (t == LUA_TNUMBER)
            r->vals[r->filled++] = lua_tonumber(L, -1);
        else if (t == LUA_TBOOLEAN)
            r->vals[r->filled++] = lua_toboolean(L, -1);
        else
            luaL_error(L, "tensor: element %s is a %s, expected a number", path[0] ? path : "[]",
                       luaL_typename(L, -1));
        return;
    }
    if (!lua_istable(L, -1) || (int64_t)luaL_len(L, -1) != r->shape[level])
        luaL_error(L, "tensor: ragged nested table at %s: expected a table of %d elements, got %s",
                   path[0] ? path : "the top level", (int)r->shape[level],
                   lua_istable(L, -1) ? lua_pushfstring(L, "%d", (int)luaL_len(L, -1))
                                      : luaL_typename(L, -1));
    size_t len = strlen(path);
    for (int64_t i = 1; i <= r->shape[level]; i++) {
        snprintf(path + len, pathlen - len, "[%lld]", (long long)i);
        lua_geti(L, -1, i);
        nested_fill(L, level + 1, r, path, pathlen);
        lua_pop(L, 1);
    }
    path[len] = '\0';
}

static int t_tensor(lua_State *L) {
    ftl_opts o;
    ftl_check_opts(L, 2, &o);
    if (lua_isuserdata(L, 1) && ftl_to_tensor(L, 1)) { /* T.tensor(t) copies, like torch.tensor */
        ft_tensor *out = NULL;
        ftl_check(L, ft_clone(ftl_check_tensor(L, 1), &out), "tensor");
        ftl_push_tensor(L, out);
        return 1;
    }
    luaL_argexpected(L, lua_istable(L, 1) || lua_isnumber(L, 1) || lua_isboolean(L, 1), 1,
                     "nested table or number");
    nested_reader r = {0};
    nested_shape(L, 1, &r);
    int64_t numel = 1;
    for (int i = 0; i < r.ndim; i++) numel *= r.shape[i];
    if (r.has_bool && lua_isnoneornil(L, 2)) o.dtype = FT_BOOL;
    /* A userdata buffer is freed by the GC even if a nested_fill error longjmps out. */
    r.vals = lua_newuserdatauv(L, (size_t)(numel ? numel : 1) * sizeof(double), 0);
    char path[256] = "";
    lua_pushvalue(L, 1);
    nested_fill(L, 0, &r, path, sizeof path);
    lua_pop(L, 1);
    ft_tensor *f64 = NULL, *out = NULL;
    ftl_check(L, ft_from_data(r.vals, FT_FLOAT64, r.shape, r.ndim, &f64), "tensor");
    ft_status st = ft_to(f64, o.dtype, o.device, &out);
    ft_free(f64);
    ftl_check(L, st, "tensor");
    ftl_push_tensor(L, out);
    return finish_new(L, &o);
}

typedef enum { NEW_EMPTY, NEW_ZEROS, NEW_ONES, NEW_RAND, NEW_RANDN } new_kind;

static int t_new_shaped(lua_State *L) {
    new_kind kind = (new_kind)lua_tointeger(L, lua_upvalueindex(1));
    int64_t shape[FT_MAX_DIMS];
    int ndim = ftl_check_shape(L, 1, shape);
    ftl_opts o;
    ftl_check_opts(L, lua_istable(L, 1) ? 2 : ndim + 1, &o);
    ft_tensor *out = NULL;
    ft_status st;
    switch (kind) {
    case NEW_EMPTY: st = ft_empty(shape, ndim, o.dtype, o.device, &out); break;
    case NEW_ZEROS: st = ft_full(shape, ndim, 0, o.dtype, o.device, &out); break;
    case NEW_ONES: st = ft_full(shape, ndim, 1, o.dtype, o.device, &out); break;
    case NEW_RAND: st = ft_rand(shape, ndim, o.dtype, o.device, &out); break;
    default: st = ft_randn(shape, ndim, o.dtype, o.device, &out); break;
    }
    ftl_check(L, st, "tensor creation");
    ftl_push_tensor(L, out);
    return finish_new(L, &o);
}

/* T.full(shape, value [, opts]) */
static int t_full(lua_State *L) {
    int64_t shape[FT_MAX_DIMS];
    luaL_checktype(L, 1, LUA_TTABLE);
    int ndim = ftl_check_shape(L, 1, shape);
    double v = luaL_checknumber(L, 2);
    ftl_opts o;
    ftl_check_opts(L, 3, &o);
    ft_tensor *out = NULL;
    ftl_check(L, ft_full(shape, ndim, v, o.dtype, o.device, &out), "full");
    ftl_push_tensor(L, out);
    return finish_new(L, &o);
}

/* T.randint(low, high, shape [, opts]) -- values in [low, high); int64 by default. */
static int t_randint(lua_State *L) {
    lua_Integer lo = luaL_checkinteger(L, 1), hi = luaL_checkinteger(L, 2);
    luaL_argcheck(L, hi > lo, 2, "high must be greater than low");
    int64_t shape[FT_MAX_DIMS];
    luaL_checktype(L, 3, LUA_TTABLE);
    int ndim = ftl_check_shape(L, 3, shape);
    ftl_opts o;
    ftl_check_opts(L, 4, &o);
    if (lua_isnoneornil(L, 4) || (lua_istable(L, 4) && lua_getfield(L, 4, "dtype") == LUA_TNIL))
        o.dtype = FT_INT64;
    ft_tensor *out = NULL;
    ftl_check(L, ft_randint(lo, hi, shape, ndim, o.dtype, o.device, &out), "randint");
    ftl_push_tensor(L, out);
    return 1;
}

static int t_randperm(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0, 1, "n must be non-negative");
    ft_tensor *out = NULL;
    ftl_check(L, ft_randperm(n, ftl_check_device(L, 2, FT_CPU), &out), "randperm");
    ftl_push_tensor(L, out);
    ftl_check(L, ft_binary_scalar_(FT_ADD, out, 1), "randperm"); /* 1..n: indices are 1-based */
    return 1;
}

/* T.arange(n) = 0..n-1; T.arange(a, b [, step]) = a..b-1 like PyTorch (end exclusive).
 * int64 when every argument is an integer, float32 otherwise. */
static int t_arange(lua_State *L) {
    int nargs = 0;
    while (nargs < 3 && lua_type(L, nargs + 1) == LUA_TNUMBER) nargs++;
    luaL_argcheck(L, nargs >= 1, 1, "expected arange(n) or arange(start, end [, step])");
    int all_int = 1;
    for (int i = 1; i <= nargs; i++) all_int &= lua_isinteger(L, i);
    double start = nargs >= 2 ? lua_tonumber(L, 1) : 0;
    double end = nargs >= 2 ? lua_tonumber(L, 2) : lua_tonumber(L, 1);
    double step = nargs == 3 ? lua_tonumber(L, 3) : 1;
    luaL_argcheck(L, step != 0, 3, "step must not be 0");
    ftl_opts o;
    ftl_check_opts(L, nargs + 1, &o);
    if (all_int && (lua_isnoneornil(L, nargs + 1) || lua_istable(L, nargs + 1))) {
        int has_dtype =
            lua_istable(L, nargs + 1) && lua_getfield(L, nargs + 1, "dtype") != LUA_TNIL;
        if (!has_dtype) o.dtype = FT_INT64;
    }
    ft_tensor *out = NULL;
    ftl_check(L, ft_arange(start, end, step, o.dtype, o.device, &out), "arange");
    ftl_push_tensor(L, out);
    return finish_new(L, &o);
}

static int t_linspace(lua_State *L) {
    double a = luaL_checknumber(L, 1), b = luaL_checknumber(L, 2);
    lua_Integer steps = luaL_checkinteger(L, 3);
    luaL_argcheck(L, steps >= 0, 3, "steps must be non-negative");
    ftl_opts o;
    ftl_check_opts(L, 4, &o);
    ft_tensor *out = NULL;
    ftl_check(L, ft_linspace(a, b, steps, o.dtype, o.device, &out), "linspace");
    ftl_push_tensor(L, out);
    return 1;
}

static int t_eye(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0, 1, "n must be non-negative");
    ftl_opts o;
    ftl_check_opts(L, 2, &o);
    ft_tensor *out = NULL;
    ftl_check(L, ft_eye(n, o.dtype, o.device, &out), "eye");
    ftl_push_tensor(L, out);
    return 1;
}

/* T.cat({a, b, ...} [, dim=1]) and T.stack(...) */
static int join(lua_State *L, int stack) {
    lua_settop(L, 2); /* the scratch array below goes to index 3 */
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)luaL_len(L, 1);
    luaL_argcheck(L, n > 0, 1, "expected a non-empty list of tensors");
    const ft_tensor **ts = lua_newuserdatauv(L, sizeof(ft_tensor *) * (size_t)n, 0);
    int ndim = 0;
    for (int i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        ft_tensor *t = ftl_to_tensor(L, -1);
        if (!t)
            luaL_error(L, "%s: element %d is a %s, expected a tensor", stack ? "stack" : "cat",
                       i + 1, luaL_typename(L, -1));
        ts[i] = t;
        if (i == 0) ndim = ft_dim(t) + stack;
        lua_pop(L, 1); /* still referenced by the list, so the handle stays alive */
    }
    int dim = lua_isnoneornil(L, 2) ? 0 : ftl_dim_arg(L, 2, ndim);
    ft_tensor *out = NULL;
    ftl_check(L, stack ? ft_stack(ts, n, dim, &out) : ft_cat(ts, n, dim, &out),
              stack ? "stack" : "cat");
    ftl_push_tensor(L, out);
    return 1;
}
static int t_cat(lua_State *L) { return join(L, 0); }
static int t_stack(lua_State *L) { return join(L, 1); }

static int t_where(lua_State *L) {
    ft_tensor *out = NULL;
    ft_tensor *c = ftl_check_tensor(L, 1), *a = ftl_check_tensor(L, 2), *b = ftl_check_tensor(L, 3);
    ftl_check(L, ft_where(c, a, b, &out), "where");
    ftl_push_tensor(L, out);
    return 1;
}

/* T.frombytes(s, shape [, dtype="uint8"]) -- raw little-endian C-order bytes, e.g. read from a
 * file, to a tensor (a copy). The byte count must match the shape exactly. */
static int t_frombytes(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int64_t shape[FT_MAX_DIMS];
    luaL_checktype(L, 2, LUA_TTABLE);
    int ndim = ftl_check_shape(L, 2, shape);
    ft_dtype dtype = lua_isnoneornil(L, 3) ? FT_UINT8 : ftl_check_dtype(L, 3);
    uint64_t want = ft_dtype_size(dtype);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] != 0 && want > UINT64_MAX / (uint64_t)shape[d])
            luaL_argerror(L, 2, "shape too large");
        want *= (uint64_t)shape[d];
    }
    if (want != len)
        return luaL_error(L, "frombytes: %d bytes for a shape that needs %d bytes of %s", (int)len,
                          (int)want, ft_dtype_name(dtype));
    ft_tensor *out = NULL;
    ftl_check(L, ft_from_data(s, dtype, shape, ndim, &out), "frombytes");
    ftl_push_tensor(L, out);
    return 1;
}

/* x:tobytes() -- the elements as a string of raw C-order bytes (the inverse of frombytes). */
static int ftl_tensor_tobytes(lua_State *L) {
    ft_tensor *t = ftl_check_tensor(L, 1);
    size_t n = (size_t)ft_numel(t) * ft_dtype_size(ft_get_dtype(t));
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, n);
    ftl_check(L, ft_copy_to_buffer(t, p, n), "tobytes");
    luaL_pushresultsize(&b, n);
    return 1;
}

static int t_is_tensor(lua_State *L) {
    lua_pushboolean(L, luaL_testudata(L, 1, FTL_TENSOR_MT) != NULL);
    return 1;
}

/* ---------------------------------------------------------------- runtime settings */

static int t_manual_seed(lua_State *L) {
    lua_Integer seed = luaL_checkinteger(L, 1);
    ftl_check(L, ft_manual_seed((uint64_t)seed), "manual_seed");
    return 0;
}

static int t_set_num_threads(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1, 1, "number of threads must be at least 1");
    ftl_check(L, ft_set_num_threads((int)n), "set_num_threads");
    return 0;
}

static int t_get_num_threads(lua_State *L) {
    lua_pushinteger(L, ft_get_num_threads());
    return 1;
}

static int t_cuda_available(lua_State *L) {
    lua_pushboolean(L, ft_cuda_available());
    return 1;
}

static int t_cuda_device_count(lua_State *L) {
    lua_pushinteger(L, ft_cuda_device_count());
    return 1;
}

static int t_default_device(lua_State *L) {
    ftl_push_device(L, ft_default_device());
    return 1;
}

/* ---------------------------------------------------------------- grad mode scopes */

/* T.no_grad(fn, ...) runs fn without autograd and returns its results;
 * T.no_grad() returns a guard for `local g <close> = T.no_grad()`. Same for enable_grad. */
static int grad_guard_close(lua_State *L) {
    int *saved = luaL_checkudata(L, 1, "ftlua.GradGuard");
    if (*saved >= 0) ft_set_grad_enabled(*saved);
    *saved = -1; /* closing twice is harmless */
    return 0;
}

static int grad_scope(lua_State *L, int enabled) {
    int before = ft_grad_enabled();
    if (lua_isnoneornil(L, 1)) {
        int *saved = lua_newuserdatauv(L, sizeof(int), 0);
        *saved = before;
        luaL_setmetatable(L, "ftlua.GradGuard");
        ft_set_grad_enabled(enabled);
        return 1;
    }
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int nargs = lua_gettop(L) - 1;
    ft_set_grad_enabled(enabled);
    int status = lua_pcall(L, nargs, LUA_MULTRET, 0);
    ft_set_grad_enabled(before);
    if (status != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}
static int t_no_grad(lua_State *L) { return grad_scope(L, 0); }
static int t_enable_grad(lua_State *L) { return grad_scope(L, 1); }
static int t_is_grad_enabled(lua_State *L) {
    lua_pushboolean(L, ft_grad_enabled());
    return 1;
}

/* ---------------------------------------------------------------- printing */

/* PyTorch prints only the first and last FTL_PRINT_EDGEITEMS entries of every long dim of a
 * big tensor. Build that summarized tensor here (with libtorch), then format it in C. */
static ft_status summarize(const ft_tensor *t, ft_tensor **out) {
    ft_tensor *cur = NULL;
    ft_status st = ft_shallow_copy(t, &cur);
    for (int d = 0; st == FT_OK && d < ft_dim(t); d++) {
        int64_t size = ft_size(cur, d), e = FTL_PRINT_EDGEITEMS;
        if (size <= 2 * e) continue;
        ft_tensor *head = NULL, *tail = NULL, *joined = NULL;
        st = ft_narrow(cur, d, 0, e, &head);
        if (st == FT_OK) st = ft_narrow(cur, d, size - e, e, &tail);
        const ft_tensor *parts[2] = {head, tail};
        if (st == FT_OK) st = ft_cat(parts, 2, d, &joined);
        ft_free(head);
        ft_free(tail);
        if (st == FT_OK) {
            ft_free(cur);
            cur = joined;
        }
    }
    if (st != FT_OK) {
        ft_free(cur);
        return st;
    }
    *out = cur;
    return FT_OK;
}

int ftl_tensor_tostring(lua_State *L, const ft_tensor *t) {
    int nd = ft_dim(t);
    int64_t full[FT_MAX_DIMS], shape[FT_MAX_DIMS];
    for (int d = 0; d < nd; d++) full[d] = ft_size(t, d);
    int summ = ftt_print_should_summarize(ft_numel(t));
    ft_tensor *data = NULL;
    ftl_check(L, summ ? summarize(t, &data) : ft_shallow_copy(t, &data), "tostring");
    ftl_push_tensor(L, data); /* owned by Lua, so errors below can't leak it */
    for (int d = 0; d < nd; d++) shape[d] = ft_size(data, d);
    int64_t n = ft_numel(data);
    double *vals = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(double), 0);
    ftl_check(L, ft_copy_to_doubles(data, vals, n), "tostring");
    int leaf_grad = ft_requires_grad(t) && ft_is_leaf(t);
    char *s =
        ftt_format_tensor(vals, shape, full, nd, ft_get_dtype(t), ft_device(t), leaf_grad, summ);
    if (!s) return luaL_error(L, "tostring: out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

/* ---------------------------------------------------------------- metatable */

static int m_gc(lua_State *L) {
    ftl_free_tensor_ud(luaL_checkudata(L, 1, FTL_TENSOR_MT));
    return 0;
}

/* x:free() releases libtorch memory now; later use errors with "freed tensor". */
static int m_free(lua_State *L) { return m_gc(L); }

static int m_tostring(lua_State *L) {
    ftl_tensor *ud = luaL_checkudata(L, 1, FTL_TENSOR_MT);
    if (!ud->h) {
        lua_pushliteral(L, "tensor (freed)");
        return 1;
    }
    return ftl_tensor_tostring(L, ud->h);
}

static const luaL_Reg module_funcs[] = {
    {"tensor", t_tensor},
    {"full", t_full},
    {"randint", t_randint},
    {"randperm", t_randperm},
    {"arange", t_arange},
    {"linspace", t_linspace},
    {"eye", t_eye},
    {"cat", t_cat},
    {"stack", t_stack},
    {"where", t_where},
    {"is_tensor", t_is_tensor},
    {"frombytes", t_frombytes},
    {"manual_seed", t_manual_seed},
    {"set_num_threads", t_set_num_threads},
    {"get_num_threads", t_get_num_threads},
    {"cuda_available", t_cuda_available},
    {"cuda_device_count", t_cuda_device_count},
    {"default_device", t_default_device},
    {"no_grad", t_no_grad},
    {"enable_grad", t_enable_grad},
    {"is_grad_enabled", t_is_grad_enabled},
    {"save", ftl_tensor_save},
    {"load", ftl_tensor_load},
    {"memory", ftl_mem_stats},
    {NULL, NULL},
};

static const char *const SHAPED_NAMES[] = {"empty", "zeros", "ones", "rand", "randn"};

int luaopen_ftlua_tensor(lua_State *L) {
    /* The metatable: metamethods here, methods in an __index table filled by tensor_ops.c and
     * tensor_index.c; __index itself is a function (tensor_index.c) because x[1] and x.grad
     * need more than a table lookup. */
    if (luaL_newmetatable(L, FTL_TENSOR_MT)) {
        lua_pushcfunction(L, m_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, m_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, m_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_newtable(L); /* methods */
        lua_pushcfunction(L, m_free);
        lua_setfield(L, -2, "free");
        lua_pushcfunction(L, ftl_tensor_tobytes);
        lua_setfield(L, -2, "tobytes");
        ftl_register_ops(L);   /* tensor_ops.c: maths, reductions, conversions */
        ftl_register_index(L); /* tensor_index.c: views, indexing; sets __index/__newindex */
    }
    lua_pop(L, 1);
    static const luaL_Reg grad_guard_meta[] = {{"__close", grad_guard_close}, {NULL, NULL}};
    ftl_new_class(L, "ftlua.GradGuard", NULL, grad_guard_meta);

    luaL_newlib(L, module_funcs);
    for (int k = 0; k < (int)(sizeof SHAPED_NAMES / sizeof SHAPED_NAMES[0]); k++) {
        lua_pushinteger(L, k);
        lua_pushcclosure(L, t_new_shaped, 1);
        lua_setfield(L, -2, SHAPED_NAMES[k]);
    }
    return 1;
}
