/* plot_file.c: figure files written whole or not at all (see plot_file.h). */
#include "plot/plot_file.h"

#include "io/atomic.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* The folder of path exists (a clearer message than the open's ENOENT). */
static int check_folder(const char *path, char *err, size_t errlen) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    int dirlen = slash ? (int)(slash - path) : 0;
    if (!*base) {
        snprintf(err, errlen, "cannot write '%s': it names a folder, not a file", path);
        return -1;
    }
    if (slash) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%.*s", dirlen ? dirlen : 1, dirlen ? path : "/");
        struct stat st;
        if (stat(dir, &st) != 0) {
            snprintf(err, errlen, "cannot write '%s': folder '%s' %s", path, dir,
                     errno == ENOENT ? "does not exist" : strerror(errno));
            return -1;
        }
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "cannot write '%s': '%s' is not a folder", path, dir);
            return -1;
        }
    }
    return 0;
}

int ftp_fig_tmpname(const char *path, char *tmp, size_t tmpsz, char *err, size_t errlen) {
    if (check_folder(path, err, errlen) != 0) return -1;
    return af_temp_name(path, tmp, tmpsz, err, errlen); /* reserved, stale temps reaped */
}

/* Does the file's tail look like a complete file of this kind? */
static int complete(FILE *f, long size, int check) {
    char tail[64];
    long n = size < (long)sizeof tail ? size : (long)sizeof tail;
    if (fseek(f, size - n, SEEK_SET) != 0 || fread(tail, 1, (size_t)n, f) != (size_t)n) return 0;
    switch (check) {
    case FTL_FIG_PNG: return n >= 12 && memcmp(tail + n - 8, "IEND", 4) == 0;
    case FTL_FIG_SVG:
    case FTL_FIG_PDF: {
        const char *want = check == FTL_FIG_SVG ? "</svg>" : "%%EOF";
        size_t wl = strlen(want);
        for (long i = 0; i + (long)wl <= n; i++)
            if (memcmp(tail + i, want, wl) == 0) return 1;
        return 0;
    }
    default: return 1;
    }
}

int ftp_fig_commit(const char *tmp, const char *path, int check, char *err, size_t errlen) {
    FILE *f = fopen(tmp, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot write '%s': gnuplot wrote no file (%s)", path,
                 strerror(errno));
        return -1;
    }
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    int ok = size > 0 && complete(f, size, check);
    fclose(f);
    /* gnuplot does not report a failed write: a full disk shows as an empty or cut file */
    if (size <= 0 || !ok) {
        if (size <= 0)
            snprintf(err, errlen,
                     "cannot write '%s': gnuplot wrote an empty file (is the disk full?)", path);
        else
            snprintf(
                err, errlen,
                "cannot write '%s': gnuplot's file is incomplete (%ld bytes; is the disk full?)",
                path, size);
        remove(tmp);
        return -1;
    }
    return af_rename(tmp, path, err, errlen); /* fsync, rename, sync the folder */
}

int ftp_fig_write(const char *path, const void *data, size_t n, char *err, size_t errlen) {
    if (check_folder(path, err, errlen) != 0) return -1;
    return af_write(path, data, n, err, errlen);
}
