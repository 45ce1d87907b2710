/* data.c: the `data` Lua module (ft.data; its functions are also merged into ft.vision), entry
 * file.
 *
 * This file holds the Lua side of the C data pipeline: datasets and loaders as userdata, batch
 * iteration, the standalone augmentation kernel, image loading and the show_batch picture. The
 * rest lives in items.c (get_image_files, RandomSplitter), idx.c (MNIST IDX files), grid.c (the
 * PNG grid), dataset.c (items, the scan, the cache) and loader.c (threads, batches), both
 * without Lua, and lua/ftlua/data_vision.lua (fastai's API: labellers, splitters, Resize,
 * aug_transforms, DataBlock, ImageDataLoaders), which luaopen_ftlua_data runs with this
 * module's table to extend it.
 *
 * Labels: class indices are 1-based in Lua, as every ftlua index; the C loader keeps them 0-based
 * for the C training loop (ftd_loader_next), and this file adds 1 when a batch reaches Lua.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/args.h"
#include "base/hooks.h"
#include "base/lua_class.h"
#include "data/augment.h"
#include "data/data.h"
#include "data/image.h"

#ifdef FT_WITH_CUDA
#include "data/augment_cuda.h"
#endif

typedef struct {
    ftd_dataset *ds;
    size_t counted; /* bytes reported to the GC pacing (base/memory.c): cache + pixels */
} dataset_ud;

typedef struct {
    ftd_loader *l;
    int64_t next_epoch; /* what batches() without an argument runs next */
    int64_t run;        /* counts epoch starts: an iterator of an older run yields nothing */
} loader_ud;

/* ---------------------------------------------------------------- options */

/* Option k of the table at t holding 3 numbers ({0.485, 0.456, 0.406}) into out; returns 0 when
 * it is absent. Messages as base/args.h's readers. */
static int opt_triple(lua_State *L, int t, const char *fn, const char *k, float out[3]) {
    if (lua_isnoneornil(L, t) || lua_getfield(L, t, k) == LUA_TNIL) {
        if (!lua_isnoneornil(L, t)) lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1) || luaL_len(L, -1) != 3) {
        const char *got = ftl_push_described(L, -1);
        luaL_error(L, "%s: option '%s' must be a table of 3 numbers, got %s", fn, k, got);
    }
    for (int c = 0; c < 3; c++) {
        if (lua_geti(L, -1, c + 1) != LUA_TNUMBER) {
            const char *got = ftl_push_described(L, -1);
            luaL_error(L, "%s: option '%s' must be a table of 3 numbers, got %s at [%d]", fn, k,
                       got, c + 1);
        }
        out[c] = (float)lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 1;
}

/* The keys of an aug_transforms table (lua/ftlua/data_vision.lua's D.aug_transforms). */
#define AUG_KEYS                                                                                   \
    "kind", "size", "do_flip", "max_rotate", "min_zoom", "max_zoom", "max_warp", "max_lighting",   \
        "p_affine", "p_lighting", "min_scale", "max_scale", "ratio_lo", "ratio_hi",                \
        "crop_per_image"

/* aug_transforms' settings from the table at t (missing fields keep fastai's defaults); fn names
 * the user's function in messages. */
static ftd_aug_config check_aug_config(lua_State *L, int t, const char *fn) {
    ftd_aug_config c = ftd_aug_default_config();
    c.do_flip = ftl_opt_boolean(L, t, fn, "do_flip", c.do_flip);
    c.max_rotate = ftl_opt_number(L, t, fn, "max_rotate", c.max_rotate);
    c.min_zoom = ftl_opt_number(L, t, fn, "min_zoom", c.min_zoom);
    c.max_zoom = ftl_opt_number(L, t, fn, "max_zoom", c.max_zoom);
    c.max_warp = ftl_opt_number(L, t, fn, "max_warp", c.max_warp);
    c.max_lighting = ftl_opt_number(L, t, fn, "max_lighting", c.max_lighting);
    c.p_affine = ftl_opt_number(L, t, fn, "p_affine", c.p_affine);
    c.p_lighting = ftl_opt_number(L, t, fn, "p_lighting", c.p_lighting);
    c.min_scale = ftl_opt_number(L, t, fn, "min_scale", c.min_scale);
    c.max_scale = ftl_opt_number(L, t, fn, "max_scale", c.max_scale);
    c.ratio_lo = ftl_opt_number(L, t, fn, "ratio_lo", c.ratio_lo);
    c.ratio_hi = ftl_opt_number(L, t, fn, "ratio_hi", c.ratio_hi);
    c.crop_per_image = ftl_opt_boolean(L, t, fn, "crop_per_image", c.crop_per_image);
    if (!(c.max_lighting >= 0 && c.max_lighting < 1))
        luaL_error(L, "aug_transforms: max_lighting must be in [0, 1)");
    if (!(c.min_zoom > 0 && c.max_zoom >= c.min_zoom))
        luaL_error(L, "aug_transforms: need 0 < min_zoom <= max_zoom");
    if (!(c.min_scale > 0 && c.max_scale >= c.min_scale))
        luaL_error(L, "aug_transforms: need 0 < min_scale <= max_scale");
    if (!(c.ratio_lo > 0 && c.ratio_hi >= c.ratio_lo))
        luaL_error(L, "aug_transforms: need 0 < ratio_lo <= ratio_hi");
    return c;
}

static uint64_t random_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    static uint64_t counter;
    return (uint64_t)ts.tv_nsec * 6364136223846793005ULL ^ (uint64_t)ts.tv_sec ^ ++counter << 32;
}

static size_t default_cache_bytes(void) { /* a quarter of the RAM */
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && size > 0 ? (size_t)pages * (size_t)size / 4 : (size_t)1 << 30;
}

/* ---------------------------------------------------------------- datasets */

static dataset_ud *check_dataset(lua_State *L, int idx) {
    dataset_ud *u = luaL_checkudata(L, idx, FTL_DATASET_MT);
    if (!u->ds) luaL_argerror(L, idx, "dataset is closed");
    return u;
}

static int dataset_gc(lua_State *L) {
    dataset_ud *u = luaL_checkudata(L, 1, FTL_DATASET_MT);
    ftd_dataset_release(u->ds); /* loaders may still hold it; their bytes go with this count */
    u->ds = NULL;
    ftl_mem_sub(u->counted);
    u->counted = 0;
    return 0;
}

/* The dataset's options (resize_w, resize_h and method come from Resize), for fn. */
static ftd_dataset_config check_dataset_opts(lua_State *L, int t, const char *fn) {
    static const char *const known[] = {"num_workers", "cache_mb", "resize_w",
                                        "resize_h",    "method",   NULL};
    static const char *const methods[] = {"crop", "squish", "pad", "pad_zeros", NULL};
    static const int method_of[] = {FTL_RESIZE_CROP, FTL_RESIZE_SQUISH, FTL_RESIZE_PAD,
                                    FTL_RESIZE_PAD_ZEROS};
    ftl_check_options(L, t, fn, known);
    ftd_dataset_config c = {0};
    c.nworkers = (int)ftl_opt_integer(L, t, fn, "num_workers", ftd_num_cores());
    if (c.nworkers < 1) c.nworkers = 1;
    lua_Integer mb = ftl_opt_integer(L, t, fn, "cache_mb", -1);
    c.cache_bytes = mb < 0 ? default_cache_bytes() : (size_t)mb << 20;
    c.resize_w = (int)ftl_opt_integer(L, t, fn, "resize_w", 0);
    c.resize_h = (int)ftl_opt_integer(L, t, fn, "resize_h", 0);
    if (c.resize_w < 0 || c.resize_h < 0 || (c.resize_w == 0) != (c.resize_h == 0))
        luaL_error(L, "Resize: size must be positive");
    c.method = method_of[ftl_opt_enum(L, t, fn, "method", methods, 0)];
    return c;
}

/* new_file_dataset(paths, labels|nil, train_flags|nil, opts) -> dataset, bad
 * Decodes every file once (threads), caches what fits, and returns the list of bad items as
 * {{index, message}, ...} (1-based, in order). labels are 1-based class indices. */
static int d_new_file_dataset(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    int64_t n = (int64_t)luaL_len(L, 1);
    ftd_dataset_config cfg = check_dataset_opts(L, 4, "new_file_dataset");
    const char **paths = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *paths, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        if (!lua_isstring(L, -1))
            return luaL_error(L, "dataset: item %d is not a path", (int)i + 1);
        paths[i] = lua_tostring(L, -1); /* the table keeps the string alive */
        lua_pop(L, 1);
    }
    int32_t *labels = NULL;
    if (!lua_isnil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        labels = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *labels, 0);
        for (int64_t i = 0; i < n; i++) {
            lua_geti(L, 2, i + 1);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            labels[i] = ok && v >= 1 && v <= INT32_MAX ? (int32_t)(v - 1) : -1;
            lua_pop(L, 1);
        }
    }
    uint8_t *train = NULL;
    if (!lua_isnil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        train = lua_newuserdatauv(L, (size_t)(n ? n : 1), 0);
        for (int64_t i = 0; i < n; i++) {
            lua_geti(L, 3, i + 1);
            train[i] = (uint8_t)lua_toboolean(L, -1);
            lua_pop(L, 1);
        }
    }
    dataset_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->ds = NULL;
    u->counted = 0;
    luaL_setmetatable(L, FTL_DATASET_MT);
    int ud_idx = lua_gettop(L);
    u->ds = ftd_dataset_new_files(paths, labels, train, n, &cfg);
    if (!u->ds) return luaL_error(L, "dataset: out of memory");
    char err[1024];
    if (ftd_dataset_scan(u->ds, err, sizeof err)) return luaL_error(L, "%s", err);
    u->counted = ftd_dataset_memory(u->ds); /* Lua's GC cannot see C memory: tell the pacer */
    ftl_mem_add(L, u->counted);
    lua_newtable(L);
    int nbad = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *e = ftd_dataset_item_error(u->ds, i);
        if (!e) continue;
        lua_createtable(L, 2, 0);
        lua_pushinteger(L, i + 1);
        lua_rawseti(L, -2, 1);
        lua_pushstring(L, e);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, ++nbad);
    }
    lua_pushvalue(L, ud_idx);
    lua_insert(L, -2);
    return 2;
}

/* new_array_dataset(x, y|nil, opts) -> dataset. x: uint8 [N,H,W] or [N,H,W,C] (C = 1 or 3);
 * y: integer tensor [N] of 1-based class indices. Copied. */
static int d_new_array_dataset(lua_State *L) {
    ft_tensor *x = ftl_check_tensor(L, 1);
    ft_tensor *y = lua_isnoneornil(L, 2) ? NULL : ftl_check_tensor(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    ftd_dataset_config cfg = check_dataset_opts(L, 3, "new_array_dataset");
    int nd = ft_dim(x);
    if (ft_get_dtype(x) != FT_UINT8 || (nd != 3 && nd != 4) ||
        (nd == 4 && ft_size(x, 3) != 1 && ft_size(x, 3) != 3))
        return luaL_error(
            L, "dataset: images must be a uint8 tensor [N,H,W] or [N,H,W,C] with C = 1 or 3");
    int64_t n = ft_size(x, 0);
    int h = (int)ft_size(x, 1), w = (int)ft_size(x, 2), c = nd == 4 ? (int)ft_size(x, 3) : 1;
    size_t bytes = (size_t)ft_numel(x);
    uint8_t *px = lua_newuserdatauv(L, bytes ? bytes : 1, 0);
    ftl_check(L, ft_copy_to_buffer(x, px, bytes), "dataset");
    int32_t *labels = NULL;
    if (y) {
        if (ft_dim(y) != 1 || ft_size(y, 0) != n)
            return luaL_error(L, "dataset: labels must be a 1-D tensor of %d entries", (int)n);
        double *v = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(double), 0);
        ftl_check(L, ft_copy_to_doubles(y, v, n), "dataset");
        labels = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *labels, 0);
        for (int64_t i = 0; i < n; i++) labels[i] = v[i] >= 1 ? (int32_t)v[i] - 1 : -1;
    }
    dataset_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->ds = NULL;
    u->counted = 0;
    luaL_setmetatable(L, FTL_DATASET_MT);
    u->ds = ftd_dataset_new_array(px, n, h, w, c, labels, NULL, &cfg);
    if (!u->ds) return luaL_error(L, "dataset: out of memory");
    u->counted = ftd_dataset_memory(u->ds);
    ftl_mem_add(L, u->counted);
    return 1;
}

static int ds_len(lua_State *L) {
    lua_pushinteger(L, ftd_dataset_len(check_dataset(L, 1)->ds));
    return 1;
}

/* ds:info() -> {n=, item_w=, item_h=, cached_bytes=} */
static int ds_info(lua_State *L) {
    ftd_dataset *ds = check_dataset(L, 1)->ds;
    int w, h;
    ftd_dataset_item_size(ds, &w, &h);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, ftd_dataset_len(ds));
    lua_setfield(L, -2, "n");
    lua_pushinteger(L, w);
    lua_setfield(L, -2, "item_w");
    lua_pushinteger(L, h);
    lua_setfield(L, -2, "item_h");
    lua_pushinteger(L, (lua_Integer)ftd_dataset_cached_bytes(ds));
    lua_setfield(L, -2, "cached_bytes");
    return 1;
}

/* ds:item(i [, train, px, py]) -> uint8 [H,W,3]: item i after the item transform (centre crop
 * unless train with pcts px, py). For tests and for looking at data. */
static int ds_item(lua_State *L) {
    ftd_dataset *ds = check_dataset(L, 1)->ds;
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_argcheck(L, i >= 1 && i <= ftd_dataset_len(ds), 2, "item index out of range");
    int train = lua_toboolean(L, 3);
    double px = luaL_optnumber(L, 4, 0.5), py = luaL_optnumber(L, 5, 0.5);
    int w, h;
    ftd_dataset_item_size(ds, &w, &h);
    if (w <= 0) return luaL_error(L, "dataset: no item could be decoded");
    uint8_t *buf = lua_newuserdatauv(L, (size_t)w * h * 3, 0);
    char err[1024];
    if (ftd_dataset_get(ds, i - 1, train, px, py, buf, err, sizeof err))
        return luaL_error(L, "%s", err);
    int64_t shape[3] = {h, w, 3};
    ft_tensor *t = NULL;
    ftl_check(L, ft_from_data(buf, FT_UINT8, shape, 3, &t), "item");
    ftl_push_tensor(L, t);
    return 1;
}

/* ---------------------------------------------------------------- loaders */

static loader_ud *check_loader_ud(lua_State *L, int idx) {
    loader_ud *u = luaL_checkudata(L, idx, FTL_LOADER_MT);
    if (!u->l) luaL_argerror(L, idx, "loader is closed");
    return u;
}

ftd_loader *ftl_check_loader(lua_State *L, int idx) {
    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "_loader");
        loader_ud *u = luaL_testudata(L, -1, FTL_LOADER_MT);
        lua_pop(L, 1); /* the table still holds it */
        if (!u || !u->l) luaL_argerror(L, idx, "not a DataLoader (no open _loader)");
        return u->l;
    }
    return check_loader_ud(L, idx)->l;
}

static int loader_gc(lua_State *L) {
    loader_ud *u = luaL_checkudata(L, 1, FTL_LOADER_MT);
    ftd_loader_free(u->l); /* stops and joins the workers */
    u->l = NULL;
    return 0;
}

/* __close: the for loop of batches() ends (break, error or done): stop the workers. */
static int loader_close_epoch(lua_State *L) {
    loader_ud *u = luaL_checkudata(L, 1, FTL_LOADER_MT);
    if (u->l) ftd_loader_stop(u->l);
    return 0;
}

/* A loader's options (the table at t). */
static ftd_loader_config check_loader_opts(lua_State *L, int t) {
    static const char *const known[] = {
        "bs",  "shuffle",  "drop_last", "train",       "seed",     "aug",      "size", "mean",
        "std", "channels", "device",    "num_workers", "prefetch", "on_error", NULL};
    static const char *const on_error[] = {"skip", "error", NULL};
    static const char *const aug_known[] = {AUG_KEYS, NULL};
    const char *fn = "loader";
    ftl_check_options(L, t, fn, known);
    ftd_loader_config c = ftd_loader_default_config();
    c.bs = (int)ftl_opt_integer(L, t, fn, "bs", 64);
    c.shuffle = ftl_opt_boolean(L, t, fn, "shuffle", 0);
    c.drop_last = ftl_opt_boolean(L, t, fn, "drop_last", 0);
    c.train = ftl_opt_boolean(L, t, fn, "train", 0);
    int has_seed = lua_getfield(L, t, "seed") != LUA_TNIL;
    lua_pop(L, 1);
    c.seed = has_seed ? (uint64_t)ftl_opt_integer(L, t, fn, "seed", 0) : random_seed();
    if (lua_getfield(L, t, "aug") == LUA_TTABLE) {
        ftl_check_options(L, -1, "aug_transforms", aug_known);
        c.augment = 1;
        c.aug = check_aug_config(L, lua_gettop(L), "aug_transforms");
    }
    lua_pop(L, 1);
    c.size = (int)ftl_opt_integer(L, t, fn, "size", 0);
    if (c.size < 0 || (c.augment && ftl_opt_integer(L, t, fn, "size", 1) == 0))
        luaL_error(L, "aug_transforms: size must be positive");
    c.normalize = opt_triple(L, t, fn, "mean", c.mean);
    if (opt_triple(L, t, fn, "std", c.std) != c.normalize)
        luaL_error(L, "normalize: give both mean and std");
    c.channels = (int)ftl_opt_integer(L, t, fn, "channels", 3);
    lua_getfield(L, t, "device");
    c.device = ftl_check_device(L, -1, ft_default_device());
    lua_pop(L, 1);
    c.nworkers = (int)ftl_opt_integer(L, t, fn, "num_workers", ftd_num_cores());
    c.prefetch = (int)ftl_opt_integer(L, t, fn, "prefetch", 0);
    c.skip_errors = ftl_opt_enum(L, t, fn, "on_error", on_error, 0) == 0;
    return c;
}

/* ds:loader(items, opts) -> loader. items: 1-based dataset indices. */
static int ds_loader(lua_State *L) {
    dataset_ud *d = check_dataset(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    ftd_loader_config c = check_loader_opts(L, 3);
    int64_t n = (int64_t)luaL_len(L, 2);
    int64_t *items = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *items, 0);
    for (int64_t k = 0; k < n; k++) {
        lua_geti(L, 2, k + 1);
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        if (!ok) return luaL_error(L, "loader: item %d is not an index", (int)k + 1);
        items[k] = v - 1;
        lua_pop(L, 1);
    }
    loader_ud *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->l = NULL;
    u->next_epoch = 0;
    u->run = 0;
    luaL_setmetatable(L, FTL_LOADER_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* keep the dataset userdata alive too (the C ref suffices,
                                    but ds:info() through a loader is handy) */
    char err[1024];
    u->l = ftd_loader_new(d->ds, items, n, &c, err, sizeof err);
    if (!u->l) return luaL_error(L, "%s", err);
    return 1;
}

static int loader_len(lua_State *L) {
    lua_pushinteger(L, ftd_loader_len(check_loader_ud(L, 1)->l));
    return 1;
}

/* Push x and y (1-based labels) of a batch the caller owns; Lua owns them afterwards. */
static int push_batch(lua_State *L, ft_tensor *x, ft_tensor *y) {
    if (y) ftl_push_tensor(L, y); /* y first so that pushing x cannot leak it... */
    ftl_push_tensor(L, x);
    if (!y) {
        lua_pushnil(L);
        return 2;
    }
    lua_insert(L, -2);                                       /* x, y */
    ftl_check(L, ft_binary_scalar_(FT_ADD, y, 1), "labels"); /* 0-based -> 1-based */
    return 2;
}

static int next_batch(lua_State *L, loader_ud *u) {
    ft_tensor *x = NULL, *y = NULL;
    char err[1024];
    int rc = ftd_loader_next(u->l, &x, &y, err, sizeof err);
    if (rc < 0) return luaL_error(L, "%s", err);
    if (rc == 0) {
        lua_pushnil(L);
        return 1;
    }
    return push_batch(L, x, y);
}

static int batches_iter(lua_State *L) {
    loader_ud *u = check_loader_ud(L, lua_upvalueindex(1));
    if (lua_tointeger(L, lua_upvalueindex(2)) != u->run) { /* another epoch started since */
        lua_pushnil(L);
        return 1;
    }
    return next_batch(L, u);
}

/* for x, y in dl:batches([epoch]) do ... end -- one epoch, in order. Without an argument the
 * epochs count 0, 1, 2, ...; the loop's closing value stops the workers on break or error. */
static int loader_batches(lua_State *L) {
    loader_ud *u = check_loader_ud(L, 1);
    int64_t epoch = lua_isnoneornil(L, 2) ? u->next_epoch : luaL_checkinteger(L, 2);
    u->next_epoch = epoch + 1;
    char err[1024];
    if (ftd_loader_start(u->l, epoch, -1, err, sizeof err)) return luaL_error(L, "%s", err);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, ++u->run);
    lua_pushcclosure(L, batches_iter, 2);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushvalue(L, 1); /* closing value */
    return 4;
}

/* dl:one_batch([epoch]) -> x, y: the first batch of the epoch batches() runs next (or of the
 * given one); it does not advance the epoch count. */
static int loader_one_batch(lua_State *L) {
    loader_ud *u = check_loader_ud(L, 1);
    int64_t epoch = lua_isnoneornil(L, 2) ? u->next_epoch : luaL_checkinteger(L, 2);
    if (ftd_loader_len(u->l) == 0)
        return luaL_error(
            L, "one_batch: the loader has no batch (fewer items than bs with drop_last?)");
    char err[1024];
    u->run++;
    if (ftd_loader_start(u->l, epoch, 1, err, sizeof err)) return luaL_error(L, "%s", err);
    ft_tensor *x = NULL, *y = NULL;
    int rc = ftd_loader_next(u->l, &x, &y, err, sizeof err);
    ftd_loader_stop(u->l);
    if (rc < 0) return luaL_error(L, "%s", err);
    if (rc == 0) return luaL_error(L, "one_batch: no batch");
    return push_batch(L, x, y);
}

static int loader_stop(lua_State *L) {
    ftd_loader_stop(check_loader_ud(L, 1)->l);
    return 0;
}

/* dl:set_normalize(mean, std) or dl:set_normalize(nil): from the next epoch. */
static int loader_set_normalize(lua_State *L) {
    loader_ud *u = check_loader_ud(L, 1);
    float m[3] = {0, 0, 0}, s[3] = {1, 1, 1};
    int on = !lua_isnoneornil(L, 2);
    if (on) {
        lua_settop(L, 3);
        lua_createtable(L, 0, 2);
        lua_pushvalue(L, 2);
        lua_setfield(L, -2, "mean");
        lua_pushvalue(L, 3);
        lua_setfield(L, -2, "std");
        if (!opt_triple(L, 4, "set_normalize", "mean", m) ||
            !opt_triple(L, 4, "set_normalize", "std", s))
            return luaL_error(L, "set_normalize: give mean and std, 3 numbers each");
        for (int c = 0; c < 3; c++)
            if (s[c] == 0) return luaL_error(L, "set_normalize: std must not be 0");
    }
    ftd_loader_stop(u->l);
    ftd_loader_set_normalize(u->l, on, m, s);
    return 0;
}

/* dl:info() -> {n=, bs=, batches=, epoch=, size=, channels=, device=, train=, mean=, std=} */
static int loader_info(lua_State *L) {
    loader_ud *u = check_loader_ud(L, 1);
    const ftd_loader_config *c = ftd_loader_config_of(u->l);
    lua_createtable(L, 0, 12);
    lua_pushinteger(L, ftd_loader_items(u->l));
    lua_setfield(L, -2, "n");
    lua_pushinteger(L, c->bs);
    lua_setfield(L, -2, "bs");
    lua_pushinteger(L, ftd_loader_len(u->l));
    lua_setfield(L, -2, "batches");
    lua_pushinteger(L, u->next_epoch);
    lua_setfield(L, -2, "next_epoch");
    lua_pushinteger(L, c->channels);
    lua_setfield(L, -2, "channels");
    lua_pushinteger(L, c->nworkers);
    lua_setfield(L, -2, "num_workers");
    ftl_push_device(L, c->device);
    lua_setfield(L, -2, "device");
    lua_pushboolean(L, c->train);
    lua_setfield(L, -2, "train");
    lua_pushboolean(L, c->shuffle);
    lua_setfield(L, -2, "shuffle");
    lua_pushinteger(L, (lua_Integer)c->seed);
    lua_setfield(L, -2, "seed");
    if (c->normalize) {
        const float *v[2] = {c->mean, c->std};
        for (int k = 0; k < 2; k++) {
            lua_createtable(L, 3, 0);
            for (int ch = 0; ch < 3; ch++) {
                lua_pushnumber(L, v[k][ch]);
                lua_rawseti(L, -2, ch + 1);
            }
            lua_setfield(L, -2, k ? "std" : "mean");
        }
    }
    return 1;
}

/* ---------------------------------------------------------------- standalone pieces */

/* load_image(path) -> uint8 [H,W,3]: PIL's Image.open(path).convert("RGB"). */
static int d_load_image(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    char err[1024];
    ftd_image *im = ftd_image_new_from_file(path, 0, err, sizeof err);
    if (!im) return luaL_error(L, "load_image: %s", err);
    int64_t shape[3] = {im->h, im->w, 3};
    ft_tensor *t = NULL;
    ft_status st = ft_from_data(im->rgb, FT_UINT8, shape, 3, &t);
    ftd_image_free(im);
    ftl_check(L, st, "load_image");
    ftl_push_tensor(L, t);
    return 1;
}

/* augment(x, opts) -> float32 [N,3,S,S]: the fused batch augmentation on a uint8 [N,H,W,3]
 * batch, on the CPU or (opts.device = "cuda", builds with the CUDA twin) the GPU. opts: size,
 * seed and stream (the draws), train (default true; false: valid params), mean/std, and
 * aug_transforms' settings. The same opts give the same draws on either device. */
static int d_augment(lua_State *L) {
    ft_tensor *x = ftl_check_tensor(L, 1);
    static const char *const known[] = {AUG_KEYS, "train", "seed",   "stream",
                                        "mean",   "std",   "device", NULL};
    const char *fn = "augment";
    if (lua_isnoneornil(L, 2))
        lua_newtable(L);
    else
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    ftl_check_options(L, 2, fn, known);
    if (ft_get_dtype(x) != FT_UINT8 || ft_dim(x) != 4 || ft_size(x, 3) != 3)
        return luaL_error(L, "augment: expected a uint8 batch [N,H,W,3]");
    int n = (int)ft_size(x, 0), h = (int)ft_size(x, 1), w = (int)ft_size(x, 2);
    int S = (int)ftl_opt_integer(L, 2, fn, "size", h == w ? h : 0);
    if (S <= 0) return luaL_error(L, "augment: size must be positive");
    ftd_aug_config cfg = check_aug_config(L, 2, fn);
    float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
    int norm = opt_triple(L, 2, fn, "mean", mean);
    if (opt_triple(L, 2, fn, "std", std) != norm)
        return luaL_error(L, "augment: give both mean and std");
    lua_getfield(L, 2, "device");
    int device = ftl_check_device(L, -1, FT_CPU);
    lua_pop(L, 1);
    size_t nbytes = (size_t)ft_numel(x);
    uint8_t *src = lua_newuserdatauv(L, nbytes ? nbytes : 1, 0);
    ftl_check(L, ft_copy_to_buffer(x, src, nbytes), "augment");
    ftd_aug_params *p = lua_newuserdatauv(L, sizeof *p * (size_t)(n ? n : 1), 0);
    if (ftl_opt_boolean(L, 2, fn, "train", 1)) {
        ftd_aug_rng rng;
        uint64_t seed = (uint64_t)ftl_opt_integer(L, 2, fn, "seed", 0);
        ftd_aug_rng_seed(&rng, seed, (uint64_t)ftl_opt_integer(L, 2, fn, "stream", 0));
        ftd_aug_draw(&rng, &cfg, n, h, w, p);
    } else {
        for (int i = 0; i < n; i++) p[i] = ftd_aug_valid_params(&cfg, h, w);
    }
    int64_t shape[4] = {n, 3, S, S};
    ft_tensor *out = NULL;
    if (device == FT_CPU) {
        float *dst = lua_newuserdatauv(L, sizeof(float) * (size_t)n * 3 * S * S + 1, 0);
        if (ftd_aug_batch(src, n, h, w, p, S, mean, std, dst, ftd_num_cores()))
            return luaL_error(L, "augment: bad sizes or crop");
        ftl_check(L, ft_from_data(dst, FT_FLOAT32, shape, 4, &out), "augment");
        ftl_push_tensor(L, out);
        return 1;
    }
#ifdef FT_WITH_CUDA
    ftl_check(L, ft_empty(shape, 4, FT_FLOAT32, device, &out), "augment");
    ftl_push_tensor(L, out); /* Lua owns it before anything can fail */
    char err[1024];
    ftd_aug_cuda *ws = ftd_aug_cuda_new(device, err, sizeof err);
    if (!ws) return luaL_error(L, "augment: %s", err);
    int rc =
        ftd_aug_cuda_batch(ws, src, n, h, w, p, S, mean, std, ft_data_ptr(out), err, sizeof err);
    ftd_aug_cuda_free(ws);
    if (rc) return luaL_error(L, "augment: %s", err);
    return 1;
#else
    return luaL_error(
        L, "augment: this build has no CUDA kernel (build with a CUDA libtorch and nvcc)");
#endif
}

/* write_grid(x, labels|nil, path [, {ncols=, mean=, std=}]) -> width, height
 * x: float [N,C,H,W] (normalised with mean/std when given; C = 1 or 3) on any device, or uint8
 * [N,H,W,3]. Writes a PNG grid with each label under its image. */
static int d_write_grid(lua_State *L) {
    ft_tensor *x = ftl_check_tensor(L, 1);
    const char *path = luaL_checkstring(L, 3);
    static const char *const known[] = {"ncols", "mean", "std", NULL};
    const char *fn = "write_grid";
    if (lua_isnoneornil(L, 4)) lua_newtable(L);
    lua_settop(L, 4);
    ftl_check_options(L, 4, fn, known);
    int nd = ft_dim(x);
    int is_u8 = ft_get_dtype(x) == FT_UINT8;
    if (nd != 4 || (is_u8 && ft_size(x, 3) != 3) ||
        (!is_u8 && ft_size(x, 1) != 1 && ft_size(x, 1) != 3))
        return luaL_error(L,
                          "show_batch: expected float [N,C,H,W] (C = 1 or 3) or uint8 [N,H,W,3]");
    int n = (int)ft_size(x, 0);
    int h = (int)(is_u8 ? ft_size(x, 1) : ft_size(x, 2)),
        w = (int)(is_u8 ? ft_size(x, 2) : ft_size(x, 3));
    size_t npix = (size_t)h * w;
    uint8_t *rgb = lua_newuserdatauv(L, (size_t)n * npix * 3 + 1, 0);
    if (is_u8) {
        ftl_check(L, ft_copy_to_buffer(x, rgb, (size_t)n * npix * 3), "show_batch");
    } else {
        int C = (int)ft_size(x, 1);
        float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
        int norm = opt_triple(L, 4, fn, "mean", mean);
        if (opt_triple(L, 4, fn, "std", std) != norm)
            return luaL_error(L, "show_batch: give both mean and std");
        ft_tensor *f = NULL;
        ftl_check(L, ft_to(x, FT_FLOAT32, FT_CPU, &f), "show_batch");
        ftl_push_tensor(L, f);
        float *v = lua_newuserdatauv(L, sizeof(float) * (size_t)ft_numel(f) + 1, 0);
        ftl_check(L, ft_copy_to_buffer(f, v, sizeof(float) * (size_t)ft_numel(f)), "show_batch");
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) {
                const float *pl = v + ((size_t)i * C + (C == 3 ? c : 0)) * npix;
                int cc = C == 3 ? c : 0;
                for (size_t k = 0; k < npix; k++) {
                    float t = pl[k] * std[cc] + mean[cc]; /* undo Normalize */
                    t = t < 0 ? 0 : t > 1 ? 1 : t;
                    rgb[((size_t)i * npix + k) * 3 + c] = (uint8_t)(t * 255.0f + 0.5f);
                }
            }
    }
    const char **labels = NULL;
    if (!lua_isnil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        labels = lua_newuserdatauv(L, sizeof *labels * (size_t)(n ? n : 1), 0);
        for (int i = 0; i < n; i++) {
            lua_geti(L, 2, i + 1);
            labels[i] = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL; /* kept by the table */
            lua_pop(L, 1);
        }
    }
    int ncols = (int)ftl_opt_integer(L, 4, fn, "ncols", 0), W = 0, H = 0;
    char err[1024];
    if (ftd_grid_write_png(path, rgb, n, h, w, labels, ncols, &W, &H, err, sizeof err))
        return luaL_error(L, "%s", err);
    ftl_figure_written(L, path);
    lua_pushinteger(L, W);
    lua_pushinteger(L, H);
    return 2;
}

static int d_num_cores(lua_State *L) {
    lua_pushinteger(L, ftd_num_cores());
    return 1;
}

/* ---------------------------------------------------------------- the module */

static const luaL_Reg dataset_methods[] = {
    {"len", ds_len}, {"info", ds_info}, {"item", ds_item}, {"loader", ds_loader}, {NULL, NULL},
};

static const luaL_Reg loader_methods[] = {
    {"batches", loader_batches},
    {"one_batch", loader_one_batch},
    {"stop", loader_stop},
    {"close", loader_gc},
    {"set_normalize", loader_set_normalize},
    {"info", loader_info},
    {NULL, NULL},
};

static const luaL_Reg dataset_meta[] = {{"__gc", dataset_gc}, {"__len", ds_len}, {NULL, NULL}};

static const luaL_Reg loader_meta[] = {
    {"__gc", loader_gc}, {"__close", loader_close_epoch}, {"__len", loader_len}, {NULL, NULL}};

static const luaL_Reg module_funcs[] = {
    {"get_image_files", ftl_data_get_image_files},
    {"random_split", ftl_data_random_split},
    {"read_idx", ftl_data_read_idx},
    {"load_image", d_load_image},
    {"new_file_dataset", d_new_file_dataset},
    {"new_array_dataset", d_new_array_dataset},
    {"augment", d_augment},
    {"write_grid", d_write_grid},
    {"num_cores", d_num_cores},
    {NULL, NULL},
};

int luaopen_ftlua_data(lua_State *L) {
    ftl_new_class(L, FTL_DATASET_MT, dataset_methods, dataset_meta);
    ftl_new_class(L, FTL_LOADER_MT, loader_methods, loader_meta);

    luaL_newlib(L, module_funcs);
#ifdef FT_WITH_CUDA
    lua_pushboolean(L, 1);
#else
    lua_pushboolean(L, 0);
#endif
    lua_setfield(L, -2, "cuda_kernel"); /* true when augment/loaders can run the CUDA twin */

    /* fastai's API in Lua (lua/ftlua/data_vision.lua) extends this table. */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    if (lua_getfield(L, -1, "ftlua.data_vision") == LUA_TFUNCTION) {
        lua_pushvalue(L, -3);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 1;
}
