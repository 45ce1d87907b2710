/* atomic.h: write a file so that its path always holds either the old file or the new one,
 * whole, and say so when the write fails. Pure C11 + POSIX: no libtorch, no Lua.
 *
 *   af_file af;
 *   if (af_open(&af, "out/model.safetensors", err, sizeof err)) return -1;
 *   fwrite(buf, 1, n, af.f);                         // or write(af.fd, ...)
 *   if (af_commit(&af, err, sizeof err)) return -1;  // the temp is gone on failure
 *
 * The new bytes go to a temp file in the same folder, named
 *
 *   .<base>.ftlua-tmp.<host>.<pid>.<6 random chars>
 *
 * Commit checks fflush/ferror/fsync/fclose, then renames the temp over the path (atomic on
 * POSIX file systems) and syncs the folder. Any failure removes the temp and leaves the old
 * file untouched; the error names the path and the cause ("No space left on device").
 *
 * A process killed with SIGKILL cannot remove its temp. So every open (and every
 * af_temp_name) first removes the temps of this pattern in that folder whose pid is
 * no longer alive on this host: orphans never outlive the next write to the same folder.
 * The host in the name keeps a folder shared over NFS from losing another machine's temps.
 * The temps of older ftlua versions ("NAME.safetensors.tmp.<pid>") are removed the same way.
 *
 * The path is replaced, not written through: when it is a symlink, the link itself is
 * replaced by the new file. An existing file's permission bits are kept.
 */
#ifndef FTLUA_ATOMIC_H
#define FTLUA_ATOMIC_H

#include <stddef.h>
#include <stdio.h>

#define FTL_ATOMIC_PATH_MAX 4096

typedef struct {
    FILE *f;                             /* write here (buffered) ... */
    int fd;                              /* ... or here (unbuffered); fileno(f). -1 when closed */
    char path[FTL_ATOMIC_PATH_MAX];      /* the final path */
    char tmp[FTL_ATOMIC_PATH_MAX + 128]; /* the temp file in the same folder */
    void *priv;                          /* the stream's state: the first write error */
} af_file;

/* Creates the temp file next to path (after removing stale temps there). 0, or -1 with err. */
int af_open(af_file *af, const char *path, char *err, size_t errlen);

/* Flushes, syncs and closes the temp, then renames it over path. 0, or -1 with err; either
 * way af is closed and its temp is gone afterwards. */
int af_commit(af_file *af, char *err, size_t errlen);

/* Closes and removes the temp; path is untouched. Safe to call twice, or after commit. */
void af_abort(af_file *af);

/* Writes len bytes to path atomically: open + write + commit. 0, or -1 with err. */
int af_write(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* For writers that are other processes (gnuplot, curl): puts a fresh temp name next to path
 * into tmp (after removing stale temps there) and creates it empty, so the name is reserved.
 * The other process writes to tmp; then call af_rename, or remove(tmp) to give up.
 * 0, or -1 with err. */
int af_temp_name(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen);

/* Like af_temp_name for a folder (untar): creates an empty temp folder next to path.
 * Stale temp folders are removed with everything in them. */
int af_temp_dir(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen);

/* Checked rename of a temp written by another process: tmp must be a regular, non-empty file;
 * it is synced, renamed over path, and the folder is synced. On failure tmp is removed and
 * path is untouched. 0, or -1 with err naming path and the cause. */
int af_rename(const char *tmp, const char *path, char *err, size_t errlen);

/* Removes stale temps (dead pid, this host) in the folder that holds path. Returns how many
 * were removed. Called by the functions above; exposed for tests and for `ftlua` tools. */
int af_reap(const char *path);

/* 1 when name (a file name, no folder) follows the temp pattern above. */
int af_is_temp_name(const char *name);

#endif
