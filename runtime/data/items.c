/* items.c: finding image files (fastai's get_image_files) and splitting items (RandomSplitter).
 * Labellers, the vocab and the folder splitter are Lua (lua/ftlua/data_vision.lua). */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/data.h"

/* fastai's image_extensions are every type mimetypes calls "image/..."; these are the ones photos
 * come in. We decode JPEG, PNG, GIF and BMP; the others are listed so that the loader names
 * them as undecodable instead of leaving them out silently. */
static const char *const DEFAULT_EXTS[] = {".jpg", ".jpeg", ".jpe",  ".png",  ".gif",
                                           ".bmp", ".tif",  ".tiff", ".webp", NULL};

#define MAX_DEPTH 64 /* real folders nested deeper than this are not walked (the C stack) */

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

/* ---------------------------------------------------------------- the walk
 * Links are followed, but every folder is walked once and every file listed once, by
 * (device, inode): a link cycle (`sub/up -> ..`) cannot loop, and a file reachable by two paths
 * cannot land in both train and valid. Real folders come first: the walk goes through the tree
 * without following links, and links to folders wait in a queue that is walked after it, so a
 * folder's own path wins over a link's. Links whose folder or file was already listed are
 * skipped, and named in one warning. */

typedef struct {
    dev_t dev;
    ino_t ino;
} file_id;

/* An open-addressing set of file ids (folders walked, files listed). */
typedef struct {
    file_id *v;
    uint8_t *used;
    size_t n, cap;
} id_set;

static size_t id_hash(file_id id) {
    uint64_t h =
        (uint64_t)id.ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)id.dev * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ (h >> 29));
}

/* 1: added, 0: already there, -1: out of memory. */
static int id_set_add(id_set *s, file_id id) {
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        id_set bigger = {calloc(cap, sizeof(file_id)), calloc(cap, 1), 0, cap};
        if (!bigger.v || !bigger.used) {
            free(bigger.v);
            free(bigger.used);
            return -1;
        }
        for (size_t i = 0; i < s->cap; i++)
            if (s->used[i]) id_set_add(&bigger, s->v[i]);
        free(s->v);
        free(s->used);
        *s = bigger;
    }
    for (size_t i = id_hash(id) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->used[i]) {
            s->used[i] = 1;
            s->v[i] = id;
            s->n++;
            return 1;
        }
        if (s->v[i].dev == id.dev && s->v[i].ino == id.ino) return 0;
    }
}

static void id_set_free(id_set *s) {
    free(s->v);
    free(s->used);
}

/* A file found by the walk: its path, its id, and whether its name is a link. */
typedef struct {
    char *path;
    file_id id;
    int link;
} found_file;

typedef struct {
    const char *const *exts;
    found_file *files;
    size_t nfiles, capfiles;
    strlist *pending; /* links to folders, walked after the real tree (FIFO) */
    size_t next_pending;
    id_set folders;
    strlist *skipped; /* "link -> why" for the warning */
    char *err;
    size_t errlen;
} walker;

static int add_file(walker *w, char *path, const struct stat *st, int link) {
    if (w->nfiles == w->capfiles) {
        size_t cap = w->capfiles ? 2 * w->capfiles : 256;
        found_file *v = realloc(w->files, cap * sizeof *v);
        if (!v) {
            free(path);
            return -1;
        }
        w->files = v;
        w->capfiles = cap;
    }
    w->files[w->nfiles++] = (found_file){path, {st->st_dev, st->st_ino}, link};
    return 0;
}

/* Adds the image files under dir, a folder not walked before. Reads a folder's names and closes
 * it before going down, so one folder is open at a time. Hidden names (".x") are skipped, like
 * fastai. Returns 0, or -1 with w->err (only when the top folder cannot be read, or out of
 * memory). */
static int walk(walker *w, const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) {
        if (depth == 0 && w->next_pending == 0) {
            snprintf(w->err, w->errlen, "cannot open folder '%s' (%s)", dir, strerror(errno));
            return -1;
        }
        /* A folder that vanished or that we may not read: say so, keep the rest. */
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
    if (names.n) qsort(names.v, names.n, sizeof *names.v, cmp_str); /* the same walk everywhere */
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
        struct stat lst, st;
        /* Gone since readdir, or a dangling link: not an item. */
        if (lstat(path, &lst) != 0 || stat(path, &st) != 0) {
            free(path);
            continue;
        }
        int link = S_ISLNK(lst.st_mode);
        if (S_ISDIR(st.st_mode) && link) {
            oom = strlist_add(w->pending, path) != 0;
        } else if (S_ISDIR(st.st_mode)) {
            int fresh = id_set_add(&w->folders, (file_id){st.st_dev, st.st_ino});
            if (fresh < 0)
                oom = 1;
            else if (fresh && depth < MAX_DEPTH && walk(w, path, depth + 1))
                oom = 1;
            else if (fresh && depth >= MAX_DEPTH)
                fprintf(stderr,
                        "warning: get_image_files: '%s' is more than %d folders deep, "
                        "not walked\n",
                        path, MAX_DEPTH);
            free(path);
        } else if (S_ISREG(st.st_mode) && has_ext(names.v[i], w->exts)) {
            /* Only regular files: a FIFO or a device named x.jpg would block or never end. */
            oom = add_file(w, path, &st, link) != 0;
        } else {
            free(path);
        }
    }
    strlist_clear(&names);
    if (oom && !w->err[0]) snprintf(w->err, w->errlen, "out of memory");
    return oom ? -1 : 0;
}

static int skip_link(walker *w, const char *link, const char *why) {
    size_t len = strlen(link) + strlen(why) + 8;
    char *s = malloc(len);
    if (s) snprintf(s, len, "%s (%s)", link, why);
    return strlist_add(w->skipped, s);
}

/* Walk the links to folders met so far (and those met on the way), each target once. */
static int walk_links(walker *w) {
    while (w->next_pending < w->pending->n) {
        const char *path = w->pending->v[w->next_pending++];
        struct stat st;
        if (stat(path, &st) != 0) continue; /* gone meanwhile */
        int fresh = id_set_add(&w->folders, (file_id){st.st_dev, st.st_ino});
        if (fresh < 0) return -1;
        if (!fresh) {
            if (skip_link(w, path, "a folder already listed")) return -1;
        } else if (walk(w, path, 1)) {
            return -1;
        }
    }
    return 0;
}

/* Real files before links, then byte order: the first path of each file wins. */
static int cmp_found(const void *a, const void *b) {
    const found_file *x = a, *y = b;
    if (x->link != y->link) return x->link - y->link;
    return strcmp(x->path, y->path);
}

/* Keep the first path of every file id; the others are links or hard links to a listed file. */
static int dedup_files(walker *w, strlist *out) {
    if (w->nfiles) qsort(w->files, w->nfiles, sizeof *w->files, cmp_found);
    id_set seen = {0};
    int rc = 0;
    for (size_t i = 0; i < w->nfiles && !rc; i++) {
        int fresh = id_set_add(&seen, w->files[i].id);
        if (fresh < 0) {
            rc = -1;
        } else if (fresh) {
            char *path = w->files[i].path;
            w->files[i].path = NULL; /* out owns it now (strlist_add frees it on failure) */
            rc = strlist_add(out, path);
        } else {
            rc = skip_link(w, w->files[i].path, "the same file as one already listed");
        }
    }
    id_set_free(&seen);
    return rc;
}

/* Paths can hold newlines and other control bytes: print those escaped, one warning per line. */
static void print_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
}

static void warn_skipped(const strlist *skipped) {
    if (!skipped->n) return;
    fprintf(stderr,
            "warning: get_image_files: skipped %zu link%s to what was already listed "
            "(a link cycle, or two paths to one file):",
            skipped->n, skipped->n > 1 ? "s" : "");
    enum { SHOW = 10 };
    for (size_t i = 0; i < skipped->n && i < SHOW; i++) {
        fputs(i ? ", " : " ", stderr);
        print_escaped(stderr, skipped->v[i]);
    }
    if (skipped->n > SHOW) fprintf(stderr, " and %zu more", skipped->n - SHOW);
    fputc('\n', stderr);
}

/* get_image_files(dir [, {".jpg", ...}]) -> {path, ...}: recursive, by extension (any case),
 * sorted by byte order so every machine lists the same items in the same order (fastai keeps
 * the file system's order, which differs between machines). Each file once (see the walk). */
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
    strlist *out = new_strlist(L), *pending = new_strlist(L), *skipped = new_strlist(L);
    char err[1024] = "";
    walker w = {
        .exts = exts, .pending = pending, .skipped = skipped, .err = err, .errlen = sizeof err};
    struct stat st;
    int rc = 0;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        rc = id_set_add(&w.folders, (file_id){st.st_dev, st.st_ino}) < 0;
    if (!rc) rc = walk(&w, dir, 0);
    if (!rc) rc = walk_links(&w);
    if (!rc) rc = dedup_files(&w, out);
    for (size_t i = 0; i < w.nfiles; i++) free(w.files[i].path);
    free(w.files);
    id_set_free(&w.folders);
    if (rc) {
        if (!err[0]) snprintf(err, sizeof err, "out of memory");
        return luaL_error(L, "get_image_files: %s", err);
    }
    warn_skipped(skipped);
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
