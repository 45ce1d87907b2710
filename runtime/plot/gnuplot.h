/* gnuplot.h: one gnuplot child process fed through a socket, its stderr read back.
 *
 * Pure C, no Lua: every function reports failure through a caller's buffer, so the Lua binding
 * (plot.c) can close what it owns before it raises. */
#ifndef FTLUA_PLOT_GNUPLOT_H
#define FTLUA_PLOT_GNUPLOT_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;     /* -1 when closed */
    int in_fd;     /* gnuplot's stdin (a socket: writes never raise SIGPIPE) */
    int err_fd;    /* gnuplot's stderr (a pipe), read back after every batch */
    unsigned sync; /* counter of the markers printed after each batch */
} gp_proc;

/* Start gnuplot (FTLUA_GNUPLOT or "gnuplot" from PATH). 0 on success; -1 with err filled. */
int gp_open(gp_proc *p, char *err, size_t errsz);
/* Send cmds (n bytes, newline-terminated lines), then a marker; read stderr up to the marker.
 * Returns 0 when gnuplot answered (its stderr text is in out, NUL-terminated, truncated to
 * outsz), -1 on an I/O failure or timeout (err filled; the process is then closed). */
int gp_exchange(gp_proc *p, const char *cmds, size_t n, char *out, size_t outsz, char *err,
                size_t errsz);
/* Close stdin, wait for the process (bounded), kill it if needed, reap it. Idempotent. */
void gp_close(gp_proc *p);
/* Turn gnuplot's stderr text into an error message (returns 1) or 0 when it holds no error.
 * Warnings (lines without "line N:") are left for the caller to print. */
int gp_parse_error(const char *text, char *msg, size_t msgsz);

#endif
