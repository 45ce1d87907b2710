/* kernel.c: the Jupyter kernel's threads and handlers. See kernel.h and docs/jupyter.md.
 *
 * Threads: the main thread owns Lua and the shell and stdin sockets (one request at a time, as
 * Jupyter expects); the heartbeat thread echoes; the control thread answers shutdown and
 * interrupt while a cell runs; display.c's output thread publishes what fds 1 and 2 receive.
 * An interrupt (interrupt_request, or SIGINT from the front end) is delivered to the main
 * thread as SIGINT, so it takes the same path as Ctrl-C in the REPL (ftl_docall's handler and
 * ftb_interrupted()).
 */
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "ftlua.h"
#include "host.h"
#include "kernel/display.h"
#include "kernel/introspect.h"
#include "kernel/kernel.h"
#include "kernel/session.h"
#include "kernel/wire.h"
#include "main.h"

#define MAX_SHOWN_TEXT (1 << 20) /* an execute_result's text/plain is cut there */

typedef struct {
    int count; /* execution_count */
    char *code;
} hist_entry;

static ftk_wire W;
static pthread_t main_thread, hb_thread, control_thread;
static volatile sig_atomic_t shutting_down;
static volatile int main_leaving; /* the main thread left its loop */
static int execution_count;
static hist_entry *history;
static size_t n_history, cap_history;
static const ftk_msg *current; /* the execute_request being run (its idents reach stdin) */
static int allow_stdin;
static int abort_queued; /* a cell failed with stop_on_error: the queued cells are not run */

static void klog(const char *what, const char *arg) { /* "ftlua kernel: <what><arg>" */
    char line[512];
    int n = snprintf(line, sizeof line, "ftlua kernel: %s%s", what, arg ? arg : "");
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    if (write(ftk_display_log_fd(), line, (size_t)n) < 0) {}
}

/* ---------------------------------------------------------------- heartbeat and control */

static void *hb_main(void *arg) {
    (void)arg;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, W.hb, 0) < 0) {
            int e = zmq_errno();
            zmq_msg_close(&m);
            if (e == ETERM) break;
            continue;
        }
        if (zmq_msg_send(&m, W.hb, 0) < 0) zmq_msg_close(&m);
    }
    zmq_close(W.hb);
    W.hb = NULL;
    return NULL;
}

static json_t *kernel_info(void) {
    char banner[256];
    snprintf(banner, sizeof banner, "ftlua %s (%s, libtorch %s): fastai's training recipe in Lua",
             FTLUA_VERSION, LUA_RELEASE, ft_torch_version());
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:s, s:[{s:s, s:s}]}",
                     "status", "ok", "protocol_version", "5.3", "implementation", "ftlua",
                     "implementation_version", FTLUA_VERSION, "language_info", "name", "lua",
                     "version", LUA_VERSION_MAJOR "." LUA_VERSION_MINOR, "mimetype", "text/x-lua",
                     "file_extension", ".lua", "pygments_lexer", "lua", "codemirror_mode", "lua",
                     "banner", banner, "help_links", "text", "ftlua API reference", "url",
                     "https://github.com/ftlua/ftlua/blob/main/docs/api.md");
}

static void *control_main(void *arg) {
    (void)arg;
    for (;;) {
        ftk_msg m;
        int r = ftk_recv(&W, W.control, &m);
        if (r == FTK_RECV_CLOSED) break;
        if (r != FTK_RECV_OK) continue;
        if (strcmp(m.type, "shutdown_request") == 0) {
            int restart = json_is_true(json_object_get(m.content, "restart"));
            ftk_send(&W, W.control, &m, "shutdown_reply",
                     json_pack("{s:s, s:b}", "status", "ok", "restart", restart));
            ftk_msg_free(&m);
            shutting_down = 1;
            pthread_kill(main_thread, SIGINT); /* a running cell stops */
            /* the main thread leaves its loop within 0.2 s when idle; a cell stuck in C
             * (that ignores the interrupt) is not waited for */
            for (int i = 0; i < 50 && !main_leaving; i++) usleep(100 * 1000);
            if (!main_leaving) _exit(0);
            break;
        }
        if (strcmp(m.type, "interrupt_request") == 0) {
            /* once: a second SIGINT in the same cell would end the process (the REPL's way out
             * of C code), and an impatient second click must not cost the notebook its state */
            if (!ftb_interrupted()) pthread_kill(main_thread, SIGINT);
            ftk_send(&W, W.control, &m, "interrupt_reply", json_pack("{s:s}", "status", "ok"));
        } else if (strcmp(m.type, "kernel_info_request") == 0) {
            ftk_send(&W, W.control, &m, "kernel_info_reply", kernel_info());
        } else {
            klog("control: ignored a ", m.type);
        }
        ftk_msg_free(&m);
    }
    zmq_close(W.control);
    W.control = NULL;
    return NULL;
}

/* Outside a cell SIGINT does nothing (ftl_docall installs the REPL's handler during a cell). */
static void on_idle_sigint(int sig) { (void)sig; }

/* ---------------------------------------------------------------- stdin */

/* io.read in the kernel: one line from the front end (input_request), or nil (EOF) when the
 * request does not allow stdin. Formats: "l" (default), "L", "n", "a". */
static int k_io_read(lua_State *L) {
    const char *fmt = luaL_optstring(L, 1, "l");
    if (*fmt == '*') fmt++;
    if (!allow_stdin || !current) {
        lua_pushnil(L);
        return 1;
    }
    ftk_display_flush();
    ftk_send(&W, W.stdin_sock, current, "input_request",
             json_pack("{s:s, s:b}", "prompt", "", "password", 0));
    for (;;) {
        if (ftb_interrupted() || shutting_down) {
            fth_interrupt_clear();
            return luaL_error(L, "interrupted!");
        }
        zmq_pollitem_t it = {W.stdin_sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0) continue;
        ftk_msg m;
        if (ftk_recv(&W, W.stdin_sock, &m) != FTK_RECV_OK) continue;
        if (strcmp(m.type, "input_reply") != 0) {
            ftk_msg_free(&m);
            continue;
        }
        const char *v = json_string_value(json_object_get(m.content, "value"));
        if (!v) v = "";
        if (*fmt == 'n') {
            lua_pushstring(L, v);
            if (!lua_stringtonumber(L, lua_tostring(L, -1))) lua_pushnil(L);
        } else if (*fmt == 'L' || *fmt == 'a') {
            lua_pushfstring(L, "%s\n", v);
        } else
            lua_pushstring(L, v);
        ftk_msg_free(&m);
        return 1;
    }
}

/* ---------------------------------------------------------------- execute */

/* Protected: the results at 1..n -> text/plain (tab-separated), text/html, image/png. */
static int show_results(lua_State *L) {
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_checkstack(L, 8, "too many results");
    lua_pushnil(L); /* n+1: html */
    lua_pushnil(L); /* n+2: png */
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, '\t');
        ftl_push_shown(L, i);
        luaL_addvalue(&b);
        const char *kinds[2] = {"__html", "__png"};
        for (int k = 0; k < 2; k++) {
            if (!lua_isnil(L, n + 1 + k)) continue;
            if (luaL_getmetafield(L, i, kinds[k]) == LUA_TNIL) continue;
            lua_pushvalue(L, i);
            lua_call(L, 1, 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "%s of a %s returned a %s, not a string", kinds[k],
                                  luaL_typename(L, i), luaL_typename(L, -1));
            lua_replace(L, n + 1 + k);
        }
    }
    luaL_pushresult(&b);
    lua_rotate(L, n + 1, 1); /* text, html, png */
    return 3;
}

static json_t *png_json(const char *s, size_t n);

/* The mime bundle from show_results' three values at base, base+1, base+2. */
static json_t *shown_data(lua_State *L, int base) {
    size_t tl;
    const char *text = lua_tolstring(L, base, &tl);
    json_t *data = json_object();
    json_object_set_new(data, "text/plain",
                        json_stringn(text ? text : "", tl > MAX_SHOWN_TEXT ? MAX_SHOWN_TEXT : tl));
    if (lua_isstring(L, base + 1))
        json_object_set_new(data, "text/html", json_string(lua_tostring(L, base + 1)));
    if (lua_isstring(L, base + 2)) {
        size_t pl;
        const char *png = lua_tolstring(L, base + 2, &pl);
        json_t *pj = png_json(png, pl);
        if (pj) json_object_set_new(data, "image/png", pj);
    }
    return data;
}

/* display(v, ...): show values now, as a cell's result would be shown, in the middle of a cell. */
static int k_display(lua_State *L) {
    int n = lua_gettop(L);
    if (n == 0) return 0;
    lua_pushcfunction(L, show_results);
    lua_insert(L, 1);
    lua_call(L, n, 3);
    ftk_display_data(shown_data(L, 1), NULL, 0);
    return 0;
}

/* clear_output([wait]): clear the cell's outputs (with wait, when the next output arrives). */
static int k_clear_output(lua_State *L) {
    int wait = lua_toboolean(L, 1);
    ftk_display_flush();
    ftk_send_iopub(&W, ftk_display_parent(), "clear_output", json_pack("{s:b}", "wait", wait));
    return 0;
}

static json_t *png_json(const char *s, size_t n) {
    if (n >= 8 && memcmp(s, "\x89PNG", 4) == 0) return ftk_base64((const unsigned char *)s, n);
    FILE *f = fopen(s, "rb"); /* a path to a PNG file */
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0, r;
    unsigned char *buf = malloc(cap);
    while (buf && (r = fread(buf + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            unsigned char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            } else
                buf = nb;
        }
    }
    fclose(f);
    json_t *j = buf ? ftk_base64(buf, len) : NULL;
    free(buf);
    return j;
}

/* The message on top of the stack, less the host's own frames. */
static json_t *error_content(lua_State *L, const char *ename) {
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    if (!msg) {
        msg = "(error object is not a string)";
        len = strlen(msg);
    }
    static const char host_frame[] = "\n\t[C]: in ?";
    const size_t hl = sizeof host_frame - 1;
    while (len >= hl && memcmp(msg + len - hl, host_frame, hl) == 0) len -= hl;
    json_t *tb = json_array();
    const char *p = msg, *end = msg + len;
    while (p <= end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        json_array_append_new(tb, json_stringn(p, (size_t)(nl - p)));
        p = nl + 1;
    }
    const char *first_nl = memchr(msg, '\n', len);
    json_t *evalue = json_stringn(msg, first_nl ? (size_t)(first_nl - msg) : len);
    if (strstr(msg, "interrupted!")) ename = "KeyboardInterrupt";
    return json_pack("{s:s, s:o, s:o}", "ename", ename, "evalue",
                     evalue ? evalue : json_string("?"), "traceback", tb);
}

static void add_history(int count, const char *code) {
    if (n_history == cap_history) {
        size_t cap = cap_history ? 2 * cap_history : 64;
        hist_entry *h = realloc(history, cap * sizeof *h);
        if (!h) return;
        history = h;
        cap_history = cap;
    }
    history[n_history].count = count;
    history[n_history].code = strdup(code);
    if (history[n_history].code) n_history++;
}

static void execute(lua_State *L, ftk_msg *m) {
    json_t *c = m->content;
    const char *code = json_string_value(json_object_get(c, "code"));
    if (!code) code = "";
    int silent = json_is_true(json_object_get(c, "silent"));
    json_t *soe = json_object_get(c, "stop_on_error");
    int stop_on_error = soe ? json_is_true(soe) : 1;
    json_t *sh = json_object_get(c, "store_history");
    int store = silent ? 0 : (sh ? json_is_true(sh) : 1);
    allow_stdin = json_is_true(json_object_get(c, "allow_stdin"));
    current = m;
    if (store) execution_count++;
    int count = execution_count;
    if (store) add_history(count, code);
    if (!silent)
        ftk_send(&W, W.iopub, m, "execute_input",
                 json_pack("{s:s, s:i}", "code", code, "execution_count", count));
    ftk_display_cell_start();

    lua_settop(L, 0);
    char chunkname[64];
    snprintf(chunkname, sizeof chunkname, "=In[%d]", count);
    int has_value = 0;
    int status = ftl_session_load_cell(L, code, strlen(code), chunkname, &has_value);
    const char *ename = status == LUA_ERRSYNTAX ? "SyntaxError" : "LuaError";
    if (status == LUA_ERRSYNTAX && ftl_input_hint(L, code, strlen(code)))
        lua_remove(L, -2); /* "a = f(); a" */
    if (status == LUA_OK) status = ftl_docall(L, 0, has_value ? LUA_MULTRET : 0);
    ftk_display_flush();
    ftk_display_figures();
    if (status == LUA_OK && lua_gettop(L) > 0 && !silent) {
        lua_pushcfunction(L, show_results);
        lua_insert(L, 1);
        status = ftl_docall(L, lua_gettop(L) - 1, 3);
        if (status == LUA_OK) {
            json_t *data = shown_data(L, 1);
            ftk_send(
                &W, W.iopub, m, "execute_result",
                json_pack("{s:i, s:o, s:{}}", "execution_count", count, "data", data, "metadata"));
        }
    }
    json_t *reply;
    if (status != LUA_OK) {
        json_t *err = error_content(L, ename);
        if (!silent) ftk_send(&W, W.iopub, m, "error", json_deep_copy(err));
        json_object_set_new(err, "status", json_string("error"));
        json_object_set_new(err, "execution_count", json_integer(count));
        reply = err;
        /* Only the requests already queued when the cell failed are aborted (a "run all"), as
         * ipykernel does; one that the client sends after it saw this error runs. Deciding it
         * here, not after the reply, closes the window in which that next request arrived
         * before the check and was aborted too. */
        zmq_pollitem_t queued = {W.shell, 0, ZMQ_POLLIN, 0};
        abort_queued = stop_on_error && !silent && zmq_poll(&queued, 1, 0) > 0;
    } else {
        reply = json_pack("{s:s, s:i, s:{}, s:[]}", "status", "ok", "execution_count", count,
                          "user_expressions", "payload");
    }
    lua_settop(L, 0);
    current = NULL;
    allow_stdin = 0;
    ftk_send(&W, W.shell, m, "execute_reply", reply);
}

/* ---------------------------------------------------------------- history, completion, ... */

static void history_reply(ftk_msg *m) {
    json_t *c = m->content;
    const char *access = json_string_value(json_object_get(c, "hist_access_type"));
    json_t *out = json_array();
    size_t from = 0, to = n_history;
    if (access && strcmp(access, "tail") == 0) {
        json_int_t n = json_integer_value(json_object_get(c, "n"));
        if (n > 0 && (size_t)n < n_history) from = n_history - (size_t)n;
    }
    json_int_t start = json_integer_value(json_object_get(c, "start"));
    json_int_t stop = json_integer_value(json_object_get(c, "stop"));
    const char *pattern = json_string_value(json_object_get(c, "pattern"));
    for (size_t i = from; i < to; i++) {
        hist_entry *h = &history[i];
        if (access && strcmp(access, "range") == 0 &&
            (h->count < start || (stop > 0 && h->count >= stop)))
            continue;
        if (access && strcmp(access, "search") == 0 && pattern && fnmatch(pattern, h->code, 0) != 0)
            continue;
        json_array_append_new(out, json_pack("[i, i, s]", 0, h->count, h->code));
    }
    ftk_send(&W, W.shell, m, "history_reply",
             json_pack("{s:s, s:o}", "status", "ok", "history", out));
}

static void dispatch(lua_State *L, ftk_msg *m) {
    const char *t = m->type;
    if (strcmp(t, "execute_request") == 0 && abort_queued)
        ftk_send(&W, W.shell, m, "execute_reply",
                 json_pack("{s:s, s:i}", "status", "aborted", "execution_count", execution_count));
    else if (strcmp(t, "execute_request") == 0)
        execute(L, m);
    else if (strcmp(t, "kernel_info_request") == 0)
        ftk_send(&W, W.shell, m, "kernel_info_reply", kernel_info());
    else if (strcmp(t, "complete_request") == 0)
        ftk_send(&W, W.shell, m, "complete_reply", ftk_complete(L, m->content));
    else if (strcmp(t, "inspect_request") == 0)
        ftk_send(&W, W.shell, m, "inspect_reply", ftk_inspect(L, m->content));
    else if (strcmp(t, "is_complete_request") == 0)
        ftk_send(&W, W.shell, m, "is_complete_reply", ftk_is_complete(L, m->content));
    else if (strcmp(t, "history_request") == 0)
        history_reply(m);
    else if (strcmp(t, "comm_info_request") == 0)
        ftk_send(&W, W.shell, m, "comm_info_reply",
                 json_pack("{s:s, s:{}}", "status", "ok", "comms"));
    else if (strcmp(t, "shutdown_request") == 0) { /* old clients send it on shell */
        int restart = json_is_true(json_object_get(m->content, "restart"));
        ftk_send(&W, W.shell, m, "shutdown_reply",
                 json_pack("{s:s, s:b}", "status", "ok", "restart", restart));
        shutting_down = 1;
    } else
        klog("shell: ignored a ", t);
}

/* ---------------------------------------------------------------- the loop */

static int kernel_loop(lua_State *L) {
    const char *conn = lua_touserdata(L, 1);
    lua_settop(L, 0);
    char err[512];
    if (ftk_wire_open(&W, conn, err, sizeof err) != 0) {
        fprintf(stderr, "%s: --kernel: %s\n", ftl_progname, err);
        lua_pushboolean(L, 0);
        return 1;
    }
    /* SIGINT goes to the main thread only: the other threads start with it blocked */
    main_thread = pthread_self();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_idle_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int ok = ftk_display_start(&W, err, sizeof err) == 0;
    ok = ok && pthread_create(&hb_thread, NULL, hb_main, NULL) == 0;
    ok = ok && pthread_create(&control_thread, NULL, control_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!ok) {
        klog("cannot start: ", err);
        _exit(1); /* threads may be half started: nothing to clean up safely */
    }
    /* the kernel's Lua: figures inline, io.read through the front end */
    lua_pushstring(L, getenv("FTLUA_PLOT_DIR"));
    lua_setglobal(L, "REPORT_DIR");
    lua_createtable(L, 0, 1); /* arg: no script arguments in a notebook */
    lua_pushstring(L, ftl_progname);
    lua_rawseti(L, -2, 0);
    lua_setglobal(L, "arg");
    lua_pushcfunction(L, k_display);
    lua_setglobal(L, "display");
    lua_pushcfunction(L, k_clear_output);
    lua_setglobal(L, "clear_output");
    lua_getglobal(L, "io");
    lua_pushcfunction(L, k_io_read);
    lua_setfield(L, -2, "read");
    lua_pop(L, 1);

    ftk_send(&W, W.iopub, NULL, "status", json_pack("{s:s}", "execution_state", "starting"));
    while (!shutting_down) {
        zmq_pollitem_t it = {W.shell, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 200) <= 0) continue;
        ftk_msg m;
        if (ftk_recv(&W, W.shell, &m) != FTK_RECV_OK) continue;
        ftk_display_set_parent(&m);
        ftk_send(&W, W.iopub, &m, "status", json_pack("{s:s}", "execution_state", "busy"));
        dispatch(L, &m);
        ftk_display_flush();
        ftk_send(&W, W.iopub, &m, "status", json_pack("{s:s}", "execution_state", "idle"));
        ftk_display_set_parent(NULL);
        ftk_msg_free(&m);
        /* after a failed cell, only the requests already queued are aborted, as ipykernel does */
        zmq_pollitem_t more = {W.shell, 0, ZMQ_POLLIN, 0};
        if (abort_queued && zmq_poll(&more, 1, 0) <= 0) abort_queued = 0;
    }
    main_leaving = 1;
    ftk_display_stop();
    zmq_ctx_shutdown(W.ctx); /* wakes the heartbeat and control threads */
    pthread_join(hb_thread, NULL);
    pthread_join(control_thread, NULL);
    zmq_close(W.shell);
    zmq_close(W.stdin_sock);
    zmq_close(W.iopub);
    W.shell = W.stdin_sock = W.iopub = NULL;
    zmq_ctx_term(W.ctx); /* sends what is queued (the shutdown reply), within the linger */
    W.ctx = NULL;
    for (size_t i = 0; i < n_history; i++) free(history[i].code);
    free(history);
    lua_pushboolean(L, 1);
    return 1;
}

int ftl_kernel_run(lua_State *L, const char *connection_file) {
    lua_pushcfunction(L, kernel_loop);
    lua_pushlightuserdata(L, (void *)connection_file);
    lua_call(L, 1, 1);
    int ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return ok ? 0 : 1;
}
