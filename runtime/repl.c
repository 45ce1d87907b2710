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
#include <time.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include <lauxlib.h>
#include <lua.h>

#include "repl.h"

#define PROMPT "> "
#define PROMPT2 ">> "
#define HISTORY_FILE ".ftlua_history" /* in $HOME */
#define HISTORY_MAX 1000              /* lines kept in the file */
#define SLOW_SECONDS 0.1              /* commands slower than this print their time */
#define SHOW_ITEMS 20                 /* table entries shown before "..." */
#define SHOW_CHARS 60                 /* string length shown inside a table */
#define INDEX_DEPTH 8                 /* __index links followed by completion */

static const char *const keywords[] = {
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while", NULL};

static int is_keyword(const char *s, size_t len) {
    for (int i = 0; keywords[i]; i++)
        if (strlen(keywords[i]) == len && memcmp(keywords[i], s, len) == 0) return 1;
    return 0;
}

/* A name that can follow '.' or stand alone. */
static int is_name(const char *s, size_t len) {
    if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return 0;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return 0;
    return !is_keyword(s, len);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- showing values */

/* Truncated string literal for values inside a table: "abc\n..." */
static void push_quoted(lua_State *L, int idx) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '"');
    for (size_t i = 0; i < len && i < SHOW_CHARS; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { luaL_addchar(&b, '\\'); luaL_addchar(&b, (char)c); }
        else if (c == '\n') luaL_addstring(&b, "\\n");
        else if (c == '\t') luaL_addstring(&b, "\\t");
        else if (c < 32 || c == 127) { char e[8]; snprintf(e, sizeof e, "\\%d", c); luaL_addstring(&b, e); }
        else luaL_addchar(&b, (char)c);
    }
    luaL_addchar(&b, '"');
    if (len > SHOW_CHARS) luaL_addstring(&b, "...");
    luaL_pushresult(&b);
}

/* Tables with their own way of printing (__tostring, or __name) use it. */
static int plain_table(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TTABLE) return 0;
    if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) { lua_pop(L, 1); return 0; }
    if (luaL_getmetafield(L, idx, "__name") != LUA_TNIL) { lua_pop(L, 1); return 0; }
    return 1;
}

/* One value inside a table: nested tables are not opened. */
static void push_brief(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING) push_quoted(L, idx);
    else if (plain_table(L, idx)) {
        lua_pushnil(L);
        int empty = !lua_next(L, idx);
        if (!empty) lua_pop(L, 2);
        lua_pushstring(L, empty ? "{}" : "{...}");
    } else {
        /* a multi-line __tostring (a tensor) on one line, cut short */
        size_t len;
        const char *s = luaL_tolstring(L, idx, &len);
        if (len <= SHOW_CHARS && !memchr(s, '\n', len)) return;
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        size_t i = 0;
        for (size_t shown = 0; i < len && shown < SHOW_CHARS; i++, shown++) {
            if (s[i] != '\n') { luaL_addchar(&b, s[i]); continue; }
            while (i + 1 < len && isspace((unsigned char)s[i + 1])) i++;
            luaL_addchar(&b, ' ');
        }
        if (i < len) luaL_addstring(&b, "...");
        luaL_pushresult(&b);
        lua_remove(L, -2);
    }
}

/* Sort order of keys: numbers, strings, booleans, the rest (by address). */
static int key_rank(lua_State *L, int i) {
    switch (lua_type(L, i)) {
    case LUA_TNUMBER: return 0;
    case LUA_TSTRING: return 1;
    case LUA_TBOOLEAN: return 2;
    default: return 3;
    }
}

static int key_less(lua_State *L) {
    int ra = key_rank(L, 1), rb = key_rank(L, 2), less;
    if (ra != rb) less = ra < rb;
    else if (ra <= 1) less = lua_compare(L, 1, 2, LUA_OPLT);
    else if (ra == 2) less = !lua_toboolean(L, 1) && lua_toboolean(L, 2);
    else less = (uintptr_t)lua_topointer(L, 1) < (uintptr_t)lua_topointer(L, 2);
    lua_pushboolean(L, less);
    return 1;
}

/* {1, 2, name = "x", [10] = true, ... (5 more)}: the array part in order, then the other keys
 * sorted; one level deep. Pushes the string. */
static void push_table(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lua_Integer n = 0; /* the array part: 1..n */
    while (lua_rawgeti(L, idx, n + 1) != LUA_TNIL) { lua_pop(L, 1); n++; }
    lua_pop(L, 1);

    lua_newtable(L); /* the other keys */
    int keys = lua_gettop(L);
    lua_Integer nk = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= n) continue;
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++nk);
    }
    /* table.sort from the loaded library, so a user's global `table` cannot break printing */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (nk > 1 && lua_getfield(L, -1, "table") == LUA_TTABLE &&
        lua_getfield(L, -1, "sort") == LUA_TFUNCTION) {
        lua_pushvalue(L, keys);
        lua_pushcfunction(L, key_less);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1); /* unsorted, then */
    }
    lua_settop(L, keys);

    /* the string grows on top of the stack: acc, then each ", item" is concatenated to it */
    lua_pushliteral(L, "{");
    lua_Integer shown = 0, total = n + nk;
    for (lua_Integer i = 1; i <= total && shown < SHOW_ITEMS; i++, shown++) {
        lua_pushstring(L, shown ? ", " : "");
        if (i <= n) {
            lua_rawgeti(L, idx, i);
            push_brief(L, -1);
            lua_remove(L, -2);
        } else {
            lua_rawgeti(L, keys, i - n);
            int k = lua_gettop(L);
            size_t len;
            const char *s = lua_type(L, k) == LUA_TSTRING ? lua_tolstring(L, k, &len) : NULL;
            if (s && is_name(s, len)) lua_pushvalue(L, k);
            else { lua_pushliteral(L, "["); push_brief(L, k); lua_pushliteral(L, "]"); lua_concat(L, 3); }
            lua_pushliteral(L, " = ");
            lua_pushvalue(L, k);
            lua_rawget(L, idx);
            push_brief(L, -1);
            lua_remove(L, -2);
            lua_concat(L, 3);
            lua_remove(L, k);
        }
        lua_concat(L, 3);
    }
    if (total > shown) lua_pushfstring(L, "%s... (%I more)", shown ? ", " : "", (LUA_INTEGER)(total - shown));
    else lua_pushliteral(L, "");
    lua_pushliteral(L, "}");
    lua_concat(L, 3);
    lua_remove(L, keys);
}

void ftl_repl_push_shown(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (plain_table(L, idx)) push_table(L, idx);
    else luaL_tolstring(L, idx, NULL);
}

/* Called (protected) with the command's results as arguments: shows them all with the global
 * print, like lua.c, so a user's own print still decides where output goes. */
static int print_results(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    for (int i = 1; i <= n; i++) {
        if (plain_table(L, i)) push_table(L, i);
        else luaL_tolstring(L, i, NULL);
        lua_replace(L, i);
    }
    lua_getglobal(L, "print");
    lua_insert(L, 1);
    lua_call(L, n, 0);
    return 0;
}

/* ---------------------------------------------------------------- completion
 * The word under the cursor is a path: "pri", "ft.tensor.ze", "x:ma". Everything before the last
 * '.' or ':' is looked up from the globals; the candidates are the names of that value's fields
 * (a table's keys) and those reachable through its metatables' __index tables. After ':' only
 * functions count. With no '.' or ':' the candidates are the globals and the keywords. */

static lua_State *complete_L;

typedef struct {
    char **v;
    size_t n, cap;
} strlist;

static void strlist_add(strlist *l, const char *prefix, size_t plen, const char *name) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return;
        l->v = v;
        l->cap = cap;
    }
    size_t nlen = strlen(name);
    char *s = malloc(plen + nlen + 1);
    if (!s) return;
    memcpy(s, prefix, plen);
    memcpy(s + plen, name, nlen + 1);
    l->v[l->n++] = s;
}

typedef struct {
    const char *text; /* the word being completed */
    strlist *out;
} complete_args;

static int callable(lua_State *L, int idx) {
    if (lua_type(L, idx) == LUA_TFUNCTION) return 1;
    if (luaL_getmetafield(L, idx, "__call") == LUA_TNIL) return 0;
    lua_pop(L, 1);
    return 1;
}

/* Add the names among the keys of the table at idx that start with word. */
static void add_names(lua_State *L, int idx, const char *word, const char *prefix, size_t plen,
                      int methods, int skip_meta, strlist *out) {
    size_t wlen = strlen(word);
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t len;
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
        if (k && is_name(k, len) && strncmp(k, word, wlen) == 0 &&
            !(skip_meta && strncmp(k, "__", 2) == 0) && (!methods || callable(L, -1)))
            strlist_add(out, prefix, plen, k);
        lua_pop(L, 1);
    }
}

static int complete_protected(lua_State *L) {
    complete_args *a = (complete_args *)lua_touserdata(L, 1);
    const char *text = a->text;
    const char *sep = NULL;
    for (const char *p = text; *p; p++)
        if (*p == '.' || *p == ':') sep = p;
    if (sep == NULL) {
        for (int i = 0; keywords[i]; i++)
            if (strncmp(keywords[i], text, strlen(text)) == 0) strlist_add(a->out, "", 0, keywords[i]);
        lua_pushglobaltable(L);
        add_names(L, -1, text, "", 0, 0, 0, a->out);
        return 0;
    }
    /* walk the path before sep: names separated by '.' */
    lua_pushglobaltable(L);
    const char *p = text;
    while (p < sep) {
        const char *dot = memchr(p, '.', (size_t)(sep - p));
        const char *end = dot ? dot : sep;
        if (!is_name(p, (size_t)(end - p))) return 0; /* "x:y.z", "a..b", "t[1].": no guess */
        lua_pushlstring(L, p, (size_t)(end - p));
        lua_gettable(L, -2); /* may run __index: we are protected */
        lua_remove(L, -2);
        p = end + 1;
    }
    int methods = *sep == ':';
    size_t plen = (size_t)(sep - text) + 1;
    /* the value, then each __index table up its chain */
    for (int depth = 0; depth < INDEX_DEPTH; depth++) {
        if (lua_type(L, -1) == LUA_TTABLE) add_names(L, -1, sep + 1, text, plen, methods, depth > 0, a->out);
        if (!lua_getmetatable(L, -1)) break;
        lua_pushliteral(L, "__index");
        int kind = lua_rawget(L, -2);
        if (kind == LUA_TTABLE) {
            lua_remove(L, -2); /* the metatable */
            lua_remove(L, -2); /* the previous value */
            continue;
        }
        /* __index is a function: the methods usually live in a table it closes over, in
         * metatable.__methods (ftlua's tensors), or in the metatable itself */
        if (kind == LUA_TFUNCTION) {
            for (int up = 1; lua_getupvalue(L, -1, up) != NULL; up++) {
                if (lua_type(L, -1) == LUA_TTABLE) add_names(L, -1, sep + 1, text, plen, methods, 1, a->out);
                lua_pop(L, 1);
            }
            lua_pop(L, 1); /* __index */
            if (lua_getfield(L, -1, "__methods") == LUA_TTABLE)
                add_names(L, -1, sep + 1, text, plen, methods, 1, a->out);
            lua_pop(L, 1);
            add_names(L, -1, sep + 1, text, plen, methods, 1, a->out);
        }
        break;
    }
    return 0;
}

/* readline hands out matches one at a time. */
static strlist matches;
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
    (void)end;
    rl_attempted_completion_over = 1;   /* never fall back to file names */
    rl_completion_append_character = '\0'; /* "ft." is as likely next as "ft " */
    for (size_t i = 0; i < matches.n; i++) free(matches.v[i]);
    matches.n = 0;
    lua_State *L = complete_L;
    int top = lua_gettop(L);
    complete_args a = {text, &matches};
    lua_pushcfunction(L, complete_protected);
    lua_pushlightuserdata(L, &a);
    lua_pcall(L, 1, 0, 0); /* an error (a throwing __index) just means fewer matches */
    lua_settop(L, top);
    return rl_completion_matches(text, match_generator);
}

/* ---------------------------------------------------------------- reading lines */

enum { READ_LINE, READ_EOF, READ_INTERRUPT };

static int use_readline;      /* stdin is a terminal */
static char *history_path;    /* NULL: no history file */
static volatile sig_atomic_t prompt_sigint, prompt_sigwinch;
static char *line_result;     /* what readline's callback handed us */
static int line_done;

static void on_prompt_signal(int sig) {
    if (sig == SIGINT) prompt_sigint = 1;
    else prompt_sigwinch = 1;
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
        if (line_result == NULL) r = READ_EOF;
        else *line = line_result;
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

enum { CHUNK_EOF = -1, CHUNK_INTERRUPT = -2, CHUNK_INCOMPLETE = -3 };

static int incomplete(lua_State *L, int status) {
    if (status != LUA_ERRSYNTAX) return 0;
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    return len >= 5 && strcmp(msg + len - 5, "<eof>") == 0;
}

/* Compile the source at index 1: as "return <source>" if that works (so expressions print),
 * else as statements. Pushes the function or the error. An error at <eof> in either form means
 * the input is unfinished: returns CHUNK_INCOMPLETE. */
static int compile(lua_State *L) {
    size_t len;
    const char *src = lua_tolstring(L, 1, &len);
    const char *ret = lua_pushfstring(L, "return %s", src);
    int status = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");
    lua_remove(L, -2);
    if (status == LUA_OK) return status;
    int unfinished = incomplete(L, status);
    lua_pop(L, 1);
    status = luaL_loadbuffer(L, src, len, "=stdin");
    if (status == LUA_OK) return status;
    return unfinished || incomplete(L, status) ? CHUNK_INCOMPLETE : status;
}

/* Read lines until they form a chunk. Leaves the function (or the error) on top and returns a
 * Lua status, or CHUNK_EOF / CHUNK_INTERRUPT with nothing pushed. */
static int load_chunk(lua_State *L, int *quiet) {
    lua_settop(L, 0);
    int r = push_line(L, 1);
    if (r != READ_LINE) return r == READ_EOF ? CHUNK_EOF : CHUNK_INTERRUPT;
    int status;
    while ((status = compile(L)) == CHUNK_INCOMPLETE) {
        r = push_line(L, 0);
        if (r == READ_INTERRUPT) { lua_settop(L, 0); return CHUNK_INTERRUPT; }
        if (r == READ_EOF) { status = LUA_ERRSYNTAX; break; } /* report what is missing */
        lua_remove(L, -2);       /* the error */
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);        /* source .. "\n" .. line */
    }
    size_t len;
    const char *src = lua_tolstring(L, 1, &len);
    size_t end = len;
    while (end > 0 && isspace((unsigned char)src[end - 1])) end--;
    *quiet = end > 0 && src[end - 1] == ';';
    history_save(src);
    lua_remove(L, 1);
    return status;
}

static void print_time(double seconds) {
    int dim = isatty(STDOUT_FILENO);
    printf("%s[%.2fs]%s\n", dim ? "\033[2m" : "", seconds, dim ? "\033[0m" : "");
    fflush(stdout);
}

static int repl_loop(lua_State *L) {
    int status, quiet = 0;
    while ((status = load_chunk(L, &quiet)) != CHUNK_EOF) {
        if (status == CHUNK_INTERRUPT) continue;
        double t0 = now();
        if (status == LUA_OK) status = ftl_docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK && !quiet && lua_gettop(L) > 0) {
            lua_pushcfunction(L, print_results);
            lua_insert(L, 1);
            status = ftl_docall(L, lua_gettop(L) - 1, 0);
        }
        ftl_report(L, status, 0);
        double dt = now() - t0;
        if (dt > SLOW_SECONDS) print_time(dt);
        lua_settop(L, 0);
    }
    return 0;
}

void ftl_repl(lua_State *L) {
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
    lua_call(L, 0, 0);
    if (use_readline) {
        for (size_t i = 0; i < matches.n; i++) free(matches.v[i]);
        free(matches.v);
        matches.v = NULL;
        matches.n = matches.cap = 0;
        free(history_path);
        history_path = NULL;
    }
}
