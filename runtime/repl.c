/* repl.c: ftlua's read-eval-print loop.
 *
 * Like lua.c's REPL (an input that is an expression is printed; a chunk whose syntax error ends
 * at "<eof>" is incomplete and reads more lines), plus: a trailing ';' suppresses printing, tables
 * are shown one level deep, tab completion of globals, fields and methods, history in
 * ~/.ftlua_history, Ctrl-C that clears the line at the prompt, and a timing line for slow commands.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/clock.h"
#include "host.h"
#include "kernel/session.h"
#include "repl.h"

#define PROMPT       "> "
#define PROMPT2      ">> "
#define HISTORY_FILE ".ftlua_history" /* in $HOME */
#define HISTORY_MAX  1000             /* lines kept in the file */
#define SLOW_SECONDS 0.1              /* commands slower than this print their time */

/* ---------------------------------------------------------------- completion (host_complete.c) */

static lua_State *complete_L;

/* readline hands out matches one at a time. */
static fth_strlist matches;
static size_t next_match;

static char *match_generator(const char *text, int state) {
    (void)text;
    if (state == 0) next_match = 0;
    if (next_match < matches.n) {
        char *s = matches.v[next_match];
        matches.v[next_match++] = NULL; /* readline frees it */
        return s;
    }
    return NULL;
}

static char **complete(const char *text, int start, int end) {
    (void)start;
    rl_attempted_completion_over = 1;      /* never fall back to file names */
    rl_completion_append_character = '\0'; /* "ft." is as likely next as "ft " */
    fth_strlist_free(&matches);
    ftl_complete(complete_L, rl_line_buffer, (size_t)end, &matches);
    return rl_completion_matches(text, match_generator);
}

/* ---------------------------------------------------------------- reading lines */

enum { READ_LINE, READ_EOF, READ_INTERRUPT };

static int use_readline;   /* stdin is a terminal */
static char *history_path; /* NULL: no history file */
static volatile sig_atomic_t prompt_sigint, prompt_sigwinch;
static char *line_result; /* what readline's callback handed us */
static int line_done;

static void on_prompt_signal(int sig) {
    if (sig == SIGINT)
        prompt_sigint = 1;
    else
        prompt_sigwinch = 1;
}

static void on_line(char *line) {
    line_result = line;
    line_done = 1;
    rl_callback_handler_remove(); /* give the terminal back before the command runs */
}

/* readline's callback interface, so that Ctrl-C at the prompt can drop the line instead of
 * killing the process. SIGINT and SIGWINCH (the window was resized) stay blocked except inside
 * pselect, so neither can be missed. */
static int read_tty(const char *prompt, char **line) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGWINCH);
    sigprocmask(SIG_BLOCK, &block, &old);
    struct sigaction sa, prev_int, prev_winch;
    sa.sa_handler = on_prompt_signal;
    sa.sa_flags = 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, NULL, &prev_int);
    if (prev_int.sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL); /* ignored stays ignored */
    sigaction(SIGWINCH, &sa, &prev_winch);

    prompt_sigint = prompt_sigwinch = 0;
    line_done = 0;
    line_result = NULL;
    if (rl_instream) rl_reset_screen_size(); /* resized while a command ran? */
    rl_callback_handler_install(prompt, on_line);
    int r = READ_LINE;
    while (!line_done) {
        int fd = fileno(rl_instream ? rl_instream : stdin);
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(fd, &fds);
        if (pselect(fd + 1, &fds, NULL, NULL, NULL, &old) < 0) {
            if (errno != EINTR) {
                rl_callback_handler_remove();
                r = READ_EOF;
                break;
            }
            if (prompt_sigint) {
                rl_echo_signal_char(SIGINT);
                rl_callback_sigcleanup(); /* leave any search or argument mode */
                rl_replace_line("", 0);
                rl_crlf();
                rl_callback_handler_remove();
                r = READ_INTERRUPT;
                break;
            }
            if (prompt_sigwinch) {
                prompt_sigwinch = 0;
                rl_resize_terminal();
            }
            continue;
        }
        rl_callback_read_char();
    }
    sigprocmask(SIG_SETMASK, &old, NULL); /* a pending signal lands in our handler, harmlessly */
    sigaction(SIGINT, &prev_int, NULL);
    sigaction(SIGWINCH, &prev_winch, NULL);
    if (r == READ_LINE) {
        if (line_result == NULL)
            r = READ_EOF;
        else
            *line = line_result;
    }
    return r;
}

/* Without a terminal: plain lines, no prompt, no echo. */
static int read_plain(char **line) {
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getline(&buf, &cap, stdin);
    if (n < 0) {
        free(buf);
        return READ_EOF;
    }
    if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = '\0';
    *line = buf;
    return READ_LINE;
}

/* _PROMPT / _PROMPT2 as in lua.c, copied so the Lua string may be collected. */
static void get_prompt(lua_State *L, int first, char *buf, size_t size) {
    lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2");
    const char *p = lua_isstring(L, -1) ? lua_tostring(L, -1) : (first ? PROMPT : PROMPT2);
    snprintf(buf, size, "%s", p);
    lua_pop(L, 1);
}

/* Read a line and push it. */
static int push_line(lua_State *L, int first) {
    char prompt[256];
    char *line = NULL;
    int r;
    fflush(stdout);
    if (use_readline) {
        get_prompt(L, first, prompt, sizeof prompt);
        r = read_tty(prompt, &line);
    } else {
        r = read_plain(&line);
    }
    if (r != READ_LINE) {
        if (r == READ_EOF && use_readline) fputs("\n", stdout);
        return r;
    }
    /* "=expr" still works, as in lua.c (a Lua 5.2 habit) */
    lua_pushstring(L, first && line[0] == '=' ? line + 1 : line);
    free(line);
    return READ_LINE;
}

/* ---------------------------------------------------------------- history */

static void history_init(void) {
    const char *home = getenv("HOME");
    if (!home || !*home) return;
    size_t n = strlen(home) + sizeof "/" HISTORY_FILE;
    history_path = malloc(n);
    if (!history_path) return;
    snprintf(history_path, n, "%s/%s", home, HISTORY_FILE);
    /* timestamps mark where each entry starts, so a multi-line function comes back whole */
    history_comment_char = '#'; /* readline writes no timestamps without it */
    history_write_timestamps = 1;
    history_multiline_entries = 1;
    using_history();
    int fd = open(history_path, O_WRONLY | O_CREAT | O_APPEND, 0600); /* append_history needs it */
    if (fd >= 0) close(fd);
    read_history(history_path);
    stifle_history(HISTORY_MAX);
}

static void history_save(const char *entry) {
    if (!use_readline || entry[strspn(entry, " \t\n")] == '\0') return;
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last && strcmp(last->line, entry) == 0) return; /* no runs of the same entry */
    add_history(entry);
    if (history_path) {
        append_history(1, history_path);
        history_truncate_file(history_path, HISTORY_MAX);
    }
}

/* ---------------------------------------------------------------- the loop */

enum { CHUNK_EOF = -1, CHUNK_INTERRUPT = -2 };

/* "?learn:fit" at the prompt: help("learn:fit"); "?expr" for any other expression: help(expr). */
static int help_name(lua_State *L) {
    lua_pushcfunction(L, ftl_help);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 1, 0);
    return 0;
}

static int is_path(const char *s, size_t len) {
    if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return 0;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == ':')) return 0;
    return 1;
}

static int load_help(lua_State *L, const char *line) {
    const char *s = line + 1;
    while (isspace((unsigned char)*s)) s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1])) len--;
    if (len == 0 || is_path(s, len)) {
        if (len == 0)
            lua_pushcfunction(L, ftl_help); /* "?" alone: how to use help */
        else {
            lua_pushlstring(L, s, len);
            lua_pushcclosure(L, help_name, 1);
        }
        return LUA_OK;
    }
    lua_pushfstring(L, "help(%s)", lua_pushlstring(L, s, len));
    lua_remove(L, -2);
    size_t n;
    const char *code = lua_tolstring(L, -1, &n);
    int status = luaL_loadbuffer(L, code, n, "=stdin");
    lua_remove(L, -2);
    return status;
}

/* Read lines until they form a chunk (host_input.c's rule: ftl_compile_input). Leaves the function
 * (or the error) on top and returns a Lua status, or CHUNK_EOF / CHUNK_INTERRUPT with nothing
 * pushed. A Python habit that reads as unfinished ("a = f(); a") is an error that says so. */
static int load_chunk(lua_State *L, int *quiet) {
    lua_settop(L, 0);
    int r = push_line(L, 1);
    if (r != READ_LINE) return r == READ_EOF ? CHUNK_EOF : CHUNK_INTERRUPT;
    int status;
    *quiet = 0;
    if (lua_tostring(L, 1)[0] == '?') {
        status = load_help(L, lua_tostring(L, 1));
    } else {
        for (;;) {
            size_t len;
            const char *src = lua_tolstring(L, 1, &len);
            /* kernel/session.c: top-level locals carry to the next input, as in a notebook */
            status =
                ftl_session_compile_input(L, src, len, "=stdin"); /* the function or the error: 2 */
            if (status != LUA_OK && ftl_input_hint(L, src, len)) { /* what Lua expects instead */
                lua_remove(L, 2);
                status = LUA_ERRSYNTAX;
                break;
            }
            if (status != FTL_INCOMPLETE) break;
            r = push_line(L, 0);
            if (r == READ_INTERRUPT) {
                lua_settop(L, 0);
                return CHUNK_INTERRUPT;
            }
            if (r == READ_EOF) { /* report what is missing */
                status = LUA_ERRSYNTAX;
                break;
            }
            lua_remove(L, 2); /* the error */
            lua_pushliteral(L, "\n");
            lua_insert(L, -2);
            lua_concat(L, 3); /* source .. "\n" .. line */
        }
        size_t len;
        const char *src = lua_tolstring(L, 1, &len);
        size_t end = len;
        while (end > 0 && isspace((unsigned char)src[end - 1])) end--;
        *quiet = end > 0 && src[end - 1] == ';';
    }
    history_save(lua_tostring(L, 1));
    lua_remove(L, 1);
    return status;
}

static void print_time(double seconds) {
    int dim = isatty(STDOUT_FILENO);
    printf("%s[%.2fs]%s\n", dim ? "\033[2m" : "", seconds, dim ? "\033[0m" : "");
    fflush(stdout);
}

/* What the host program lends the loop (repl.h). */
typedef struct {
    ftl_docall_fn docall;
    ftl_print_error_fn print_error;
} repl_host;

static int repl_loop(lua_State *L) {
    const repl_host *host = lua_touserdata(L, 1);
    int status, quiet = 0;
    while ((status = load_chunk(L, &quiet)) != CHUNK_EOF) {
        if (status == CHUNK_INTERRUPT) continue;
        double t0 = monotonic_seconds();
        if (status == LUA_OK) status = host->docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK && !quiet && lua_gettop(L) > 0) {
            lua_pushcfunction(L, ftl_print_results);
            lua_insert(L, 1);
            status = host->docall(L, lua_gettop(L) - 1, 0);
        }
        host->print_error(L, status, 0);
        double dt = monotonic_seconds() - t0;
        if (dt > SLOW_SECONDS) print_time(dt);
        lua_settop(L, 0);
    }
    return 0;
}

void ftl_repl(lua_State *L, ftl_docall_fn docall, ftl_print_error_fn print_error) {
    repl_host host = {docall, print_error};
    use_readline = isatty(STDIN_FILENO);
    if (use_readline) {
        complete_L = L;
        rl_readline_name = "ftlua"; /* for "$if ftlua" in ~/.inputrc */
        rl_attempted_completion_function = complete;
        rl_completer_word_break_characters = (char *)" \t\n\"'\\><=;+-*/%^~#&|{}()[],";
        history_init();
    }
    /* a fresh C frame, so the loop owns its stack from index 1 */
    lua_pushcfunction(L, repl_loop);
    lua_pushlightuserdata(L, &host);
    lua_call(L, 1, 0);
    if (use_readline) {
        fth_strlist_free(&matches);
        free(history_path);
        history_path = NULL;
    }
}
