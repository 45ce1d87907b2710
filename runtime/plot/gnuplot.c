/* gnuplot.c: the gnuplot child process (see gnuplot.h). No Lua here. */
#include "plot/gnuplot.h"

#include "base/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define GP_TIMEOUT_MS 30000 /* no progress for this long: gnuplot is stuck */

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

int gp_open(gp_proc *p, char *err, size_t errsz) {
    p->pid = -1;
    p->in_fd = p->err_fd = -1;
    p->sync = 0;
    int sv[2] = {-1, -1}, ep[2] = {-1, -1};
    /* CLOEXEC everywhere: another figure's gnuplot must not inherit this one's ends, or
     * closing our end would never give this gnuplot its EOF. dup2 in the child clears it. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || pipe2(ep, O_CLOEXEC) != 0) {
        snprintf(err, errsz, "cannot create pipes for gnuplot: %s", strerror(errno));
        if (sv[0] >= 0) close(sv[0]), close(sv[1]);
        return -1;
    }
    const char *exe = getenv("FTLUA_GNUPLOT");
    if (!exe || !*exe) exe = "gnuplot";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
    posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
    char *argv[] = {(char *)exe, (char *)"-persist", NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    close(ep[1]);
    if (rc != 0) {
        close(sv[0]);
        close(ep[0]);
        if (rc == ENOENT)
            snprintf(err, errsz,
                     "gnuplot not found (%s): install it with `apt-get install gnuplot-nox` "
                     "(or gnuplot-qt for windows), or set FTLUA_GNUPLOT",
                     exe);
        else
            snprintf(err, errsz, "cannot start gnuplot (%s): %s", exe, strerror(rc));
        return -1;
    }
    fcntl(ep[0], F_SETFL, fcntl(ep[0], F_GETFL) | O_NONBLOCK);
    p->pid = pid;
    p->in_fd = sv[0];
    p->err_fd = ep[0];
    return 0;
}

static long now_ms(void) { return (long)(monotonic_seconds() * 1000.0); }

int gp_exchange(gp_proc *p, const char *cmds, size_t n, char *out, size_t outsz, char *err,
                size_t errsz) {
    out[0] = '\0';
    if (p->pid < 0) {
        snprintf(err, errsz, "the figure is closed");
        return -1;
    }
    char marker[48], tail[80];
    int mlen = snprintf(marker, sizeof marker, "FTLUA_SYNC_%u", ++p->sync);
    int tlen = snprintf(tail, sizeof tail, "\nprint \"%s\"\n", marker);
    size_t sent = 0, total = n + (size_t)tlen, used = 0;
    char line[512];
    size_t llen = 0;
    int line_long = 0;
    long last = now_ms();
    for (;;) {
        struct pollfd fds[2] = {{p->err_fd, POLLIN, 0}, {p->in_fd, POLLOUT, 0}};
        int nfds = sent < total ? 2 : 1;
        long left = GP_TIMEOUT_MS - (now_ms() - last);
        if (left <= 0) {
            snprintf(err, errsz, "gnuplot did not answer in %d s", GP_TIMEOUT_MS / 1000);
            gp_close(p);
            return -1;
        }
        int r = poll(fds, (nfds_t)nfds, (int)left);
        if (r < 0) {
            if (errno == EINTR) continue;
            snprintf(err, errsz, "poll on gnuplot: %s", strerror(errno));
            gp_close(p);
            return -1;
        }
        if (nfds == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            const char *src = sent < n ? cmds + sent : tail + (sent - n);
            size_t len = sent < n ? n - sent : total - sent;
            ssize_t w = send(p->in_fd, src, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                snprintf(err, errsz, "gnuplot exited (writing to it: %s)", strerror(errno));
                gp_close(p);
                return -1;
            }
            if (w > 0) sent += (size_t)w, last = now_ms();
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[4096];
            ssize_t got = read(p->err_fd, buf, sizeof buf);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (got <= 0) {
                snprintf(err, errsz, "gnuplot exited unexpectedly%s%s", out[0] ? ": " : "", out);
                gp_close(p);
                return -1;
            }
            last = now_ms();
            for (ssize_t i = 0; i < got; i++) {
                char c = buf[i];
                if (c != '\n') {
                    if (llen + 1 < sizeof line)
                        line[llen++] = c;
                    else
                        line_long = 1;
                    continue;
                }
                line[llen] = '\0';
                if (!line_long && llen == (size_t)mlen && memcmp(line, marker, llen) == 0) return 0;
                if (used + llen + 2 < outsz) {
                    memcpy(out + used, line, llen);
                    used += llen;
                    out[used++] = '\n';
                    out[used] = '\0';
                }
                llen = 0;
                line_long = 0;
            }
        }
    }
}

void gp_close(gp_proc *p) {
    close_fd(&p->in_fd); /* EOF on its stdin: gnuplot exits */
    close_fd(&p->err_fd);
    if (p->pid < 0) return;
    pid_t pid = p->pid;
    p->pid = -1;
    for (int i = 0; i < 300; i++) { /* up to 3 s */
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
}

/* Copy s (len bytes) into msg at *pos, truncating. */
static void append(char *msg, size_t msgsz, size_t *pos, const char *s, size_t len) {
    if (*pos + 1 >= msgsz) return;
    if (len > msgsz - 1 - *pos) len = msgsz - 1 - *pos;
    memcpy(msg + *pos, s, len);
    *pos += len;
    msg[*pos] = '\0';
}

int gp_parse_error(const char *text, char *msg, size_t msgsz) {
    /* gnuplot reports an error reading a pipe as:
     *   gnuplot> <the command>
     *                ^
     *            line 0: <message>
     *   system error: <more>          (sometimes)
     * Warnings come as "Warning: ..." or "line N: warning: ...". */
    const char *cmd = NULL, *what = NULL, *extra = NULL;
    size_t cmdlen = 0, whatlen = 0, extralen = 0;
    for (const char *s = text; *s;) {
        const char *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        const char *t = s;
        while (t < s + len && (*t == ' ' || *t == '\t')) t++;
        size_t tl = len - (size_t)(t - s);
        int num = 0;
        if (tl > 8 && strncmp(t, "gnuplot> ", 9) == 0) {
            if (!what) cmd = t + 9, cmdlen = tl - 9;
        } else if (tl > 5 && strncmp(t, "line ", 5) == 0 && sscanf(t, "line %d:", &num) == 1) {
            const char *m = strchr(t, ':') + 1;
            while (*m == ' ') m++;
            size_t ml = tl - (size_t)(m - t);
            if (!what && strncmp(m, "warning:", 8) != 0) what = m, whatlen = ml;
        } else if (what && !extra && tl > 0 && *t != '^') {
            extra = t, extralen = tl;
        }
        s = e ? e + 1 : s + len;
    }
    if (!what) return 0;
    size_t pos = 0;
    msg[0] = '\0';
    append(msg, msgsz, &pos, "gnuplot: ", 9);
    append(msg, msgsz, &pos, what, whatlen);
    if (extra) {
        append(msg, msgsz, &pos, " (", 2);
        append(msg, msgsz, &pos, extra, extralen);
        append(msg, msgsz, &pos, ")", 1);
    }
    if (cmd) {
        append(msg, msgsz, &pos, ", in command: ", 14);
        append(msg, msgsz, &pos, cmd, cmdlen > 200 ? 200 : cmdlen);
    }
    return 1;
}
