/* host.c: what every host of the ftlua library shares (host.h): completion, the REPL's rule for
 * unfinished input and its hints, how values are shown, help from docs/api.md, and the message
 * handler that reports a user's mistake at the user's own line.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "host.h"

#define SHOW_ITEMS 20  /* table entries shown before "..." */
#define SHOW_CHARS 60  /* string length shown inside a table */
#define INDEX_DEPTH 8  /* __index links followed by completion */
#define LIB_CHUNK "lua/ftlua/" /* the library's Lua files: their frames are not the user's */

extern const char ftl_api_doc[]; /* docs/api.md, compiled in (build/api_doc.c) */

int ftl_full_traceback;

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

void ftl_push_shown(lua_State *L, int idx) {
    if (plain_table(L, idx)) push_table(L, idx);
    else luaL_tolstring(L, idx, NULL);
}

int ftl_print_results(lua_State *L) {
    int n = lua_gettop(L);
    if (n == 0) return 0; /* a call that returns nothing shows nothing */
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    for (int i = 1; i <= n; i++) {
        ftl_push_shown(L, i);
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

static void ftl_strlist_add(ftl_strlist *l, const char *prefix, size_t plen, const char *name) {
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

void ftl_strlist_free(ftl_strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

typedef struct {
    const char *text; /* the word being completed */
    ftl_strlist *out;
} complete_args;

static int callable(lua_State *L, int idx) {
    if (lua_type(L, idx) == LUA_TFUNCTION) return 1;
    if (luaL_getmetafield(L, idx, "__call") == LUA_TNIL) return 0;
    lua_pop(L, 1);
    return 1;
}

/* Add the names among the keys of the table at idx that start with word. */
static void add_names(lua_State *L, int idx, const char *word, const char *prefix, size_t plen,
                      int methods, int skip_meta, ftl_strlist *out) {
    size_t wlen = strlen(word);
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t len;
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
        if (k && is_name(k, len) && strncmp(k, word, wlen) == 0 &&
            !(skip_meta && strncmp(k, "__", 2) == 0) && (!methods || callable(L, -1)))
            ftl_strlist_add(out, prefix, plen, k);
        lua_pop(L, 1);
    }
}

/* Add the names of the value on top (its keys, then each __index table up its chain) that start
 * with word, each after prefix. It replaces the value with what it walks to: push a copy. */
static void collect_names(lua_State *L, const char *word, const char *prefix, size_t plen, int methods,
                          ftl_strlist *out) {
    for (int depth = 0; depth < INDEX_DEPTH; depth++) {
        if (lua_type(L, -1) == LUA_TTABLE) add_names(L, -1, word, prefix, plen, methods, depth > 0, out);
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
                if (lua_type(L, -1) == LUA_TTABLE) add_names(L, -1, word, prefix, plen, methods, 1, out);
                lua_pop(L, 1);
            }
            lua_pop(L, 1); /* __index */
            if (lua_getfield(L, -1, "__methods") == LUA_TTABLE)
                add_names(L, -1, word, prefix, plen, methods, 1, out);
            lua_pop(L, 1);
            add_names(L, -1, word, prefix, plen, methods, 1, out);
        }
        break;
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
            if (strncmp(keywords[i], text, strlen(text)) == 0) ftl_strlist_add(a->out, "", 0, keywords[i]);
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
    collect_names(L, sep + 1, text, plen, methods, a->out);
    return 0;
}

static const char WORD_BREAKS[] = " \t\n\"'\\><=;+-*/%^~#&|{}()[],";

size_t ftl_complete(lua_State *L, const char *line, size_t cursor, ftl_strlist *out) {
    size_t start = cursor;
    while (start > 0 && !strchr(WORD_BREAKS, line[start - 1])) start--;
    char *word = malloc(cursor - start + 1);
    if (!word) return start;
    memcpy(word, line + start, cursor - start);
    word[cursor - start] = '\0';
    int top = lua_gettop(L);
    complete_args a = {word, out};
    if (lua_checkstack(L, 2 * INDEX_DEPTH + LUA_MINSTACK)) {
        lua_pushcfunction(L, complete_protected);
        lua_pushlightuserdata(L, &a);
        lua_pcall(L, 1, 0, 0); /* an error (a throwing __index) just means fewer matches */
    }
    lua_settop(L, top);
    free(word);
    return start;
}

static int sort_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int ftl_names(lua_State *L) {
    luaL_checkany(L, 1);
    int methods = lua_toboolean(L, 2);
    ftl_strlist names = {0};
    lua_settop(L, 1);
    lua_pushvalue(L, 1);
    collect_names(L, "", "", 0, methods, &names); /* may raise: names leaks then, rarely */
    lua_settop(L, 1);
    if (names.n > 1) qsort(names.v, names.n, sizeof *names.v, sort_names);
    lua_createtable(L, (int)names.n, 0);
    lua_Integer k = 0;
    for (size_t i = 0; i < names.n; i++) {
        if (i > 0 && strcmp(names.v[i], names.v[i - 1]) == 0) continue;
        if (names.v[i][0] == '_') continue; /* private by convention */
        lua_pushstring(L, names.v[i]);
        lua_rawseti(L, -2, ++k);
    }
    ftl_strlist_free(&names);
    return 1;
}

/* ---------------------------------------------------------------- reading input */

/* The registry table chunkname -> source of the inputs compiled by ftl_compile_input, so that
 * the message handler can read the line that failed (for "did you mean"). */
#define SOURCES_KEY "ftlua.host.sources"

static int at_eof(lua_State *L, int status) {
    if (status != LUA_ERRSYNTAX) return 0;
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    return msg && len >= 5 && strcmp(msg + len - 5, "<eof>") == 0;
}

int ftl_compile_input(lua_State *L, const char *src, size_t len, const char *chunkname) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, SOURCES_KEY);
    lua_pushlstring(L, src, len);
    lua_setfield(L, -2, chunkname[0] == '=' || chunkname[0] == '@' ? chunkname + 1 : chunkname);
    lua_pop(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "return ");
    luaL_addlstring(&b, src, len);
    luaL_pushresult(&b);
    size_t rlen;
    const char *ret = lua_tolstring(L, -1, &rlen);
    int status = luaL_loadbuffer(L, ret, rlen, chunkname);
    lua_remove(L, -2);
    if (status == LUA_OK) {
        /* An expression: run it as an argument, not as "return f(x)", a tail call that would
         * drop the input's own frame, so that errors could not be said at the user's line.
         * The results are all kept (the vararg function returns them); "\n)" survives a
         * trailing comment. */
        size_t elen = len; /* "return E;" is allowed, "(E;)" is not */
        while (elen > 0 && isspace((unsigned char)src[elen - 1])) elen--;
        if (elen > 0 && src[elen - 1] == ';') elen--;
        lua_pushliteral(L, "return (function(...) return ... end)(");
        lua_pushlstring(L, src, elen);
        lua_pushliteral(L, "\n)");
        lua_concat(L, 3);
        ret = lua_tolstring(L, -1, &rlen);
        if (luaL_loadbuffer(L, ret, rlen, chunkname) == LUA_OK) {
            lua_remove(L, -2); /* the text */
            lua_remove(L, -2); /* the plain function */
        } else {
            lua_pop(L, 2); /* "f(); -- note": the plain function, then */
        }
        return LUA_OK;
    }
    int unfinished = at_eof(L, status);
    lua_pop(L, 1);
    status = luaL_loadbuffer(L, src, len, chunkname);
    if (status == LUA_OK) return status;
    return unfinished || at_eof(L, status) ? FTL_INCOMPLETE : status;
}

int ftl_input_incomplete(lua_State *L, const char *src, size_t len) {
    int status = ftl_compile_input(L, src, len, "=(check)"); /* not "=stdin": keep its source */
    lua_pop(L, 1);
    return status == FTL_INCOMPLETE;
}

static int compiles(lua_State *L, const char *prefix, const char *src, size_t len) {
    lua_pushstring(L, prefix);
    lua_pushlstring(L, src, len);
    lua_concat(L, 2);
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    int ok = luaL_loadbuffer(L, s, n, "=hint") == LUA_OK;
    lua_pop(L, 2);
    return ok;
}

/* "a = f(); a": statements, a ';', then an expression alone. Lua reads the expression as the
 * start of another statement: it waits for the rest of it ("a"), or fails ("#t", "x + 1"). */
int ftl_input_hint(lua_State *L, const char *src, size_t len) {
    if (memchr(src, '\n', len)) return 0; /* a multi-line input is being written on purpose */
    for (size_t cut = len; cut-- > 0;) {
        if (src[cut] != ';') continue;
        const char *tail = src + cut + 1;
        size_t tlen = len - cut - 1;
        while (tlen > 0 && isspace((unsigned char)*tail)) tail++, tlen--;
        while (tlen > 0 && isspace((unsigned char)tail[tlen - 1])) tlen--;
        if (tlen == 0) continue;
        if (!compiles(L, "return ", tail, tlen) || !compiles(L, "", src, cut)) continue;
        const char *t = lua_pushlstring(L, tail, tlen);
        lua_pushfstring(L,
            "stdin:1: `%s` alone is not a statement in Lua. To see its value: `print(%s)`, or end "
            "the line with `return %s` (a line of just `%s` works too)",
            t, t, t, t);
        lua_remove(L, -2);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- help */

#define HELP_KEY "ftlua.host.help" /* the registry's copy of lua/ftlua/help.lua's table */

/* Push help.lua's table, initialised with the page. Raises when the library is not loaded. */
static void push_help_module(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, HELP_KEY) == LUA_TTABLE) return;
    lua_pop(L, 1);
    /* from the preload table that luaopen_ftlua filled: a user's own `require` plays no part */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    if (lua_getfield(L, -1, "ftlua.help") != LUA_TFUNCTION)
        luaL_error(L, "help: the ftlua library is not loaded");
    lua_remove(L, -2);
    lua_pushliteral(L, "ftlua.help");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "init");
    lua_pushstring(L, ftl_api_doc);
    lua_pushcfunction(L, ftl_names);
    lua_call(L, 2, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, HELP_KEY);
}

/* help.fn(args...) protected: (fn name, nargs) on the stack are the arguments; leaves nres. */
static int help_call_k(lua_State *L) {
    const char *fn = lua_tostring(L, lua_upvalueindex(1));
    int nargs = lua_gettop(L);
    push_help_module(L);
    lua_getfield(L, -1, fn);
    lua_insert(L, 1);
    lua_pop(L, 1);
    lua_call(L, nargs, 2);
    return 2;
}

/* Call help.<fn> with the nargs values on top; leaves its two results (nil, nil on error). */
static void help_call(lua_State *L, const char *fn, int nargs) {
    lua_pushstring(L, fn);
    lua_pushcclosure(L, help_call_k, 1);
    lua_insert(L, -nargs - 1);
    if (lua_pcall(L, nargs, 2, 0) != LUA_OK) {
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_pushnil(L);
    }
}

int ftl_help_value(lua_State *L, int idx) {
    lua_pushvalue(L, idx);
    help_call(L, "value", 1);
    lua_pop(L, 1);
    return lua_type(L, -1) == LUA_TSTRING;
}

int ftl_help_text(lua_State *L, const char *expr) {
    lua_pushstring(L, expr);
    help_call(L, "text", 1);
    if (lua_type(L, -2) == LUA_TSTRING) {
        lua_pop(L, 1);
        return 1;
    }
    lua_remove(L, -2);
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        lua_pushfstring(L, "help: no entry for '%s'", expr);
    }
    return 0;
}

static int path_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '.' || c == ':'; }

int ftl_help_at(lua_State *L, const char *code, size_t cursor) {
    size_t len = strlen(code);
    if (cursor > len) cursor = len;
    size_t start = cursor, end = cursor;
    while (start > 0 && path_char(code[start - 1])) start--;
    while (end < len && (isalnum((unsigned char)code[end]) || code[end] == '_')) end++; /* the rest of the name */
    while (start < end && !(isalpha((unsigned char)code[start]) || code[start] == '_')) start++;
    if (start == end) {
        lua_pushliteral(L, "help: no name at the cursor");
        return 0;
    }
    lua_pushlstring(L, code + start, end - start);
    int found = ftl_help_text(L, lua_tostring(L, -1));
    lua_remove(L, -2);
    return found;
}

int ftl_push_suggestion(lua_State *L, int obj, const char *name, int methods) {
    obj = lua_absindex(L, obj);
    lua_pushvalue(L, obj);
    lua_pushstring(L, name);
    lua_pushboolean(L, methods);
    help_call(L, "suggest", 3);
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) return 1;
    lua_pop(L, 1);
    return 0;
}

int ftl_push_chunk_source(lua_State *L, const char *source) {
    if (source[0] != '=' && source[0] != '@') return 0;
    int top = lua_gettop(L);
    if (lua_getfield(L, LUA_REGISTRYINDEX, SOURCES_KEY) == LUA_TTABLE &&
        lua_getfield(L, -1, source + 1) == LUA_TSTRING) {
        lua_remove(L, -2);
        return 1;
    }
    lua_settop(L, top);
    if (source[0] != '@') return 0;
    FILE *f = fopen(source + 1, "rb");
    if (!f) return 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) luaL_addlstring(&b, chunk, n);
    fclose(f);
    luaL_pushresult(&b);
    return 1;
}

/* The text of line `line` of a chunk; pushes it and returns 1, or returns 0 with nothing pushed. */
static int push_source_line(lua_State *L, const char *source, int line) {
    if (line <= 0 || !ftl_push_chunk_source(L, source)) return 0;
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    for (int i = 1;; i++) {
        const char *nl = memchr(text, '\n', len);
        size_t n = nl ? (size_t)(nl - text) : len;
        if (i == line) {
            lua_pushlstring(L, text, n);
            lua_remove(L, -2);
            return 1;
        }
        if (!nl) break;
        len -= n + 1;
        text = nl + 1;
    }
    lua_pop(L, 1);
    return 0;
}

/* Find "<path>.name" or "<path>:name" in the line and push the value of path, looked up as the
 * frame at `level` sees it (its locals, its upvalues, then the globals). Returns 0, nothing
 * pushed, when the text before it is not a plain path of names. */
static int push_owner(lua_State *L, lua_Debug *ar, const char *line, const char *name, char sep) {
    size_t nlen = strlen(name);
    for (const char *p = strchr(line, sep); p; p = strchr(p + 1, sep)) {
        if (strncmp(p + 1, name, nlen) != 0 || isalnum((unsigned char)p[1 + nlen]) || p[1 + nlen] == '_')
            continue;
        const char *start = p;
        while (start > line && (isalnum((unsigned char)start[-1]) || start[-1] == '_' || start[-1] == '.')) start--;
        if (start == p || !(isalpha((unsigned char)*start) || *start == '_')) continue;
        /* the first name: a local (the last one active by that name), an upvalue, a global */
        const char *end = start;
        while (end < p && *end != '.') end++;
        lua_pushlstring(L, start, (size_t)(end - start));
        const char *first = lua_tostring(L, -1);
        int found = 0;
        const char *lname;
        for (int n = 1; (lname = lua_getlocal(L, ar, n)) != NULL; n++) {
            if (strcmp(lname, first) == 0) {
                if (found) lua_remove(L, -2);
                found = 1;
            } else {
                lua_pop(L, 1);
            }
        }
        if (!found && lua_getinfo(L, "f", ar)) {
            for (int u = 1; (lname = lua_getupvalue(L, -1, u)) != NULL; u++) {
                if (strcmp(lname, first) == 0) { found = 1; break; }
                lua_pop(L, 1);
            }
            if (found) lua_remove(L, -2);
            else lua_pop(L, 1);
        }
        if (!found) {
            lua_pushglobaltable(L);
            lua_pushvalue(L, -2);
            lua_rawget(L, -2);
            lua_remove(L, -2);
        }
        lua_remove(L, -2); /* the name */
        /* the rest of the path, field by field (raw: no code of the user's runs here) */
        while (end < p) {
            const char *s = end + 1, *e = s;
            while (e < p && *e != '.') e++;
            if (!lua_istable(L, -1)) { lua_pop(L, 1); return 0; }
            lua_pushlstring(L, s, (size_t)(e - s));
            lua_gettable(L, -2);
            lua_remove(L, -2);
            end = e;
        }
        return 1;
    }
    return 0;
}

/* The argument text of "help(...)" on the caller's line, pushed; or 0. */
static int push_help_argument(lua_State *L) {
    lua_Debug ar;
    if (!lua_getstack(L, 1, &ar) || !lua_getinfo(L, "Sl", &ar) ||
        !push_source_line(L, ar.source, ar.currentline))
        return 0;
    const char *line = lua_tostring(L, -1);
    const char *h = strstr(line, "help(");
    while (h && h > line && (isalnum((unsigned char)h[-1]) || h[-1] == '_' || h[-1] == '.'))
        h = strstr(h + 1, "help("); /* not xhelp( or t.help( */
    const char *s = h ? h + 5 : NULL, *e = s;
    while (e && *e && *e != ')' && *e != '(') e++;
    if (!e || *e != ')' || e == s) { lua_pop(L, 1); return 0; }
    lua_pushlstring(L, s, (size_t)(e - s));
    lua_remove(L, -2);
    return 1;
}

int ftl_help(lua_State *L) {
    if (lua_gettop(L) == 0) {
        push_help_module(L);
        lua_getfield(L, -1, "usage");
    } else if (lua_type(L, 1) == LUA_TSTRING) {
        ftl_help_text(L, lua_tostring(L, 1));
    } else if (!ftl_help_value(L, 1)) {
        lua_pop(L, 1);
        /* help(learn.fit_one_cyle) is help(nil): the caller's line says which name was meant */
        if (push_help_argument(L)) {
            const char *arg = lua_tostring(L, -1);
            if (lua_isnil(L, 1)) ftl_help_text(L, arg);
            else lua_pushfstring(L, "help: %s (a %s) has no entry in the reference", arg, luaL_typename(L, 1));
        } else {
            lua_pushfstring(L, "help: no entry in the reference for this %s", luaL_typename(L, 1));
        }
    }
    lua_getglobal(L, "print");
    lua_insert(L, -2);
    lua_call(L, 1, 0);
    return 0;
}

void ftl_open_host(lua_State *L) {
    lua_pushcfunction(L, ftl_help);
    lua_setglobal(L, "help");
}

/* ---------------------------------------------------------------- errors */

/* A frame of the user's: Lua code that is not the library's. */
static int user_frame(const lua_Debug *ar) {
    if (ar->currentline <= 0 || strcmp(ar->what, "C") == 0) return 0;
    return strncmp(ar->source, "@" LIB_CHUNK, sizeof LIB_CHUNK) != 0;
}

/* Length of a "chunk:line: " position at the start of msg, or 0. */
static size_t position_len(const char *msg) {
    const char *p = msg;
    while (*p && *p != '\n') {
        if (p[0] == ':' && isdigit((unsigned char)p[1])) {
            const char *q = p + 1;
            while (isdigit((unsigned char)*q)) q++;
            if (q[0] == ':' && q[1] == ' ') return (size_t)(q + 2 - msg);
        }
        p++;
    }
    return 0;
}

/* "(method 'fit_one_cyle')" and friends at the end of a message: push "did you mean ...?". */
static int push_typo_hint(lua_State *L, const char *msg, lua_Debug *ar) {
    static const struct { const char *kind; char sep; int methods; } KINDS[] = {
        {"(method '", ':', 1}, {"(field '", '.', 0}, {"(global '", 0, 0},
    };
    if (!strstr(msg, "attempt to call a nil value") && !strstr(msg, "attempt to index a nil value"))
        return 0;
    for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) {
        const char *s = strstr(msg, KINDS[k].kind);
        if (!s) continue;
        s += strlen(KINDS[k].kind);
        const char *e = strchr(s, '\'');
        if (!e) return 0;
        lua_pushlstring(L, s, (size_t)(e - s));
        const char *name = lua_tostring(L, -1);
        int base = lua_gettop(L), ok = 0;
        if (KINDS[k].sep == 0) {
            lua_pushglobaltable(L);
            ok = ftl_push_suggestion(L, -1, name, 0);
        } else if (push_source_line(L, ar->source, ar->currentline)) {
            if (push_owner(L, ar, lua_tostring(L, -1), name, KINDS[k].sep))
                ok = ftl_push_suggestion(L, -1, name, KINDS[k].methods);
        }
        if (ok) lua_replace(L, base);
        lua_settop(L, ok ? base : base - 1);
        return ok;
    }
    return 0;
}

/* Push "\n\tsrc:line: in <what>" for a frame, as luaL_traceback words it. */
static void push_frame(lua_State *L, lua_Debug *ar) {
    lua_pushfstring(L, "\n\t%s:%d: in ", ar->short_src, ar->currentline);
    if (*ar->what == 'm') lua_pushliteral(L, "main chunk");
    else if (*ar->namewhat)
        lua_pushfstring(L, "%s '%s'", strcmp(ar->namewhat, "global") == 0 ? "function" : ar->namewhat, ar->name);
    else lua_pushfstring(L, "function <%s:%d>", ar->short_src, ar->linedefined);
    lua_concat(L, 2);
}

/* The deepest level on the stack, by bisection (as lauxlib's traceback finds it): walking a
 * stack overflow's 200000 levels one lua_getstack at a time would be quadratic. */
static int last_level(lua_State *L) {
    lua_Debug ar;
    int li = 1, le = 1;
    while (lua_getstack(L, le, &ar)) { li = le; le *= 2; }
    while (li < le) {
        int m = (li + le) / 2;
        if (lua_getstack(L, m, &ar)) li = m + 1;
        else le = m;
    }
    return le - 1;
}

#define TOP_LEVELS 20    /* levels looked at from the error up... */
#define BOTTOM_LEVELS 10 /* ...and from the main chunk down; the middle of a deep stack is skipped */

/* The next level to look at after `level`: all of them on a short stack, else the top and the
 * bottom ones. */
static int next_level(int level, int last) {
    if (last > TOP_LEVELS + BOTTOM_LEVELS && level == TOP_LEVELS) return last - BOTTOM_LEVELS + 1;
    return level + 1;
}

int ftl_msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    if (ftl_full_traceback) {
        luaL_traceback(L, L, msg, 1);
        return 1;
    }
    /* Ctrl-C: no position, no traceback; where the code happened to be says nothing */
    size_t pos = position_len(msg);
    if (strcmp(msg + pos, "interrupted!") == 0) {
        lua_pushliteral(L, "interrupted!");
        return 1;
    }
    lua_Debug ar, user;
    int last = last_level(L), first_user = 0, n_user = 0, level;
    for (level = 1; level <= last; level = next_level(level, last)) {
        if (!lua_getstack(L, level, &ar) || !lua_getinfo(L, "Slnt", &ar) || !user_frame(&ar)) continue;
        if (n_user++ == 0) { first_user = level; user = ar; }
    }
    int base = lua_gettop(L);
    /* said at the user's line: a position inside the library becomes the user's */
    if (n_user > 0 && pos > 0 && strncmp(msg, LIB_CHUNK, sizeof LIB_CHUNK - 1) == 0) {
        lua_pushfstring(L, "%s:%d: ", user.short_src, user.currentline);
        lua_pushstring(L, msg + pos);
    } else {
        lua_pushstring(L, msg);
    }
    if (first_user == 1) {
        lua_getstack(L, 1, &ar);
        lua_getinfo(L, "Sl", &ar);
        if (push_typo_hint(L, msg, &ar)) {
            lua_pushliteral(L, "; ");
            lua_insert(L, -2);
        }
    }
    /* the user's frames only, when there are more than the one the message names */
    if (n_user > 1) {
        lua_pushliteral(L, "\nstack traceback:");
        for (level = 1; level <= last; level = next_level(level, last)) {
            if (level == last - BOTTOM_LEVELS + 1 && last > TOP_LEVELS + BOTTOM_LEVELS)
                lua_pushfstring(L, "\n\t...\t(skipping %d levels)", last - BOTTOM_LEVELS - TOP_LEVELS);
            else
                lua_pushliteral(L, "");
            if (lua_getstack(L, level, &ar) && lua_getinfo(L, "Slnt", &ar) && user_frame(&ar)) push_frame(L, &ar);
            else lua_pushliteral(L, "");
            lua_concat(L, 3); /* the stack stays short however deep the recursion */
        }
    }
    lua_concat(L, lua_gettop(L) - base);
    return 1;
}
