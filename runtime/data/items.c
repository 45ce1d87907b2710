/* items.c: finding image files (fastai's get_image_files) and splitting items (RandomSplitter).
 * Labellers, the vocab and the folder splitter are Lua (lua/ftlua/data_vision.lua). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/data.h"

/* fastai's image_extensions are every type mimetypes calls "image/..."; these are the ones photos
 * come in. We decode JPEG, PNG, GIF and BMP; the others are listed so that the loader names
 * them as undecodable instead of leaving them out silently. */
static const char *const DEFAULT_EXTS[] = {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp",
                                           ".tif", ".tiff", ".webp", NULL};

#define MAX_DEPTH 64 /* followed symlinks could loop */

/* A growing list of malloc'd strings inside a userdata, so a Lua error frees it (__gc). */
typedef struct {
    char **v;
    size_t n, cap;
} strlist;

static void strlist_clear(strlist *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static int strlist_gc(lua_State *L) {
    strlist_clear(lua_touserdata(L, 1));
    return 0;
}

static strlist *new_strlist(lua_State *L) {
    strlist *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    if (luaL_newmetatable(L, "ftlua.strlist")) {
        lua_pushcfunction(L, strlist_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return s;
}

/* Takes ownership of str (frees it on failure). */
static int strlist_add(strlist *s, char *str) {
    if (!str) return -1;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(str);
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = str;
    return 0;
}

static int has_ext(const char *name, const char *const *exts) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (int i = 0; exts[i]; i++)
        if (strcasecmp(dot, exts[i]) == 0) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the image files under dir to out. Reads a folder's names and closes it before going
 * down, so one folder is open at a time. Hidden names (".x") are skipped, like fastai. Returns
 * 0, or -1 with err (only when dir itself cannot be read, or out of memory). */
static int walk(const char *dir, int depth, const char *const *exts, strlist *out, char *err,
                size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) {
        if (depth == 0) {
            snprintf(err, errlen, "cannot open folder '%s' (%s)", dir, strerror(errno));
            return -1;
        }
        fprintf(stderr, "warning: get_image_files: cannot open folder '%s' (%s)\n", dir,
                strerror(errno));
        return 0;
    }
    strlist names = {0};
    int oom = 0;
    struct dirent *e;
    while (!oom && (e = readdir(d)))
        if (e->d_name[0] != '.') oom = strlist_add(&names, strdup(e->d_name));
    closedir(d);
    size_t dlen = strlen(dir);
    int slash = dlen > 0 && dir[dlen - 1] == '/';
    for (size_t i = 0; !oom && i < names.n; i++) {
        size_t len = dlen + 1 + strlen(names.v[i]) + 1;
        char *path = malloc(len);
        if (!path) {
            oom = 1;
            break;
        }
        snprintf(path, len, "%s%s%s", dir, slash ? "" : "/", names.v[i]);
        struct stat st;
        if (stat(path, &st) != 0) { /* a dangling link */
            free(path);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (depth < MAX_DEPTH && walk(path, depth + 1, exts, out, err, errlen)) oom = 1;
            free(path);
        } else if (S_ISREG(st.st_mode) && has_ext(names.v[i], exts)) {
            oom = strlist_add(out, path);
        } else {
            free(path);
        }
    }
    strlist_clear(&names);
    if (oom && !err[0]) snprintf(err, errlen, "out of memory");
    return oom ? -1 : 0;
}

/* get_image_files(dir [, {".jpg", ...}]) -> {path, ...}: recursive, by extension (any case),
 * sorted by byte order so every machine lists the same items in the same order (fastai keeps
 * the file system's order, which differs between machines). */
int ftl_data_get_image_files(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    const char *exts_buf[64];
    const char *const *exts = DEFAULT_EXTS;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        int n = (int)luaL_len(L, 2);
        luaL_argcheck(L, n < 64, 2, "at most 63 extensions");
        for (int i = 0; i < n; i++) {
            lua_geti(L, 2, i + 1);
            exts_buf[i] = luaL_checkstring(L, -1); /* stays alive: the table holds it */
            lua_pop(L, 1);
        }
        exts_buf[n] = NULL;
        exts = exts_buf;
    }
    strlist *out = new_strlist(L);
    char err[1024] = "";
    if (walk(dir, 0, exts, out, err, sizeof err)) return luaL_error(L, "get_image_files: %s", err);
    if (out->n) qsort(out->v, out->n, sizeof *out->v, cmp_str);
    lua_createtable(L, out->n < 1u << 30 ? (int)out->n : 0, 0);
    for (size_t i = 0; i < out->n; i++) {
        lua_pushstring(L, out->v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* random_split(n, valid_pct [, seed]) -> train, valid: fastai's RandomSplitter,
 *   torch.manual_seed(seed); idx = torch.randperm(n); cut = int(valid_pct * n)
 *   return idx[cut:], idx[:cut]
 * with libtorch's generator, so the same seed gives PyTorch's split. Indices are 1-based. Like
 * fastai, a seed reseeds the global generator; without one the current state is used. */
int ftl_data_random_split(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    double pct = luaL_checknumber(L, 2);
    luaL_argcheck(L, n >= 0, 1, "the number of items must be non-negative");
    if (!(pct >= 0 && pct < 1))
        return luaL_error(L, "RandomSplitter: valid_pct must be in [0, 1), got %f", pct);
    if (!lua_isnoneornil(L, 3))
        ftl_check(L, ft_manual_seed((uint64_t)luaL_checkinteger(L, 3)), "RandomSplitter");
    ft_tensor *perm = NULL;
    ftl_check(L, ft_randperm(n, FT_CPU, &perm), "RandomSplitter");
    ftl_push_tensor(L, perm); /* Lua owns it from here */
    int64_t *idx = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(int64_t), 0);
    ftl_check(L, ft_copy_to_buffer(perm, idx, (size_t)n * sizeof(int64_t)), "RandomSplitter");
    int64_t cut = (int64_t)(pct * (double)n); /* Python's int() truncates */
    lua_createtable(L, (int)(n - cut), 0);
    for (int64_t i = cut; i < n; i++) {
        lua_pushinteger(L, idx[i] + 1);
        lua_rawseti(L, -2, i - cut + 1);
    }
    lua_createtable(L, (int)cut, 0);
    for (int64_t i = 0; i < cut; i++) {
        lua_pushinteger(L, idx[i] + 1);
        lua_rawseti(L, -2, i + 1);
    }
    return 2;
}
