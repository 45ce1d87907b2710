/* untar.c: ft.untar_data and ft.URLs, fastai's dataset downloads.
 *
 * untar_data(url [, {dest=, force=}]) downloads url's archive into $FTLUA_ARCHIVE (default
 * ~/.ftlua/archive) with weights_download_resume (curl, resumable, atomic), lists it with
 * `tar -tzf` and refuses absolute or ".." members, extracts it with `tar -xzf` into a temporary
 * folder inside the data folder ($FTLUA_DATA, default ~/.ftlua/data, or dest), and renames the
 * extracted top folder into place. It returns that folder; when it exists already, it returns it
 * at once. FTLUA_DATA_URL replaces the URL's base (everything up to its last '/').
 *
 * The work is plain C writing into caller buffers; the Lua binding copies its arguments first
 * and raises only after every file, pipe and child is closed (docs/design.md). See docs/data.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/args.h"
#include "ftlua.h"
#include "io/atomic.h"
#include "weights/download.h"

extern char **environ;

static const struct {
    const char *name, *url;
} URLS[] = {
    {"PETS", "https://s3.amazonaws.com/fast-ai-imageclas/oxford-iiit-pet.tgz"},
    {"MNIST_SAMPLE", "https://s3.amazonaws.com/fast-ai-sample/mnist_sample.tgz"},
    {"MNIST_TINY", "https://s3.amazonaws.com/fast-ai-sample/mnist_tiny.tgz"},
    {"MNIST", "https://s3.amazonaws.com/fast-ai-imageclas/mnist_png.tgz"},
    {"CIFAR", "https://s3.amazonaws.com/fast-ai-sample/cifar10.tgz"},
    {"IMAGENETTE", "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz"},
    {"IMAGENETTE_160", "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"},
    {"IMAGENETTE_320", "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz"},
    {"IMAGEWOOF_160", "https://s3.amazonaws.com/fast-ai-imageclas/imagewoof2-160.tgz"},
};

#define PATH_MAX_ 4096

/* ---------------------------------------------------------------- helpers */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void rm_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The folder from an environment variable or a default under ~, without a trailing '/'. */
static int env_dir(const char *var, const char *dflt, char *out, size_t outlen, char *err,
                   size_t errlen) {
    const char *v = getenv(var);
    if (weights_expand_home(v && *v ? v : dflt, out, outlen) != 0) {
        snprintf(err, errlen, "the folder name in %s is too long", var);
        return -1;
    }
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') out[--n] = 0;
    return 0;
}

/* Run tar with argv; its stdout goes to lines() one line at a time when given (else /dev/null),
 * its stderr's last line comes back in why. lines() returning nonzero stops reading (the child
 * is still waited for). Returns 0 when tar succeeded and lines() never objected, else -1. */
typedef int (*line_fn)(void *ctx, const char *line, char *why, size_t whylen);

static int run_tar(const char *const argv[], line_fn lines, void *ctx, char *why, size_t whylen) {
    int fds[2] = {-1, -1};
    FILE *errf = tmpfile();
    if (!errf || pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(why, whylen, "cannot run tar: %s", strerror(errno));
        if (errf) fclose(errf);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fileno(errf), 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        fclose(errf);
        snprintf(why, whylen,
                 rc == ENOENT ? "the tar program was not found: install it" : "cannot run tar: %s",
                 strerror(rc));
        return -1;
    }
    int objected = 0;
    char line[PATH_MAX_ + 64], buf[8192];
    size_t n_line = 0;
    for (;;) {
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t k = 0; k < n && !objected; k++) {
            if (buf[k] != '\n') {
                if (n_line < sizeof line - 1) line[n_line++] = buf[k];
                continue;
            }
            line[n_line] = 0;
            n_line = 0;
            if (lines && lines(ctx, line, why, whylen) != 0) objected = 1;
        }
        if (objected) break;
    }
    close(fds[0]); /* when we stopped early, tar gets SIGPIPE */
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (objected) {
        fclose(errf);
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        fclose(errf);
        return 0;
    }
    /* tar's first specific stderr line says why ("...: Cannot write: No space left on
     * device"), not its closing "Exiting with failure status due to previous errors". */
    char last[512] = "", cur[512];
    int specific = 0;
    rewind(errf);
    while (fgets(cur, sizeof cur, errf)) {
        cur[strcspn(cur, "\r\n")] = 0;
        if (!*cur || specific) continue;
        specific = strstr(cur, "Exiting with failure status") == NULL;
        snprintf(last, sizeof last, "%s", cur);
    }
    fclose(errf);
    if (*last)
        snprintf(why, whylen, "%s", last);
    else if (WIFSIGNALED(status))
        snprintf(why, whylen, "tar was stopped by signal %d", WTERMSIG(status));
    else
        snprintf(why, whylen, "tar exited with status %d", WEXITSTATUS(status));
    return -1;
}

/* What the listing tells: every member is safe; the first top-level name and whether all agree. */
typedef struct {
    char top[256];
    int tops;     /* 0 no members yet, 1 one top-level folder, 2 several entries at the top */
    int top_file; /* a top-level member that is a plain file (no '/' after its name) */
    long members;
} listing;

static int check_member(void *ctx, const char *name, char *why, size_t whylen) {
    listing *ls = ctx;
    if (name[0] == '/') {
        snprintf(why, whylen, "it has a member with an absolute path: %.300s", name);
        return -1;
    }
    for (const char *p = name; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            snprintf(why, whylen, "it has a member with '..' in its path: %.300s", name);
            return -1;
        }
        p += n;
        while (*p == '/') p++;
    }
    const char *p = name;
    while (p[0] == '.' && p[1] == '/') p += 2; /* "./x" is "x" */
    size_t n = strcspn(p, "/");
    if (n == 0 || (n == 1 && p[0] == '.')) return 0; /* "./" itself */
    if (p[n] == 0) ls->top_file = 1;
    ls->members++;
    if (ls->tops == 0) {
        snprintf(ls->top, sizeof ls->top, "%.*s", (int)(n < 255 ? n : 255), p);
        ls->tops = 1;
    } else if (ls->tops == 1 && (strlen(ls->top) != n || strncmp(ls->top, p, n) != 0)) {
        ls->tops = 2;
    }
    return 0;
}

/* The folder name fastai gives an archive: its file name less .tgz, .tar.gz, .tar or .gz. */
static void archive_stem(const char *file, char *out, size_t outlen) {
    static const char *const exts[] = {".tar.gz", ".tgz", ".tar", ".gz"};
    size_t n = strlen(file);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t e = strlen(exts[i]);
        if (n > e && strcmp(file + n - e, exts[i]) == 0) {
            n -= e;
            break;
        }
    }
    snprintf(out, outlen, "%.*s", (int)n, file);
}

/* ---------------------------------------------------------------- untar_data, in C */

typedef struct {
    const char *url, *dest; /* dest NULL: FTLUA_DATA */
    int force;
} untar_opts;

/* Where one call downloads and extracts: every name it uses, worked out before it touches disk. */
typedef struct {
    char file[256];                /* the archive's file name, from the URL */
    char stem[256];                /* the folder name fastai gives it */
    char url[PATH_MAX_];           /* the URL, after FTLUA_DATA_URL */
    char data[PATH_MAX_];          /* the data folder: dest or FTLUA_DATA */
    char archdir[PATH_MAX_];       /* FTLUA_ARCHIVE */
    char archive[PATH_MAX_ + 300]; /* archdir/file */
    char final[PATH_MAX_ + 300];   /* data/stem: the result */
} untar_paths;

static int untar_paths_init(const untar_opts *o, untar_paths *p, char *err, size_t errlen) {
    if (weights_url_file(o->url, p->file, sizeof p->file, err, errlen) != 0) return -1;
    archive_stem(p->file, p->stem, sizeof p->stem);
    if (!*p->stem || strcmp(p->stem, ".") == 0 || strcmp(p->stem, "..") == 0) {
        snprintf(err, errlen, "cannot take a folder name from the URL %.300s", o->url);
        return -1;
    }
    const char *base = getenv("FTLUA_DATA_URL");
    if (base && *base) {
        size_t n = strlen(base);
        if (snprintf(p->url, sizeof p->url, "%s%s%s", base, base[n - 1] == '/' ? "" : "/",
                     p->file) >= (int)sizeof p->url) {
            snprintf(err, errlen, "FTLUA_DATA_URL is too long");
            return -1;
        }
    } else {
        snprintf(p->url, sizeof p->url, "%s", o->url);
    }
    if (o->dest) {
        if (weights_expand_home(o->dest, p->data, sizeof p->data) != 0) {
            snprintf(err, errlen, "dest is too long");
            return -1;
        }
    } else if (env_dir("FTLUA_DATA", "~/.ftlua/data", p->data, sizeof p->data, err, errlen) != 0) {
        return -1;
    }
    if (env_dir("FTLUA_ARCHIVE", "~/.ftlua/archive", p->archdir, sizeof p->archdir, err, errlen) !=
        0)
        return -1;
    snprintf(p->final, sizeof p->final, "%s/%s", p->data, p->stem);
    snprintf(p->archive, sizeof p->archive, "%s/%s", p->archdir, p->file);
    return 0;
}

/* Download the archive unless it is there already (force: download it again). */
static int fetch_archive(const untar_paths *p, int force, char *err, size_t errlen) {
    char why[1024];
    if (weights_mkdirs(p->data, err, errlen) != 0 || weights_mkdirs(p->archdir, err, errlen) != 0)
        return -1;
    struct stat st;
    if (!force && stat(p->archive, &st) == 0) return 0;
    if (force) {
        unlink(p->archive);
        char part[PATH_MAX_ + 310];
        snprintf(part, sizeof part, "%s.part", p->archive);
        unlink(part);
    }
    if (weights_download_resume(p->url, p->archive, isatty(2), why, sizeof why) != 0) {
        snprintf(err, errlen, "%s. Put the extracted folder at %s and run again.", why, p->final);
        return -1;
    }
    return 0;
}

/* List the archive first: refuse what could write outside the folder. */
static int list_archive(const untar_paths *p, listing *ls, char *err, size_t errlen) {
    char why[1024] = "";
    const char *list_argv[] = {"tar", "-tzf", p->archive, NULL};
    if (run_tar(list_argv, check_member, ls, why, sizeof why) == 0 && ls->members > 0) return 0;
    if (ls->members == 0 && !strstr(why, "member")) snprintf(why, sizeof why, "it is empty");
    if (strstr(why, "member")) {
        snprintf(err, errlen, "refusing to extract %s: %s", p->archive, why);
    } else {
        unlink(p->archive); /* a broken download: the next call fetches it again */
        snprintf(err, errlen,
                 "cannot read the archive %s from %s (%s); it was deleted, run "
                 "again to download it again, or put the extracted folder at %s",
                 p->archive, p->url, why, p->final);
    }
    return -1;
}

/* Extract into tmp, a fresh temporary folder next to final. */
static int extract_archive(const untar_paths *p, char *tmp, size_t tmplen, char *err,
                           size_t errlen) {
    char why[1024];
    /* ftlua's temp pattern: a folder left by kill -9 is removed at the next write to data */
    if (af_temp_dir(p->final, tmp, tmplen, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    fprintf(stderr, "Extracting %s to %s\n", p->archive, p->final);
    const char *x_argv[] = {"tar", "-xzf", p->archive, "-C", tmp, "--no-same-owner", NULL};
    if (run_tar(x_argv, NULL, NULL, why, sizeof why) == 0) return 0;
    rm_tree(tmp);
    if (strstr(why, strerror(ENOSPC))) { /* the archive is fine: keep it for the next try */
        snprintf(err, errlen,
                 "cannot extract %s into %s (%s): free some space and run again "
                 "(the archive is kept)",
                 p->archive, p->final, why);
        return -1;
    }
    unlink(p->archive);
    snprintf(err, errlen,
             "cannot extract %s (%s); it was deleted, run again to download it "
             "again, or put the extracted folder at %s",
             p->archive, why, p->final);
    return -1;
}

/* force with final there already: swap the new folder (src) and the old one in one step, so
 * final is always one of them, whole; then delete the old one (now inside tmp). */
static int replace_folder(const char *src, const char *tmp, const char *final, char *err,
                          size_t errlen) {
    if (renameat2(AT_FDCWD, src, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
        rm_tree(tmp);
        return 0;
    }
    /* no RENAME_EXCHANGE on this file system: move the old copy away first */
    char old[FTL_ATOMIC_PATH_MAX + 128], why[1024];
    if (af_temp_dir(final, old, sizeof old, why, sizeof why) != 0 || rmdir(old) != 0 ||
        rename(final, old) != 0) {
        snprintf(err, errlen, "cannot replace %s: %s", final, strerror(errno));
        rm_tree(tmp);
        return -1;
    }
    int rc = rename(src, final);
    int e = errno;
    if (rc != 0)
        rename(old, final); /* put the old one back */
    else
        rm_tree(old);
    rm_tree(tmp);
    if (rc != 0) snprintf(err, errlen, "cannot rename %s to %s: %s", src, final, strerror(e));
    return rc;
}

/* Move what tmp holds into place as final: its one top folder, or else tmp itself. */
static int move_into_place(const listing *ls, const char *tmp, const char *final, char *err,
                           size_t errlen) {
    char src[PATH_MAX_ + 600];
    if (ls->tops == 1 && !ls->top_file)
        snprintf(src, sizeof src, "%s/%s", tmp, ls->top);
    else
        snprintf(src, sizeof src, "%s", tmp);
    if (!is_dir(src)) snprintf(src, sizeof src, "%s", tmp);
    if (is_dir(final)) return replace_folder(src, tmp, final, err, errlen);
    if (rename(src, final) != 0) {
        int e = errno;
        rm_tree(tmp);
        if (is_dir(final)) return 0; /* another process put it there first */
        snprintf(err, errlen, "cannot rename %s to %s: %s", src, final, strerror(e));
        return -1;
    }
    if (strcmp(src, tmp) != 0) rm_tree(tmp);
    return 0;
}

static int untar_data_c(const untar_opts *o, char *out, size_t outlen, char *err, size_t errlen) {
    untar_paths p;
    if (untar_paths_init(o, &p, err, errlen) != 0) return -1;
    if (snprintf(out, outlen, "%s", p.final) >= (int)outlen) {
        snprintf(err, errlen, "path too long: %s", p.final);
        return -1;
    }
    if (!o->force && is_dir(p.final)) return 0; /* cached: no network */
    if (fetch_archive(&p, o->force, err, errlen) != 0) return -1;
    listing ls = {.tops = 0};
    if (list_archive(&p, &ls, err, errlen) != 0) return -1;
    char tmp[FTL_ATOMIC_PATH_MAX + 128];
    if (extract_archive(&p, tmp, sizeof tmp, err, errlen) != 0) return -1;
    return move_into_place(&ls, tmp, p.final, err, errlen);
}

/* ---------------------------------------------------------------- Lua */

/* untar_data(url [, {dest = folder, force = false}]) -> the extracted folder's path */
static int l_untar_data(lua_State *L) {
    untar_opts o = {.url = luaL_checkstring(L, 1)};
    static const char *const known[] = {"dest", "force", NULL};
    ftl_check_options(L, 2, "untar_data", known);
    char dest[PATH_MAX_];
    const char *d = ftl_opt_string(L, 2, "untar_data", "dest", NULL);
    if (d) {
        if (snprintf(dest, sizeof dest, "%s", d) >= (int)sizeof dest)
            return luaL_error(L, "untar_data: dest is too long");
        o.dest = dest;
    }
    o.force = ftl_opt_boolean(L, 2, "untar_data", "force", 0);
    char out[PATH_MAX_ + 300], err[16384];
    /* No Lua call inside: nothing to leak. The url string stays alive at index 1. */
    if (untar_data_c(&o, out, sizeof out, err, sizeof err) != 0)
        return luaL_error(L, "untar_data: %s", err);
    lua_pushstring(L, out);
    return 1;
}

int luaopen_ftlua_untar(lua_State *L) {
    lua_newtable(L);
    lua_pushcfunction(L, l_untar_data);
    lua_setfield(L, -2, "untar_data");
    lua_newtable(L);
    for (size_t i = 0; i < sizeof URLS / sizeof URLS[0]; i++) {
        lua_pushstring(L, URLS[i].url);
        lua_setfield(L, -2, URLS[i].name);
    }
    lua_setfield(L, -2, "URLs");
    return 1;
}
