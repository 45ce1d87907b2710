/* plot_file.h: how figures reach their files: whole or not at all.
 *
 * Every figure file (gnuplot's output, image grids, text tables) is written to a temp file in
 * the same folder, checked, and renamed into place, so a full disk or a crash never leaves a
 * 0-byte or half-written figure at the path, and a failure is an error naming the file and the
 * cause. Over io/atomic.h (its temp names, stale-temp cleanup and checked rename), adding what
 * figures need: a clear message for a missing folder, and a check that gnuplot's file is whole.
 * Plain C, no Lua: errors go to the caller's buffer. */
#ifndef FTLUA_PLOT_FILE_H
#define FTLUA_PLOT_FILE_H

#include <stddef.h>

/* What a complete file of each kind ends with (checked before the rename). */
enum { FTL_FIG_ANY, FTL_FIG_PNG, FTL_FIG_SVG, FTL_FIG_PDF };

/* A fresh temp name next to path (io/atomic.h's ".<name>.ftlua-tmp...": hidden, and not ending
 * in .png, so a folder watcher such as --report's never takes it for a figure), after checking
 * that the folder exists. 0, or -1 with err ("cannot write 'x.png': folder 'out' does not exist").
 */
int ftp_fig_tmpname(const char *path, char *tmp, size_t tmpsz, char *err, size_t errlen);

/* tmp was written by another process (gnuplot): check it is non-empty and ends as a `check`
 * file must, then sync and rename it to path. On any failure tmp is removed and err says why. */
int ftp_fig_commit(const char *tmp, const char *path, int check, char *err, size_t errlen);

/* Write n bytes to path atomically (af_write), after the folder check. */
int ftp_fig_write(const char *path, const void *data, size_t n, char *err, size_t errlen);

#endif
