/* model_state.c: module methods that read or change the tensors as a whole.
 *
 *   sd, names = m:state_dict()               parameters and buffers, sharing storage
 *   missing, unexpected, mismatched = m:load_state_dict(sd [, {strict = true}])
 *   m:to("cuda" | "bfloat16" | {device=, dtype=, memory_format="channels_last"})
 *   groups, names = m:param_groups()         fastai's splitter result (lists of lists)
 *   m:set_param_groups{{"conv1", "layer1"}, {"fc"}}
 *   m:freeze_to(n [, {train_bn = true}]), m:freeze(), m:unfreeze()
 *
 * Every walk here owns no C memory, so its visitors may raise Lua errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

/* ---------------------------------------------------------------- state_dict */

typedef struct {
    lua_State *L;
    int sd, names, n;
} sd_t;

static void sd_visit(void *p, const char *name, ftm_slot *s, ftm_module *owner, int is_buffer) {
    (void)owner, (void)is_buffer;
    sd_t *c = p;
    ft_tensor *d = NULL;
    ftl_check(c->L, ft_detach(s->t, &d), "state_dict");
    ftl_push_tensor(c->L, d);
    lua_setfield(c->L, c->sd, name);
    lua_pushstring(c->L, name);
    lua_rawseti(c->L, c->names, ++c->n);
}

/* sd, names = m:state_dict(): name -> tensor (detached, sharing the module's storage: writing
 * into it writes the model), and the names in torch's order. */
static int m_state_dict(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    lua_newtable(L);
    lua_newtable(L);
    sd_t c = {L, lua_gettop(L) - 1, lua_gettop(L), 0};
    ftm_walk(m, NULL, 1, 1, sd_visit, &c);
    return 2;
}

/* ---------------------------------------------------------------- load_state_dict */

/* What m:load_state_dict builds, as absolute stack indices of tables. */
typedef struct {
    lua_State *L;
    int sd;      /* the argument: name -> tensor */
    int known;   /* {name -> true}: the model's names */
    int missing; /* lists of names; mismatched: "name (checkpoint {..}, model {..})" */
    int unexpected;
    int mismatched;
    int dst, src; /* parallel lists: the handle (light userdata) and the tensor to copy into it */
    int ncopy;
} load_t;

static void push_shape(luaL_Buffer *b, const ft_tensor *t) {
    char num[32];
    luaL_addchar(b, '{');
    for (int d = 0; d < ft_dim(t); d++) {
        snprintf(num, sizeof num, "%s%lld", d ? ", " : "", (long long)ft_size(t, d));
        luaL_addstring(b, num);
    }
    luaL_addchar(b, '}');
}

static int same_shape(const ft_tensor *a, const ft_tensor *b) {
    if (ft_dim(a) != ft_dim(b)) return 0;
    for (int d = 0; d < ft_dim(a); d++)
        if (ft_size(a, d) != ft_size(b, d)) return 0;
    return 1;
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

/* Appends the value on top to list (popping it). */
static void append_top(lua_State *L, int list) {
    lua_rawseti(L, list, (lua_Integer)luaL_len(L, list) + 1);
}

/* Appends "name (checkpoint {2, 3}, model {3, 3})" to the mismatched list. */
static void add_mismatch(load_t *c, const char *name, const ft_tensor *src, const ft_tensor *dst) {
    luaL_Buffer b;
    luaL_buffinit(c->L, &b);
    luaL_addstring(&b, name);
    luaL_addstring(&b, " (checkpoint ");
    push_shape(&b, src);
    luaL_addstring(&b, ", model ");
    push_shape(&b, dst);
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
    append_top(c->L, c->mismatched);
}

/* For each of the model's tensors, in torch's order: remember its name, then sort it into
 * missing, mismatched or to copy. A missing num_batches_tracked is never an error (torch's own
 * old checkpoints lack it). */
static void match_visit(void *p, const char *name, ftm_slot *s, ftm_module *owner, int is_buffer) {
    (void)owner, (void)is_buffer;
    load_t *c = p;
    lua_State *L = c->L;
    lua_pushboolean(L, 1);
    lua_setfield(L, c->known, name);
    lua_getfield(L, c->sd, name);
    if (lua_isnil(L, -1)) {
        if (!ends_with(name, "num_batches_tracked")) {
            lua_pushstring(L, name);
            append_top(L, c->missing);
        }
    } else {
        ft_tensor *src = ftl_to_tensor(L, -1);
        if (!src)
            luaL_error(L, "load_state_dict: '%s' is a %s, expected a tensor", name,
                       luaL_typename(L, -1));
        if (!same_shape(src, s->t)) {
            add_mismatch(c, name, src, s->t);
        } else {
            c->ncopy++;
            lua_pushlightuserdata(L, s->t);
            lua_rawseti(L, c->dst, c->ncopy);
            lua_pushvalue(L, -1);
            lua_rawseti(L, c->src, c->ncopy);
        }
    }
    lua_pop(L, 1);
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of sd the model does not have, sorted so the message does not depend on table
 * order. Each must be a string. */
static void list_unexpected(load_t *c) {
    lua_State *L = c->L;
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, c->sd)) {
        lua_pop(L, 1); /* the value */
        lua_pushvalue(L, -1);
        int known = lua_rawget(L, c->known) != LUA_TNIL;
        lua_pop(L, 1);
        if (known) continue;
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "load_state_dict: keys must be strings, got a %s", luaL_typename(L, -1));
        lua_pushvalue(L, -1);
        lua_rawseti(L, c->unexpected, ++n);
    }
    const char **keys = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n ? n : 1), 0);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, c->unexpected, i + 1);
        keys[i] = lua_tostring(L, -1); /* anchored by sd, whose keys they are */
        lua_pop(L, 1);
    }
    qsort(keys, (size_t)n, sizeof *keys, by_string);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, keys[i]);
        lua_rawseti(L, c->unexpected, i + 1);
    }
    lua_pop(L, 1); /* keys */
}

/* Adds "what: a, b, c" (at most 20 names, then "... and N more") to the message. */
static void add_list(luaL_Buffer *b, lua_State *L, int list, const char *what, int *first) {
    int n = (int)luaL_len(L, list);
    if (n == 0) return;
    char head[96];
    const char *plural = what[strlen(what) - 1] == 'h' ? "es" : "s"; /* mismatches */
    snprintf(head, sizeof head, "%s%d %s%s: ", *first ? "" : "; ", n, what, n == 1 ? "" : plural);
    luaL_addstring(b, head);
    *first = 0;
    for (int i = 1; i <= n && i <= 20; i++) {
        if (i > 1) luaL_addstring(b, ", ");
        lua_rawgeti(L, list, i);
        luaL_addvalue(b);
    }
    if (n > 20) {
        snprintf(head, sizeof head, ", ... and %d more", n - 20);
        luaL_addstring(b, head);
    }
}

/* strict: "load_state_dict: 1 missing key: fc.bias; 2 unexpected keys: ..." */
static int refuse_strict(load_t *c) {
    lua_State *L = c->L;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "load_state_dict: ");
    int first = 1;
    add_list(&b, L, c->missing, "missing key", &first);
    add_list(&b, L, c->unexpected, "unexpected key", &first);
    add_list(&b, L, c->mismatched, "shape mismatch", &first);
    luaL_addstring(&b, " (strict = false loads what matches)");
    luaL_pushresult(&b);
    return lua_error(L);
}

/* Copies each matched source into its parameter or buffer (converting the dtype, keeping the
 * module's device and memory format). In-place copies into leaves that require grad are
 * refused in grad mode, so grad mode is off meanwhile. */
static void copy_matched(load_t *c) {
    lua_State *L = c->L;
    int grad = ft_grad_enabled();
    ft_set_grad_enabled(0);
    for (int i = 1; i <= c->ncopy; i++) {
        lua_rawgeti(L, c->dst, i);
        ft_tensor *dst = lua_touserdata(L, -1);
        lua_rawgeti(L, c->src, i);
        ft_status st = ft_copy_(dst, ftl_to_tensor(L, -1));
        lua_pop(L, 2);
        if (st != FT_OK) {
            ft_set_grad_enabled(grad);
            ftl_check(L, st, "load_state_dict");
        }
    }
    ft_set_grad_enabled(grad);
}

static int new_table(lua_State *L) {
    lua_newtable(L);
    return lua_gettop(L);
}

/* missing, unexpected, mismatched = m:load_state_dict(sd [, {strict = true}])
 * Copies every tensor of sd into the parameter or buffer of the same name. strict (the
 * default) refuses, before copying anything, when a name is missing, unexpected, or has
 * another shape, and says which. strict = false copies what matches and returns the three
 * lists. */
static int m_load_state_dict(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    /* No known-keys check: m:load_state_dict(other:state_dict()) passes the names list too. */
    int strict = ftl_opt_boolean(L, 3, "load_state_dict", "strict", 1);
    lua_settop(L, 2);
    load_t c = {.L = L, .sd = 2};
    c.known = new_table(L);
    c.missing = new_table(L);
    c.unexpected = new_table(L);
    c.mismatched = new_table(L);
    c.dst = new_table(L);
    c.src = new_table(L);
    ftm_walk(m, NULL, 1, 1, match_visit, &c);
    list_unexpected(&c);
    int bad = luaL_len(L, c.missing) + luaL_len(L, c.unexpected) + luaL_len(L, c.mismatched);
    if (strict && bad) return refuse_strict(&c);
    copy_matched(&c);
    lua_pushvalue(L, c.missing);
    lua_pushvalue(L, c.unexpected);
    lua_pushvalue(L, c.mismatched);
    return 3;
}

/* ---------------------------------------------------------------- to() */

typedef struct {
    lua_State *L;
    int dtype, device, format;
} convert_t;

static void convert_visit(void *p, const char *name, ftm_slot *s, ftm_module *owner,
                          int is_buffer) {
    (void)owner, (void)is_buffer;
    convert_t *c = p;
    if (ft_convert_(s->t, c->dtype, c->device, c->format) != FT_OK)
        luaL_error(c->L, "to: %s: %s", name, ft_last_error());
}

static int is_device_name(const char *s) {
    return strcmp(s, "cpu") == 0 || strncmp(s, "cuda", 4) == 0;
}

static int convert(lua_State *L, ftm_module *m, int dtype, int device, int format) {
    convert_t c = {L, dtype, device, format};
    ftm_walk(m, NULL, 1, 1, convert_visit, &c);
    lua_settop(L, 1);
    return 1;
}

/* m:to("cuda"), m:to("bfloat16"), m:to{device=, dtype=, memory_format="channels_last"}.
 * Converts in place and returns m; parameter tensors keep their identity (optimizers holding
 * them see the change). dtype applies to floating-point tensors only, as in torch. */
static int m_to(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    int dtype = -1, device = FT_SAME_DEVICE, format = FT_KEEP_FORMAT;
    if (lua_type(L, 2) == LUA_TSTRING) {
        if (is_device_name(lua_tostring(L, 2)))
            device = ftl_check_device(L, 2, FT_CPU);
        else
            dtype = ftl_check_dtype(L, 2);
    } else {
        static const char *const known[] = {"device", "dtype", "memory_format", NULL};
        static const char *const formats[] = {"channels_last", "contiguous", "contiguous_format",
                                              NULL};
        luaL_checktype(L, 2, LUA_TTABLE);
        ftl_check_options(L, 2, "to", known);
        if (lua_getfield(L, 2, "device") != LUA_TNIL) device = ftl_check_device(L, -1, FT_CPU);
        if (lua_getfield(L, 2, "dtype") != LUA_TNIL) dtype = ftl_check_dtype(L, -1);
        int f = ftl_opt_enum(L, 2, "to", "memory_format", formats, -1);
        if (f >= 0) format = f == 0 ? FT_CHANNELS_LAST : FT_CONTIGUOUS_FORMAT;
    }
    return convert(L, m, dtype, device, format);
}

static int m_to_channels_last(lua_State *L) {
    return convert(L, ftl_check_module(L, 1), -1, FT_SAME_DEVICE, FT_CHANNELS_LAST);
}
static int m_cpu(lua_State *L) { return convert(L, ftl_check_module(L, 1), -1, FT_CPU, 0); }
static int m_cuda(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    lua_Integer n = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, n >= 0, 2, "device index must be >= 0");
    return convert(L, m, -1, (int)n, 0);
}
static int m_float(lua_State *L) {
    return convert(L, ftl_check_module(L, 1), FT_FLOAT32, FT_SAME_DEVICE, 0);
}
static int m_bfloat16(lua_State *L) {
    return convert(L, ftl_check_module(L, 1), FT_BFLOAT16, FT_SAME_DEVICE, 0);
}

/* ---------------------------------------------------------------- parameter groups */

typedef void (*group_fn)(lua_State *L, ftm_module *sub, const char *path, int group, void *ud);

/* ftm_each_group_path (module.c) with the Lua state passed on, and a missing submodule raised
 * as a Lua error. Returns the group count. */
typedef struct {
    lua_State *L;
    group_fn fn;
    void *ud;
} group_call;

static void call_group_fn(ftm_module *sub, const char *path, int group, void *ud) {
    group_call *c = ud;
    if (c->fn) c->fn(c->L, sub, path, group, c->ud);
}

static int each_group_path(lua_State *L, ftm_module *m, group_fn fn, void *ud) {
    char err[512];
    group_call c = {L, fn, ud};
    int ng = ftm_each_group_path(m, call_group_fn, &c, err, sizeof err);
    if (ng < 0) luaL_error(L, "%s", err);
    return ng;
}

typedef struct {
    lua_State *L;
    int groups, names, seen; /* stack indices */
    int group;               /* the current group, 1-based */
} groups_t;

static void group_visit(void *p, const char *name, ftm_slot *s, ftm_module *owner, int is_buffer) {
    (void)owner, (void)is_buffer;
    groups_t *c = p;
    lua_State *L = c->L;
    if (ftl_seen_before(L, c->seen, s->t)) return;
    lua_rawgeti(L, c->groups, c->group);
    ftl_push_param(L, s->t);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    lua_rawgeti(L, c->names, c->group);
    lua_pushstring(L, name);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    lua_pop(L, 2);
}

static void group_path(lua_State *L, ftm_module *sub, const char *path, int group, void *ud) {
    groups_t *c = ud;
    c->group = group + 1;
    for (int t = c->groups; t <= c->names; t++) { /* make groups[g] and names[g] */
        if (lua_rawgeti(L, t, c->group) == LUA_TNIL) {
            lua_newtable(L);
            lua_rawseti(L, t, c->group);
        }
        lua_pop(L, 1);
    }
    ftm_walk(sub, path, 1, 0, group_visit, c);
}

/* groups, names = m:param_groups() -- lists (one per group) of parameter tensors and of
 * their names. Resnets from the zoo and create_cnn_model have fastai's three groups; other
 * models one, unless set with m:set_param_groups. */
static int m_param_groups(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    lua_settop(L, 1);
    lua_newtable(L); /* 2 groups */
    lua_newtable(L); /* 3 names */
    lua_newtable(L); /* 4 seen */
    groups_t c = {L, 2, 3, 4, 0};
    int n = each_group_path(L, m, group_path, &c);
    for (int g = 1; g <= n; g++) /* a group with no parameters is still a group */
        for (int t = 2; t <= 3; t++) {
            if (lua_rawgeti(L, t, g) == LUA_TNIL) {
                lua_newtable(L);
                lua_rawseti(L, t, g);
            }
            lua_pop(L, 1);
        }
    lua_settop(L, 3);
    return 2;
}

/* m:set_param_groups{{"0.0", "0.1"}, {"1"}} -- groups of child paths (nil: one group). */
static int m_set_param_groups(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    if (lua_isnoneornil(L, 2)) {
        free(m->split);
        m->split = NULL;
        lua_settop(L, 1);
        return 1;
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    int ng = (int)luaL_len(L, 2);
    luaL_argcheck(L, ng > 0, 2, "expected a non-empty list of groups");
    luaL_Buffer b;
    lua_settop(L, 2);
    luaL_buffinit(L, &b); /* the buffer sits at 3; values are checked at the top, then added */
    for (int g = 1; g <= ng; g++) {
        lua_geti(L, 2, g);
        if (!lua_istable(L, -1) || luaL_len(L, -1) == 0)
            return luaL_error(L, "set_param_groups: group %d must be a non-empty list of paths", g);
        int np = (int)luaL_len(L, -1);
        lua_pop(L, 1);
        for (int i = 1; i <= np; i++) {
            if (g > 1 || i > 1) luaL_addchar(&b, i == 1 ? ';' : ',');
            lua_geti(L, 2, g);
            lua_geti(L, -1, i);
            const char *path = lua_tostring(L, -1);
            if (lua_type(L, -1) != LUA_TSTRING || strpbrk(path, ",;"))
                return luaL_error(L, "set_param_groups: group %d entry %d must be a child path", g,
                                  i);
            if (!ftm_find(m, path))
                return luaL_error(L, "set_param_groups: %s has no submodule '%s'", m->type, path);
            lua_remove(L, -2);
            luaL_addvalue(&b);
        }
    }
    luaL_pushresult(&b);
    char *split = strdup(lua_tostring(L, -1));
    if (!split) return luaL_error(L, "set_param_groups: out of memory");
    free(m->split);
    m->split = split;
    lua_settop(L, 1);
    return 1;
}

typedef struct {
    lua_State *L;
    int frozen_idx, train_bn, group;
} freeze_t;

static void freeze_visit(void *p, const char *name, ftm_slot *s, ftm_module *owner, int is_buffer) {
    (void)is_buffer;
    freeze_t *c = p;
    int trainable = c->group >= c->frozen_idx || (c->train_bn && owner->kind == FTM_BATCHNORM);
    if (ft_set_requires_grad(s->t, trainable) != FT_OK)
        luaL_error(c->L, "freeze_to: %s: %s", name, ft_last_error());
}

static void freeze_path(lua_State *L, ftm_module *sub, const char *path, int group, void *ud) {
    (void)L;
    freeze_t *c = ud;
    c->group = group;
    ftm_walk(sub, path, 1, 0, freeze_visit, c);
}

/* fastai's freeze_to: the groups before n get requires_grad = false (n < 0 counts from the
 * end), except BatchNorm parameters when train_bn (the default); the others get true. */
static int m_freeze_to(lua_State *L) {
    ftm_module *m = ftl_check_module(L, 1);
    static const char *const known[] = {"train_bn", NULL};
    lua_Integer n = luaL_checkinteger(L, 2);
    ftl_check_options(L, 3, "freeze_to", known);
    int train_bn = ftl_opt_boolean(L, 3, "freeze_to", "train_bn", 1);
    lua_settop(L, 1);
    int ng = each_group_path(L, m, NULL, NULL);
    lua_Integer idx = n >= 0 ? n : ng + n;
    if (idx < 0) idx = 0;
    if (idx >= ng) {
        char msg[128];
        snprintf(msg, sizeof msg, "Freezing %lld groups; model has %d; whole model is frozen.",
                 (long long)idx, ng);
        ftl_model_warn(L, msg);
    }
    freeze_t c = {L, idx > ng ? ng : (int)idx, train_bn, 0};
    each_group_path(L, m, freeze_path, &c);
    lua_settop(L, 1);
    return 1;
}

static int m_freeze(lua_State *L) {
    lua_settop(L, 1);
    lua_pushinteger(L, -1);
    return m_freeze_to(L);
}

static int m_unfreeze(lua_State *L) {
    lua_settop(L, 1);
    lua_pushinteger(L, 0);
    return m_freeze_to(L);
}

static const luaL_Reg state_methods[] = {
    {"state_dict", m_state_dict},
    {"load_state_dict", m_load_state_dict},
    {"to", m_to},
    {"to_channels_last", m_to_channels_last},
    {"cpu", m_cpu},
    {"cuda", m_cuda},
    {"float", m_float},
    {"bfloat16", m_bfloat16},
    {"param_groups", m_param_groups},
    {"set_param_groups", m_set_param_groups},
    {"freeze_to", m_freeze_to},
    {"freeze", m_freeze},
    {"unfreeze", m_unfreeze},
    {NULL, NULL},
};

void ftl_register_state_methods(lua_State *L) { luaL_setfuncs(L, state_methods, 0); }
