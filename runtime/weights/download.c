/* download.c: PyTorch's checkpoint cache and downloads with the curl program.
 *
 * curl runs through posix_spawnp with an argv (no shell, so nothing in a URL is interpreted).
 * Its stderr comes back through a pipe: we forward it when the user wants a progress bar and
 * keep its last line, which is the reason we print when the download fails.
 */
#include "weights/download.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/atomic.h"
#include "weights/sha256.h"

extern char **environ;

#define CONNECT_TIMEOUT "30" /* seconds to reach the server */
#define STALL_SECONDS   "60" /* give up when slower than 1 KiB/s for this long */

/* ---------------------------------------------------------------- the cache folder */

/* "~" and "~/x" as os.path.expanduser does, since torch.hub expands TORCH_HOME that way. */
static int expand_home(const char *in, char *out, size_t outlen) {
    if (in[0] == '~' && (in[1] == 0 || in[1] == '/')) {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            struct passwd *pw = getpwuid(getuid());
            home = pw ? pw->pw_dir : "/";
        }
        return snprintf(out, outlen, "%s%s", home, in + 1) < (int)outlen ? 0 : -1;
    }
    return snprintf(out, outlen, "%s", in) < (int)outlen ? 0 : -1;
}

int weights_cache_dir(char *out, size_t outlen, char *err, size_t errlen) {
    char base[4096];
    const char *torch_home = getenv("TORCH_HOME"), *xdg = getenv("XDG_CACHE_HOME");
    int n;
    if (torch_home && *torch_home) {
        n = snprintf(base, sizeof base, "%s", torch_home);
    } else if (xdg && *xdg) {
        n = snprintf(base, sizeof base, "%s/torch", xdg);
    } else {
        n = snprintf(base, sizeof base, "~/.cache/torch");
    }
    char expanded[4096];
    if (n >= (int)sizeof base || expand_home(base, expanded, sizeof expanded) != 0) {
        snprintf(err, errlen,
                 "the cache folder name is too long (TORCH_HOME, XDG_CACHE_HOME, HOME)");
        return -1;
    }
    size_t len = strlen(expanded);
    while (len > 1 && expanded[len - 1] == '/') expanded[--len] = 0; /* tidy messages */
    if (snprintf(out, outlen, "%s/hub/checkpoints", expanded) >= (int)outlen) {
        snprintf(err, errlen, "the cache folder name is too long: %s/hub/checkpoints", expanded);
        return -1;
    }
    return 0;
}

int weights_mkdirs(const char *dir, char *err, size_t errlen) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        snprintf(err, errlen, "folder name too long: %s", dir);
        return -1;
    }
    /* Create each prefix in turn; ones that exist already are fine. */
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != 0) continue;
        char saved = *p;
        *p = 0;
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create the folder %s: %s", path, strerror(errno));
            return -1;
        }
        *p = saved;
        if (saved == 0) break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a folder", dir);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- names */

int weights_name_hash(const char *file, char out[65]) {
    for (const char *p = strchr(file, '-'); p; p = strchr(p + 1, '-')) {
        const char *q = p + 1;
        while ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f')) q++;
        if (*q == '.') {
            size_t n = (size_t)(q - p - 1);
            if (n > 64) n = 64; /* a sha256 has 64 digits; more can never match */
            memcpy(out, p + 1, n);
            out[n] = 0;
            return 1;
        }
    }
    return 0;
}

int weights_url_file(const char *url, char *out, size_t outlen, char *err, size_t errlen) {
    const char *rest = NULL;
    if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    if (!rest) {
        snprintf(err, errlen, "URL must start with http:// or https://: %.300s", url);
        return -1;
    }
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            snprintf(err, errlen, "URL has a space or a control character: %.300s", url);
            return -1;
        }
    const char *path = strchr(rest, '/');
    size_t end = path ? strcspn(path, "?#") : 0;
    const char *base = path;
    for (size_t k = 0; path && k < end; k++)
        if (path[k] == '/') base = path + k + 1;
    size_t n = path ? (size_t)(path + end - base) : 0;
    if (n == 0 || n >= outlen) {
        snprintf(err, errlen, "cannot take a file name from the URL %.300s", url);
        return -1;
    }
    memcpy(out, base, n);
    out[n] = 0;
    return 0;
}

/* ---------------------------------------------------------------- curl */

/* curl's own words for a failure, from the tail of its stderr: "curl: (6) Could not resolve
 * host: x" becomes "curl: Could not resolve host: x". */
static void curl_reason(const char *tail, int status, char *out, size_t outlen) {
    const char *p = NULL;
    for (const char *q = strstr(tail, "curl: ("); q; q = strstr(q + 1, "curl: (")) p = q;
    if (p) {
        p += 7;
        while (*p && *p != ')') p++;
        if (*p == ')') p++;
        while (*p == ' ') p++;
        size_t n = strcspn(p, "\r\n");
        snprintf(out, outlen, "curl: %.*s", (int)n, p);
    } else if (WIFSIGNALED(status)) {
        snprintf(out, outlen, "curl was stopped by signal %d", WTERMSIG(status));
    } else {
        snprintf(out, outlen, "curl exited with status %d", WEXITSTATUS(status));
    }
}

/* Read fd (curl's stderr) to its end: forward it to our stderr when progress is set (curl's
 * progress bar), and keep its last bytes in tail (NUL-terminated) for the reason of a failure. */
static void read_tail(int fd, int progress, char *tail, size_t cap) {
    size_t ntail = 0;
    char buf[1024];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (progress) fwrite(buf, 1, (size_t)n, stderr);
        if (ntail + (size_t)n >= cap) { /* keep the newest half */
            size_t keep = cap / 2 < ntail ? cap / 2 : ntail;
            memmove(tail, tail + ntail - keep, keep);
            ntail = keep;
        }
        size_t take = (size_t)n < cap - 1 - ntail ? (size_t)n : cap - 1 - ntail;
        memcpy(tail + ntail, buf + n - take, take);
        ntail += take;
    }
    tail[ntail] = 0;
}

/* Run curl to fetch url into tmp. Returns 0, or -1 with the reason in why. With resume != 0,
 * curl continues a partial tmp (-C -: it appends, asking for the rest with a Range header);
 * *exit_code gets curl's exit status (-1 when it did not exit normally), when not NULL. */
static int run_curl_ex(const char *url, const char *tmp, int progress, int resume, int *exit_code,
                       char *why, size_t whylen) {
    const char *curl = getenv("FTLUA_CURL");
    if (!curl || !*curl) curl = "curl";
    if (exit_code) *exit_code = -1;
    const char *argv[] = {curl,
                          "-q", /* -q first: ignore ~/.curlrc, so the options are ours */
                          "--fail",
                          "--location",
                          "--max-redirs",
                          "10",
                          "--globoff",
                          "--proto",
                          "=http,https",
                          "--proto-redir",
                          "=http,https",
                          "--connect-timeout",
                          CONNECT_TIMEOUT,
                          "--speed-limit",
                          "1024",
                          "--speed-time",
                          STALL_SECONDS,
                          progress ? "--progress-bar" : "--silent",
                          "--show-error",
                          "--output",
                          tmp,
                          "--url",
                          url,
                          resume ? "--continue-at" : NULL,
                          "-",
                          NULL};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2); /* dup2 clears close-on-exec on fd 2 */
    pid_t pid;
    int rc = posix_spawnp(&pid, curl, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        if (rc == ENOENT)
            snprintf(why, whylen,
                     "the curl program was not found: install it (apt-get install curl)");
        else
            snprintf(why, whylen, "cannot run %s: %s", curl, strerror(rc));
        return -1;
    }
    char tail[4096];
    read_tail(fds[0], progress, tail, sizeof tail);
    close(fds[0]);
    if (progress) fflush(stderr);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            snprintf(why, whylen, "waitpid: %s", strerror(errno));
            return -1;
        }
    }
    if (exit_code && WIFEXITED(status)) *exit_code = WEXITSTATUS(status);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    curl_reason(tail, status, why, whylen);
    return -1;
}

static int run_curl(const char *url, const char *tmp, int progress, char *why, size_t whylen) {
    return run_curl_ex(url, tmp, progress, 0, NULL, why, whylen);
}

/* ---------------------------------------------------------------- the download */

int weights_download(const char *url, const char *dir, const char *file, const char *sha_prefix,
                     int progress, char *err, size_t errlen) {
    char tmp[FTL_ATOMIC_PATH_MAX + 128], final[4200], why0[1200];
    if (snprintf(final, sizeof final, "%s/%s", dir, file) >= (int)sizeof final) {
        snprintf(err, errlen, "path too long: %s/%s", dir, file);
        return -1;
    }
    /* ftlua's temp pattern: a download cut off by kill -9 is removed at the next one */
    if (af_temp_name(final, tmp, sizeof tmp, why0, sizeof why0) != 0) {
        snprintf(err, errlen, "%s (set TORCH_HOME to a writable folder)", why0);
        return -1;
    }
    int fd = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, errlen,
                 "cannot create a file in %s: %s (set TORCH_HOME to a writable folder)", dir,
                 strerror(errno));
        unlink(tmp);
        return -1;
    }
    fprintf(stderr, "Downloading %s to %s\n", url, final);
    char why[512];
    if (run_curl(url, tmp, progress, why, sizeof why) != 0) {
        close(fd);
        unlink(tmp);
        snprintf(err, errlen, "cannot download %s from %s (%s). Put the file in %s/ and run again.",
                 file, url, why, dir);
        return -1;
    }
    /* curl wrote through its own descriptor to the same file; read it back through ours. */
    uint8_t digest[32];
    char hex[65];
    struct stat st;
    if (fstat(fd, &st) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
        snprintf(err, errlen, "cannot read back the download of %s: %s", file, strerror(errno));
        goto fail;
    }
    if (sha256_fd(fd, digest, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot read back the download of %s: %s", file, why);
        goto fail;
    }
    sha256_hex(digest, hex);
    if (st.st_size == 0) {
        snprintf(err, errlen,
                 "cannot download %s from %s (the server sent an empty file). Put the "
                 "file in %s/ and run again.",
                 file, url, dir);
        goto fail;
    }
    if (sha_prefix && *sha_prefix && strncmp(hex, sha_prefix, strlen(sha_prefix)) != 0) {
        snprintf(err, errlen,
                 "downloaded %s from %s but its sha256 is wrong: expected %s..., got "
                 "%s; the download was deleted",
                 file, url, sha_prefix, hex);
        goto fail;
    }
    close(fd);
    /* fsync + rename; the temp is removed on failure */
    if (af_rename(tmp, final, why0, sizeof why0) != 0) {
        snprintf(err, errlen, "%s", why0);
        return -1;
    }
    return 0;
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    return -1;
}

/* ---------------------------------------------------------------- resumable downloads */

int weights_expand_home(const char *in, char *out, size_t outlen) {
    return expand_home(in, out, outlen);
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

int weights_download_resume(const char *url, const char *path, int progress, char *err,
                            size_t errlen) {
    /* PATH.part keeps its name across runs on purpose: the next try resumes it */
    char part[4200];
    if (snprintf(part, sizeof part, "%s.part", path) >= (int)sizeof part) {
        snprintf(err, errlen, "path too long: %s", path);
        return -1;
    }
    char why[512] = "";
    int restarted = 0;
    for (int attempt = 0; attempt < 6; attempt++) {
        long long before = file_size(part);
        int resume = before > 0;
        if (attempt == 0)
            fprintf(stderr,
                    resume ? "Resuming the download of %s into %s (%lld bytes kept)\n"
                           : "Downloading %s to %s\n",
                    url, path, before);
        int code = -1;
        if (run_curl_ex(url, part, progress, resume, &code, why, sizeof why) == 0) {
            if (file_size(part) <= 0) {
                unlink(part);
                snprintf(why, sizeof why, "the server sent an empty file");
                break;
            }
            char why1[1200];
            if (af_rename(part, path, why1, sizeof why1) != 0) {
                snprintf(err, errlen, "%s", why1);
                return -1;
            }
            return 0;
        }
        long long after = file_size(part);
        /* 33: the server cannot resume; 36: bad resume offset; 22 with a kept part: likely
         * HTTP 416 (the part is not a prefix of the file). Start again from nothing, once. */
        if (resume && !restarted && (code == 33 || code == 36 || (code == 22 && after <= before))) {
            fprintf(stderr, "Cannot resume %s (%s); starting again\n", url, why);
            unlink(part);
            restarted = 1;
            continue;
        }
        /* Cut off after some progress (curl 18, 28, 56, ...): go on from where it stopped. */
        if (after > (before > 0 ? before : 0) && code != 22) continue;
        break;
    }
    long long kept = file_size(part);
    if (kept == 0) unlink(part);
    if (kept > 0)
        snprintf(err, errlen, "cannot download %s (%s); %lld bytes are kept in %s for the next try",
                 url, why, kept, part);
    else
        snprintf(err, errlen, "cannot download %s (%s)", url, why);
    return -1;
}
