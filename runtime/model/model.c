/* model.c: the `model` Lua module (ft.nn, ft.models, ft.vision.create_cnn_model), entry file.
 *
 * A module in Lua is a userdata holding one reference to a C module (module.h). Each C module
 * has at most one live userdata (a weak cache maps the C pointer to it), so `m.layer1 ==
 * m.layer1` and a Lua-defined module's `self` is the very object the user holds. Parameters
 * are cached the same way: `m:parameters()` gives the same tensor objects every time.
 *
 * Like tensors, a module userdata is created "closed" (m = NULL) before the C module is built,
 * so an error at any point leaves nothing unowned.
 *
 * This file: the userdata and its caches, the callbacks through which the C core reaches Lua
 * (ftm_lua_callbacks), the methods that read the tree (forward, train/eval, parameters,
 * children, indexing), and luaopen_ftlua_model. model_nn.c has the ft.nn constructors, init
 * and autocast; model_state.c state_dict/load_state_dict/to and the parameter groups;
 * model_print.c the printout; lua/ftlua/model_zoo.lua the zoo's weights, fastai's head and
 * create_cnn_model.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

#define NN_KEY "ftlua.model.nn" /* registry: the ft.nn table (for nn.warn) */

/* The registry key of the weak cache {C pointer -> userdata}: an address, so that looking it
 * up never allocates (forget_param runs while the C forward owns handles). */
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
    if (!m) luaL_error(L, "%s", ft_last_error());
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

/* The C core's callback: forgets the cached Lua tensor of h, which a module frees. */
static void forget_param(lua_State *L, ft_tensor *h) {
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

/* ---------------------------------------------------------------- collecting tensors */

int ftl_seen_before(lua_State *L, int seen, const void *key) {
    int known = lua_rawgetp(L, seen, key) != LUA_TNIL;
    lua_pop(L, 1);
    if (!known) {
        lua_pushboolean(L, 1);
        lua_rawsetp(L, seen, key);
    }
    return known;
}

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
    /* a module shared twice in the tree shows its tensors once */
    if (c->seen && ftl_seen_before(L, c->seen, s->t)) return;
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
static ft_status lua_forward(ftm_ctx *c, ftm_module *m, const ft_tensor *x, ft_tensor **out) {
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
        if (isint && i >= 1 && i <= m->nchildren)
            ftl_push_module(L, m->children[i - 1].m);
        else
            lua_pushnil(L);
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
            return luaL_error(L, "%s has no child %s (it has %d)", m->type, lua_tostring(L, 2),
                              m->nchildren);
        idx = (int)i - 1;
    } else if (lua_type(L, 2) == LUA_TSTRING) {
        idx = ftm_child_index(m, lua_tostring(L, 2));
    } else {
        return luaL_error(L, "module keys are names or positions, got a %s", luaL_typename(L, 2));
    }
    if (idx >= 0) {
        if (!v)
            return luaL_error(L, "child '%s' of %s can only be replaced by a module",
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
        if (ftm_add_child(m, k, v) != 0) return luaL_error(L, "%s", ft_last_error());
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

/* ---------------------------------------------------------------- entry */

/* The C core's callback: drops a Lua-defined module's registry reference. */
static void unref_module(lua_State *L, int ref) { luaL_unref(L, LUA_REGISTRYINDEX, ref); }
_Static_assert(FTM_NOREF == LUA_NOREF, "module.h's FTM_NOREF must be Lua's LUA_NOREF");

/* Returns {nn = ..., models = ..., create_cnn_model = ..., create_head = ...}. */
int luaopen_ftlua_model(lua_State *L) {
    static const ftm_lua_callbacks lua_side = {forget_param, unref_module, lua_forward};
    ftm_set_lua_callbacks(&lua_side); /* module.c's way into Lua */
    lua_newtable(L);                  /* the weak cache */
    lua_newtable(L);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &CACHE_KEY);

    /* Not ftl_new_class: __index and __newindex are closures over the methods table. */
    if (luaL_newmetatable(L, FTL_MODULE_MT)) {
        luaL_newlib(L, methods);
        ftl_register_state_methods(L);
        lua_pushvalue(L, -1);
        lua_pushcclosure(L, m_index, 1);
        lua_setfield(L, -3, "__index");
        lua_pushcclosure(L, m_newindex, 1);
        lua_setfield(L, -2, "__newindex");
        static const luaL_Reg meta[] = {
            {"__gc", m_gc},   {"__call", m_forward}, {"__tostring", m_tostring},
            {"__len", m_len}, {"__eq", m_eq},        {NULL, NULL},
        };
        luaL_setfuncs(L, meta, 0);
    }
    lua_pop(L, 1);

    lua_newtable(L); /* result */
    int result = lua_gettop(L);
    ftl_push_nn(L); /* model_nn.c */
    int nn = lua_gettop(L);
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
    lua_pushcfunction(L, ftl_zoo_resnet);
    lua_setfield(L, -2, "resnet");
    lua_call(L, 4, 0);
    lua_settop(L, result);
    return 1;
}
