/* tensor_io.c: T.save / T.load, safetensors files. io/safetensors.c does the format; this
 * file only moves tensors across the Lua boundary.
 *
 *   T.save(path, {name = tensor, ...} [, {key = "value", ...}])
 *   local tensors, metadata = T.load(path)
 *
 * T.save writes atomically (a temporary file, fsync, rename). Tensors are laid out largest
 * element size first, then by name, as the reference writer does, so every tensor's data is
 * aligned to its element size within the file and the output does not depend on table order.
 * T.load returns CPU tensors and the "__metadata__" strings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/st_tensors.h"
#include "ftlua.h"
#include "io/safetensors.h"

#define ST_BOX_MT "ftlua.SafetensorsFile"

/* ---------------------------------------------------------------- T.save */

/* A string key at the top of a lua_next loop, checked without converting it in place (which
 * would confuse lua_next). Names with NUL bytes cannot be stored: the format's names are C
 * strings to every reader we care about. */
static const char *check_key(lua_State *L, const char *what) {
    if (lua_type(L, -2) != LUA_TSTRING)
        luaL_error(L, "T.save: %s must be strings, got a %s key", what, luaL_typename(L, -2));
    size_t len;
    const char *k = lua_tolstring(L, -2, &len);
    if (strlen(k) != len) luaL_error(L, "T.save: %s must not contain NUL bytes", what);
    return k;
}

int ftl_tensor_save(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int has_meta = !lua_isnoneornil(L, 3);
    if (has_meta) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);

    /* Pass 1: check every key and value, count them. Errors here hold no C resources. */
    int n = 0, nmeta = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        const char *name = check_key(L, "tensor names");
        ftl_tensor *ud = luaL_testudata(L, -1, FTL_TENSOR_MT);
        if (!ud)
            luaL_error(L, "T.save: value for '%s' is not a tensor (got %s)", name,
                       luaL_typename(L, -1));
        if (!ud->h) luaL_error(L, "T.save: tensor '%s' has been freed", name);
        if (ft_dim(ud->h) > FT_MAX_DIMS)
            luaL_error(L, "T.save: tensor '%s' has %d dims (at most %d)", name, ft_dim(ud->h),
                       FT_MAX_DIMS);
        n++;
        lua_pop(L, 1);
    }
    if (has_meta) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            const char *key = check_key(L, "metadata keys");
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "T.save: metadata value for '%s' must be a string (got %s)", key,
                           luaL_typename(L, -1));
            nmeta++;
            lua_pop(L, 1);
        }
    }

    /* Pass 2: fill arrays in a userdata, so a Lua error cannot leak them. The strings they
     * point to stay alive in the argument tables until we return. */
    st_named_tensor *items =
        lua_newuserdatauv(L, (size_t)n * sizeof *items + (size_t)nmeta * sizeof(st_kv) + 1, 0);
    st_kv *meta = (st_kv *)(items + n);
    int k = 0;
    lua_pushnil(L);
    while (lua_next(L, 2) && k < n) {
        items[k].name = lua_tostring(L, -2);
        items[k].t = ftl_to_tensor(L, -1);
        k++;
        lua_pop(L, 1);
    }
    k = 0;
    if (has_meta) {
        lua_pushnil(L);
        while (lua_next(L, 3) && k < nmeta) {
            meta[k].key = lua_tostring(L, -2);
            meta[k].value = lua_tostring(L, -1);
            k++;
            lua_pop(L, 1);
        }
    }

    char err[1024];
    if (st_write_tensors(path, items, n, 1, meta, nmeta, err, sizeof err) != 0)
        return luaL_error(L, "T.save: %s", err); /* it freed all it had */
    return 0;
}

/* ---------------------------------------------------------------- T.load */

typedef struct {
    st_file *f;
} st_box;

static int st_box_close(lua_State *L) {
    st_box *b = luaL_checkudata(L, 1, ST_BOX_MT);
    free_st_file(b->f);
    b->f = NULL;
    return 0;
}

int ftl_tensor_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    /* The parsed file lives in a to-be-closed box: any Lua error below (out of memory in
     * ftl_push_tensor, a failed copy) unmaps it on the way out. */
    st_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->f = NULL;
    static const luaL_Reg box_meta[] = {
        {"__close", st_box_close}, {"__gc", st_box_close}, {NULL, NULL}};
    ftl_new_class(L, ST_BOX_MT, NULL, box_meta);
    luaL_setmetatable(L, ST_BOX_MT);
    lua_toclose(L, 2);

    char err[1024];
    box->f = new_st_file_from_path(path, err, sizeof err);
    if (!box->f) return luaL_error(L, "T.load: %s", err);
    const st_file *f = box->f;

    lua_createtable(L, 0, f->n); /* 3: name -> tensor */
    for (int i = 0; i < f->n; i++) {
        const st_entry *e = &f->entries[i];
        ft_tensor *t = NULL;
        if (ft_from_data(e->data, e->dtype, e->shape, e->ndim, &t) != FT_OK) {
            snprintf(err, sizeof err, "T.load: %s: tensor '%.200s': %s", path, e->name,
                     ft_last_error());
            return luaL_error(L, "%s", err);
        }
        ftl_push_tensor(L, t);
        lua_setfield(L, 3, e->name);
    }
    lua_createtable(L, 0, f->nmeta); /* 4: metadata */
    for (int i = 0; i < f->nmeta; i++) {
        lua_pushstring(L, f->meta[i].value);
        lua_setfield(L, 4, f->meta[i].key);
    }
    return 2; /* returning closes the box below the results */
}
