/* model_desc.c: a module tree as plain data, and back.
 *
 *   desc = m:describe()                  kind, constructor arguments, children, recursively
 *   m = ft.nn.from_description(desc)     a new tree of the same structure (fresh weights)
 *
 * learn:export writes the description as JSON next to the weights, and load_learner rebuilds
 * the model from it and loads the weights strictly. A node is a table:
 *
 *   {kind = "Conv2d", in_channels = 3, out_channels = 8, kernel_size = {3, 3},
 *    stride = {1, 1}, padding = {0, 0}, dilation = {1, 1}, groups = 1, bias = true}
 *   {kind = "Sequential", type = "ResNet", children = {{"conv1", node}, ...}, split = "a,b;c"}
 *   {same = "0.4.0"}           a module met before in the walk (shared by two parents)
 *
 * Kinds and their fields (the names of the ft.nn constructors' arguments):
 *   Sequential, BasicBlock, Bottleneck: children (type: what it prints as, e.g. "ResNet")
 *   Conv2d: in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
 *   BatchNorm1d, BatchNorm2d: num_features, eps, momentum
 *   ReLU: inplace;  Dropout: p;  Flatten: start_dim, end_dim (1-based, as ft.nn.Flatten)
 *   MaxPool2d: kernel_size, stride, padding, ceil_mode
 *   AdaptiveAvgPool2d, AdaptiveMaxPool2d, AdaptiveConcatPool2d: output_size, pair (and the
 *     concat pool's children ap, mp)
 *   Linear: in_features, out_features, bias
 * Any node may carry split, its parameter groups (m:set_param_groups). Pairs are {h, w}.
 * A Lua-defined module (ft.nn.Module) has a Lua forward and cannot be described: describe
 * raises an error naming it. from_description checks every field and names the node
 * ("0.1.conv1") of a bad one; it never runs code from the description.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

#define MAX_DEPTH 100

static const char *const KIND_NAMES[FTM_NKINDS] = {
    [FTM_SEQUENTIAL] = "Sequential",
    [FTM_CONV2D] = "Conv2d",
    [FTM_BATCHNORM] = "BatchNorm", /* BatchNorm1d / BatchNorm2d, see kind_name */
    [FTM_RELU] = "ReLU",
    [FTM_MAXPOOL2D] = "MaxPool2d",
    [FTM_ADAPTIVE_AVGPOOL2D] = "AdaptiveAvgPool2d",
    [FTM_ADAPTIVE_MAXPOOL2D] = "AdaptiveMaxPool2d",
    [FTM_ADAPTIVE_CONCATPOOL2D] = "AdaptiveConcatPool2d",
    [FTM_FLATTEN] = "Flatten",
    [FTM_DROPOUT] = "Dropout",
    [FTM_LINEAR] = "Linear",
    [FTM_BASICBLOCK] = "BasicBlock",
    [FTM_BOTTLENECK] = "Bottleneck",
    [FTM_LUA] = "Module",
};

static const char *kind_name(const ftm_module *m) {
    if (m->kind == FTM_BATCHNORM) return m->ndim == 1 ? "BatchNorm1d" : "BatchNorm2d";
    return KIND_NAMES[m->kind];
}

static const char *where(const char *path) { return path[0] ? path : "(the model itself)"; }

/* A Lua error without a position: load_learner puts these behind its own prefix. */
__attribute__((format(printf, 2, 3))) static int raise(lua_State *L, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return lua_error(L);
}

/* ---------------------------------------------------------------- describe */

static void set_int(lua_State *L, const char *k, int64_t v) {
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static void set_num(lua_State *L, const char *k, double v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v) {
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

static void set_pair(lua_State *L, const char *k, const int64_t p[2]) {
    lua_createtable(L, 2, 0);
    lua_pushinteger(L, (lua_Integer)p[0]);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, (lua_Integer)p[1]);
    lua_rawseti(L, -2, 2);
    lua_setfield(L, -2, k);
}

/* Sets the fields of m's kind (its constructor's arguments) in the table on top. */
static void set_kind_fields(lua_State *L, ftm_module *m) {
    switch (m->kind) {
    case FTM_SEQUENTIAL:
    case FTM_BASICBLOCK:
    case FTM_BOTTLENECK:
        if (strcmp(m->type, kind_name(m)) != 0) {
            lua_pushstring(L, m->type);
            lua_setfield(L, -2, "type");
        }
        break;
    case FTM_CONV2D:
        set_int(L, "in_channels", m->in);
        set_int(L, "out_channels", m->out);
        set_pair(L, "kernel_size", m->kernel);
        set_pair(L, "stride", m->stride);
        set_pair(L, "padding", m->padding);
        set_pair(L, "dilation", m->dilation);
        set_int(L, "groups", m->groups);
        set_bool(L, "bias", m->params[1].t != NULL);
        break;
    case FTM_BATCHNORM:
        set_int(L, "num_features", m->in);
        set_num(L, "eps", m->eps);
        set_num(L, "momentum", m->momentum);
        break;
    case FTM_RELU: set_bool(L, "inplace", m->inplace); break;
    case FTM_MAXPOOL2D:
        set_pair(L, "kernel_size", m->kernel);
        set_pair(L, "stride", m->stride);
        set_pair(L, "padding", m->padding);
        set_bool(L, "ceil_mode", m->ceil_mode);
        break;
    case FTM_ADAPTIVE_AVGPOOL2D:
    case FTM_ADAPTIVE_MAXPOOL2D:
    case FTM_ADAPTIVE_CONCATPOOL2D:
        set_pair(L, "output_size", m->size);
        set_bool(L, "pair", m->size_is_pair);
        break;
    case FTM_FLATTEN:
        set_int(L, "start_dim", m->start_dim >= 0 ? m->start_dim + 1 : m->start_dim);
        set_int(L, "end_dim", m->end_dim >= 0 ? m->end_dim + 1 : m->end_dim);
        break;
    case FTM_DROPOUT: set_num(L, "p", m->p); break;
    case FTM_LINEAR:
        set_int(L, "in_features", m->in);
        set_int(L, "out_features", m->out);
        set_bool(L, "bias", m->params[1].t != NULL);
        break;
    default: break;
    }
}

static void describe(lua_State *L, ftm_module *m, char *path, int seen, int depth);

/* Sets children = {{name, node}, ...} in m's node on top; a child met before in the walk is
 * {same = its first path}. */
static void describe_children(lua_State *L, ftm_module *m, char *path, int seen, int depth) {
    lua_createtable(L, m->nchildren, 0);
    size_t len = strlen(path);
    for (int i = 0; i < m->nchildren; i++) {
        ftm_module *c = m->children[i].m;
        lua_createtable(L, 2, 0);
        lua_pushstring(L, m->children[i].name);
        lua_rawseti(L, -2, 1);
        if (lua_rawgetp(L, seen, c) == LUA_TSTRING) { /* shared: refer to the first place */
            lua_newtable(L);
            lua_insert(L, -2);
            lua_setfield(L, -2, "same");
        } else {
            lua_pop(L, 1);
            snprintf(path + len, FTM_PATH_MAX - len, "%s%s", len ? "." : "", m->children[i].name);
            describe(L, c, path, seen, depth + 1);
            path[len] = '\0';
        }
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "children");
}

/* Pushes the description of m (at path) on the stack. seen: a table {module -> path}. */
static void describe(lua_State *L, ftm_module *m, char *path, int seen, int depth) {
    if (depth > MAX_DEPTH) raise(L, "describe: the tree is deeper than %d", MAX_DEPTH);
    luaL_checkstack(L, 8, "describe");
    if (m->kind == FTM_LUA)
        raise(L,
              "describe: %s%s%s is a Lua-defined %s (ft.nn.Module): its forward is Lua code, "
              "which a description cannot hold",
              path[0] ? "module '" : "the model", path, path[0] ? "'" : "", m->type);
    if (m->kind < 0 || m->kind >= FTM_NKINDS || !KIND_NAMES[m->kind])
        raise(L, "describe: module '%s' (%s) is of an unknown kind", where(path), m->type);
    lua_pushstring(L, path);
    lua_rawsetp(L, seen, m);
    lua_newtable(L);
    lua_pushstring(L, kind_name(m));
    lua_setfield(L, -2, "kind");
    set_kind_fields(L, m);
    if (m->split) {
        lua_pushstring(L, m->split);
        lua_setfield(L, -2, "split");
    }
    if (m->nchildren > 0) describe_children(L, m, path, seen, depth);
}

/* desc = m:describe() */
int ftl_m_describe(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    lua_settop(L, 1);
    lua_newtable(L); /* 2: seen */
    char path[FTM_PATH_MAX] = "";
    describe(L, m, path, 2, 0);
    return 1;
}

/* ---------------------------------------------------------------- from_description */

typedef struct {
    lua_State *L;
    int built; /* stack index: {path -> module userdata} */
    int desc;  /* stack index of the node being read */
    const char *path;
} reader;

__attribute__((format(printf, 2, 3))) static int bad(reader *r, const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return raise(r->L, "from_description: node '%s': %s", where(r->path), msg);
}

/* Pushes desc[k]; returns its type. */
static int get(reader *r, const char *k) { return lua_getfield(r->L, r->desc, k); }

static int64_t need_int(reader *r, const char *k) {
    get(r, k);
    int ok;
    lua_Integer v = lua_tointegerx(r->L, -1, &ok);
    if (!ok || lua_type(r->L, -1) != LUA_TNUMBER) bad(r, "'%s' must be an integer%s", k, "");
    lua_pop(r->L, 1);
    return v;
}

static double need_num(reader *r, const char *k) {
    if (get(r, k) != LUA_TNUMBER) bad(r, "'%s' must be a number%s", k, "");
    double v = lua_tonumber(r->L, -1);
    lua_pop(r->L, 1);
    return v;
}

static int need_bool(reader *r, const char *k) {
    if (get(r, k) != LUA_TBOOLEAN) bad(r, "'%s' must be true or false%s", k, "");
    int v = lua_toboolean(r->L, -1);
    lua_pop(r->L, 1);
    return v;
}

static void need_pair(reader *r, const char *k, int64_t out[2]) {
    lua_State *L = r->L;
    if (get(r, k) != LUA_TTABLE || lua_rawlen(L, -1) != 2)
        bad(r, "'%s' must be a pair {h, w}%s", k, "");
    for (int i = 0; i < 2; i++) {
        int ok;
        lua_rawgeti(L, -1, i + 1);
        out[i] = lua_tointegerx(L, -1, &ok);
        if (!ok || lua_type(L, -1) != LUA_TNUMBER)
            bad(r, "'%s' must be a pair of integers%s", k, "");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static ftm_kind parse_kind(reader *r, const char *kind, int *ndim) {
    *ndim = 0;
    if (strcmp(kind, "BatchNorm1d") == 0) *ndim = 1;
    if (strcmp(kind, "BatchNorm2d") == 0) *ndim = 2;
    if (*ndim) return FTM_BATCHNORM;
    for (int k = 0; k < FTM_NKINDS; k++)
        if (k != FTM_BATCHNORM && k != FTM_LUA && KIND_NAMES[k] && strcmp(KIND_NAMES[k], kind) == 0)
            return (ftm_kind)k;
    if (strcmp(kind, "Module") == 0)
        bad(r,
            "kind '%s'%s is a Lua-defined module, whose forward no description holds; build it in "
            "Lua and load the weights into it",
            kind, "");
    bad(r, "unknown kind '%s'%s (a description from a newer ftlua?)", kind, "");
    return FTM_NKINDS;
}

static int is_container(ftm_kind k) {
    return k == FTM_SEQUENTIAL || k == FTM_BASICBLOCK || k == FTM_BOTTLENECK ||
           k == FTM_ADAPTIVE_CONCATPOOL2D;
}

/* The module of the node at r->desc, without its children and split. NULL: see ft_last_error. */
static ftm_module *build_node(reader *r, ftm_kind kind, int ndim) {
    int64_t k[2], s[2], p[2], d[2];
    switch (kind) {
    case FTM_SEQUENTIAL:
    case FTM_BASICBLOCK:
    case FTM_BOTTLENECK: {
        const char *type = KIND_NAMES[kind];
        if (get(r, "type") != LUA_TNIL) {
            if (lua_type(r->L, -1) != LUA_TSTRING || lua_rawlen(r->L, -1) == 0 ||
                lua_rawlen(r->L, -1) >= FTM_NAME_MAX)
                bad(r, "'%s' must be a name of 1 to 63 bytes%s", "type", "");
            type = lua_tostring(r->L, -1);
        }
        ftm_module *m = ftm_new(kind, type); /* copies type */
        lua_pop(r->L, 1);
        return m;
    }
    case FTM_CONV2D: {
        int64_t in = need_int(r, "in_channels"), out = need_int(r, "out_channels");
        need_pair(r, "kernel_size", k);
        need_pair(r, "stride", s);
        need_pair(r, "padding", p);
        need_pair(r, "dilation", d);
        int64_t groups = need_int(r, "groups");
        return ftm_conv2d(in, out, k, s, p, d, groups, need_bool(r, "bias"));
    }
    case FTM_BATCHNORM: {
        int64_t n = need_int(r, "num_features");
        double eps = need_num(r, "eps"), momentum = need_num(r, "momentum");
        if (!(eps > 0) || !(momentum >= 0 && momentum <= 1)) {
            ft_set_last_error("%s: eps must be positive and momentum in [0, 1]", "BatchNorm");
            return NULL;
        }
        return ftm_batchnorm(ndim, n, eps, momentum);
    }
    case FTM_RELU: return ftm_relu(need_bool(r, "inplace"));
    case FTM_MAXPOOL2D:
        need_pair(r, "kernel_size", k);
        need_pair(r, "stride", s);
        need_pair(r, "padding", p);
        return ftm_maxpool2d(k, s, p, need_bool(r, "ceil_mode"));
    case FTM_ADAPTIVE_AVGPOOL2D:
    case FTM_ADAPTIVE_MAXPOOL2D:
    case FTM_ADAPTIVE_CONCATPOOL2D: {
        need_pair(r, "output_size", k);
        int pair = need_bool(r, "pair");
        if (kind != FTM_ADAPTIVE_CONCATPOOL2D) return ftm_adaptive_pool2d(kind, k, pair);
        if (k[0] < 1 || k[1] < 1) {
            ft_set_last_error("%s: output size must be positive", "AdaptiveConcatPool2d");
            return NULL;
        }
        ftm_module *m = ftm_new(kind, "AdaptiveConcatPool2d"); /* children ap, mp follow */
        if (m) {
            memcpy(m->size, k, sizeof m->size);
            m->size_is_pair = pair;
        }
        return m;
    }
    case FTM_FLATTEN: {
        int64_t a = need_int(r, "start_dim"), b = need_int(r, "end_dim");
        if (a == 0 || b == 0 || a < -64 || a > 64 || b < -64 || b > 64) {
            ft_set_last_error("%s: dims are 1-based or negative", "Flatten");
            return NULL;
        }
        return ftm_flatten(a > 0 ? (int)a - 1 : (int)a, b > 0 ? (int)b - 1 : (int)b);
    }
    case FTM_DROPOUT: return ftm_dropout(need_num(r, "p"));
    case FTM_LINEAR: {
        int64_t in = need_int(r, "in_features"), out = need_int(r, "out_features");
        return ftm_linear(in, out, need_bool(r, "bias"));
    }
    default: ft_set_last_error("cannot build a %s", KIND_NAMES[kind]); return NULL;
    }
}

/* The children a layer's C forward runs by name. */
static const char *missing_child(ftm_module *m) {
    static const char *const basic[] = {"conv1", "bn1", "relu", "conv2", "bn2", NULL};
    static const char *const bottle[] = {"conv1", "bn1",   "relu", "conv2",
                                         "bn2",   "conv3", "bn3",  NULL};
    static const char *const concat[] = {"ap", "mp", NULL};
    const char *const *need = m->kind == FTM_BASICBLOCK              ? basic
                              : m->kind == FTM_BOTTLENECK            ? bottle
                              : m->kind == FTM_ADAPTIVE_CONCATPOOL2D ? concat
                                                                     : NULL;
    for (int i = 0; need && need[i]; i++)
        if (ftm_child_index(m, need[i]) < 0) return need[i];
    return NULL;
}

static void from_desc(lua_State *L, int built, int idx, char *path, int depth);

/* Builds the children listed in the node r->desc and adds them to m. The list is on top. */
static void read_children(reader *r, ftm_module *m, ftm_kind kind, char *path, int depth) {
    lua_State *L = r->L;
    if (lua_type(L, -1) != LUA_TTABLE)
        bad(r, "'%s' must be a list of {name, node}%s", "children", "");
    if (!is_container(kind) && lua_rawlen(L, -1) > 0)
        bad(r, "a %s has no children, but the description gives some%s", KIND_NAMES[kind], "");
    int list = lua_gettop(L);
    size_t len = strlen(path);
    for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, list); i++) {
        if (lua_rawgeti(L, list, i) != LUA_TTABLE || lua_rawlen(L, -1) != 2 ||
            lua_rawgeti(L, -1, 1) != LUA_TSTRING)
            bad(r, "child %s must be {name, node}%s", lua_pushfstring(L, "%d", (int)i), "");
        const char *name = lua_tostring(L, -1);
        if (!name[0] || strchr(name, '.') || strlen(name) >= FTM_NAME_MAX)
            bad(r, "child name '%s'%s must be 1 to 63 bytes without '.'", name, "");
        if (len + 1 + strlen(name) >= FTM_PATH_MAX)
            bad(r, "the path of child '%s' is too long%s", name, "");
        snprintf(path + len, FTM_PATH_MAX - len, "%s%s", len ? "." : "", name);
        lua_rawgeti(L, -2, 2);
        from_desc(L, r->built, -1, path, depth + 1);
        ftm_module *c = ftl_check_module(L, -1);
        if (ftm_add_child(m, name, c) != 0) {
            char err[600];
            snprintf(err, sizeof err, "%s", ft_last_error());
            path[len] = '\0';
            bad(r, "%s%s", err, "");
        }
        path[len] = '\0';
        lua_settop(L, list);
    }
}

/* Sets m's parameter groups from the node's split "a,b;c" (on top), whose every path must be
 * a submodule. */
static void read_split(reader *r, ftm_module *m) {
    lua_State *L = r->L;
    if (lua_type(L, -1) != LUA_TSTRING) bad(r, "'%s' must be a string%s", "split", "");
    const char *s = lua_tostring(L, -1);
    while (*s) {
        char part[FTM_PATH_MAX];
        size_t n = strcspn(s, ",;");
        if (n == 0 || n >= sizeof part)
            bad(r, "'%s' has an empty or too long entry%s", "split", "");
        memcpy(part, s, n);
        part[n] = '\0';
        if (!ftm_find(m, part)) bad(r, "'split' names '%s', which is not a submodule%s", part, "");
        s += n;
        if (*s) s++;
    }
    char *copy = strdup(lua_tostring(L, -1));
    if (!copy) luaL_error(L, "from_description: out of memory");
    m->split = copy;
}

/* Pushes the module userdata built from the description at index idx (path: its place). */
static void from_desc(lua_State *L, int built, int idx, char *path, int depth) {
    if (depth > MAX_DEPTH) raise(L, "from_description: the tree is deeper than %d", MAX_DEPTH);
    luaL_checkstack(L, 10, "from_description");
    idx = lua_absindex(L, idx);
    reader r = {L, built, idx, path};
    if (!lua_istable(L, idx)) bad(&r, "expected a table, got a %s%s", luaL_typename(L, idx), "");
    if (get(&r, "same") != LUA_TNIL) { /* a module shared with an earlier place */
        if (lua_type(L, -1) != LUA_TSTRING) bad(&r, "'%s' must be a path%s", "same", "");
        lua_pushvalue(L, -1);
        if (lua_rawget(L, built) == LUA_TNIL)
            bad(&r, "'same' refers to '%s'%s, which comes nowhere before it", lua_tostring(L, -2),
                "");
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 1);
    if (get(&r, "kind") != LUA_TSTRING) bad(&r, "'%s' must be a string%s", "kind", "");
    int ndim;
    ftm_kind kind = parse_kind(&r, lua_tostring(L, -1), &ndim);
    lua_pop(L, 1);
    void *ud = ftl_push_closed_module(L); /* owns the module from here on */
    ftm_module *m = build_node(&r, kind, ndim);
    if (!m) {
        char err[600];
        snprintf(err, sizeof err, "%s", ft_last_error());
        bad(&r, "%s%s", err, "");
    }
    ftl_adopt_module(L, ud, m);
    int self = lua_gettop(L);
    if (get(&r, "children") != LUA_TNIL) read_children(&r, m, kind, path, depth);
    lua_settop(L, self);
    const char *gone = missing_child(m);
    if (gone) bad(&r, "a %s needs a child '%s'", m->type, gone);
    if (get(&r, "split") != LUA_TNIL) read_split(&r, m);
    lua_settop(L, self);
    lua_pushstring(L, path);
    lua_pushvalue(L, self);
    lua_rawset(L, built);
}

/* ft.nn.from_description(desc) -> module */
int ftl_nn_from_description(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_newtable(L); /* 2: built */
    char path[FTM_PATH_MAX] = "";
    from_desc(L, 2, 1, path, 0);
    return 1;
}
