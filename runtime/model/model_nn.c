/* model_nn.c: the ft.nn constructors (Conv2d, BatchNorm, ..., Sequential, Module), nn.init,
 * nn.autocast, and the C part of the zoo (priv.resnet), over the C core of module.h.
 *
 * Each constructor reads its arguments, pushes a closed module userdata (model.c), then builds
 * the C module and gives it to that userdata: an error at any point leaves nothing unowned.
 * Options tables go through base/args.h (one message form); sizes, which may be n or {h, w},
 * through the pair readers below.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "model/model.h"

#define AUTOCAST_MT "ftlua.AutocastGuard"

/* ---------------------------------------------------------------- arguments */

/* Reads a size at idx: n (square) or {h, w}. 0 when it is neither. */
static int read_pair(lua_State *L, int idx, int64_t out[2], int *is_pair) {
    int ok;
    idx = lua_absindex(L, idx);
    if (is_pair) *is_pair = 0;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        out[0] = out[1] = lua_tointegerx(L, idx, &ok);
        return ok;
    }
    if (lua_istable(L, idx) && luaL_len(L, idx) == 2) {
        int ok2;
        lua_geti(L, idx, 1);
        lua_geti(L, idx, 2);
        out[0] = lua_tointegerx(L, -2, &ok);
        out[1] = lua_tointegerx(L, -1, &ok2);
        lua_pop(L, 2);
        if (is_pair) *is_pair = 1;
        return ok && ok2;
    }
    return 0;
}

/* A positional size argument: "kernel_size must be an integer or {h, w}, got table". */
static void check_pair(lua_State *L, int idx, const char *what, int64_t out[2], int *is_pair) {
    if (!read_pair(L, idx, out, is_pair))
        luaL_error(L, "%s must be an integer or {h, w}, got %s", what, luaL_typename(L, idx));
}

/* A size option of the options table at t (already checked by ftl_check_options); out holds
 * the default and keeps it when the option is absent. Messages in args.h's form. */
static void opt_pair(lua_State *L, int t, const char *fn, const char *key, int64_t out[2]) {
    if (!lua_istable(L, t)) return;
    int64_t v[2];
    if (lua_getfield(L, t, key) != LUA_TNIL) {
        if (!read_pair(L, -1, v, NULL))
            luaL_error(L, "%s: option '%s' must be an integer or {h, w}, got %s", fn, key,
                       ftl_push_described(L, -1));
        out[0] = v[0], out[1] = v[1];
    }
    lua_pop(L, 1);
}

static int64_t check_count(lua_State *L, int idx, const char *what) {
    lua_Integer n = luaL_checkinteger(L, idx);
    if (n < 1) luaL_error(L, "%s must be positive, got %d", what, (int)n);
    return n;
}

/* ---------------------------------------------------------------- layers */

/* Conv2d(in, out, kernel [, {stride=1, padding=0, dilation=1, groups=1, bias=true}]) */
static int nn_conv2d(lua_State *L) {
    static const char *const known[] = {"stride", "padding", "dilation", "groups", "bias", NULL};
    int64_t in = check_count(L, 1, "in_channels"), out = check_count(L, 2, "out_channels");
    int64_t k[2], s[2] = {1, 1}, p[2] = {0, 0}, d[2] = {1, 1};
    check_pair(L, 3, "kernel_size", k, NULL);
    ftl_check_options(L, 4, "Conv2d", known);
    opt_pair(L, 4, "Conv2d", "stride", s);
    opt_pair(L, 4, "Conv2d", "padding", p);
    opt_pair(L, 4, "Conv2d", "dilation", d);
    int64_t groups = ftl_opt_integer(L, 4, "Conv2d", "groups", 1);
    int bias = ftl_opt_boolean(L, 4, "Conv2d", "bias", 1);
    void *ud = ftl_push_closed_module(L);
    ftl_adopt_module(L, ud, ftm_conv2d(in, out, k, s, p, d, groups, bias));
    return 1;
}

/* BatchNorm1d(n [, {eps=1e-5, momentum=0.1}]), BatchNorm2d likewise. */
static int batchnorm(lua_State *L, int ndim) {
    static const char *const known[] = {"eps", "momentum", NULL};
    const char *fn = ndim == 1 ? "BatchNorm1d" : "BatchNorm2d";
    int64_t n = check_count(L, 1, "num_features");
    ftl_check_options(L, 2, fn, known);
    double eps = ftl_opt_number(L, 2, fn, "eps", 1e-5);
    double momentum = ftl_opt_number(L, 2, fn, "momentum", 0.1);
    void *ud = ftl_push_closed_module(L);
    ftl_adopt_module(L, ud, ftm_batchnorm(ndim, n, eps, momentum));
    return 1;
}
static int nn_batchnorm1d(lua_State *L) { return batchnorm(L, 1); }
static int nn_batchnorm2d(lua_State *L) { return batchnorm(L, 2); }

/* ReLU([inplace]) or ReLU{inplace=true} */
static int nn_relu(lua_State *L) {
    static const char *const known[] = {"inplace", NULL};
    int inplace = lua_toboolean(L, 1);
    if (lua_istable(L, 1)) {
        ftl_check_options(L, 1, "ReLU", known);
        inplace = ftl_opt_boolean(L, 1, "ReLU", "inplace", 0);
    }
    void *ud = ftl_push_closed_module(L);
    ftl_adopt_module(L, ud, ftm_relu(inplace));
    return 1;
}

/* MaxPool2d(kernel [, {stride=kernel, padding=0, ceil_mode=false}]) */
static int nn_maxpool2d(lua_State *L) {
    static const char *const known[] = {"stride", "padding", "ceil_mode", NULL};
    int64_t k[2], s[2], p[2] = {0, 0};
    check_pair(L, 1, "kernel_size", k, NULL);
    ftl_check_options(L, 2, "MaxPool2d", known);
    memcpy(s, k, sizeof s);
    opt_pair(L, 2, "MaxPool2d", "stride", s);
    opt_pair(L, 2, "MaxPool2d", "padding", p);
    int ceil_mode = ftl_opt_boolean(L, 2, "MaxPool2d", "ceil_mode", 0);
    void *ud = ftl_push_closed_module(L);
    ftl_adopt_module(L, ud, ftm_maxpool2d(k, s, p, ceil_mode));
    return 1;
}

static int adaptive(lua_State *L, ftm_kind kind) {
    int64_t size[2] = {1, 1};
    int is_pair = 0;
    if (kind != FTM_ADAPTIVE_CONCATPOOL2D || !lua_isnoneornil(L, 1))
        check_pair(L, 1, "output_size", size, &is_pair);
    void *ud = ftl_push_closed_module(L);
    ftl_adopt_module(L, ud, ftm_adaptive_pool2d(kind, size, is_pair));
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
    void *ud = ftl_push_closed_module(L);
    ftl_adopt_module(L, ud, ftm_flatten(a > 0 ? (int)a - 1 : (int)a, b > 0 ? (int)b - 1 : (int)b));
    return 1;
}

static int nn_dropout(lua_State *L) {
    double p = luaL_optnumber(L, 1, 0.5);
    void *ud = ftl_push_closed_module(L);
    ftl_adopt_module(L, ud, ftm_dropout(p));
    return 1;
}

/* Linear(in, out [, {bias=true}]) */
static int nn_linear(lua_State *L) {
    static const char *const known[] = {"bias", NULL};
    int64_t in = check_count(L, 1, "in_features"), out = check_count(L, 2, "out_features");
    ftl_check_options(L, 3, "Linear", known);
    int bias = ftl_opt_boolean(L, 3, "Linear", "bias", 1);
    void *ud = ftl_push_closed_module(L);
    ftl_adopt_module(L, ud, ftm_linear(in, out, bias));
    return 1;
}

/* BasicBlock(inplanes, planes [, {stride=1, downsample=module}]), Bottleneck likewise. */
static int block(lua_State *L, int basic) {
    static const char *const known[] = {"stride", "downsample", NULL};
    const char *fn = basic ? "BasicBlock" : "Bottleneck";
    int64_t inplanes = check_count(L, 1, "inplanes"), planes = check_count(L, 2, "planes");
    ftl_check_options(L, 3, fn, known);
    int64_t stride = ftl_opt_integer(L, 3, fn, "stride", 1);
    ftm_module *down = NULL;
    if (lua_istable(L, 3)) {
        if (lua_getfield(L, 3, "downsample") != LUA_TNIL && !(down = ftl_to_module(L, -1)))
            return luaL_error(L, "%s: option 'downsample' must be a module, got %s", fn,
                              ftl_push_described(L, -1));
        lua_pop(L, 1); /* the options table keeps it alive */
    }
    void *ud = ftl_push_closed_module(L);
    ftl_adopt_module(L, ud,
                     basic ? ftm_basic_block(inplanes, planes, stride, down)
                           : ftm_bottleneck(inplanes, planes, stride, down));
    return 1;
}
static int nn_basic_block(lua_State *L) { return block(L, 1); }
static int nn_bottleneck(lua_State *L) { return block(L, 0); }

/* ---------------------------------------------------------------- containers */

/* Sequential{m1, m2, ...}, Sequential(m1, m2, ...) or Sequential{{"name", m1}, ...}.
 * Positional children are named "0", "1", ... as in torch (m[1] is child "0"). */
static int nn_sequential(lua_State *L) {
    int list = lua_istable(L, 1);
    int n = list ? (int)luaL_len(L, 1) : lua_gettop(L);
    void *ud = ftl_push_closed_module(L);
    ftm_module *seq = ftm_new(FTM_SEQUENTIAL, "Sequential");
    ftl_adopt_module(L, ud, seq);
    for (int i = 1; i <= n; i++) {
        if (list)
            lua_geti(L, 1, i);
        else
            lua_pushvalue(L, i);
        char name[FTM_NAME_MAX];
        ftm_module *child = ftl_to_module(L, -1);
        if (child) {
            snprintf(name, sizeof name, "%d", i - 1);
        } else if (lua_istable(L, -1)) {
            lua_geti(L, -1, 1);
            lua_geti(L, -2, 2);
            child = ftl_to_module(L, -1);
            if (lua_type(L, -2) != LUA_TSTRING || !child)
                return luaL_error(L, "Sequential: element %d must be a module or {name, module}",
                                  i);
            snprintf(name, sizeof name, "%s", lua_tostring(L, -2));
            lua_pop(L, 2);
        } else {
            return luaL_error(L, "Sequential: element %d is a %s, expected a module", i,
                              luaL_typename(L, -1));
        }
        if (strchr(name, '.') || !name[0])
            return luaL_error(L, "Sequential: child name '%s' must be non-empty, without '.'",
                              name);
        if (ftm_add_child(seq, name, child) != 0)
            return luaL_error(L, "Sequential: %s", ft_last_error());
        lua_pop(L, 1);
    }
    return 1;
}

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
            if (!nl) {
                len = 0;
                break;
            }
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
    void *ud = ftl_push_closed_module(L); /* def + 1 */
    ftm_module *m = ftm_new(FTM_LUA, type);
    ftl_adopt_module(L, ud, m);
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
        if (ftl_to_module(L, -1))
            names[n++] = (child_pos){lua_tostring(L, -2), SIZE_MAX}; /* anchored by def */
        lua_pop(L, 1);
    }
    definition_order(L, names, n);
    for (int i = 0; i < n; i++) {
        lua_getfield(L, def, names[i].name);
        if (strchr(names[i].name, '.'))
            return luaL_error(L, "Module: child name '%s' has a '.'", names[i].name);
        if (ftm_add_child(m, names[i].name, ftl_to_module(L, -1)) != 0)
            return luaL_error(L, "Module: %s", ft_last_error());
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* names */
    m->lua_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

static int nn_is_module(lua_State *L) {
    lua_pushboolean(L, luaL_testudata(L, 1, FTL_MODULE_MT) != NULL);
    return 1;
}

/* ---------------------------------------------------------------- nn.init, nn.warn */

/* ft.nn.init.kaiming_normal_(t [, {a=0, mode="fan_in", nonlinearity="leaky_relu"}]) */
static int init_kaiming_normal(lua_State *L) {
    static const char *const known[] = {"a", "mode", "nonlinearity", NULL};
    static const char *const modes[] = {"fan_in", "fan_out", NULL};
    static const char *const nonlinearities[] = {"leaky_relu", "relu", NULL};
    const char *fn = "kaiming_normal_";
    ft_tensor *t = ftl_check_tensor(L, 1);
    ftl_check_options(L, 2, fn, known);
    double a = ftl_opt_number(L, 2, fn, "a", 0);
    int fan_in = ftl_opt_enum(L, 2, fn, "mode", modes, 0) == 0;
    int relu = ftl_opt_enum(L, 2, fn, "nonlinearity", nonlinearities, 0) == 1;
    ftl_check(L, ft_kaiming_normal_(t, a, fan_in, relu), "kaiming_normal_");
    lua_settop(L, 1);
    return 1;
}

/* ft.nn.warn(msg): the default warning sink; replace it to capture or silence warnings. */
static int nn_warn(lua_State *L) {
    fprintf(stderr, "ftlua: warning: %s\n", luaL_checkstring(L, 1));
    fflush(stderr);
    return 0;
}

/* ---------------------------------------------------------------- autocast */

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
        static const char *const known[] = {"dtype", "device", NULL};
        ftl_check_options(L, 1, "autocast", known);
        if (lua_getfield(L, 1, "dtype") != LUA_TNIL) dtype = ftl_check_dtype(L, -1);
        if (lua_getfield(L, 1, "device") != LUA_TNIL)
            cuda = ftl_check_device(L, -1, FT_CPU) != FT_CPU;
        lua_pop(L, 2);
    } else if (!lua_isnoneornil(L, 1)) {
        return luaL_typeerror(L, 1, "dtype name or options table");
    }
    if (lua_isnoneornil(L, 2)) {
        autocast_guard *g = lua_newuserdatauv(L, sizeof *g, 0);
        g->active = 0;
        luaL_setmetatable(L, AUTOCAST_MT); /* registered by ftl_push_nn */
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
int ftl_zoo_resnet(lua_State *L) {
    int depth = (int)luaL_checkinteger(L, 1);
    int64_t classes = check_count(L, 2, "num_classes");
    void *ud = ftl_push_closed_module(L);
    ftl_adopt_module(L, ud, ftm_resnet(depth, classes));
    return 1;
}

/* ---------------------------------------------------------------- the ft.nn table */

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

void ftl_push_nn(lua_State *L) {
    static const luaL_Reg guard_meta[] = {
        {"__close", autocast_close},
        {"__gc", autocast_close},
        {NULL, NULL},
    };
    ftl_new_class(L, AUTOCAST_MT, NULL, guard_meta);
    luaL_newlib(L, nn_funcs);
    lua_newtable(L);
    lua_pushcfunction(L, init_kaiming_normal);
    lua_setfield(L, -2, "kaiming_normal_");
    lua_setfield(L, -2, "init");
}
