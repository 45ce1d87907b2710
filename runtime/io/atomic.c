/* atomic.c: temp file + checked rename; see atomic.h. */
#include "io/atomic.h"
#include "io/errbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define TEMP_TAG  ".ftlua-tmp."
#define BASE_KEEP 150 /* bytes of the base name kept in the temp name (NAME_MAX is 255) */

/* The folder holding path, and the base name ("a/b.csv" -> "a", "b.csv"; "b.csv" -> "."). */
static int split_path(const char *path, char *dir, size_t dirlen, const char **base) {
    const char *slash = strrchr(path, '/');
    int n;
    if (!slash) {
        n = snprintf(dir, dirlen, ".");
        *base = path;
    } else if (slash == path) {
        n = snprintf(dir, dirlen, "/");
        *base = slash + 1;
    } else {
        n = snprintf(dir, dirlen, "%.*s", (int)(slash - path), path);
        *base = slash + 1;
    }
    return n < 0 || (size_t)n >= dirlen ? -1 : 0;
}

/* This host's name with only [A-Za-z0-9_-] kept (no dots, so the temp name parses). */
static void host_tag(char *out, size_t outlen) {
    char h[256] = "";
    if (gethostname(h, sizeof h - 1) != 0 || !h[0]) snprintf(h, sizeof h, "host");
    size_t k = 0;
    for (const char *p = h; *p && k + 1 < outlen && k < 40; p++) {
        char c = *p;
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_';
        out[k++] = keep ? c : '_';
    }
    out[k] = 0;
}

/* Splits a temp name into host and pid. 0 when name follows the pattern, else -1. */
static int parse_temp(const char *name, char *host, size_t hostlen, long *pid) {
    size_t n = strlen(name);
    if (n < 1 + strlen(TEMP_TAG) + 1 + 1 + 1 + 1 + 1 + 6 || name[0] != '.') return -1;
    const char *rnd = name + n - 6; /* 6 random chars after the last dot */
    if (rnd[-1] != '.') return -1;
    for (const char *p = rnd; *p; p++)
        if (*p == '.' || *p == '/') return -1;
    const char *pid_end = rnd - 1, *pid_start = pid_end;
    while (pid_start > name && pid_start[-1] >= '0' && pid_start[-1] <= '9') pid_start--;
    if (pid_start == pid_end || pid_end - pid_start > 10 || pid_start[-1] != '.') return -1;
    const char *host_end = pid_start - 1, *host_start = host_end;
    while (host_start > name && host_start[-1] != '.') host_start--;
    if (host_start == host_end) return -1;
    size_t tag = strlen(TEMP_TAG);
    if ((size_t)(host_start - name) < tag + 1 || memcmp(host_start - tag, TEMP_TAG, tag) != 0)
        return -1;
    if (host) snprintf(host, hostlen, "%.*s", (int)(host_end - host_start), host_start);
    if (pid) *pid = strtol(pid_start, NULL, 10);
    return 0;
}

int af_is_temp_name(const char *name) { return name && parse_temp(name, NULL, 0, NULL) == 0; }

/* ftlua before this writer wrote safetensors through "NAME.safetensors.tmp.<pid>" and left
 * them behind when killed: those are removed too, when their pid is dead. */
static long legacy_temp_pid(const char *name) {
    static const char tag[] = ".safetensors.tmp.";
    const char *t = strstr(name, tag);
    if (!t || t == name) return -1;
    const char *d = t + strlen(tag);
    if (!*d || strlen(d) > 10) return -1;
    for (const char *p = d; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    return strtol(d, NULL, 10);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

int af_reap(const char *path) {
    char dir[FTL_ATOMIC_PATH_MAX], me[64], host[64];
    const char *base;
    if (!path || split_path(path, dir, sizeof dir, &base) != 0) return 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    host_tag(me, sizeof me);
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = 0;
        if (parse_temp(e->d_name, host, sizeof host, &pid) == 0) {
            if (strcmp(host, me) != 0) continue;
        } else if ((pid = legacy_temp_pid(e->d_name)) < 0) {
            continue;
        }
        if (pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to ask) */
        char full[FTL_ATOMIC_PATH_MAX + 512];
        if (snprintf(full, sizeof full, "%s/%s", dir, e->d_name) >= (int)sizeof full) continue;
        struct stat st;
        if (lstat(full, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if (nftw(full, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0) removed++;
        } else if (unlink(full) == 0) {
            removed++;
        }
    }
    closedir(d);
    return removed;
}

/* A fresh temp name next to path (not created). */
static int make_temp_name(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen) {
    static unsigned counter;
    char dir[FTL_ATOMIC_PATH_MAX], host[64];
    const char *base;
    if (!path || !path[0]) {
        errbuf_set(err, errlen, "no path given");
        return -1;
    }
    if (split_path(path, dir, sizeof dir, &base) != 0 || !base[0]) {
        errbuf_set(err, errlen, "'%s' is not a file path (it %s)", path,
                   base && !base[0] ? "ends with '/'" : "is too long");
        return -1;
    }
    host_tag(host, sizeof host);
    static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x =
        (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 32 ^
        (uint64_t)__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) * 0xBF58476D1CE4E5B9ull;
    char rnd[7];
    for (int i = 0; i < 6; i++) {
        x ^= x >> 29;
        x *= 0x94D049BB133111EBull;
        rnd[i] = abc[(x >> 40) % (sizeof abc - 1)];
    }
    rnd[6] = 0;
    int n = snprintf(tmp, tmplen, "%s/.%.*s" TEMP_TAG "%s.%ld.%s", dir, BASE_KEEP, base, host,
                     (long)getpid(), rnd);
    if (n < 0 || (size_t)n >= tmplen) {
        errbuf_set(err, errlen, "'%s': path too long", path);
        return -1;
    }
    return 0;
}

/* Creates a fresh temp next to path with O_EXCL (a planted symlink is never followed). */
static int create_temp(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen) {
    af_reap(path);
    for (int tries = 0; tries < 100; tries++) {
        if (make_temp_name(path, tmp, tmplen, err, errlen) != 0) return -1;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            struct stat st; /* keep an existing file's permission bits */
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) (void)fchmod(fd, st.st_mode & 07777);
            return fd;
        }
        if (errno != EEXIST) {
            errbuf_set(err, errlen, "cannot write '%s': %s", path, strerror(errno));
            return -1;
        }
    }
    errbuf_set(err, errlen, "cannot write '%s': no free temp name", path);
    return -1;
}

/* fsync the folder holding path, so the rename itself survives a power cut. Best effort. */
static void sync_dir(const char *path) {
    char dir[FTL_ATOMIC_PATH_MAX];
    const char *base;
    if (split_path(path, dir, sizeof dir, &base) != 0) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* af->f writes through here, so the first errno of a failed write (ENOSPC) is kept even when
 * later calls change errno. The cookie is the af_file, which must not move. */
typedef struct {
    int fd;
    int err_no;
} cookie_state;

static ssize_t cookie_write(void *c, const char *buf, size_t n) {
    cookie_state *s = c;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(s->fd, buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (!s->err_no) s->err_no = w < 0 ? errno : ENOSPC;
            return done > 0 ? (ssize_t)done : -1;
        }
        done += (size_t)w;
    }
    return (ssize_t)done;
}

static int cookie_close(void *c) {
    free(c); /* the fd is closed by commit/abort, after fsync */
    return 0;
}

int af_open(af_file *af, const char *path, char *err, size_t errlen) {
    memset(af, 0, sizeof *af);
    af->fd = -1;
    if (!path || strlen(path) >= sizeof af->path) {
        if (path)
            errbuf_set(err, errlen, "'%.200s...': path too long", path);
        else
            errbuf_set(err, errlen, "no path given");
        return -1;
    }
    snprintf(af->path, sizeof af->path, "%s", path);
    int fd = create_temp(path, af->tmp, sizeof af->tmp, err, errlen);
    if (fd < 0) {
        af->tmp[0] = 0;
        return -1;
    }
    cookie_state *s = calloc(1, sizeof *s);
    cookie_io_functions_t io = {
        .read = NULL, .write = cookie_write, .seek = NULL, .close = cookie_close};
    if (s) s->fd = fd;
    af->f = s ? fopencookie(s, "w", io) : NULL;
    af->priv = s;
    if (!af->f) {
        free(s);
        close(fd);
        unlink(af->tmp);
        af->tmp[0] = 0;
        errbuf_set(err, errlen, "cannot write '%s': out of memory", path);
        return -1;
    }
    af->fd = fd;
    return 0;
}

void af_abort(af_file *af) {
    if (!af) return;
    if (af->f) fclose(af->f); /* frees the cookie */
    af->f = NULL;
    af->priv = NULL;
    if (af->fd >= 0) close(af->fd);
    af->fd = -1;
    if (af->tmp[0]) unlink(af->tmp);
    af->tmp[0] = 0;
}

int af_commit(af_file *af, char *err, size_t errlen) {
    if (!af || !af->f || af->fd < 0) {
        errbuf_set(err, errlen, "cannot write '%s': the file is not open",
                   af ? af->path : "(none)");
        return -1;
    }
    /* the first errno a write saw (kept by cookie_write), else the flush's own */
    int rc = fflush(af->f);
    int e = errno;
    cookie_state *s = af->priv;
    int first = s && s->err_no ? s->err_no : 0;
    if (rc != 0 || ferror(af->f) || first) {
        if (!first) first = e ? e : EIO;
        goto fail;
    }
    if (fsync(af->fd) != 0) {
        first = errno;
        errbuf_set(err, errlen, "cannot write '%s': %s (while syncing)", af->path, strerror(first));
        af_abort(af);
        return -1;
    }
    fclose(af->f); /* frees the cookie */
    af->f = NULL;
    af->priv = NULL;
    if (close(af->fd) != 0) {
        first = errno;
        af->fd = -1;
        goto fail;
    }
    af->fd = -1;
    if (rename(af->tmp, af->path) != 0) {
        first = errno;
        errbuf_set(err, errlen, "cannot replace '%s': %s", af->path, strerror(first));
        af_abort(af);
        return -1;
    }
    af->tmp[0] = 0;
    sync_dir(af->path);
    return 0;
fail:
    errbuf_set(err, errlen, "cannot write '%s': %s", af->path, strerror(first));
    af_abort(af);
    return -1;
}

int af_write(const char *path, const void *data, size_t len, char *err, size_t errlen) {
    af_file af;
    if (af_open(&af, path, err, errlen) != 0) return -1;
    if (len) fwrite(data, 1, len, af.f); /* a short write is reported by commit, with its cause */
    return af_commit(&af, err, errlen);
}

int af_temp_name(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen) {
    int fd = create_temp(path, tmp, tmplen, err, errlen);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

int af_temp_dir(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen) {
    af_reap(path);
    for (int tries = 0; tries < 100; tries++) {
        if (make_temp_name(path, tmp, tmplen, err, errlen) != 0) return -1;
        if (mkdir(tmp, 0777) == 0) return 0;
        if (errno != EEXIST) {
            errbuf_set(err, errlen, "cannot create a folder next to '%s': %s", path,
                       strerror(errno));
            return -1;
        }
    }
    errbuf_set(err, errlen, "cannot create a folder next to '%s': no free temp name", path);
    return -1;
}

int af_rename(const char *tmp, const char *path, char *err, size_t errlen) {
    struct stat st;
    int fd = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) != 0) {
        errbuf_set(err, errlen, "cannot write '%s': the writer left no file (%s)", path,
                   strerror(errno));
        if (fd >= 0) close(fd);
        unlink(tmp);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        /* the other process's errno is lost; a full file system is the usual cause: say so */
        struct statvfs vfs;
        int full = S_ISREG(st.st_mode) && fstatvfs(fd, &vfs) == 0 && vfs.f_bavail == 0;
        errbuf_set(err, errlen, "cannot write '%s': the writer produced %s%s", path,
                   S_ISREG(st.st_mode) ? "an empty file" : "something that is not a file",
                   full ? ": No space left on device" : "");
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errbuf_set(err, errlen, "cannot write '%s': %s (while syncing)", path, strerror(e));
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errbuf_set(err, errlen, "cannot replace '%s': %s", path, strerror(e));
        return -1;
    }
    sync_dir(path);
    return 0;
}
