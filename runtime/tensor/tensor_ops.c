/* tensor_ops.c: tensor methods for maths, reductions, conversions, autograd and data out.
 *
 * Most methods are one C function shared by many names through an upvalue holding the shim's
 * op code (ft_binop, ft_unop, ft_reduceop), so adding an op is one line in a table.
 * Index results (argmax, max(dim), topk, sort) are 1-based, like every index in ftlua.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor_internal.h"

static ft_tensor *self(lua_State *L) { return ftl_check_tensor(L, 1); }

/* out is read only after the call that fills it: C leaves the order of argument evaluation
 * open, so push_new(L, ft_x(..., &out), out, ...) could read it too early. */
static int push_new(lua_State *L, ft_status st, ft_tensor **out, const char *what) {
    ftl_check(L, st, what);
    ftl_push_tensor(L, *out);
    return 1;
}

/* Index tensors leave the shim 0-based and reach Lua 1-based. */
static ft_tensor *one_based(lua_State *L, ft_tensor *idx) {
    ft_status st = ft_binary_scalar_(FT_ADD, idx, 1);
    if (st != FT_OK) ft_free(idx);
    ftl_check(L, st, "index");
    return idx;
}

/* ---------------------------------------------------------------- elementwise */

static const struct {
    const char *name;
    ft_binop op;
} BINOPS[] = {
    {"add", FT_ADD},
    {"sub", FT_SUB},
    {"mul", FT_MUL},
    {"div", FT_DIV},
    {"pow", FT_POW},
    {"remainder", FT_REMAINDER},
    {"maximum", FT_MAXIMUM},
    {"minimum", FT_MINIMUM},
    {"atan2", FT_ATAN2},
    {"eq", FT_EQ},
    {"ne", FT_NE},
    {"lt", FT_LT},
    {"le", FT_LE},
    {"gt", FT_GT},
    {"ge", FT_GE},
    {"logical_and", FT_LOGICAL_AND},
    {"logical_or", FT_LOGICAL_OR},
};

static const struct {
    const char *name;
    ft_unop op;
} UNOPS[] = {
    {"neg", FT_NEG},
    {"abs", FT_ABS},
    {"exp", FT_EXP},
    {"log", FT_LOG},
    {"log2", FT_LOG2},
    {"log1p", FT_LOG1P},
    {"expm1", FT_EXPM1},
    {"sqrt", FT_SQRT},
    {"rsqrt", FT_RSQRT},
    {"sin", FT_SIN},
    {"cos", FT_COS},
    {"tan", FT_TAN},
    {"tanh", FT_TANH},
    {"sigmoid", FT_SIGMOID},
    {"relu", FT_RELU},
    {"floor", FT_FLOOR},
    {"ceil", FT_CEIL},
    {"round", FT_ROUND},
    {"trunc", FT_TRUNC},
    {"sign", FT_SIGN},
    {"reciprocal", FT_RECIPROCAL},
    {"square", FT_SQUARE},
    {"logical_not", FT_LOGICAL_NOT},
    {"isnan", FT_ISNAN},
    {"isfinite", FT_ISFINITE},
    {"erf", FT_ERF},
    {"gelu", FT_GELU},
    {"silu", FT_SILU},
};

/* a op b where either side may be a number (metamethods pass the number first for 2 + x). */
static int binary_any(lua_State *L, ft_binop op) {
    ft_tensor *a = ftl_to_tensor(L, 1), *b = ftl_to_tensor(L, 2), *out = NULL;
    ft_status st;
    if (a && b)
        st = ft_binary(op, a, b, &out);
    else if (a)
        st = ft_binary_scalar(op, a, luaL_checknumber(L, 2), &out);
    else if (b)
        st = ft_scalar_binary(op, luaL_checknumber(L, 1), b, &out);
    else
        return luaL_typeerror(L, 1, "tensor");
    return push_new(L, st, &out, "tensor op");
}

/* x:add(y [, alpha]) -- alpha scales y, as in PyTorch. */
static int m_binary(lua_State *L) {
    ft_binop op = (ft_binop)lua_tointeger(L, lua_upvalueindex(1));
    self(L);
    if ((op == FT_ADD || op == FT_SUB) && !lua_isnoneornil(L, 3)) {
        double alpha = luaL_checknumber(L, 3) * (op == FT_SUB ? -1 : 1);
        ft_tensor *out = NULL;
        ftl_check(L, ft_clone(self(L), &out), "add");
        ft_status st = ft_add_scaled_(out, ftl_check_tensor(L, 2), alpha);
        if (st != FT_OK) ft_free(out);
        return push_new(L, st, &out, "add");
    }
    return binary_any(L, op);
}

/* x:add_(y) -- in place, returns x. */
static int m_binary_(lua_State *L) {
    ft_binop op = (ft_binop)lua_tointeger(L, lua_upvalueindex(1));
    ft_tensor *a = self(L), *b = ftl_to_tensor(L, 2);
    ft_status st;
    if ((op == FT_ADD || op == FT_SUB) && b && !lua_isnoneornil(L, 3))
        st = ft_add_scaled_(a, b, luaL_checknumber(L, 3) * (op == FT_SUB ? -1 : 1));
    else
        st = b ? ft_binary_(op, a, b) : ft_binary_scalar_(op, a, luaL_checknumber(L, 2));
    ftl_check(L, st, "in-place op");
    lua_settop(L, 1);
    return 1;
}

static int m_unary(lua_State *L) {
    ft_tensor *out = NULL;
    return push_new(L, ft_unary((ft_unop)lua_tointeger(L, lua_upvalueindex(1)), self(L), &out),
                    &out, "tensor op");
}

static int m_unary_(lua_State *L) {
    ftl_check(L, ft_unary_((ft_unop)lua_tointeger(L, lua_upvalueindex(1)), self(L)), "in-place op");
    lua_settop(L, 1);
    return 1;
}

static int mm_add(lua_State *L) { return binary_any(L, FT_ADD); }
static int mm_sub(lua_State *L) { return binary_any(L, FT_SUB); }
static int mm_mul(lua_State *L) { return binary_any(L, FT_MUL); }
static int mm_div(lua_State *L) { return binary_any(L, FT_DIV); }
static int mm_pow(lua_State *L) { return binary_any(L, FT_POW); }
static int mm_mod(lua_State *L) { return binary_any(L, FT_REMAINDER); }
static int mm_unm(lua_State *L) {
    ft_tensor *out = NULL;
    return push_new(L, ft_unary(FT_NEG, self(L), &out), &out, "unary minus");
}

/* a == b for two tensors: same shape and values (Lua's == must give one boolean). */
static int mm_eq(lua_State *L) {
    ft_tensor *a = ftl_to_tensor(L, 1), *b = ftl_to_tensor(L, 2);
    int eq = 0;
    if (a && b) ftl_check(L, ft_equal(a, b, &eq), "==");
    lua_pushboolean(L, eq);
    return 1;
}

/* #x is the size of the first dim (0-dim tensors: error, like len() of a 0-d tensor). */
static int mm_len(lua_State *L) {
    ft_tensor *t = self(L);
    if (ft_dim(t) == 0) return luaL_error(L, "#: a 0-dim tensor has no length (use :item())");
    lua_pushinteger(L, ft_size(t, 0));
    return 1;
}

static int m_clamp(lua_State *L) {
    ft_tensor *out = NULL;
    int has_lo = !lua_isnoneornil(L, 2), has_hi = !lua_isnoneornil(L, 3);
    double lo = has_lo ? luaL_checknumber(L, 2) : 0, hi = has_hi ? luaL_checknumber(L, 3) : 0;
    luaL_argcheck(L, has_lo || has_hi, 2, "clamp needs a min, a max, or both");
    return push_new(L, ft_clamp(self(L), has_lo, lo, has_hi, hi, &out), &out, "clamp");
}

static int m_matmul(lua_State *L) {
    ft_tensor *out = NULL;
    return push_new(L, ft_matmul(self(L), ftl_check_tensor(L, 2), &out), &out, "matmul");
}

static int m_softmax(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    int log = (int)lua_tointeger(L, lua_upvalueindex(1));
    int dim = lua_isnoneornil(L, 2) ? ft_dim(t) - 1 : ftl_dim_arg(L, 2, ft_dim(t));
    return push_new(L, log ? ft_log_softmax(t, dim, &out) : ft_softmax(t, dim, &out), &out,
                    log ? "log_softmax" : "softmax");
}

static int m_equal(lua_State *L) {
    int eq = 0;
    ftl_check(L, ft_equal(self(L), ftl_check_tensor(L, 2), &eq), "equal");
    lua_pushboolean(L, eq);
    return 1;
}

static int m_allclose(lua_State *L) {
    int close = 0;
    double rtol = luaL_optnumber(L, 3, 1e-5), atol = luaL_optnumber(L, 4, 1e-8);
    ftl_check(L, ft_allclose(self(L), ftl_check_tensor(L, 2), rtol, atol, &close), "allclose");
    lua_pushboolean(L, close);
    return 1;
}

/* ---------------------------------------------------------------- reductions */

static const struct {
    const char *name;
    ft_reduceop op;
} REDUCEOPS[] = {
    {"sum", FT_SUM},
    {"mean", FT_MEAN},
    {"prod", FT_PROD},
    {"max", FT_MAX},
    {"min", FT_MIN},
    {"argmax", FT_ARGMAX},
    {"argmin", FT_ARGMIN},
    {"std", FT_STD},
    {"var", FT_VAR},
    {"norm", FT_NORM},
    {"all", FT_ALL},
    {"any", FT_ANY},
    {"logsumexp", FT_LOGSUMEXP},
    {"cumsum", FT_CUMSUM},
};

/* x:sum() -> 0-dim tensor; x:sum(dim [, keepdim]) reduces one dim.
 * x:max(dim) returns values and 1-based indices, as Torch7 and PyTorch return both. */
static int m_reduce(lua_State *L) {
    ft_reduceop op = (ft_reduceop)lua_tointeger(L, lua_upvalueindex(1));
    ft_tensor *t = self(L), *out = NULL;
    if (lua_isnoneornil(L, 2)) {
        if (op == FT_CUMSUM) return luaL_error(L, "cumsum needs a dim");
        ftl_check(L, ft_reduce_all(op, t, &out), "reduction");
        if (op == FT_ARGMAX || op == FT_ARGMIN) out = one_based(L, out);
        ftl_push_tensor(L, out);
        return 1;
    }
    int dim = ftl_dim_arg(L, 2, ft_dim(t));
    int keepdim = lua_toboolean(L, 3);
    ftl_check(L, ft_reduce_dim(op, t, dim, keepdim, &out), "reduction");
    if (op == FT_ARGMAX || op == FT_ARGMIN) out = one_based(L, out);
    ftl_push_tensor(L, out);
    if (op != FT_MAX && op != FT_MIN) return 1;
    ftl_check(L, ft_reduce_dim(op == FT_MAX ? FT_ARGMAX : FT_ARGMIN, t, dim, keepdim, &out),
              "reduction");
    ftl_push_tensor(L, one_based(L, out));
    return 2;
}

/* x:topk(k [, dim=-1 [, largest=true]]) -> values, 1-based indices */
static int m_topk(lua_State *L) {
    ft_tensor *t = self(L), *v = NULL, *i = NULL;
    lua_Integer k = luaL_checkinteger(L, 2);
    int dim = lua_isnoneornil(L, 3) ? ft_dim(t) - 1 : ftl_dim_arg(L, 3, ft_dim(t));
    int largest = lua_isnoneornil(L, 4) ? 1 : lua_toboolean(L, 4);
    ftl_check(L, ft_topk(t, k, dim < 0 ? 0 : dim, largest, &v, &i), "topk");
    ftl_push_tensor(L, v);
    ftl_push_tensor(L, one_based(L, i));
    return 2;
}

/* x:sort([dim=-1 [, descending=false]]) -> values, 1-based indices */
static int m_sort(lua_State *L) {
    ft_tensor *t = self(L), *v = NULL, *i = NULL;
    int dim = lua_isnoneornil(L, 2) ? ft_dim(t) - 1 : ftl_dim_arg(L, 2, ft_dim(t));
    ftl_check(L, ft_sort(t, dim < 0 ? 0 : dim, lua_toboolean(L, 3), &v, &i), "sort");
    ftl_push_tensor(L, v);
    ftl_push_tensor(L, one_based(L, i));
    return 2;
}

/* ---------------------------------------------------------------- metadata */

static void push_size_table(lua_State *L, const ft_tensor *t) {
    int nd = ft_dim(t);
    lua_createtable(L, nd, 0);
    for (int d = 0; d < nd; d++) {
        lua_pushinteger(L, ft_size(t, d));
        lua_rawseti(L, -2, d + 1);
    }
    luaL_setmetatable(L, "ftlua.Size");
}

/* x:size() -> {2, 3} (prints as "{2, 3}"); x:size(d) -> number */
static int m_size(lua_State *L) {
    ft_tensor *t = self(L);
    if (lua_isnoneornil(L, 2)) {
        push_size_table(L, t);
        return 1;
    }
    lua_pushinteger(L, ft_size(t, ftl_dim_arg(L, 2, ft_dim(t))));
    return 1;
}

static int m_stride(lua_State *L) {
    ft_tensor *t = self(L);
    if (!lua_isnoneornil(L, 2)) {
        lua_pushinteger(L, ft_stride(t, ftl_dim_arg(L, 2, ft_dim(t))));
        return 1;
    }
    int nd = ft_dim(t);
    lua_createtable(L, nd, 0);
    for (int d = 0; d < nd; d++) {
        lua_pushinteger(L, ft_stride(t, d));
        lua_rawseti(L, -2, d + 1);
    }
    return 1;
}

static int size_tostring(lua_State *L) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '{');
    lua_Integer n = luaL_len(L, 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        if (i > 1) luaL_addstring(&b, ", ");
        luaL_addvalue(&b);
    }
    luaL_addchar(&b, '}');
    luaL_pushresult(&b);
    return 1;
}

static int size_eq(lua_State *L) {
    lua_Integer n = luaL_len(L, 1);
    int eq = lua_istable(L, 2) && luaL_len(L, 2) == n;
    for (lua_Integer i = 1; eq && i <= n; i++) {
        lua_geti(L, 1, i);
        lua_geti(L, 2, i);
        eq = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    lua_pushboolean(L, eq);
    return 1;
}

static int m_dim(lua_State *L) {
    lua_pushinteger(L, ft_dim(self(L)));
    return 1;
}
static int m_numel(lua_State *L) {
    lua_pushinteger(L, ft_numel(self(L)));
    return 1;
}
static int m_dtype(lua_State *L) {
    lua_pushstring(L, ft_dtype_name(ft_get_dtype(self(L))));
    return 1;
}
static int m_device(lua_State *L) {
    ftl_push_device(L, ft_device(self(L)));
    return 1;
}
static int m_is_contiguous(lua_State *L) {
    lua_pushboolean(L, ft_is_contiguous(self(L)));
    return 1;
}
static int m_is_leaf(lua_State *L) {
    lua_pushboolean(L, ft_is_leaf(self(L)));
    return 1;
}
static int m_nbytes(lua_State *L) {
    ft_tensor *t = self(L);
    lua_pushinteger(L, ft_numel(t) * (lua_Integer)ft_dtype_size(ft_get_dtype(t)));
    return 1;
}

/* ---------------------------------------------------------------- conversions and copies */

/* x:to("cuda"), x:to("float64"), x:to{dtype=..., device=...}, x:to(other_tensor) */
static int m_to(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    ft_dtype dtype = ft_get_dtype(t);
    int device = ft_device(t);
    ft_tensor *like = ftl_to_tensor(L, 2);
    if (like) {
        dtype = ft_get_dtype(like);
        device = ft_device(like);
    } else if (lua_istable(L, 2)) {
        ftl_opts o;
        ftl_check_opts(L, 2, &o);
        if (lua_getfield(L, 2, "dtype") != LUA_TNIL) dtype = o.dtype;
        if (lua_getfield(L, 2, "device") != LUA_TNIL) device = o.device;
    } else {
        const char *s = luaL_checkstring(L, 2);
        if (strcmp(s, "cpu") == 0 || strncmp(s, "cuda", 4) == 0)
            device = ftl_check_device(L, 2, FT_CPU);
        else
            dtype = ftl_check_dtype(L, 2);
    }
    return push_new(L, ft_to(t, dtype, device, &out), &out, "to");
}

static int m_to_dtype(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    return push_new(L,
                    ft_to(t, (ft_dtype)lua_tointeger(L, lua_upvalueindex(1)), ft_device(t), &out),
                    &out, "to");
}

static int m_cuda(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    int dev = (int)luaL_optinteger(L, 2, 0);
    return push_new(L, ft_to(t, ft_get_dtype(t), dev, &out), &out, "cuda");
}

static int m_cpu(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    return push_new(L, ft_to(t, ft_get_dtype(t), FT_CPU, &out), &out, "cpu");
}

static int m_clone(lua_State *L) {
    ft_tensor *out = NULL;
    return push_new(L, ft_clone(self(L), &out), &out, "clone");
}
static int m_contiguous(lua_State *L) {
    ft_tensor *out = NULL;
    return push_new(L, ft_contiguous(self(L), &out), &out, "contiguous");
}
static int m_detach(lua_State *L) {
    ft_tensor *out = NULL;
    return push_new(L, ft_detach(self(L), &out), &out, "detach");
}

/* x:copy(src) copies src's values into x (broadcasting); returns x. */
static int m_copy(lua_State *L) {
    ftl_check(L, ft_copy_(self(L), ftl_check_tensor(L, 2)), "copy");
    lua_settop(L, 1);
    return 1;
}
static int m_fill(lua_State *L) {
    double v = lua_isboolean(L, 2) ? lua_toboolean(L, 2) : luaL_checknumber(L, 2);
    ftl_check(L, ft_fill_(self(L), v), "fill");
    lua_settop(L, 1);
    return 1;
}
static int m_zero(lua_State *L) {
    ftl_check(L, ft_fill_(self(L), 0), "zero");
    lua_settop(L, 1);
    return 1;
}

/* ---------------------------------------------------------------- autograd */

/* x:requires_grad([flag=true]) sets the flag and returns x (for chaining). */
static int m_requires_grad(lua_State *L) {
    int flag = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    ftl_check(L, ft_set_requires_grad(self(L), flag), "requires_grad");
    lua_settop(L, 1);
    return 1;
}

static int m_needs_grad(lua_State *L) {
    lua_pushboolean(L, ft_requires_grad(self(L)));
    return 1;
}

/* y:backward([grad [, retain_graph]]) */
static int m_backward(lua_State *L) {
    ft_tensor *t = self(L);
    ft_tensor *g = lua_isnoneornil(L, 2) ? NULL : ftl_check_tensor(L, 2);
    ftl_check(L, ft_backward(t, g, lua_toboolean(L, 3)), "backward");
    return 0;
}

static int m_zero_grad(lua_State *L) {
    ftl_check(L, ft_set_grad(self(L), NULL), "zero_grad");
    lua_settop(L, 1);
    return 1;
}

/* ---------------------------------------------------------------- data out */

void ftl_push_scalar(lua_State *L, const ft_tensor *t) {
    ft_dtype dt = ft_get_dtype(t);
    if (dt == FT_INT64) { /* exact, even past 2^53 */
        int64_t v = 0;
        ftl_check(L, ft_copy_to_buffer(t, &v, sizeof v), "item");
        lua_pushinteger(L, v);
        return;
    }
    double v = 0;
    ftl_check(L, ft_item(t, &v), "item");
    if (dt == FT_BOOL)
        lua_pushboolean(L, v != 0);
    else if (!ft_dtype_is_floating(dt))
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
}

static int m_item(lua_State *L) {
    ft_tensor *t = self(L);
    if (ft_numel(t) != 1)
        return luaL_error(L, "item: tensor has %d elements, item() needs exactly one",
                          (int)ft_numel(t));
    ftl_push_scalar(L, t);
    return 1;
}

typedef struct {
    const double *vals;
    int64_t pos;
    ft_dtype dtype;
} table_writer;

static void push_nested(lua_State *L, const ft_tensor *t, int d, table_writer *w) {
    if (d == ft_dim(t)) {
        double v = w->vals[w->pos++];
        if (w->dtype == FT_BOOL)
            lua_pushboolean(L, v != 0);
        else if (!ft_dtype_is_floating(w->dtype))
            lua_pushinteger(L, (lua_Integer)v);
        else
            lua_pushnumber(L, v);
        return;
    }
    int64_t n = ft_size(t, d);
    luaL_checkstack(L, 3, "totable: too deep");
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        push_nested(L, t, d + 1, w);
        lua_rawseti(L, -2, i + 1);
    }
}

/* x:totable() -> nested tables of numbers (a number for a 0-dim tensor). */
static int m_totable(lua_State *L) {
    ft_tensor *t = self(L);
    int64_t n = ft_numel(t);
    double *vals = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(double), 0);
    ftl_check(L, ft_copy_to_doubles(t, vals, n), "totable");
    table_writer w = {vals, 0, ft_get_dtype(t)};
    push_nested(L, t, 0, &w);
    return 1;
}

/* ---------------------------------------------------------------- registration */

static const luaL_Reg METHODS[] = {
    {"clamp", m_clamp},
    {"matmul", m_matmul},
    {"equal", m_equal},
    {"allclose", m_allclose},
    {"topk", m_topk},
    {"sort", m_sort},
    {"size", m_size},
    {"stride", m_stride},
    {"dim", m_dim},
    {"numel", m_numel},
    {"nelement", m_numel},
    {"dtype", m_dtype},
    {"device", m_device},
    {"is_contiguous", m_is_contiguous},
    {"is_leaf", m_is_leaf},
    {"nbytes", m_nbytes},
    {"to", m_to},
    {"cuda", m_cuda},
    {"cpu", m_cpu},
    {"clone", m_clone},
    {"contiguous", m_contiguous},
    {"detach", m_detach},
    {"copy", m_copy},
    {"fill", m_fill},
    {"zero", m_zero},
    {"requires_grad", m_requires_grad},
    {"needs_grad", m_needs_grad},
    {"backward", m_backward},
    {"zero_grad", m_zero_grad},
    {"item", m_item},
    {"totable", m_totable},
    {NULL, NULL},
};

static const struct {
    const char *name;
    ft_dtype dtype;
} CASTS[] = {
    {"float", FT_FLOAT32}, {"double", FT_FLOAT64}, {"half", FT_FLOAT16}, {"bfloat16", FT_BFLOAT16},
    {"long", FT_INT64},    {"int", FT_INT32},      {"short", FT_INT16},  {"char", FT_INT8},
    {"byte", FT_UINT8},    {"bool", FT_BOOL},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void set_closure(lua_State *L, const char *name, lua_CFunction f, int code) {
    lua_pushinteger(L, code);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, -2, name);
}

/* Stack: metatable, methods. */
void ftl_register_ops(lua_State *L) {
    luaL_setfuncs(L, METHODS, 0);
    char name[64];
    for (size_t i = 0; i < COUNT(BINOPS); i++) {
        set_closure(L, BINOPS[i].name, m_binary, BINOPS[i].op);
        snprintf(name, sizeof name, "%s_", BINOPS[i].name);
        set_closure(L, name, m_binary_, BINOPS[i].op);
    }
    for (size_t i = 0; i < COUNT(UNOPS); i++) {
        set_closure(L, UNOPS[i].name, m_unary, UNOPS[i].op);
        snprintf(name, sizeof name, "%s_", UNOPS[i].name);
        set_closure(L, name, m_unary_, UNOPS[i].op);
    }
    for (size_t i = 0; i < COUNT(REDUCEOPS); i++)
        set_closure(L, REDUCEOPS[i].name, m_reduce, REDUCEOPS[i].op);
    for (size_t i = 0; i < COUNT(CASTS); i++)
        set_closure(L, CASTS[i].name, m_to_dtype, CASTS[i].dtype);
    set_closure(L, "softmax", m_softmax, 0);
    set_closure(L, "log_softmax", m_softmax, 1);

    static const luaL_Reg META[] = {
        {"__add", mm_add}, {"__sub", mm_sub}, {"__mul", mm_mul}, {"__div", mm_div},
        {"__pow", mm_pow}, {"__mod", mm_mod}, {"__unm", mm_unm}, {"__eq", mm_eq},
        {"__len", mm_len}, {NULL, NULL},
    };
    lua_pushvalue(L, -2); /* the metatable */
    luaL_setfuncs(L, META, 0);
    lua_pop(L, 1);

    static const luaL_Reg size_meta[] = {
        {"__tostring", size_tostring}, {"__eq", size_eq}, {NULL, NULL}};
    ftl_new_class(L, "ftlua.Size", NULL, size_meta);
}
