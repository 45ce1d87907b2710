/* weights.c: ft.weights, model weights in and out of files, and pretrained weights.
 *
 *   local tensors, names = ft.weights.load(path [, {key = "model"}])  -- .pth or .safetensors
 *   ft.weights.save(path, tensors [, names])                          -- safetensors, atomic
 *   local path = ft.weights.pretrained("resnet34")                    -- cached or downloaded
 *   local path = ft.weights.pretrained{url = URL [, file = NAME] [, sha256 = HEX]}
 *   ft.weights.cache_dir(), ft.weights.sha256(path)
 *
 * The parsers (io/pth.c, io/safetensors.c) and the downloader (weights/download.c) are plain C
 * that report through an error buffer; this file moves their results across the Lua boundary.
 * A parsed file lives in a to-be-closed box while tensors are made, so a Lua error (a bad
 * copy, out of memory) frees it on the way out. See docs/weights.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/args.h"
#include "base/lua_class.h"
#include "base/st_tensors.h"
#include "ftlua.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "weights/download.h"
#include "weights/sha256.h"

#define BOX_MT           "ftlua.WeightsFile"
#define DEFAULT_BASE_URL "https://download.pytorch.org/models/"

/* torchvision's IMAGENET1K_V1 files (the 8 hex digits start each file's sha256). */
static const struct {
    const char *arch, *file;
} PRETRAINED[] = {
    {"resnet18", "resnet18-f37072fd.pth"},   {"resnet34", "resnet34-b627a593.pth"},
    {"resnet50", "resnet50-0676ba61.pth"},   {"resnet101", "resnet101-63fe2227.pth"},
    {"resnet152", "resnet152-394f9c45.pth"},
};
#define N_PRETRAINED ((int)(sizeof PRETRAINED / sizeof PRETRAINED[0]))

/* ---------------------------------------------------------------- the to-be-closed box */

typedef struct {
    pth_file *pth;
    st_file *st;
    uint8_t *scratch; /* gathers one strided view at a time */
    size_t scratch_cap;
} weights_box;

static int box_close(lua_State *L) {
    weights_box *b = luaL_checkudata(L, 1, BOX_MT);
    free_pth_file(b->pth);
    free_st_file(b->st);
    free(b->scratch);
    memset(b, 0, sizeof *b);
    return 0;
}

/* Push an empty box and mark it to-be-closed; it must stay at this stack slot. */
static weights_box *push_box(lua_State *L) {
    weights_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    static const luaL_Reg meta[] = {{"__close", box_close}, {"__gc", box_close}, {NULL, NULL}};
    ftl_new_class(L, BOX_MT, NULL, meta);
    luaL_setmetatable(L, BOX_MT);
    lua_toclose(L, -1);
    return b;
}

/* ---------------------------------------------------------------- load */

enum { FMT_PTH, FMT_SAFETENSORS };

/* Which reader a file needs, from its first bytes: a safetensors file has '{' right after its
 * 8-byte header length; a zip ("PK"), a pickle (0x80, the legacy torch.save stream) or a tar
 * archive go to the checkpoint reader, which knows them all. */
static int sniff(const char *path, int *fmt, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO must not block us */
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(err, errlen, "%s: not a regular file", path);
        return -1;
    }
    uint8_t b[512];
    ssize_t n;
    do n = read(fd, b, sizeof b);
    while (n < 0 && errno == EINTR);
    int read_errno = errno;
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(read_errno));
        return -1;
    }
    int zip = n >= 2 && b[0] == 'P' && b[1] == 'K';
    int tar = n >= 262 && memcmp(b + 257, "ustar", 5) == 0;
    if (!zip && n >= 9 && b[8] == '{') {
        *fmt = FMT_SAFETENSORS;
    } else if (n == 0 || zip || tar || b[0] == 0x80) {
        *fmt = FMT_PTH; /* the checkpoint reader says "empty file" for n == 0 */
    } else {
        snprintf(err, errlen,
                 "%s: neither a PyTorch checkpoint (zip or legacy torch.save) nor a "
                 "safetensors file",
                 path);
        return -1;
    }
    return 0;
}

static int is_contiguous(const pth_entry *e) {
    int64_t want = 1;
    for (int d = e->ndim - 1; d >= 0; d--) {
        if (e->shape[d] != 1 && e->stride[d] != want) return 0;
        want *= e->shape[d];
    }
    return 1;
}

/* Copy the elements of a strided view into dst in C order, one innermost row at a time. The
 * checkpoint reader checked that every element the view reaches lies inside its storage. The
 * source may be unaligned, so everything moves with memcpy. */
static void gather_view(const pth_entry *e, size_t es, uint8_t *dst) {
    int nd = e->ndim;
    int64_t inner = e->shape[nd - 1], istride = e->stride[nd - 1];
    int64_t rows = e->numel / inner, idx[FT_MAX_DIMS] = {0};
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0;
        for (int d = 0; d < nd - 1; d++) off += idx[d] * e->stride[d];
        const uint8_t *row = e->data + (size_t)off * es;
        if (istride == 1) {
            memcpy(dst, row, (size_t)inner * es);
        } else {
            for (int64_t j = 0; j < inner; j++)
                memcpy(dst + (size_t)j * es, row + (size_t)(j * istride) * es, es);
        }
        dst += (size_t)inner * es;
        for (int d = nd - 2; d >= 0; d--) { /* odometer over the outer dims */
            if (++idx[d] < e->shape[d]) break;
            idx[d] = 0;
        }
    }
}

/* Every view becomes its own contiguous tensor, so views that overlap (tied names, stride 0)
 * cost more than the file. Refuse files that would need far more than their own size: a
 * hostile file must not turn a few bytes into a huge allocation. */
static int check_budget(const pth_file *f, char *err, size_t errlen) {
    size_t budget =
        ((size_t)64 << 20) + (f->map_len < SIZE_MAX / 8 ? 4 * f->map_len : SIZE_MAX / 2);
    size_t total = 0;
    for (int i = 0; i < f->n_entries; i++) {
        const pth_entry *e = &f->entries[i];
        size_t es = ft_dtype_size(e->dtype);
        if (es == 0) continue; /* the reader hands out known dtypes only */
        if ((uint64_t)e->numel > (SIZE_MAX - total) / es ||
            total + (size_t)e->numel * es > budget) {
            snprintf(err, errlen,
                     "its tensors would take more than 4 times the file's size (at "
                     "'%.200s'): views that repeat their storage are not loaded",
                     e->name);
            return -1;
        }
        total += (size_t)e->numel * es;
    }
    return 0;
}

/* Make tensor i of the checkpoint; on failure return NULL with the message in err. */
static ft_tensor *pth_tensor(weights_box *box, int i, char *err, size_t errlen) {
    const pth_entry *e = &box->pth->entries[i];
    size_t es = ft_dtype_size(e->dtype), nbytes = (size_t)e->numel * es;
    const void *src = e->data;
    if (e->numel > 0 && !is_contiguous(e)) {
        if (nbytes > box->scratch_cap) {
            uint8_t *p = realloc(box->scratch, nbytes);
            if (!p) {
                snprintf(err, errlen, "out of memory for tensor '%.200s' (%zu bytes)", e->name,
                         nbytes);
                return NULL;
            }
            box->scratch = p;
            box->scratch_cap = nbytes;
        }
        gather_view(e, es, box->scratch);
        src = box->scratch;
    }
    ft_tensor *t = NULL;
    if (ft_from_data(src, e->dtype, e->shape, e->ndim, &t) != FT_OK) {
        snprintf(err, errlen, "tensor '%.200s': %s", e->name, ft_last_error());
        return NULL;
    }
    return t;
}

/* The `key` option; the string stays alive in the options table at 2. NULL when absent. */
static const char *load_key(lua_State *L) {
    static const char *const known[] = {"key", NULL};
    ftl_check_options(L, 2, "weights.load", known);
    return ftl_opt_string(L, 2, "weights.load", "key", NULL);
}

static int w_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lua_settop(L, 2);
    const char *key = load_key(L);
    lua_settop(L, 3); /* slot 3 stays free: the box goes to 4 */
    char err[1024];
    int fmt;
    if (sniff(path, &fmt, err, sizeof err) != 0) return luaL_error(L, "weights.load: %s", err);
    if (fmt == FMT_SAFETENSORS && key && *key)
        return luaL_error(L,
                          "weights.load: %s is a safetensors file; the key option applies to "
                          "PyTorch checkpoints",
                          path);

    weights_box *box = push_box(L); /* slot 4 */
    int n;
    if (fmt == FMT_PTH) {
        box->pth = new_pth_file(path, key, err, sizeof err); /* messages start with the path */
        if (!box->pth) return luaL_error(L, "weights.load: %s", err);
        if (check_budget(box->pth, err, sizeof err) != 0)
            return luaL_error(L, "weights.load: %s: %s", path, err);
        n = box->pth->n_entries;
    } else {
        box->st = new_st_file_from_path(path, err, sizeof err); /* "safetensors: PATH: ..." */
        if (!box->st) return luaL_error(L, "weights.load: %s", err);
        n = box->st->n;
    }

    lua_createtable(L, 0, n); /* 5: name -> tensor */
    lua_createtable(L, n, 0); /* 6: names in file order */
    for (int i = 0; i < n; i++) {
        const char *name;
        ft_tensor *t = NULL;
        if (box->pth) {
            name = box->pth->entries[i].name;
            t = pth_tensor(box, i, err, sizeof err);
        } else {
            const st_entry *e = &box->st->entries[i];
            name = e->name;
            if (ft_from_data(e->data, e->dtype, e->shape, e->ndim, &t) != FT_OK) {
                snprintf(err, sizeof err, "tensor '%.200s': %s", name, ft_last_error());
                t = NULL;
            }
        }
        if (!t) return luaL_error(L, "weights.load: %s: %s", path, err);
        ftl_push_tensor(L, t); /* Lua owns it from here */
        lua_setfield(L, 5, name);
        lua_pushstring(L, name);
        lua_rawseti(L, 6, i + 1);
    }
    return 2; /* returning closes the box below the results */
}

/* ---------------------------------------------------------------- save */

/* The tensor under tbl[name] (the value on top of the stack), checked. */
static ft_tensor *save_tensor(lua_State *L, const char *name) {
    ftl_tensor *ud = luaL_testudata(L, -1, FTL_TENSOR_MT);
    if (!ud)
        luaL_error(L, "weights.save: value for '%s' is not a tensor (got %s)", name,
                   luaL_typename(L, -1));
    if (!ud->h) luaL_error(L, "weights.save: tensor '%s' has been freed", name);
    if (ft_dim(ud->h) > FT_MAX_DIMS)
        luaL_error(L, "weights.save: tensor '%s' has %d dims (at most %d)", name, ft_dim(ud->h),
                   FT_MAX_DIMS);
    return ud->h;
}

static const char *save_name(lua_State *L, int idx, const char *what) {
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "weights.save: %s must be strings, got %s", what, luaL_typename(L, idx));
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len) luaL_error(L, "weights.save: %s must not contain NUL bytes", what);
    return s;
}

static int w_save(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int has_names = !lua_isnoneornil(L, 3);
    if (has_names) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);

    /* Check every entry before anything is allocated outside Lua. */
    int count = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        save_tensor(L, save_name(L, -2, "tensor names"));
        count++;
        lua_pop(L, 1);
    }
    int n = has_names ? (int)lua_rawlen(L, 3) : count;
    if (has_names) {     /* names must list the table's tensors, each once */
        lua_newtable(L); /* 4: names seen */
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, 3, i);
            const char *name = save_name(L, -1, "names");
            if (lua_getfield(L, 2, name) == LUA_TNIL)
                luaL_error(L, "weights.save: names[%d] is '%s', which the table does not hold", i,
                           name);
            if (lua_getfield(L, 4, name) != LUA_TNIL)
                luaL_error(L, "weights.save: '%s' is listed twice in names", name);
            lua_pop(L, 2);
            lua_pushboolean(L, 1);
            lua_setfield(L, 4, name);
            lua_pop(L, 1); /* the name */
        }
        if (n != count) {
            lua_pushnil(L);
            while (lua_next(L, 2)) {
                lua_pop(L, 1);
                if (lua_getfield(L, 4, lua_tostring(L, -1)) == LUA_TNIL)
                    luaL_error(L, "weights.save: tensor '%s' is in the table but not in names",
                               lua_tostring(L, -2));
                lua_pop(L, 1);
            }
        }
        lua_settop(L, 3);
    }

    /* Items live in a userdata, so a Lua error cannot leak them; their names and tensors stay
     * alive in the argument tables until we return. */
    st_named_tensor *items = lua_newuserdatauv(L, (size_t)n * sizeof *items + 1, 0);
    if (has_names) {
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, 3, i + 1);
            items[i].name = lua_tostring(L, -1);
            lua_getfield(L, 2, items[i].name);
            items[i].t = ftl_to_tensor(L, -1);
            lua_pop(L, 2);
        }
    } else { /* no order given: the writer sorts, as T.save does (aligned) */
        int k = 0;
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            items[k].name = lua_tostring(L, -2);
            items[k].t = ftl_to_tensor(L, -1);
            k++;
            lua_pop(L, 1);
        }
    }
    /* "format": "pt" is what safetensors.torch writes and what loaders such as transformers
     * look for. */
    st_kv meta[1] = {{"format", "pt"}};
    char err[1024];
    if (st_write_tensors(path, items, n, !has_names, meta, 1, err, sizeof err) != 0)
        return luaL_error(L, "weights.save: %s", err); /* it freed all it had */
    return 0;
}

/* ---------------------------------------------------------------- pretrained */

static int valid_file_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 255 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
    for (const char *c = s; *c; c++)
        if (*c == '/' || (unsigned char)*c < ' ' || *c == 0x7f) return 0;
    return 1;
}

/* Where pretrained weights come from and go to, and the hash (or its prefix) they must have. */
typedef struct {
    char url[4096], file[256], hash[65];
} pretrained_src;

/* pretrained("resnet34"): torchvision's file under FTLUA_WEIGHTS_URL (default
 * download.pytorch.org). */
static void pretrained_by_arch(lua_State *L, const char *arch, pretrained_src *src) {
    int k = 0;
    while (k < N_PRETRAINED && strcmp(PRETRAINED[k].arch, arch) != 0) k++;
    if (k == N_PRETRAINED) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (int j = 0; j < N_PRETRAINED; j++) {
            luaL_addstring(&b, j ? ", " : "");
            luaL_addstring(&b, PRETRAINED[j].arch);
        }
        luaL_pushresult(&b);
        luaL_error(L,
                   "weights.pretrained: no pretrained weights for '%s' (known: %s; "
                   "or pass {url = ..., file = ...})",
                   arch, lua_tostring(L, -1));
    }
    const char *base = getenv("FTLUA_WEIGHTS_URL");
    if (!base || !*base) base = DEFAULT_BASE_URL;
    size_t bl = strlen(base);
    snprintf(src->file, sizeof src->file, "%s", PRETRAINED[k].file);
    if (snprintf(src->url, sizeof src->url, "%s%s%s", base, base[bl - 1] == '/' ? "" : "/",
                 src->file) >= (int)sizeof src->url)
        luaL_error(L, "weights.pretrained: FTLUA_WEIGHTS_URL is too long");
    char unused[256], err[2048];
    if (weights_url_file(src->url, unused, sizeof unused, err, sizeof err) != 0)
        luaL_error(L, "weights.pretrained: FTLUA_WEIGHTS_URL: %s", err);
    weights_name_hash(src->file, src->hash);
}

/* sha256 = "hex digits": the whole hash or a prefix of it, lowered. */
static void pretrained_hash(lua_State *L, const char *h, char hash[65]) {
    size_t n = strlen(h);
    if (n == 0 || n > 64) luaL_error(L, "weights.pretrained: sha256 must have 1 to 64 hex digits");
    for (size_t j = 0; j < n; j++) {
        char c = (char)(h[j] >= 'A' && h[j] <= 'F' ? h[j] - 'A' + 'a' : h[j]);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            luaL_error(L, "weights.pretrained: sha256 must be hex digits, got '%s'", h);
        hash[j] = c;
    }
    hash[n] = 0;
}

/* pretrained{url = URL [, file = NAME] [, sha256 = HEX]}: the table at 1. */
static void pretrained_by_table(lua_State *L, pretrained_src *src) {
    static const char *const known[] = {"url", "file", "sha256", NULL};
    const char *fn = "weights.pretrained";
    ftl_check_options(L, 1, fn, known);
    const char *u = ftl_opt_string(L, 1, fn, "url", NULL);
    const char *f = ftl_opt_string(L, 1, fn, "file", NULL);
    const char *h = ftl_opt_string(L, 1, fn, "sha256", NULL);
    if (!u) luaL_error(L, "weights.pretrained: the table needs a url");
    if (strlen(u) >= sizeof src->url) luaL_error(L, "weights.pretrained: url too long");
    snprintf(src->url, sizeof src->url, "%s", u);
    char err[2048];
    if (weights_url_file(src->url, src->file, sizeof src->file, err, sizeof err) != 0)
        luaL_error(L, "weights.pretrained: %s", err);
    if (f) {
        if (strlen(f) >= sizeof src->file) luaL_error(L, "weights.pretrained: file name too long");
        snprintf(src->file, sizeof src->file, "%s", f);
    }
    if (h)
        pretrained_hash(L, h, src->hash);
    else
        weights_name_hash(src->file, src->hash);
}

static int w_pretrained(lua_State *L) {
    pretrained_src src = {.hash = ""};
    char dir[4096], path[4400], err[2048];
    lua_settop(L, 1);
    if (lua_type(L, 1) == LUA_TSTRING)
        pretrained_by_arch(L, lua_tostring(L, 1), &src);
    else if (lua_type(L, 1) == LUA_TTABLE)
        pretrained_by_table(L, &src);
    else
        return luaL_typeerror(L, 1, "architecture name or {url = ..., file = ...}");
    if (!valid_file_name(src.file))
        return luaL_error(L, "weights.pretrained: '%s' is not a plain file name", src.file);

    if (weights_cache_dir(dir, sizeof dir, err, sizeof err) != 0)
        return luaL_error(L, "weights.pretrained: %s", err);
    snprintf(path, sizeof path, "%s/%s", dir, src.file);
    struct stat st;
    if (stat(path, &st) == 0) { /* reused as torch.hub does: it was checked when it landed */
        if (!S_ISREG(st.st_mode))
            return luaL_error(L, "weights.pretrained: %s is not a file", path);
        lua_pushstring(L, path);
        return 1;
    }
    if (weights_mkdirs(dir, err, sizeof err) != 0)
        return luaL_error(L, "weights.pretrained: %s (set TORCH_HOME to a writable folder)", err);
    if (weights_download(src.url, dir, src.file, src.hash, isatty(2), err, sizeof err) != 0)
        return luaL_error(L, "weights.pretrained: %s", err);
    lua_pushstring(L, path);
    return 1;
}

/* ---------------------------------------------------------------- small helpers */

static int w_cache_dir(lua_State *L) {
    char dir[4096], err[512];
    if (weights_cache_dir(dir, sizeof dir, err, sizeof err) != 0)
        return luaL_error(L, "weights.cache_dir: %s", err);
    lua_pushstring(L, dir);
    return 1;
}

static int w_sha256(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    uint8_t digest[32];
    char hex[65], err[1024];
    if (sha256_file(path, digest, err, sizeof err) != 0)
        return luaL_error(L, "weights.sha256: %s", err);
    sha256_hex(digest, hex);
    lua_pushstring(L, hex);
    return 1;
}

static const luaL_Reg weights_funcs[] = {
    {"load", w_load},           {"save", w_save},     {"pretrained", w_pretrained},
    {"cache_dir", w_cache_dir}, {"sha256", w_sha256}, {NULL, NULL},
};

int luaopen_ftlua_weights(lua_State *L) {
    luaL_newlib(L, weights_funcs);
    return 1;
}
