/* tensor_index.c: indexing, slicing and views, 1-based as in Torch7.
 *
 *   x[i]              select along dim 1 (a number when x is 1-D); negative i counts from the end
 *   x[{i, {a, b}, {}}] per dim: a number selects, {a, b} keeps a..b inclusive, {a} keeps a, {} all
 *   x[mask]           bool mask: the selected elements as a 1-D tensor
 *   x[...] = v        the same places, filled with a number or copied from a tensor
 *   x.grad, x.shape   properties; x.grad = nil clears the gradient
 *
 * Each step makes a new handle; on an error the handle in hand is freed before the Lua error is
 * raised, so nothing leaks when a longjmp leaves.
 */
#include <stdio.h>
#include <string.h>

#include "tensor/tensor_internal.h"

/* A 1-based index (negative from the end) to 0-based, or -1 when out of range. */
static int64_t to_zero_based(int64_t i, int64_t size) {
    if (i < 0) i += size + 1;
    return (i >= 1 && i <= size) ? i - 1 : -1;
}

/* Raise after freeing `cur` (which may be NULL). */
static int fail_free(lua_State *L, ft_tensor *cur, const char *msg) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", msg);
    ft_free(cur);
    return luaL_error(L, "%s", buf);
}

static void check_step(lua_State *L, ft_tensor *cur, ft_status st) {
    if (st != FT_OK) {
        char buf[512];
        snprintf(buf, sizeof buf, "index: %s", ft_last_error());
        fail_free(L, cur, buf);
    }
}

/* The slice {from, to}, {i} or {} on top of the stack (popped), applied to dim d (the k-th
 * entry of the index) of cur. Returns the narrowed view. */
static ft_tensor *apply_slice(lua_State *L, ft_tensor *cur, int d, int k) {
    int64_t size = ft_size(cur, d);
    int m = (int)luaL_len(L, -1);
    int64_t a = 1, b = size;
    if (m >= 1) {
        lua_geti(L, -1, 1);
        a = lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    b = a;
    if (m == 0) b = size;
    if (m >= 2) {
        lua_geti(L, -1, 2);
        b = lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    int64_t a0 = to_zero_based(a, size), b0 = to_zero_based(b, size);
    if (m == 0 && size == 0) a0 = b0 = 0; /* {} of an empty dim keeps it empty */
    if (size > 0 && (a0 < 0 || b0 < 0 || b0 < a0)) {
        char msg[256];
        snprintf(msg, sizeof msg, "slice {%lld, %lld} out of range for dim %d of size %lld",
                 (long long)a, (long long)b, k, (long long)size);
        fail_free(L, cur, msg);
    }
    ft_tensor *next = NULL;
    check_step(L, cur, ft_narrow(cur, d, a0, size == 0 ? 0 : b0 - a0 + 1, &next));
    return next;
}

/* Apply the index at key_idx to t. Returns a new handle; *all_numbers says every dim of t was
 * selected by a number (then the result is 0-dim and x[...] gives a plain value). */
static ft_tensor *apply_index(lua_State *L, ft_tensor *t, int key_idx, int *all_numbers) {
    ft_tensor *cur = NULL, *next = NULL;
    char msg[256];
    ftl_check(L, ft_shallow_copy(t, &cur), "index");
    *all_numbers = 0;
    if (lua_isinteger(L, key_idx)) {
        if (ft_dim(cur) == 0) fail_free(L, cur, "index: cannot index a 0-dim tensor (use :item())");
        int64_t size = ft_size(cur, 0), i = lua_tointeger(L, key_idx), i0 = to_zero_based(i, size);
        if (i0 < 0) {
            snprintf(msg, sizeof msg, "index %lld out of range for dim 1 of size %lld",
                     (long long)i, (long long)size);
            fail_free(L, cur, msg);
        }
        check_step(L, cur, ft_select(cur, 0, i0, &next));
        ft_free(cur);
        *all_numbers = ft_dim(next) == 0;
        return next;
    }
    if (!lua_istable(L, key_idx)) {
        snprintf(msg, sizeof msg,
                 "index: expected an integer, a table of slices or a bool mask, got %s",
                 luaL_typename(L, key_idx));
        fail_free(L, cur, msg);
    }
    int n = (int)luaL_len(L, key_idx), d = 0, numbers = 0;
    if (n > ft_dim(cur)) {
        snprintf(msg, sizeof msg, "index: %d indices for a %d-dim tensor", n, ft_dim(cur));
        fail_free(L, cur, msg);
    }
    for (int k = 1; k <= n; k++) {
        int64_t size = ft_size(cur, d);
        int type = lua_geti(L, key_idx, k);
        if (type == LUA_TNUMBER && lua_isinteger(L, -1)) {
            int64_t i = lua_tointeger(L, -1), i0 = to_zero_based(i, size);
            lua_pop(L, 1);
            if (i0 < 0) {
                snprintf(msg, sizeof msg, "index %lld out of range for dim %d of size %lld",
                         (long long)i, k, (long long)size);
                fail_free(L, cur, msg);
            }
            check_step(L, cur, ft_select(cur, d, i0, &next));
            numbers++;
        } else if (type == LUA_TTABLE) {
            next = apply_slice(L, cur, d, k);
            d++;
        } else {
            snprintf(msg, sizeof msg,
                     "index: entry %d is a %s; use a number, {from, to}, {i} or {}", k,
                     luaL_typename(L, -1));
            lua_pop(L, 1);
            fail_free(L, cur, msg);
        }
        ft_free(cur);
        cur = next;
    }
    *all_numbers = n > 0 && numbers == n && ft_dim(cur) == 0;
    return cur;
}

/* __index(x, key) */
static int mm_index(lua_State *L) {
    ft_tensor *t = ftl_check_tensor(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *key = lua_tostring(L, 2);
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1; /* a method */
        if (strcmp(key, "grad") == 0) {
            ft_tensor *g = NULL;
            ftl_check(L, ft_grad(t, &g), "grad");
            if (!g)
                lua_pushnil(L);
            else
                ftl_push_tensor(L, g);
            return 1;
        }
        if (strcmp(key, "shape") == 0) {
            lua_getfield(L, lua_upvalueindex(1), "size");
            lua_pushvalue(L, 1);
            lua_call(L, 1, 1);
            return 1;
        }
        return 0; /* unknown field: nil, like a table */
    }
    ft_tensor *mask = ftl_to_tensor(L, 2), *out = NULL;
    if (mask) {
        ftl_check(L, ft_masked_select(t, mask, &out), "masked index");
        ftl_push_tensor(L, out);
        return 1;
    }
    int all_numbers;
    out = apply_index(L, t, 2, &all_numbers);
    if (all_numbers) {
        /* Push the value while `out` is still owned by a userdata, so an error can't leak it. */
        ftl_push_tensor(L, out);
        ftl_push_scalar(L, out);
        return 1;
    }
    ftl_push_tensor(L, out);
    return 1;
}

/* __newindex(x, key, value) */
static int mm_newindex(lua_State *L) {
    ft_tensor *t = ftl_check_tensor(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING) {
        if (strcmp(lua_tostring(L, 2), "grad") == 0) {
            ft_tensor *g = lua_isnil(L, 3) ? NULL : ftl_check_tensor(L, 3);
            ftl_check(L, ft_set_grad(t, g), "grad");
            return 0;
        }
        return luaL_error(L, "cannot set field '%s' of a tensor", lua_tostring(L, 2));
    }
    ft_tensor *src = ftl_to_tensor(L, 3);
    int is_num = lua_type(L, 3) == LUA_TNUMBER || lua_isboolean(L, 3);
    if (!src && !is_num)
        return luaL_error(L, "tensor assignment: value must be a number or a tensor, got %s",
                          luaL_typename(L, 3));
    double v = lua_isboolean(L, 3) ? lua_toboolean(L, 3) : lua_tonumber(L, 3);
    ft_tensor *mask = ftl_to_tensor(L, 2);
    if (mask) {
        if (src) return luaL_error(L, "tensor assignment: x[mask] = v takes a number");
        ftl_check(L, ft_masked_fill_(t, mask, v), "masked assignment");
        return 0;
    }
    int all_numbers;
    ft_tensor *view = apply_index(L, t, 2, &all_numbers);
    ftl_push_tensor(L, view); /* owned by Lua from here */
    ftl_check(L, src ? ft_copy_(view, src) : ft_fill_(view, v), "tensor assignment");
    return 0;
}

/* ---------------------------------------------------------------- views */

/* A shape from a table or numbers, where -1 (infer) is allowed. */
static int shape_arg(lua_State *L, int idx, int64_t shape[FT_MAX_DIMS]) {
    int n = 0;
    int is_table = lua_istable(L, idx);
    int count = is_table ? (int)luaL_len(L, idx) : lua_gettop(L) - idx + 1;
    luaL_argcheck(L, count <= FT_MAX_DIMS, idx, "too many dimensions (at most 16)");
    for (int k = 0; k < count; k++) {
        if (is_table)
            lua_geti(L, idx, k + 1);
        else
            lua_pushvalue(L, idx + k);
        int isint;
        lua_Integer d = lua_tointegerx(L, -1, &isint);
        lua_pop(L, 1);
        if (!isint || d < -1) luaL_argerror(L, idx, "sizes must be integers (-1 infers one size)");
        shape[n++] = d;
    }
    return n;
}

static ft_tensor *self(lua_State *L) { return ftl_check_tensor(L, 1); }

/* out is read only after the call that fills it: C leaves the order of argument evaluation
 * open, so push_new(L, ft_x(..., &out), out, ...) could read it too early. */
static int push_new(lua_State *L, ft_status st, ft_tensor **out, const char *what) {
    ftl_check(L, st, what);
    ftl_push_tensor(L, *out);
    return 1;
}

static int m_view(lua_State *L) {
    int64_t shape[FT_MAX_DIMS];
    int n = shape_arg(L, 2, shape);
    ft_tensor *out = NULL;
    return push_new(L, ft_view(self(L), shape, n, &out), &out, "view");
}

static int m_reshape(lua_State *L) {
    int64_t shape[FT_MAX_DIMS];
    int n = shape_arg(L, 2, shape);
    ft_tensor *out = NULL;
    return push_new(L, ft_reshape(self(L), shape, n, &out), &out, "reshape");
}

static int m_expand(lua_State *L) {
    int64_t shape[FT_MAX_DIMS];
    int n = shape_arg(L, 2, shape);
    ft_tensor *out = NULL;
    return push_new(L, ft_expand(self(L), shape, n, &out), &out, "expand");
}

/* x:permute{2, 1, 3} or x:permute(2, 1, 3) -- 1-based dims */
static int m_permute(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    int64_t dims[FT_MAX_DIMS];
    int n = shape_arg(L, 2, dims);
    luaL_argcheck(L, n == ft_dim(t), 2, "permute needs one entry per dim");
    for (int k = 0; k < n; k++) {
        int64_t d = dims[k] < 0 ? dims[k] + n + 1 : dims[k];
        luaL_argcheck(L, d >= 1 && d <= n, 2, "permute: dim out of range");
        dims[k] = d - 1;
    }
    return push_new(L, ft_permute(t, dims, n, &out), &out, "permute");
}

static int m_transpose(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    int nd = ft_dim(t);
    int a = lua_isnoneornil(L, 2) ? 0 : ftl_dim_arg(L, 2, nd);
    int b = lua_isnoneornil(L, 3) ? 1 : ftl_dim_arg(L, 3, nd);
    if (lua_isnoneornil(L, 2) && nd != 2)
        return luaL_error(L, "t(): expected a 2-D tensor, got %d-D (use transpose(a, b))", nd);
    return push_new(L, ft_transpose(t, a, b, &out), &out, "transpose");
}

/* x:narrow(dim, start, length) -- start is 1-based */
static int m_narrow(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    int d = ftl_dim_arg(L, 2, ft_dim(t));
    int64_t size = ft_size(t, d), start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
    int64_t s0 = start < 0 ? start + size : start - 1;
    luaL_argcheck(L, s0 >= 0 && len >= 0 && s0 + len <= size, 3, "narrow: range out of bounds");
    return push_new(L, ft_narrow(t, d, s0, len, &out), &out, "narrow");
}

/* x:select(dim, i) -- i is 1-based */
static int m_select(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    int d = ftl_dim_arg(L, 2, ft_dim(t));
    int64_t size = ft_size(t, d), i = luaL_checkinteger(L, 3), i0 = to_zero_based(i, size);
    if (i0 < 0)
        return luaL_error(L, "select: index %d out of range for dim %d of size %d", (int)i, d + 1,
                          (int)size);
    return push_new(L, ft_select(t, d, i0, &out), &out, "select");
}

static int m_squeeze(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    int d = lua_isnoneornil(L, 2) ? -1 : ftl_dim_arg(L, 2, ft_dim(t));
    return push_new(L, ft_squeeze(t, d, &out), &out, "squeeze");
}

static int m_unsqueeze(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    int d = ftl_dim_arg(L, 2, ft_dim(t) + 1);
    return push_new(L, ft_unsqueeze(t, d, &out), &out, "unsqueeze");
}

static int m_flatten(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    int nd = ft_dim(t);
    int a = lua_isnoneornil(L, 2) ? 0 : ftl_dim_arg(L, 2, nd);
    int b = lua_isnoneornil(L, 3) ? (nd > 0 ? nd - 1 : 0) : ftl_dim_arg(L, 3, nd);
    return push_new(L, ft_flatten(t, a, b, &out), &out, "flatten");
}

/* 1-based index tensors from Lua become 0-based for the shim. */
static ft_tensor *zero_based_index(lua_State *L, int idx) {
    ft_tensor *index = ftl_check_tensor(L, idx), *out = NULL;
    ftl_check(L, ft_binary_scalar(FT_SUB, index, 1, &out), "index");
    return out;
}

static int m_index_select(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    int d = ftl_dim_arg(L, 2, ft_dim(t));
    ft_tensor *index = zero_based_index(L, 3);
    ft_status st = ft_index_select(t, d, index, &out);
    ft_free(index);
    return push_new(L, st, &out, "index_select");
}

static int m_gather(lua_State *L) {
    ft_tensor *t = self(L), *out = NULL;
    int d = ftl_dim_arg(L, 2, ft_dim(t));
    ft_tensor *index = zero_based_index(L, 3);
    ft_status st = ft_gather(t, d, index, &out);
    ft_free(index);
    return push_new(L, st, &out, "gather");
}

static int m_masked_select(lua_State *L) {
    ft_tensor *out = NULL;
    return push_new(L, ft_masked_select(self(L), ftl_check_tensor(L, 2), &out), &out,
                    "masked_select");
}

static int m_masked_fill_(lua_State *L) {
    ftl_check(L, ft_masked_fill_(self(L), ftl_check_tensor(L, 2), luaL_checknumber(L, 3)),
              "masked_fill_");
    lua_settop(L, 1);
    return 1;
}

static int m_masked_fill(lua_State *L) {
    ft_tensor *out = NULL;
    ft_tensor *mask = ftl_check_tensor(L, 2);
    double v = luaL_checknumber(L, 3);
    ftl_check(L, ft_clone(self(L), &out), "masked_fill");
    ftl_push_tensor(L, out);
    ftl_check(L, ft_masked_fill_(out, mask, v), "masked_fill");
    return 1;
}

static const luaL_Reg METHODS[] = {
    {"view", m_view},
    {"reshape", m_reshape},
    {"expand", m_expand},
    {"permute", m_permute},
    {"transpose", m_transpose},
    {"t", m_transpose},
    {"narrow", m_narrow},
    {"select", m_select},
    {"squeeze", m_squeeze},
    {"unsqueeze", m_unsqueeze},
    {"flatten", m_flatten},
    {"index_select", m_index_select},
    {"gather", m_gather},
    {"masked_select", m_masked_select},
    {"masked_fill", m_masked_fill},
    {"masked_fill_", m_masked_fill_},
    {NULL, NULL},
};

/* Stack: metatable, methods; pops the methods. __index closes over the methods table, which
 * also stays reachable as metatable.__methods (the REPL completes method names from it). */
void ftl_register_index(lua_State *L) {
    luaL_setfuncs(L, METHODS, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_pushcclosure(L, mm_index, 1); /* pops the methods table */
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, mm_newindex);
    lua_setfield(L, -2, "__newindex");
}
