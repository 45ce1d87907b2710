/* model.c: the `model` Lua module (ft.nn, ft.models, ft.vision.create_cnn_model), entry file.
 *
 * A module in Lua is a userdata holding one reference to a C module (model.h). Each C module
 * has at most one live userdata (a weak cache maps the C pointer to it), so `m.layer1 ==
 * m.layer1` and a Lua-defined module's `self` is the very object the user holds. Parameters
 * are cached the same way: `m:parameters()` gives the same tensor objects every time.
 *
 * Like tensors, a module userdata is created "closed" (m = NULL) before the C module is built,
 * so an error at any point leaves nothing unowned.
 *
 * This file: userdata and caches, the methods that read the tree (forward, train/eval,
 * parameters, children, indexing), the ft.nn constructors, init and autocast. model_state.c
 * has state_dict/load_state_dict/to and the parameter groups; model_print.c the printout;
 * lua/ftlua/model_zoo.lua the zoo's weights, fastai's head and create_cnn_model.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "model/model.h"

#define FTL_MODULE_MT "ftlua.Module"
#define NN_KEY "ftlua.model.nn" /* registry: the ft.nn table (for nn.warn) */

/* The registry key of the weak cache {C pointer -> userdata}: an address, so that looking it
 * up never allocates (ftl_forget_param runs while the C forward owns handles). */
static const char CACHE_KEY = 0;

typedef struct {
    ftm_module *m;
    size_t counted; /* bytes added to the live-bytes tracker by this userdata */
} ftl_module;

/* ---------------------------------------------------------------- userdata and caches */

ftm_module *ftl_to_module(lua_State *L, int idx) {
    ftl_module *ud = luaL_testudata(L, idx, FTL_MODULE_MT);
    return ud ? ud->m : NULL;
}

ftm_module *ftl_check_module(lua_State *L, int idx) {
    ftl_module *ud = luaL_testudata(L, idx, FTL_MODULE_MT);
    if (!ud) luaL_typeerror(L, idx, "module");
    if (!ud->m) luaL_argerror(L, idx, "module is not initialised");
    return ud->m;
}

static void cache_get(lua_State *L, const void *p) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &CACHE_KEY);
    lua_rawgetp(L, -1, p);
    lua_remove(L, -2);
}

static void cache_set(lua_State *L, const void *p, int idx) {
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &CACHE_KEY);
    lua_pushvalue(L, idx);
    lua_rawsetp(L, -2, p);
    lua_pop(L, 1);
}

/* A closed module userdata on top of the stack. */
static ftl_module *new_closed(lua_State *L) {
    ftl_module *ud = lua_newuserdatauv(L, sizeof *ud, 0);
    ud->m = NULL;
    ud->counted = 0;
    luaL_setmetatable(L, FTL_MODULE_MT);
    return ud;
}

static void sum_bytes(void *p, const char *name, ftm_slot *s, ftm_module *owner, int is_buffer) {
    (void)name, (void)owner, (void)is_buffer;
    *(size_t *)p += ft_storage_nbytes(s->t);
}

/* Gives a freshly built module (or NULL: raise its error) to the closed userdata on top.
 * Its tensors count towards the GC pacing of base/memory.c while this userdata lives. */
static void adopt(lua_State *L, ftl_module *ud, ftm_module *m) {
    if (!m) luaL_error(L, "%s", ftm_error());
    ud->m = m;
    size_t n = 0;
    ftm_walk(m, NULL, 1, 1, sum_bytes, &n);
    ud->counted = n;
    ftl_mem_add(L, n);
    cache_set(L, m, -1);
}

/* For model_desc.c: the same two steps for a tree built there. */
void *ftl_push_closed_module(lua_State *L) { return new_closed(L); }
void ftl_adopt_module(lua_State *L, void *ud, ftm_module *m) { adopt(L, ud, m); }

void ftl_push_module(lua_State *L, ftm_module *m) {
    cache_get(L, m);
    if (lua_type(L, -1) == LUA_TUSERDATA) return;
    lua_pop(L, 1);
    ftl_module *ud = new_closed(L);
    ftm_retain(m);
    ud->m = m;
    cache_set(L, m, -1);
}

void ftl_push_param(lua_State *L, ft_tensor *h) {
    cache_get(L, h);
    ftl_tensor *ud = luaL_testudata(L, -1, FTL_TENSOR_MT);
    if (ud && ud->h) return;
    lua_pop(L, 1);
    ft_tensor *v = NULL;
    ftl_check(L, ft_shallow_copy(h, &v), "parameter");
    ftl_push_tensor(L, v);
    cache_set(L, h, -1);
}

void ftl_forget_param(lua_State *L, ft_tensor *h) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &CACHE_KEY) == LUA_TTABLE) {
        lua_pushnil(L); /* removing a key never allocates */
        lua_rawsetp(L, -2, h);
    }
    lua_pop(L, 1);
}

static int m_gc(lua_State *L) {
    ftl_module *ud = luaL_checkudata(L, 1, FTL_MODULE_MT);
    if (ud->m) ftm_release(L, ud->m);
    ud->m = NULL;
    ftl_mem_sub(ud->counted);
    ud->counted = 0;
    return 0;
}

void ftl_model_warn(lua_State *L, const char *msg) {
    lua_getfield(L, LUA_REGISTRYINDEX, NN_KEY);
    lua_getfield(L, -1, "warn");
    lua_remove(L, -2);
    lua_pushstring(L, msg);
    lua_call(L, 1, 0);
}

/* ft.nn.warn(msg): the default warning sink; replace it to capture or silence warnings. */
static int nn_warn(lua_State *L) {
    fprintf(stderr, "ftlua: warning: %s\n", luaL_checkstring(L, 1));
    fflush(stderr);
    return 0;
}

/* ---------------------------------------------------------------- collecting tensors */

typedef struct {
    lua_State *L;
    int names, values, seen; /* stack indices; 0 = not wanted */
    int n;
} collect_t;

static void collect_visit(void *p, const char *name, ftm_slot *s, ftm_module *owner,
                          int is_buffer) {
    (void)owner, (void)is_buffer;
    collect_t *c = p;
    lua_State *L = c->L;
    if (c->seen) { /* a module shared twice in the tree shows its tensors once */
        if (lua_rawgetp(L, c->seen, s->t) != LUA_TNIL) {
            lua_pop(L, 1);
            return;
        }
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
        lua_rawsetp(L, c->seen, s->t);
    }
    c->n++;
    lua_pushstring(L, name);
    lua_rawseti(L, c->names, c->n);
    ftl_push_param(L, s->t);
    lua_rawseti(L, c->values, c->n);
}

int ftl_collect(lua_State *L, ftm_module *m, const char *prefix, int params, int buffers,
                int dedup) {
    lua_newtable(L);
    lua_newtable(L);
    collect_t c = {L, lua_gettop(L) - 1, lua_gettop(L), 0, 0};
    if (dedup) {
        lua_newtable(L);
        c.seen = lua_gettop(L);
    }
    ftm_walk(m, prefix, params, buffers, collect_visit, &c);
    if (dedup) lua_pop(L, 1);
    return c.n;
}

/* An iterator over two parallel lists: for name, value in it do ... end */
static int list_iter(lua_State *L) {
    lua_Integer i = lua_tointeger(L, lua_upvalueindex(3)) + 1;
    if (lua_rawgeti(L, lua_upvalueindex(1), i) == LUA_TNIL) return 1;
    lua_rawgeti(L, lua_upvalueindex(2), i);
    lua_pushinteger(L, i);
    lua_replace(L, lua_upvalueindex(3));
    return 2;
}

static int push_list_iter(lua_State *L) { /* the two lists on top */
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, list_iter, 3);
    return 1;
}

/* ---------------------------------------------------------------- forward */

typedef struct {
    ftm_module *m;
    const ft_tensor *x;
    ft_tensor *out;
} lua_fwd;

static int lua_forward_protected(lua_State *L) {
    lua_fwd *a = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->m->lua_ref);
    lua_getfield(L, -1, "forward");
    ftl_push_module(L, a->m);
    ft_tensor *x = NULL;
    ftl_check(L, ft_shallow_copy(a->x, &x), "forward");
    ftl_push_tensor(L, x);
    lua_call(L, 2, 1);
    ft_tensor *r = ftl_to_tensor(L, -1);
    if (!r)
        luaL_error(L, "forward of %s returned a %s, expected a tensor", a->m->type,
                   luaL_typename(L, -1));
    ftl_check(L, ft_shallow_copy(r, &a->out), "forward");
    return 0;
}

/* The C forward owns handles up the C stack, so the Lua forward runs under lua_pcall: an
 * error comes back as a status, the C frames free their handles, and m_forward re-raises the
 * error value left on top of the stack. */
ft_status ftl_model_lua_forward(ftm_ctx *c, ftm_module *m, const ft_tensor *x, ft_tensor **out) {
    lua_State *L = c->L;
    lua_fwd a = {m, x, NULL};
    if (!lua_checkstack(L, 4)) {
        snprintf(c->msg, sizeof c->msg, "%s: Lua stack overflow", m->type);
        c->where[0] = '\0';
        return FT_ERR;
    }
    lua_pushcfunction(L, lua_forward_protected);
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        c->lua_error = 1;
        return FT_ERR;
    }
    *out = a.out;
    return FT_OK;
}

/* m(x) or m:forward(x). A Lua-defined module at the top takes and returns anything. */
static int m_forward(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    if (m->kind == FTM_LUA) {
        int nargs = lua_gettop(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, m->lua_ref);
        lua_getfield(L, -1, "forward");
        lua_remove(L, -2);
        lua_insert(L, 1);
        lua_call(L, nargs, LUA_MULTRET);
        return lua_gettop(L);
    }
    ft_tensor *x = ftl_check_tensor(L, 2);
    ftm_ctx c;
    c.L = L;
    c.lua_error = 0;
    c.where[0] = c.msg[0] = '\0';
    ft_tensor *out = NULL;
    ft_status st = ftm_forward(&c, m, x, &out);
    if (st != FT_OK) {
        if (c.lua_error) return lua_error(L);
        if (c.where[0]) return luaL_error(L, "forward (%s): %s", c.where, c.msg);
        return luaL_error(L, "forward: %s", c.msg);
    }
    ftl_push_tensor(L, out);
    return 1;
}

/* ---------------------------------------------------------------- reading the tree */

static int m_train(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    ftm_set_training(m, lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2));
    lua_settop(L, 1);
    return 1;
}

static int m_eval(lua_State *L) {
    ftm_set_training(ftl_check_module(L, 1), 0);
    lua_settop(L, 1);
    return 1;
}

/* m:parameters() -- the list of parameter tensors (each once), in torch's order. */
static int m_parameters(lua_State *L) {
    ftl_collect(L, ftl_check_module(L, 1), NULL, 1, 0, 1);
    return 1;
}

static int m_buffers(lua_State *L) {
    ftl_collect(L, ftl_check_module(L, 1), NULL, 0, 1, 1);
    return 1;
}

/* for name, p in m:named_parameters() do ... end  (names as torch's: "layer1.0.conv1.weight") */
static int m_named_parameters(lua_State *L) {
    ftl_collect(L, ftl_check_module(L, 1), NULL, 1, 0, 1);
    return push_list_iter(L);
}

static int m_named_buffers(lua_State *L) {
    ftl_collect(L, ftl_check_module(L, 1), NULL, 0, 1, 1);
    return push_list_iter(L);
}

/* for name, child in m:children() do ... end */
static int m_children(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    lua_newtable(L);
    lua_newtable(L);
    for (int i = 0; i < m->nchildren; i++) {
        lua_pushstring(L, m->children[i].name);
        lua_rawseti(L, -3, i + 1);
        ftl_push_module(L, m->children[i].m);
        lua_rawseti(L, -2, i + 1);
    }
    return push_list_iter(L);
}

static void modules_rec(lua_State *L, ftm_module *m, char *path, size_t len, int *n) {
    lua_pushlightuserdata(L, m);
    if (lua_rawget(L, -4) != LUA_TNIL) { /* seen: shown once, as torch does */
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
    lua_rawsetp(L, -4, m);
    ++*n;
    lua_pushstring(L, path);
    lua_rawseti(L, -3, *n);
    ftl_push_module(L, m);
    lua_rawseti(L, -2, *n);
    for (int i = 0; i < m->nchildren; i++) {
        snprintf(path + len, FTM_PATH_MAX - len, "%s%s", len ? "." : "", m->children[i].name);
        modules_rec(L, m->children[i].m, path, strlen(path), n);
        path[len] = '\0';
    }
}

/* for path, module in m:named_modules() do ... end  (m itself first, with path "") */
static int m_named_modules(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    lua_newtable(L); /* seen */
    lua_newtable(L); /* names */
    lua_newtable(L); /* modules */
    char path[FTM_PATH_MAX] = "";
    int n = 0;
    modules_rec(L, m, path, 0, &n);
    return push_list_iter(L);
}

static int m_type(lua_State *L) {
    lua_pushstring(L, ftl_check_module(L, 1)->type);
    return 1;
}

static void clear_grad(void *p, const char *name, ftm_slot *s, ftm_module *owner, int is_buffer) {
    (void)name, (void)owner, (void)is_buffer;
    lua_State *L = p;
    ftl_check(L, ft_set_grad(s->t, NULL), "zero_grad");
}

/* m:zero_grad() -- drops every parameter's gradient (torch's set_to_none). */
static int m_zero_grad(lua_State *L) {
    ftm_walk(ftl_check_module(L, 1), NULL, 1, 0, clear_grad, L);
    lua_settop(L, 1);
    return 1;
}

/* m:num_params() -- total, trainable */
static int m_num_params(lua_State *L) {
    int64_t total, trainable;
    ftm_count_params(ftl_check_module(L, 1), &total, &trainable);
    lua_pushinteger(L, total);
    lua_pushinteger(L, trainable);
    return 2;
}

static int m_tostring(lua_State *L) {
    ftl_module *ud = luaL_checkudata(L, 1, FTL_MODULE_MT);
    if (!ud->m) {
        lua_pushliteral(L, "module (not initialised)");
        return 1;
    }
    return ftl_module_tostring(L, ud->m);
}

static int m_len(lua_State *L) {
    lua_pushinteger(L, ftl_check_module(L, 1)->nchildren);
    return 1;
}

/* m[i] (1-based, negative from the end) and m.name: methods, then `training`, children,
 * the module's own parameters and buffers (m.weight), then a Lua-defined module's fields. */
static int m_index(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        int isint;
        lua_Integer i = lua_tointegerx(L, 2, &isint);
        if (isint && i < 0) i += m->nchildren + 1;
        if (isint && i >= 1 && i <= m->nchildren) ftl_push_module(L, m->children[i - 1].m);
        else lua_pushnil(L);
        return 1;
    }
    if (lua_type(L, 2) != LUA_TSTRING) return 0;
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    const char *k = lua_tostring(L, 2);
    if (strcmp(k, "training") == 0) {
        lua_pushboolean(L, m->training);
        return 1;
    }
    ftm_module *child = ftm_child_named(m, k);
    if (child) {
        ftl_push_module(L, child);
        return 1;
    }
    for (int i = 0; i < 5; i++) {
        ftm_slot *s = i < 2 ? &m->params[i] : &m->buffers[i - 2];
        if (s->t && strcmp(s->name, k) == 0) {
            ftl_push_param(L, s->t);
            return 1;
        }
    }
    if (m->kind == FTM_LUA) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, m->lua_ref);
        lua_pushvalue(L, 2);
        lua_rawget(L, -2);
        return 1;
    }
    return 0;
}

/* m.fc = ft.nn.Linear(512, 10), m[2] = ...: replaces a child. A Lua-defined module also takes
 * new children and plain fields (self.count = 0). */
static int m_newindex(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    ftm_module *v = ftl_to_module(L, 3);
    int idx = -1;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        int isint;
        lua_Integer i = lua_tointegerx(L, 2, &isint);
        if (isint && i < 0) i += m->nchildren + 1;
        if (!isint || i < 1 || i > m->nchildren)
            return luaL_error(L, "%s has no child %s (it has %d)", m->type,
                              lua_tostring(L, 2), m->nchildren);
        idx = (int)i - 1;
    } else if (lua_type(L, 2) == LUA_TSTRING) {
        idx = ftm_child_index(m, lua_tostring(L, 2));
    } else {
        return luaL_error(L, "module keys are names or positions, got a %s", luaL_typename(L, 2));
    }
    if (idx >= 0) {
        if (!v) return luaL_error(L, "child '%s' of %s can only be replaced by a module",
                                  m->children[idx].name, m->type);
        if (ftm_contains(v, m)) return luaL_error(L, "that would put %s inside itself", m->type);
        ftm_module *old = m->children[idx].m;
        ftm_retain(v);
        m->children[idx].m = v;
        ftm_release(L, old);
        return 0;
    }
    const char *k = lua_tostring(L, 2);
    if (m->kind != FTM_LUA)
        return luaL_error(L, "cannot set '%s' on a %s (only its children can be replaced)", k,
                          m->type);
    lua_pushvalue(L, 2);
    int method = lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL || strcmp(k, "training") == 0;
    if (method && strcmp(k, "forward") != 0)
        return luaL_error(L, "'%s' is a module method; pick another field name", k);
    if (method && !lua_isfunction(L, 3)) return luaL_error(L, "forward must be a function");
    if (v) {
        if (ftm_contains(v, m)) return luaL_error(L, "that would put %s inside itself", m->type);
        if (strchr(k, '.')) return luaL_error(L, "child name '%s' has a '.'", k);
        if (ftm_add_child(m, k, v) != 0) return luaL_error(L, "%s", ftm_error());
        return 0;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, m->lua_ref);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_rawset(L, -3);
    return 0;
}

static int m_eq(lua_State *L) {
    lua_pushboolean(L, ftl_to_module(L, 1) == ftl_to_module(L, 2));
    return 1;
}

static const luaL_Reg methods[] = {
    {"forward", m_forward},
    {"train", m_train},
    {"eval", m_eval},
    {"parameters", m_parameters},
    {"buffers", m_buffers},
    {"named_parameters", m_named_parameters},
    {"named_buffers", m_named_buffers},
    {"children", m_children},
    {"named_modules", m_named_modules},
    {"type", m_type},
    {"zero_grad", m_zero_grad},
    {"num_params", m_num_params},
    {"describe", ftl_m_describe},
    {NULL, NULL},
};

/* ---------------------------------------------------------------- options */

/* Pushes opts[k] (nil when there are no options) and returns its stack index. */
static int field(lua_State *L, int opts, const char *k) {
    if (lua_istable(L, opts)) lua_getfield(L, opts, k);
    else lua_pushnil(L);
    return lua_gettop(L);
}

static int64_t opt_int(lua_State *L, int opts, const char *k, int64_t def) {
    int i = field(L, opts, k);
    int64_t v = def;
    if (!lua_isnil(L, i)) {
        int ok;
        v = lua_tointegerx(L, i, &ok);
        if (!ok) luaL_error(L, "option '%s' must be an integer, got %s", k, luaL_typename(L, i));
    }
    lua_pop(L, 1);
    return v;
}

static double opt_num(lua_State *L, int opts, const char *k, double def) {
    int i = field(L, opts, k);
    double v = def;
    if (!lua_isnil(L, i)) {
        if (!lua_isnumber(L, i)) luaL_error(L, "option '%s' must be a number", k);
        v = lua_tonumber(L, i);
    }
    lua_pop(L, 1);
    return v;
}

static int opt_bool(lua_State *L, int opts, const char *k, int def) {
    int i = field(L, opts, k);
    int v = lua_isnil(L, i) ? def : lua_toboolean(L, i);
    lua_pop(L, 1);
    return v;
}

/* A size at idx: n (square) or {h, w}. */
static void value_pair(lua_State *L, int idx, const char *what, int64_t out[2], int *is_pair) {
    int ok;
    if (is_pair) *is_pair = 0;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        out[0] = out[1] = lua_tointegerx(L, idx, &ok);
        if (ok) return;
    } else if (lua_istable(L, idx) && luaL_len(L, idx) == 2) {
        int ok2;
        lua_geti(L, idx, 1);
        lua_geti(L, idx, 2);
        out[0] = lua_tointegerx(L, -2, &ok);
        out[1] = lua_tointegerx(L, -1, &ok2);
        lua_pop(L, 2);
        if (is_pair) *is_pair = 1;
        if (ok && ok2) return;
    }
    luaL_error(L, "%s must be an integer or {h, w}, got %s", what, luaL_typename(L, idx));
}

static void opt_pair(lua_State *L, int opts, const char *k, int64_t def, int64_t out[2]) {
    int i = field(L, opts, k);
    if (lua_isnil(L, i)) out[0] = out[1] = def;
    else value_pair(L, i, k, out, NULL);
    lua_pop(L, 1);
}

static int64_t check_count(lua_State *L, int idx, const char *what) {
    lua_Integer n = luaL_checkinteger(L, idx);
    if (n < 1) luaL_error(L, "%s must be positive, got %d", what, (int)n);
    return n;
}

/* ---------------------------------------------------------------- ft.nn constructors */

/* Conv2d(in, out, kernel [, {stride=1, padding=0, dilation=1, groups=1, bias=true}]) */
static int nn_conv2d(lua_State *L) {
    int64_t in = check_count(L, 1, "in_channels"), out = check_count(L, 2, "out_channels");
    int64_t k[2], s[2], p[2], d[2];
    value_pair(L, 3, "kernel_size", k, NULL);
    opt_pair(L, 4, "stride", 1, s);
    opt_pair(L, 4, "padding", 0, p);
    opt_pair(L, 4, "dilation", 1, d);
    int64_t groups = opt_int(L, 4, "groups", 1);
    int bias = opt_bool(L, 4, "bias", 1);
    adopt(L, new_closed(L), ftm_conv2d(in, out, k, s, p, d, groups, bias));
    return 1;
}

static int batchnorm(lua_State *L, int ndim) {
    int64_t n = check_count(L, 1, "num_features");
    double eps = opt_num(L, 2, "eps", 1e-5), momentum = opt_num(L, 2, "momentum", 0.1);
    adopt(L, new_closed(L), ftm_batchnorm(ndim, n, eps, momentum));
    return 1;
}
static int nn_batchnorm1d(lua_State *L) { return batchnorm(L, 1); }
static int nn_batchnorm2d(lua_State *L) { return batchnorm(L, 2); }

/* ReLU([inplace]) or ReLU{inplace=true} */
static int nn_relu(lua_State *L) {
    int inplace = lua_istable(L, 1) ? opt_bool(L, 1, "inplace", 0) : lua_toboolean(L, 1);
    adopt(L, new_closed(L), ftm_relu(inplace));
    return 1;
}

/* MaxPool2d(kernel [, {stride=kernel, padding=0, ceil_mode=false}]) */
static int nn_maxpool2d(lua_State *L) {
    int64_t k[2], s[2], p[2];
    value_pair(L, 1, "kernel_size", k, NULL);
    int i = field(L, 2, "stride");
    if (lua_isnil(L, i)) memcpy(s, k, sizeof s);
    else value_pair(L, i, "stride", s, NULL);
    lua_pop(L, 1);
    opt_pair(L, 2, "padding", 0, p);
    int ceil_mode = opt_bool(L, 2, "ceil_mode", 0);
    adopt(L, new_closed(L), ftm_maxpool2d(k, s, p, ceil_mode));
    return 1;
}

static int adaptive(lua_State *L, ftm_kind kind) {
    int64_t size[2] = {1, 1};
    int is_pair = 0;
    if (kind != FTM_ADAPTIVE_CONCATPOOL2D || !lua_isnoneornil(L, 1))
        value_pair(L, 1, "output_size", size, &is_pair);
    adopt(L, new_closed(L), ftm_adaptive_pool2d(kind, size, is_pair));
    return 1;
}
static int nn_adaptive_avg(lua_State *L) { return adaptive(L, FTM_ADAPTIVE_AVGPOOL2D); }
static int nn_adaptive_max(lua_State *L) { return adaptive(L, FTM_ADAPTIVE_MAXPOOL2D); }
static int nn_adaptive_concat(lua_State *L) { return adaptive(L, FTM_ADAPTIVE_CONCATPOOL2D); }

/* Flatten([start_dim=2, end_dim=-1]): 1-based dims, negative from the end, like the tensor
 * module (so the default is torch's Flatten(1, -1)). */
static int nn_flatten(lua_State *L) {
    lua_Integer a = luaL_optinteger(L, 1, 2), b = luaL_optinteger(L, 2, -1);
    luaL_argcheck(L, a != 0, 1, "dims are 1-based (or negative)");
    luaL_argcheck(L, b != 0, 2, "dims are 1-based (or negative)");
    adopt(L, new_closed(L), ftm_flatten(a > 0 ? (int)a - 1 : (int)a, b > 0 ? (int)b - 1 : (int)b));
    return 1;
}

static int nn_dropout(lua_State *L) {
    double p = luaL_optnumber(L, 1, 0.5);
    adopt(L, new_closed(L), ftm_dropout(p));
    return 1;
}

/* Linear(in, out [, {bias=true}]) */
static int nn_linear(lua_State *L) {
    int64_t in = check_count(L, 1, "in_features"), out = check_count(L, 2, "out_features");
    adopt(L, new_closed(L), ftm_linear(in, out, opt_bool(L, 3, "bias", 1)));
    return 1;
}

/* Sequential{m1, m2, ...}, Sequential(m1, m2, ...) or Sequential{{"name", m1}, ...}.
 * Positional children are named "0", "1", ... as in torch (m[1] is child "0"). */
static int nn_sequential(lua_State *L) {
    int list = lua_istable(L, 1);
    int n = list ? (int)luaL_len(L, 1) : lua_gettop(L);
    ftl_module *ud = new_closed(L);
    adopt(L, ud, ftm_new(FTM_SEQUENTIAL, "Sequential"));
    for (int i = 1; i <= n; i++) {
        if (list) lua_geti(L, 1, i);
        else lua_pushvalue(L, i);
        char name[FTM_NAME_MAX];
        ftm_module *child = ftl_to_module(L, -1);
        if (child) {
            snprintf(name, sizeof name, "%d", i - 1);
        } else if (lua_istable(L, -1)) {
            lua_geti(L, -1, 1);
            lua_geti(L, -2, 2);
            child = ftl_to_module(L, -1);
            if (lua_type(L, -2) != LUA_TSTRING || !child)
                return luaL_error(L, "Sequential: element %d must be a module or {name, module}", i);
            snprintf(name, sizeof name, "%s", lua_tostring(L, -2));
            lua_pop(L, 2);
        } else {
            return luaL_error(L, "Sequential: element %d is a %s, expected a module", i,
                              luaL_typename(L, -1));
        }
        if (strchr(name, '.') || !name[0])
            return luaL_error(L, "Sequential: child name '%s' must be non-empty, without '.'", name);
        if (ftm_add_child(ud->m, name, child) != 0) return luaL_error(L, "Sequential: %s", ftm_error());
        lua_pop(L, 1);
    }
    return 1;
}

/* BasicBlock(inplanes, planes [, {stride=1, downsample=module}]), Bottleneck likewise. */
static int block(lua_State *L, int basic) {
    int64_t inplanes = check_count(L, 1, "inplanes"), planes = check_count(L, 2, "planes");
    int64_t stride = opt_int(L, 3, "stride", 1);
    int i = field(L, 3, "downsample");
    ftm_module *down = NULL;
    if (!lua_isnil(L, i) && !(down = ftl_to_module(L, i)))
        return luaL_error(L, "option 'downsample' must be a module");
    ftl_module *ud = new_closed(L);
    adopt(L, ud, basic ? ftm_basic_block(inplanes, planes, stride, down)
                       : ftm_bottleneck(inplanes, planes, stride, down));
    return 1;
}
static int nn_basic_block(lua_State *L) { return block(L, 1); }
static int nn_bottleneck(lua_State *L) { return block(L, 0); }

typedef struct {
    const char *name;
    size_t at; /* where the definition names it; SIZE_MAX when not found */
} child_pos;

static int by_position(const void *a, const void *b) {
    const child_pos *x = a, *y = b;
    if (x->at != y->at) return x->at < y->at ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Where `name = ` first appears as a key in text (not after '.', ':' or a name character). */
static size_t key_position(const char *text, size_t len, const char *name) {
    size_t n = strlen(name);
    for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), name, n)) != NULL; p++) {
        char before = p > text ? p[-1] : ' ';
        if (isalnum((unsigned char)before) || strchr("_.:'\"", before)) continue;
        const char *q = p + n;
        while (q < text + len && (*q == ' ' || *q == '\t')) q++;
        if (q + 1 < text + len && q[0] == '=' && q[1] != '=') return (size_t)(p - text);
    }
    return SIZE_MAX;
}

/* A Lua table forgets the order of its keys, but PyTorch registers children in the order the
 * definition lists them, and prints them so. So the caller's source is read from the line of the
 * call on (host.h), and each child goes where its "name =" first appears; names not found there
 * (a definition built elsewhere) come last, by name. */
static void definition_order(lua_State *L, child_pos *c, int n) {
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 &&
        ftl_push_chunk_source(L, ar.source)) {
        size_t len;
        const char *text = lua_tolstring(L, -1, &len);
        for (int line = 1; line < ar.currentline; line++) {
            const char *nl = memchr(text, '\n', len);
            if (!nl) { len = 0; break; }
            len -= (size_t)(nl + 1 - text);
            text = nl + 1;
        }
        for (int i = 0; i < n; i++) c[i].at = key_position(text, len, c[i].name);
        lua_pop(L, 1);
    }
    qsort(c, (size_t)n, sizeof *c, by_position);
}

/* Module([type,] {forward = function(self, x) ... end, name = child, ..., other fields})
 * Module-valued fields become children, in the order the definition lists them; the rest
 * (forward included) stay Lua fields of the module, reachable as self.field. */
static int nn_module(lua_State *L) {
    const char *type = "Module";
    int def = 1;
    if (lua_type(L, 1) == LUA_TSTRING) {
        type = lua_tostring(L, 1);
        def = 2;
    }
    luaL_checktype(L, def, LUA_TTABLE);
    lua_settop(L, def);
    if (lua_getfield(L, def, "forward") != LUA_TFUNCTION)
        return luaL_error(L, "Module: the definition needs a forward = function(self, x) ... end");
    lua_pop(L, 1);
    ftl_module *ud = new_closed(L); /* def + 1 */
    adopt(L, ud, ftm_new(FTM_LUA, type));
    lua_newtable(L); /* def + 2: the Lua fields */
    int nchild = 0;
    lua_pushnil(L);
    while (lua_next(L, def)) {
        if (ftl_to_module(L, -1)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return luaL_error(L, "Module: children need string names");
            nchild++;
            lua_pop(L, 1);
        } else {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, def + 2);
        }
    }
    child_pos *names = lua_newuserdatauv(L, sizeof(child_pos) * (size_t)(nchild ? nchild : 1), 0);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, def)) {
        if (ftl_to_module(L, -1)) names[n++] = (child_pos){lua_tostring(L, -2), SIZE_MAX}; /* anchored by def */
        lua_pop(L, 1);
    }
    definition_order(L, names, n);
    for (int i = 0; i < n; i++) {
        lua_getfield(L, def, names[i].name);
        if (strchr(names[i].name, '.')) return luaL_error(L, "Module: child name '%s' has a '.'", names[i].name);
        if (ftm_add_child(ud->m, names[i].name, ftl_to_module(L, -1)) != 0)
            return luaL_error(L, "Module: %s", ftm_error());
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* names */
    ud->m->lua_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

static int nn_is_module(lua_State *L) {
    lua_pushboolean(L, luaL_testudata(L, 1, FTL_MODULE_MT) != NULL);
    return 1;
}

/* ft.nn.init.kaiming_normal_(t [, {a=0, mode="fan_in", nonlinearity="leaky_relu"}]) */
static int init_kaiming_normal(lua_State *L) {
    ft_tensor *t = ftl_check_tensor(L, 1);
    double a = opt_num(L, 2, "a", 0);
    int i = field(L, 2, "mode");
    const char *mode = luaL_optstring(L, i, "fan_in");
    i = field(L, 2, "nonlinearity");
    const char *nl = luaL_optstring(L, i, "leaky_relu");
    int fan_in = strcmp(mode, "fan_in") == 0;
    if (!fan_in && strcmp(mode, "fan_out") != 0)
        return luaL_error(L, "kaiming_normal_: mode must be \"fan_in\" or \"fan_out\"");
    int relu = strcmp(nl, "relu") == 0;
    if (!relu && strcmp(nl, "leaky_relu") != 0)
        return luaL_error(L, "kaiming_normal_: nonlinearity must be \"relu\" or \"leaky_relu\"");
    ftl_check(L, ft_kaiming_normal_(t, a, fan_in, relu), "kaiming_normal_");
    lua_settop(L, 1);
    return 1;
}

/* ---------------------------------------------------------------- autocast */

#define AUTOCAST_MT "ftlua.AutocastGuard"

typedef struct {
    ft_autocast_state saved;
    int active;
} autocast_guard;

static int autocast_close(lua_State *L) {
    autocast_guard *g = luaL_checkudata(L, 1, AUTOCAST_MT);
    if (g->active) {
        g->active = 0;
        ftl_check(L, ft_autocast_exit(&g->saved), "autocast");
    }
    return 0;
}

/* ft.nn.autocast(dtype | {dtype=, device=} [, fn, ...]): runs fn(...) with autocast to dtype
 * ("bfloat16" by default; device "cpu" by default, or "cuda") and returns its results; without
 * fn, returns a guard for `local g <close> = ft.nn.autocast("bfloat16")`. */
static int nn_autocast(lua_State *L) {
    ft_dtype dtype = FT_BFLOAT16;
    int cuda = 0;
    if (lua_type(L, 1) == LUA_TSTRING) {
        dtype = ftl_check_dtype(L, 1);
    } else if (lua_istable(L, 1)) {
        int i = field(L, 1, "dtype");
        if (!lua_isnil(L, i)) dtype = ftl_check_dtype(L, i);
        i = field(L, 1, "device");
        if (!lua_isnil(L, i)) cuda = ftl_check_device(L, i, FT_CPU) != FT_CPU;
        lua_pop(L, 2);
    } else if (!lua_isnoneornil(L, 1)) {
        return luaL_typeerror(L, 1, "dtype name or options table");
    }
    if (lua_isnoneornil(L, 2)) {
        autocast_guard *g = lua_newuserdatauv(L, sizeof *g, 0);
        g->active = 0;
        luaL_setmetatable(L, AUTOCAST_MT);
        ftl_check(L, ft_autocast_enter(cuda, dtype, &g->saved), "autocast");
        g->active = 1;
        return 1;
    }
    if (!lua_isfunction(L, 2)) { /* a module (or anything with __call) does too */
        if (luaL_getmetafield(L, 2, "__call") == LUA_TNIL) return luaL_typeerror(L, 2, "function");
        lua_pop(L, 1);
    }
    int nargs = lua_gettop(L) - 2;
    ft_autocast_state saved;
    ftl_check(L, ft_autocast_enter(cuda, dtype, &saved), "autocast");
    int status = lua_pcall(L, nargs, LUA_MULTRET, 0);
    ft_status st = ft_autocast_exit(&saved);
    if (status != LUA_OK) return lua_error(L);
    ftl_check(L, st, "autocast");
    return lua_gettop(L) - 1;
}

static int nn_autocast_enabled(lua_State *L) {
    int cuda = ftl_check_device(L, 1, FT_CPU) != FT_CPU;
    lua_pushboolean(L, ft_autocast_enabled(cuda));
    return 1;
}

/* ---------------------------------------------------------------- the zoo's C part */

/* priv.resnet(depth, num_classes): the architecture only; model_zoo.lua adds the weights. */
static int zoo_resnet(lua_State *L) {
    int depth = (int)luaL_checkinteger(L, 1);
    int64_t classes = check_count(L, 2, "num_classes");
    adopt(L, new_closed(L), ftm_resnet(depth, classes));
    return 1;
}

/* ---------------------------------------------------------------- entry */

static const luaL_Reg nn_funcs[] = {
    {"Conv2d", nn_conv2d},
    {"BatchNorm1d", nn_batchnorm1d},
    {"BatchNorm2d", nn_batchnorm2d},
    {"ReLU", nn_relu},
    {"MaxPool2d", nn_maxpool2d},
    {"AdaptiveAvgPool2d", nn_adaptive_avg},
    {"AdaptiveMaxPool2d", nn_adaptive_max},
    {"AdaptiveConcatPool2d", nn_adaptive_concat},
    {"Flatten", nn_flatten},
    {"Dropout", nn_dropout},
    {"Linear", nn_linear},
    {"Sequential", nn_sequential},
    {"BasicBlock", nn_basic_block},
    {"Bottleneck", nn_bottleneck},
    {"Module", nn_module},
    {"from_description", ftl_nn_from_description},
    {"is_module", nn_is_module},
    {"autocast", nn_autocast},
    {"autocast_enabled", nn_autocast_enabled},
    {"warn", nn_warn},
    {NULL, NULL},
};

/* Returns {nn = ..., models = ..., create_cnn_model = ..., create_head = ...}. */
static void unref_module(lua_State *L, int ref) { luaL_unref(L, LUA_REGISTRYINDEX, ref); }

int luaopen_ftlua_model(lua_State *L) {
    static const ftm_lua_callbacks lua_side = {ftl_forget_param, unref_module,
                                               ftl_model_lua_forward};
    ftm_set_lua_callbacks(&lua_side); /* module.c's way into Lua */
    lua_newtable(L); /* the weak cache */
    lua_newtable(L);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &CACHE_KEY);

    if (luaL_newmetatable(L, FTL_MODULE_MT)) {
        luaL_newlib(L, methods);
        ftl_register_state_methods(L);
        lua_pushvalue(L, -1);
        lua_pushcclosure(L, m_index, 1);
        lua_setfield(L, -3, "__index");
        lua_pushcclosure(L, m_newindex, 1);
        lua_setfield(L, -2, "__newindex");
        static const luaL_Reg meta[] = {
            {"__gc", m_gc}, {"__call", m_forward}, {"__tostring", m_tostring},
            {"__len", m_len}, {"__eq", m_eq}, {NULL, NULL},
        };
        luaL_setfuncs(L, meta, 0);
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, AUTOCAST_MT)) {
        lua_pushcfunction(L, autocast_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, autocast_close);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);

    lua_newtable(L); /* result */
    int result = lua_gettop(L);
    luaL_newlib(L, nn_funcs);
    int nn = lua_gettop(L);
    lua_newtable(L);
    lua_pushcfunction(L, init_kaiming_normal);
    lua_setfield(L, -2, "kaiming_normal_");
    lua_setfield(L, nn, "init");
    lua_pushvalue(L, nn);
    lua_setfield(L, LUA_REGISTRYINDEX, NN_KEY);
    lua_pushvalue(L, nn);
    lua_setfield(L, result, "nn");
    lua_newtable(L);
    int models = lua_gettop(L);
    lua_pushvalue(L, models);
    lua_setfield(L, result, "models");

    /* The Lua half (lua/ftlua/model_zoo.lua) fills nn, models and result. */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    if (lua_getfield(L, -1, "ftlua.model_zoo") != LUA_TFUNCTION)
        return luaL_error(L, "ftlua.model: the embedded model_zoo.lua is missing");
    lua_pushvalue(L, nn);
    lua_pushvalue(L, models);
    lua_pushvalue(L, result);
    lua_newtable(L); /* private C helpers */
    lua_pushcfunction(L, zoo_resnet);
    lua_setfield(L, -2, "resnet");
    lua_call(L, 4, 0);
    lua_settop(L, result);
    return 1;
}
