/* main.c: the ftlua host program. A Lua 5.4 interpreter, shaped like lua.c, with the ftlua
 * library preloaded (`require "ftlua"`, and the global `ft`) and a friendlier REPL (repl.c).
 *
 *   ftlua [options] [script [args]]      see usage() or docs/repl.md
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "dist/dist.h"
#include "ftlua.h"
#include "host.h"
#include "kernel/kernel.h"
#include "main.h"
#include "repl.h"
#include "report.h"

const char *ftl_progname = "ftlua";

/* ---------------------------------------------------------------- Ctrl-C
 * As in lua.c: the handler cannot raise a Lua error itself (it may run in the middle of anything),
 * so it sets a hook that raises "interrupted!" at the next Lua call, return, line or instruction.
 * It also sets a flag for C loops that never run Lua code (see main.h). */

static lua_State *globalL; /* the state the handler hooks */
static volatile sig_atomic_t interrupted;
static volatile sig_atomic_t sigint_in_call; /* Ctrl-C came during the current call */
static int failed_by_sigint; /* the last call failed after a Ctrl-C: exit status 130 */

int fth_interrupt_requested(void) { return interrupted != 0; }

static void set_signal(int sig, void (*handler)(int)) {
    struct sigaction sa;
    sa.sa_handler = handler;
    sa.sa_flags = 0; /* no SA_RESTART: a blocking read returns EINTR, so io.read can be stopped */
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void lstop(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

/* C code that consumed the interrupt (the learner stops between batches) raises its own
 * "interrupted!": drop the pending hook too, or Lua would raise a second one right after. */
void fth_interrupt_clear(void) {
    interrupted = 0;
    if (globalL && lua_gethook(globalL) == lstop) lua_sethook(globalL, NULL, 0, 0);
}

static void on_sigint(int sig) {
    set_signal(sig, SIG_DFL); /* a second Ctrl-C kills: the way out of a loop stuck in C */
    interrupted = 1;
    sigint_in_call = 1;
    lua_sethook(globalL, lstop, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

/* ---------------------------------------------------------------- errors */

int ftl_docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg;      /* the function's slot */
    lua_pushcfunction(L, ftl_msghandler); /* host_errors.c: at the user's line */
    lua_insert(L, base);
    globalL = L;
    interrupted = 0;
    sigint_in_call = 0;
    /* Catch Ctrl-C only during the call, and not when it is ignored: a shell starts background
     * jobs that way, so that Ctrl-C reaches only the foreground job. */
    struct sigaction prev;
    sigaction(SIGINT, NULL, &prev);
    int catch = prev.sa_handler != SIG_IGN;
    if (catch) set_signal(SIGINT, on_sigint);
    int status = lua_pcall(L, narg, nres, base);
    if (catch) sigaction(SIGINT, &prev, NULL);   /* outside calls Ctrl-C does what it did before */
    if (interrupted) lua_sethook(L, NULL, 0, 0); /* a hook set too late to fire must not leak */
    interrupted = 0;
    failed_by_sigint = status != LUA_OK && sigint_in_call;
    lua_remove(L, base);
    return status;
}

int ftl_print_error(lua_State *L, int status, int prefix) {
    if (status == LUA_OK) return status;
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL) msg = "(error object is not a string)";
    /* the host's own C frames end every traceback; they say nothing */
    size_t len = strlen(msg);
    static const char host_frame[] = "\n\t[C]: in ?";
    const size_t hl = sizeof host_frame - 1;
    while (len >= hl && memcmp(msg + len - hl, host_frame, hl) == 0) len -= hl;
    if (prefix) fprintf(stderr, "%s: ", ftl_progname);
    fprintf(stderr, "%.*s\n", (int)len, msg);
    fflush(stderr);
    lua_pop(L, 1);
    return status;
}

/* Run the chunk on top of the stack (or its load error) with no arguments. */
static int dochunk(lua_State *L, int status) {
    if (status == LUA_OK) status = ftl_docall(L, 0, 0);
    return ftl_print_error(L, status, 1);
}

/* ---------------------------------------------------------------- options
 * One table drives parsing and --help. To add an option (the launcher's --nproc N, the
 * --report FILE of later issues): add an OPT_ id and a row here, then a case in run_options()
 * or pmain(). Long options with a value accept both "--opt value" and "--opt=value". */

enum {
    OPT_EXEC,
    OPT_INTERACTIVE,
    OPT_VERSION,
    OPT_HELP,
    OPT_REPORT,
    OPT_TRACEBACK,
    /* the launcher's */
    OPT_NPROC,
    OPT_NNODES,
    OPT_NODE_RANK,
    OPT_MASTER_ADDR,
    OPT_MASTER_PORT,
    /* Jupyter (docs/jupyter.md) */
    OPT_KERNEL,
    OPT_INSTALL_KERNEL,
    OPT_USER,
    OPT_PREFIX,
    OPT_END
};

typedef struct {
    const char *name, *alias; /* alias may be NULL */
    const char *value;        /* the value's name in --help, or NULL for a flag */
    int id;
    const char *help;
} option;

static const option options[] = {
    {"-e", NULL, "code", OPT_EXEC, "run the Lua code (repeatable, in order)"},
    {"-i", NULL, NULL, OPT_INTERACTIVE, "enter the REPL after running the script"},
    {"-v", "--version", NULL, OPT_VERSION,
     "print the versions of ftlua, Lua, libtorch and the devices"},
    {"-h", "--help", NULL, OPT_HELP, "print this help"},
    {"--report", NULL, "file", OPT_REPORT, "run the script, write an HTML report of its cells"},
    {"--traceback", NULL, NULL, OPT_TRACEBACK,
     "errors show Lua's full traceback (also FTLUA_TRACEBACK=1)"},
    {"--nproc", NULL, "n", OPT_NPROC, "run n ranks of the script on this machine (data parallel)"},
    {"--nnodes", NULL, "m", OPT_NNODES, "machines in the world (default 1)"},
    {"--node-rank", NULL, "r", OPT_NODE_RANK, "this machine's index, 0..m-1 (default 0)"},
    {"--master-addr", NULL, "host", OPT_MASTER_ADDR, "rank 0's machine (default 127.0.0.1)"},
    {"--master-port", NULL, "port", OPT_MASTER_PORT, "its rendezvous port (default 29500)"},
    {"--kernel", NULL, "file", OPT_KERNEL, "run as a Jupyter kernel on the connection file"},
    {"--install-kernel", NULL, NULL, OPT_INSTALL_KERNEL,
     "install the Jupyter kernelspec (system-wide)"},
    {"--user", NULL, NULL, OPT_USER, "with --install-kernel: for this user only"},
    {"--prefix", NULL, "dir", OPT_PREFIX, "with --install-kernel: under dir/share/jupyter"},
    {"--", NULL, NULL, OPT_END, "stop handling options"},
};
#define NOPTIONS (sizeof options / sizeof options[0])

static void usage(FILE *f) {
    fprintf(f, "usage: %s [options] [script [args]]\n", ftl_progname);
    fprintf(
        f,
        "Runs the Lua script (\"-\" reads it from stdin) with the ftlua library loaded as `ft`.\n"
        "With no script and no -e: the REPL on a terminal, else the script on stdin.\n"
        "Options:\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const option *o = &options[i];
        char spec[64];
        snprintf(spec, sizeof spec, "%s%s%s%s%s", o->name, o->alias ? ", " : "",
                 o->alias ? o->alias : "", o->value ? " " : "", o->value ? o->value : "");
        fprintf(f, "  %-20s %s\n", spec, o->help);
    }
}

/* Look up argv[*i] as an option; advance *i past it and its value (*value, or NULL).
 * Returns NULL with *err set (what is wrong, said after the option's name) when it is not valid. */
static const option *next_option(int argc, char **argv, int *i, const char **value,
                                 const char **err) {
    const char *a = argv[*i];
    *value = NULL;
    for (size_t k = 0; k < NOPTIONS; k++) {
        const option *o = &options[k];
        const char *names[2] = {o->name, o->alias};
        for (int n = 0; n < 2; n++) {
            const char *nm = names[n];
            if (nm == NULL) continue;
            size_t len = strlen(nm);
            if (strncmp(a, nm, len) != 0) continue;
            if (a[len] == '\0') { /* exact: "-e code", "--help" */
                if (o->value) {
                    if (*i + 1 >= argc) {
                        *err = "needs an argument";
                        return NULL;
                    }
                    *value = argv[++*i];
                }
                (*i)++;
                return o;
            }
            /* attached value: "-ecode" (short, like lua.c) or "--opt=value" (long) */
            if (o->value && (len == 2 || a[len] == '=')) {
                *value = a + len + (len == 2 ? 0 : 1);
                (*i)++;
                return o;
            }
        }
    }
    *err = NULL; /* not an option at all */
    return NULL;
}

typedef struct {
    int script;   /* argv index of the script (or "-"), 0 when none */
    int has_exec; /* some -e was given */
    int interactive, version, help;
    const char *report; /* --report FILE */
    int launch;         /* some launcher option was given */
    const char *kernel; /* --kernel CONNECTION_FILE */
    int install_kernel, install_user;
    const char *install_prefix;
    ftr_launch_opts lo;
} cmdline;

static int to_int(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end) return 0;
    *out = (int)v;
    return 1;
}

/* First pass: check every option and find the script. Returns 0 (after printing usage) on error. */
static int parse_args(int argc, char **argv, cmdline *cl) {
    memset(cl, 0, sizeof *cl);
    cl->lo = (ftr_launch_opts){
        .nproc = 1, .nnodes = 1, .master_addr = "127.0.0.1", .master_port = 29500};
    int i = 1;
    while (i < argc) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            cl->script = i;
            return 1;
        }
        const char *value, *err = NULL;
        const option *o = next_option(argc, argv, &i, &value, &err);
        if (o == NULL) {
            if (err)
                fprintf(stderr, "%s: option '%s' %s\n", ftl_progname, a, err);
            else
                fprintf(stderr, "%s: unrecognized option '%s'\n", ftl_progname, a);
            usage(stderr);
            return 0;
        }
        switch (o->id) {
        case OPT_EXEC: cl->has_exec = 1; break;
        case OPT_INTERACTIVE: cl->interactive = 1; break;
        case OPT_VERSION: cl->version = 1; break;
        case OPT_HELP: cl->help = 1; break;
        case OPT_REPORT: cl->report = value; break;
        case OPT_TRACEBACK: ftl_full_traceback = 1; break;
        case OPT_NPROC:
        case OPT_NNODES:
        case OPT_NODE_RANK:
        case OPT_MASTER_PORT: {
            int v = 0;
            if (!to_int(value, &v)) {
                fprintf(stderr, "%s: option '%s' needs an integer, got '%s'\n", ftl_progname, a,
                        value);
                return 0;
            }
            if (o->id == OPT_NPROC)
                cl->lo.nproc = v;
            else if (o->id == OPT_NNODES)
                cl->lo.nnodes = v;
            else if (o->id == OPT_NODE_RANK)
                cl->lo.node_rank = v;
            else
                cl->lo.master_port = v;
            cl->launch = 1;
            break;
        }
        case OPT_MASTER_ADDR:
            cl->lo.master_addr = value;
            cl->launch = 1;
            break;
        case OPT_KERNEL: cl->kernel = value; break;
        case OPT_INSTALL_KERNEL: cl->install_kernel = 1; break;
        case OPT_USER: cl->install_user = 1; break;
        case OPT_PREFIX: cl->install_prefix = value; break;
        case OPT_END:
            if (i < argc) cl->script = i;
            return 1;
        }
    }
    return 1;
}

/* Second pass, once Lua is ready: run the options that act, in command-line order. */
static int run_options(lua_State *L, int argc, char **argv, const cmdline *cl) {
    int last = cl->script ? cl->script : argc;
    int i = 1;
    while (i < last) {
        const char *value, *err;
        const option *o = next_option(argc, argv, &i, &value, &err);
        if (o && o->id == OPT_EXEC) {
            if (dochunk(L, luaL_loadbuffer(L, value, strlen(value), "=(command line)")) != LUA_OK)
                return 0;
        }
        if (o && o->id == OPT_END) break;
    }
    if (cl->report && !cl->script) {
        fprintf(stderr, "%s: --report needs a script\n", ftl_progname);
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- setup */

static void print_version(void) {
    printf("ftlua %s\n%s\nlibtorch %s\ndevices: cpu", FTLUA_VERSION, LUA_RELEASE,
           ft_torch_version());
    int n = ft_cuda_device_count();
    for (int k = 0; k < n; k++) printf(" cuda:%d", k);
    printf("\n");
}

/* `arg` as lua.c makes it: arg[0] is the script, arg[1..] its arguments, and the interpreter
 * and its options at negative indices. With no script, arg[0] is the program itself. */
static void create_arg_table(lua_State *L, int argc, char **argv, int script) {
    lua_createtable(L, argc - script > 0 ? argc - script : 0, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

/* Preload the library: `require "ftlua"` finds it, and the global `ft` is its table. */
static int open_ftlua(lua_State *L) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_ftlua);
    lua_setfield(L, -2, "ftlua");
    lua_pop(L, 1);
    luaL_requiref(L, "ftlua", luaopen_ftlua, 0);
    lua_setglobal(L, "ft");
    ftl_open_host(L); /* help() */
    return 0;
}

/* Run the script argv[script] ("-" is stdin) with arg[1..] as its `...`. */
static int run_script(lua_State *L, int argc, char **argv, int script, const char *report) {
    const char *fname = argv[script];
    if (strcmp(fname, "-") == 0 && (script == 0 || strcmp(argv[script - 1], "--") != 0))
        fname = NULL; /* stdin; "-- -" would mean a file named "-" */
    if (report) {     /* report.c loads and runs it, cell by cell */
        int n = argc - script - 1;
        luaL_checkstack(L, n + 3, "too many arguments to script");
        for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
        return ftl_print_error(L, ftl_report_run(L, report, fname, n, ftl_docall), 1);
    }
    int status = luaL_loadfile(L, fname);
    if (status == LUA_OK) {
        int n = argc - script - 1;
        luaL_checkstack(L, n + 3, "too many arguments to script");
        for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
        status = ftl_docall(L, n, 0);
    }
    return ftl_print_error(L, status, 1);
}

static void banner(void) {
    printf(
        "ftlua %s (%s, libtorch %s). `ft` is loaded; help(x) or ?x shows its reference; Ctrl-D exits.\n",
        FTLUA_VERSION, LUA_RELEASE, ft_torch_version());
    fflush(stdout);
}

/* The launcher: each rank runs ftlua with the same arguments minus the launcher's options. */
static int launch(int argc, char **argv, const cmdline *cl) {
    if (!cl->script) {
        fprintf(stderr, "%s: --nproc needs a script\n", ftl_progname);
        return EXIT_FAILURE;
    }
    char **av = malloc(sizeof *av * (size_t)(argc + 1));
    if (!av) return EXIT_FAILURE;
    int n = 0, i = 1;
    av[n++] = argv[0];
    while (i < cl->script) {
        int from = i;
        const char *value, *err;
        const option *o = next_option(argc, argv, &i, &value, &err);
        if (o && o->id == OPT_END) break;
        int ours = o && o->id >= OPT_NPROC && o->id <= OPT_MASTER_PORT;
        for (int k = from; !ours && k < i; k++) av[n++] = argv[k];
    }
    av[n++] = "--";
    for (i = cl->script; i < argc; i++) av[n++] = argv[i];
    av[n] = NULL;
    ftr_launch_opts lo = cl->lo;
    lo.progname = ftl_progname;
    int rc = ftr_launch(&lo, n, av);
    free(av);
    return rc;
}

/* Everything runs here, in protected mode, so a memory error is reported, not fatal. */
static int pmain(lua_State *L) {
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    cmdline cl;
    if (!parse_args(argc, argv, &cl)) return 0; /* result false: exit status 1 */
    if (cl.help) {
        usage(stdout);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (cl.version) {
        print_version();
        lua_pushboolean(L, 1);
        return 1;
    }
    if (cl.launch) {
        lua_pushboolean(L, launch(argc, argv, &cl) == EXIT_SUCCESS);
        return 1;
    }
    if (cl.install_kernel) {
        lua_pushboolean(L, ftk_install(argv[0], cl.install_user, cl.install_prefix) == 0);
        return 1;
    }
    if (ftr_env_int("FTLUA_TRACEBACK", 0) > 0) ftl_full_traceback = 1;
    if (cl.report && ftr_env_int("RANK", 0) != 0)
        cl.report = NULL; /* data parallel: rank 0 reports */

    luaL_checkversion(L);
    luaL_openlibs(L);
    lua_pushcfunction(L, open_ftlua);
    if (dochunk(L, LUA_OK) != LUA_OK) return 0;
    create_arg_table(L, argc, argv, cl.script);
    lua_gc(L, LUA_GCRESTART);
    lua_gc(L, LUA_GCGEN, 0, 0); /* generational mode, as lua.c: most garbage dies young */

    if (!run_options(L, argc, argv, &cl)) return 0;
    if (cl.kernel) {
        lua_pushboolean(L, ftl_kernel_run(L, cl.kernel) == 0);
        return 1;
    }
    if (cl.script && run_script(L, argc, argv, cl.script, cl.report) != LUA_OK) return 0;
    int tty = isatty(STDIN_FILENO);
    if (cl.interactive || (!cl.script && !cl.has_exec && tty)) {
        if (tty) banner();
        ftl_repl(L, ftl_docall, ftl_print_error);
    } else if (!cl.script && !cl.has_exec) { /* stdin is a pipe or a file: run it */
        if (dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK) return 0;
    }
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv) {
    if (argc > 0 && argv[0][0]) {
        const char *slash = strrchr(argv[0], '/');
        ftl_progname = slash ? slash + 1 : argv[0];
    }
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "%s: cannot create state: not enough memory\n", ftl_progname);
        return EXIT_FAILURE;
    }
    lua_gc(L, LUA_GCSTOP); /* no collections while the libraries load */
    ftb_set_interrupt_hook(fth_interrupt_requested, fth_interrupt_clear); /* base/hooks.h */
    ftl_set_figure_hook(ftl_report_publish);
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int ok = lua_toboolean(L, -1);
    ftl_print_error(L, status, 1);
    lua_close(L);
    if (ok && status == LUA_OK) return EXIT_SUCCESS;
    return failed_by_sigint ? 128 + SIGINT : EXIT_FAILURE; /* 130, as a shell reports Ctrl-C */
}
