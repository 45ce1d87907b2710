/* host_complete.c: completion of the word under the cursor (host.h, "completion") for the REPL's
 * readline and the notebook's complete request, and names(v), which "did you mean" uses.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "host.h"
#include "host_internal.h"

#define INDEX_DEPTH 8 /* __index links followed by completion */

static const char *const keywords[] = {"and",   "break", "do",       "else",  "elseif", "end",
                                       "false", "for",   "function", "goto",  "if",     "in",
                                       "local", "nil",   "not",      "or",    "repeat", "return",
                                       "then",  "true",  "until",    "while", NULL};

static int is_keyword(const char *s, size_t len) {
    for (int i = 0; keywords[i]; i++)
        if (strlen(keywords[i]) == len && memcmp(keywords[i], s, len) == 0) return 1;
    return 0;
}

/* A name that can follow '.' or stand alone. */
int fth_host_is_name(const char *s, size_t len) {
    if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return 0;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return 0;
    return !is_keyword(s, len);
}

/* ---------------------------------------------------------------- completion
 * The word under the cursor is a path: "pri", "ft.tensor.ze", "x:ma". Everything before the last
 * '.' or ':' is looked up from the globals; the candidates are the names of that value's fields
 * (a table's keys) and those reachable through its metatables' __index tables. After ':' only
 * functions count. With no '.' or ':' the candidates are the globals and the keywords. */

static void ftl_strlist_add(fth_strlist *l, const char *prefix, size_t plen, const char *name) {
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

void fth_strlist_free(fth_strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

typedef struct {
    const char *text; /* the word being completed */
    fth_strlist *out;
} complete_args;

static int callable(lua_State *L, int idx) {
    if (lua_type(L, idx) == LUA_TFUNCTION) return 1;
    if (luaL_getmetafield(L, idx, "__call") == LUA_TNIL) return 0;
    lua_pop(L, 1);
    return 1;
}

/* Add the names among the keys of the table at idx that start with word. */
static void add_names(lua_State *L, int idx, const char *word, const char *prefix, size_t plen,
                      int methods, int skip_meta, fth_strlist *out) {
    size_t wlen = strlen(word);
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t len;
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
        if (k && fth_host_is_name(k, len) && strncmp(k, word, wlen) == 0 &&
            !(skip_meta && strncmp(k, "__", 2) == 0) && (!methods || callable(L, -1)))
            ftl_strlist_add(out, prefix, plen, k);
        lua_pop(L, 1);
    }
}

/* Add the names of the value on top (its keys, then each __index table up its chain) that start
 * with word, each after prefix. It replaces the value with what it walks to: push a copy. */
static void collect_names(lua_State *L, const char *word, const char *prefix, size_t plen,
                          int methods, fth_strlist *out) {
    for (int depth = 0; depth < INDEX_DEPTH; depth++) {
        if (lua_type(L, -1) == LUA_TTABLE)
            add_names(L, -1, word, prefix, plen, methods, depth > 0, out);
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
                if (lua_type(L, -1) == LUA_TTABLE)
                    add_names(L, -1, word, prefix, plen, methods, 1, out);
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
            if (strncmp(keywords[i], text, strlen(text)) == 0)
                ftl_strlist_add(a->out, "", 0, keywords[i]);
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
        if (!fth_host_is_name(p, (size_t)(end - p)))
            return 0; /* "x:y.z", "a..b", "t[1].": no guess */
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

size_t ftl_complete(lua_State *L, const char *line, size_t cursor, fth_strlist *out) {
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
    fth_strlist names = {0};
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
    fth_strlist_free(&names);
    return 1;
}
