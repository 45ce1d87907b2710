/* launch.c: `ftlua --nproc N [--nnodes M --node-rank R --master-addr HOST --master-port P]
 * script.lua`, a launcher like torchrun. It starts N copies of ftlua on this machine, each with
 * RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set (the script's
 * ft.dist / Learner read them and do the TCPStore rendezvous), and watches them:
 *
 * - all exit 0: exit 0;
 * - one exits non-zero or is killed: the others get a grace period to end on their own (their
 *   collectives fail with a message of their own once the peer is gone), then SIGTERM (with
 *   SIGCONT, for a stopped rank), then SIGKILL 5 s later; the launcher names the first rank that
 *   failed and exits 1. Never a hang: a rank that stops responding makes the others'
 *   collectives time out (FTLUA_DIST_TIMEOUT), they exit non-zero, and the rule above ends it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "dist/dist.h"

#define MAX_PROCS 256

static pid_t g_pids[MAX_PROCS];
static int g_n;

static void forward_signal(int sig) {
    for (int i = 0; i < g_n; i++)
        if (g_pids[i] > 0) kill(g_pids[i], sig);
}

/* The master port must be free on the master's machine before rank 0 can serve it: say so
 * now, in plain words, rather than through a child's error. */
static int port_in_use(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return 0;
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as TCPStore does */
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    int busy = bind(s, (struct sockaddr *)&a, sizeof a) != 0 && errno == EADDRINUSE;
    close(s);
    return busy;
}

static void describe(int status, char *buf, size_t n) {
    if (WIFSIGNALED(status))
        snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
}

/* Options that cannot make a world: say which (in err), before anything starts. Returns 0 when
 * fine, else -1. */
static int check_launch_opts(const ftr_launch_opts *o, char *err, size_t errlen) {
    int world = o->nnodes * o->nproc;
    if (o->nproc < 1 || o->nnodes < 1 || world > MAX_PROCS || o->node_rank < 0 ||
        o->node_rank >= o->nnodes) {
        snprintf(err, errlen,
                 "need --nproc >= 1, --nnodes >= 1 (at most %d processes) and "
                 "0 <= --node-rank < --nnodes",
                 MAX_PROCS);
        return -1;
    }
    if (o->master_port < 1 || o->master_port > 65535) {
        snprintf(err, errlen, "--master-port must be in [1, 65535], got %d", o->master_port);
        return -1;
    }
    if (o->node_rank == 0 && port_in_use(o->master_port)) {
        snprintf(err, errlen,
                 "the master port %d is in use on this machine: choose another with "
                 "--master-port",
                 o->master_port);
        return -1;
    }
    return 0;
}

static void setenv_int(const char *name, int v) {
    char num[32];
    snprintf(num, sizeof num, "%d", v);
    setenv(name, num, 1);
}

/* What every rank of this machine shares; RANK and LOCAL_RANK are set in each child. */
static void set_world_env(const ftr_launch_opts *o) {
    setenv("MASTER_ADDR", o->master_addr, 1);
    setenv_int("MASTER_PORT", o->master_port);
    setenv_int("WORLD_SIZE", o->nnodes * o->nproc);
    setenv_int("LOCAL_WORLD_SIZE", o->nproc);
    setenv_int("GROUP_RANK", o->node_rank);
}

/* Fork the nproc local ranks into g_pids; a failed fork stops the ones already started. */
static void start_ranks(const ftr_launch_opts *o, char **argv) {
    g_n = 0;
    for (int i = 0; i < o->nproc; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            forward_signal(SIGTERM);
            break;
        }
        if (pid == 0) { /* the rank: ftlua again, without the launcher options */
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            setenv_int("RANK", o->node_rank * o->nproc + i);
            setenv_int("LOCAL_RANK", i);
            execv("/proc/self/exe", argv);
            fprintf(stderr, "%s: cannot start rank %d: %s\n", o->progname, i, strerror(errno));
            _exit(127);
        }
        g_pids[g_n++] = pid;
    }
}

/* Once a rank failed: after the grace period SIGTERM (and SIGCONT) the rest, 5 s later SIGKILL. */
static void stop_survivors(double waited, double grace, int *termed, int *killed) {
    if (!*termed && waited > grace) {
        /* SIGCONT too: a stopped rank (SIGSTOP, a debugger let go) would keep a SIGTERM pending
         * forever and be ended only by the SIGKILL below */
        forward_signal(SIGTERM);
        forward_signal(SIGCONT);
        *termed = 1;
    } else if (!*killed && waited > grace + 5) {
        forward_signal(SIGKILL);
        *killed = 1;
    }
}

/* Wait for every rank. Returns the global rank of the first one that failed (its wait status in
 * *failed_status), or -1 when all exited 0. The grace period lets the survivors report their
 * own error first. */
static int watch_ranks(const ftr_launch_opts *o, int *failed_status) {
    double grace = 10;
    const char *g = getenv("FTLUA_DIST_GRACE");
    if (g && atof(g) > 0) grace = atof(g);
    int alive = g_n, failed_rank = -1, termed = 0, killed = 0;
    double failed_at = 0;
    while (alive > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, failed_rank >= 0 ? WNOHANG : 0);
        if (pid < 0 && errno == EINTR) continue;
        if (pid < 0) break;
        if (pid == 0) { /* someone failed; the rest are still running */
            stop_survivors(monotonic_seconds() - failed_at, grace, &termed, &killed);
            usleep(50 * 1000);
            continue;
        }
        for (int i = 0; i < g_n; i++) {
            if (g_pids[i] != pid) continue;
            g_pids[i] = 0;
            alive--;
            int bad = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            if (bad && failed_rank < 0) {
                failed_rank = o->node_rank * o->nproc + i;
                *failed_status = status;
                failed_at = monotonic_seconds();
            }
        }
    }
    return failed_rank;
}

int ftr_launch(const ftr_launch_opts *o, int argc, char **argv) {
    (void)argc;
    char err[256];
    if (check_launch_opts(o, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", o->progname, err);
        return EXIT_FAILURE;
    }
    set_world_env(o);
    fflush(NULL);
    /* Ctrl-C on a terminal reaches every rank by itself (they share our process group): a
     * second copy from us would be their "second Ctrl-C", which kills. kill -TERM is passed on. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, forward_signal);
    start_ranks(o, argv);
    int failed_status = 0;
    int failed_rank = watch_ranks(o, &failed_status);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (failed_rank < 0) return EXIT_SUCCESS;
    char how[128];
    describe(failed_status, how, sizeof how);
    fprintf(stderr, "%s: rank %d %s; the world was stopped\n", o->progname, failed_rank, how);
    return EXIT_FAILURE;
}
