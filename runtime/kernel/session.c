/* session.c: see session.h. A small Lua lexer finds the top-level `local` statements. */
#include <ctype.h>
#include <string.h>

#include <lauxlib.h>

#include "host.h"
#include "kernel/session.h"

#define SESSION_KEY "ftlua.session" /* registry: the session table */

typedef struct {
    const char *s;
    size_t n, i;
} lexer;

typedef struct {
    size_t start, end; /* the token is s[start, end) */
    int kind;          /* 'n' name or keyword, 's' string/number/comment-free other, or the char */
} token;

/* Level of a long bracket "[==[" at s[i] (its '=' count), or -1. */
static int long_open(const lexer *x, size_t i) {
    if (x->s[i] != '[') return -1;
    size_t j = i + 1;
    while (j < x->n && x->s[j] == '=') j++;
    return j < x->n && x->s[j] == '[' ? (int)(j - i - 1) : -1;
}

/* Skips a long bracket of this level starting at s[i]; returns the index after it. */
static size_t skip_long(const lexer *x, size_t i, int level) {
    i += (size_t)level + 2;
    while (i < x->n) {
        if (x->s[i] == ']') {
            size_t j = i + 1;
            while (j < x->n && x->s[j] == '=') j++;
            if (j < x->n && x->s[j] == ']' && (int)(j - i - 1) == level) return j + 1;
        }
        i++;
    }
    return x->n;
}

/* The next token, skipping spaces and comments. 0 at the end. */
static int next_token(lexer *x, token *t) {
    const char *s = x->s;
    for (;;) {
        while (x->i < x->n && isspace((unsigned char)s[x->i])) x->i++;
        if (x->i + 1 < x->n && s[x->i] == '-' && s[x->i + 1] == '-') {
            x->i += 2;
            int level = x->i < x->n ? long_open(x, x->i) : -1;
            if (level >= 0)
                x->i = skip_long(x, x->i, level);
            else
                while (x->i < x->n && s[x->i] != '\n') x->i++;
            continue;
        }
        break;
    }
    if (x->i >= x->n) return 0;
    size_t b = x->i;
    char c = s[b];
    t->start = b;
    if (isalpha((unsigned char)c) || c == '_') {
        while (x->i < x->n && (isalnum((unsigned char)s[x->i]) || s[x->i] == '_')) x->i++;
        t->kind = 'n';
    } else if (isdigit((unsigned char)c) ||
               (c == '.' && b + 1 < x->n && isdigit((unsigned char)s[b + 1]))) {
        x->i++;
        while (x->i < x->n) {
            char d = s[x->i];
            char prev = s[x->i - 1];
            if (isalnum((unsigned char)d) || d == '.' ||
                ((d == '+' || d == '-') && strchr("eEpP", prev)))
                x->i++;
            else
                break;
        }
        t->kind = 's';
    } else if (c == '"' || c == '\'') {
        x->i++;
        while (x->i < x->n && s[x->i] != c && s[x->i] != '\n') x->i += s[x->i] == '\\' ? 2 : 1;
        if (x->i < x->n) x->i++;
        if (x->i > x->n) x->i = x->n;
        t->kind = 's';
    } else if (long_open(x, b) >= 0) {
        x->i = skip_long(x, b, long_open(x, b));
        t->kind = 's';
    } else {
        x->i++;
        t->kind = c;
    }
    t->end = x->i;
    return 1;
}

static int is_word(const lexer *x, const token *t, const char *w) {
    size_t n = strlen(w);
    return t->kind == 'n' && t->end - t->start == n && memcmp(x->s + t->start, w, n) == 0;
}

/* Rewrites src into the buffer; adds each declared name to the table at index names. */
static void rewrite(lua_State *L, const char *src, size_t len, luaL_Buffer *b, int names) {
    lexer x = {src, len, 0};
    token t;
    size_t copied = 0; /* src[0, copied) is in b */
    int depth = 0;
    while (next_token(&x, &t)) {
        if (is_word(&x, &t, "function") || is_word(&x, &t, "do") || is_word(&x, &t, "if") ||
            is_word(&x, &t, "repeat"))
            depth++;
        else if (is_word(&x, &t, "end") || is_word(&x, &t, "until"))
            depth--;
        if (depth != 0 || !is_word(&x, &t, "local")) continue;
        luaL_addlstring(b, src + copied, t.start - copied); /* drop "local" */
        copied = t.end;
        lexer save = x;
        token u;
        if (!next_token(&x, &u)) break;
        if (is_word(&x, &u, "function")) {
            depth++;
            token nm;
            if (next_token(&x, &nm) && nm.kind == 'n') {
                lua_pushlstring(L, src + nm.start, nm.end - nm.start);
                lua_pushboolean(L, 1);
                lua_settable(L, names);
            }
            continue;
        }
        /* NAME [<attrib>] {, NAME [<attrib>]} [= ...] */
        x = save;
        size_t last_end = copied;
        for (;;) {
            token nm;
            lexer before = x;
            if (!next_token(&x, &nm) || nm.kind != 'n') {
                x = before;
                break;
            }
            lua_pushlstring(L, src + nm.start, nm.end - nm.start);
            lua_pushboolean(L, 1);
            lua_settable(L, names);
            last_end = nm.end;
            before = x;
            token a;
            if (next_token(&x, &a) && a.kind == '<') { /* <const> / <close>: dropped */
                token an, gt;
                lexer in_attrib = x;
                if (next_token(&x, &an) && an.kind == 'n' && next_token(&x, &gt) &&
                    gt.kind == '>') {
                    luaL_addlstring(b, src + copied, a.start - copied);
                    copied = gt.end;
                    last_end = gt.end;
                    before = x;
                } else
                    x = in_attrib;
                if (!next_token(&x, &a)) {
                    x = before;
                    break;
                }
            }
            if (a.kind != ',') {
                x = before;
                break;
            }
        }
        lexer peek = x;
        token eq;
        int has_eq = next_token(&peek, &eq) && eq.kind == '=';
        if (!has_eq) { /* `local x` declares x = nil */
            luaL_addlstring(b, src + copied, last_end - copied);
            luaL_addstring(b, " = nil;");
            copied = last_end;
        }
    }
    luaL_addlstring(b, src + copied, len - copied);
}

/* __newindex of the session table: names some cell declared local stay here, others go to _G. */
static int session_newindex(lua_State *L) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) {
        lua_settop(L, 3);
        lua_rawset(L, 1);
    } else {
        lua_settop(L, 3);
        lua_pushvalue(L, lua_upvalueindex(2)); /* _G (not the registry's: completion swaps it) */
        lua_insert(L, 2);
        lua_settable(L, 2);
    }
    return 0;
}

/* Pushes the session table and its declared-names set, creating them on first use. */
static void push_session(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, SESSION_KEY) == LUA_TTABLE) {
        lua_getmetatable(L, -1);
        lua_getfield(L, -1, "__newindex");
        lua_getupvalue(L, -1, 1);
        lua_replace(L, -3);
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_newtable(L);          /* session */
    lua_newtable(L);          /* declared */
    lua_createtable(L, 0, 2); /* metatable */
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, -2);
    lua_pushglobaltable(L);
    lua_pushcclosure(L, session_newindex, 2);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -3);
    lua_pushvalue(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, SESSION_KEY);
}

/* Pushes the rewritten text and, below it, the table of the names it declares. */
static void push_rewritten(lua_State *L, const char *src, size_t len) {
    lua_newtable(L);
    int names = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    rewrite(L, src, len, &b, names);
    luaL_pushresult(&b);
}

/* The compiled chunk on top, the declared names at `names`: declares them in the session and
 * makes the session the chunk's _ENV. */
static void bind_session(lua_State *L, int names) {
    push_session(L); /* fn, session, declared */
    lua_pushnil(L);
    while (lua_next(L, names)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    lua_pop(L, 1);
    if (lua_getupvalue(L, -2, 1) != NULL) { /* a main chunk's only upvalue is _ENV */
        lua_pop(L, 1);
        lua_setupvalue(L, -2, 1);
    } else
        lua_pop(L, 1);
}

/* names, text on the stack; compiles text (with host_input.c's rule when input is set), binds on
 * success, and leaves only the function or the error. */
static int compile_bound(lua_State *L, int names, const char *text, size_t n, const char *chunkname,
                         int input) {
    int status =
        input ? ftl_compile_input(L, text, n, chunkname) : luaL_loadbuffer(L, text, n, chunkname);
    if (status == LUA_OK) bind_session(L, names);
    lua_replace(L, names); /* the function or the error, where the names were */
    lua_settop(L, names);
    return status;
}

int ftl_session_load(lua_State *L, const char *src, size_t len, const char *chunkname) {
    push_rewritten(L, src, len);
    size_t n;
    const char *text = lua_tolstring(L, -1, &n);
    return compile_bound(L, lua_gettop(L) - 1, text, n, chunkname, 0);
}

/* Starts of the top-level lines: the first token of a line at depth 0, outside strings. */
static size_t line_starts(const char *src, size_t len, size_t *out, size_t max) {
    lexer x = {src, len, 0};
    token t;
    size_t n = 0, last_line_start = (size_t)-1;
    int depth = 0;
    while (next_token(&x, &t)) {
        size_t ls = t.start;
        while (ls > 0 && src[ls - 1] != '\n') ls--;
        if (depth == 0 && ls != last_line_start) {
            if (n == max) memmove(out, out + 1, (--n) * sizeof *out);
            out[n++] = t.start;
        }
        last_line_start = ls;
        if (is_word(&x, &t, "function") || is_word(&x, &t, "do") || is_word(&x, &t, "if") ||
            is_word(&x, &t, "repeat"))
            depth++;
        else if (is_word(&x, &t, "end") || is_word(&x, &t, "until"))
            depth--;
    }
    return n;
}

int ftl_session_load_cell(lua_State *L, const char *src, size_t len, const char *chunkname,
                          int *has_value) {
    *has_value = 0;
    push_rewritten(L, src, len);
    int names = lua_gettop(L) - 1;
    size_t n;
    const char *text = lua_tolstring(L, -1, &n);
    size_t end = n;
    while (end > 0 && isspace((unsigned char)text[end - 1])) end--;
    int quiet = end > 0 && text[end - 1] == ';';
    /* the whole cell an expression: host_input.c's rule compiles it so (and records its source) */
    lua_pushliteral(L, "return ");
    lua_pushlstring(L, text, n);
    lua_concat(L, 2);
    size_t rl;
    const char *ret = lua_tolstring(L, -1, &rl);
    int whole = luaL_loadbuffer(L, ret, rl, chunkname) == LUA_OK;
    lua_pop(L, 2);
    if (whole || quiet) {
        *has_value = whole && !quiet;
        return compile_bound(L, names, text, n, chunkname, 1);
    }
    /* else the shortest tail that is an expression after a prefix of statements, run as an
     * argument (not "return f(x)", a tail call that would lose the cell's frame for errors) */
    enum { MAX_TRIES = 64 };
    size_t starts[MAX_TRIES];
    size_t ns = line_starts(text, n, starts, MAX_TRIES);
    for (size_t k = ns; k-- > 0;) {
        size_t p = starts[k];
        /* a tail that starts with '-', '(', '{', a string... could continue the line above
         * ("y = 2\n- 1" is y = 1), so only the whole cell may start that way */
        char c = text[p];
        if (p == 0 || !(isalnum((unsigned char)c) || c == '_' || c == '#')) continue;
        lua_pushliteral(L, "return ");
        lua_pushlstring(L, text + p, n - p);
        lua_concat(L, 2);
        ret = lua_tolstring(L, -1, &rl);
        int expr = luaL_loadbuffer(L, ret, rl, chunkname) == LUA_OK;
        lua_pop(L, 2);
        if (!expr) continue;
        lua_pushlstring(L, text, p);
        lua_pushliteral(L, "return (function(...) return ... end)(");
        lua_pushlstring(L, text + p, n - p);
        lua_pushliteral(L, "\n)");
        lua_concat(L, 4);
        size_t tl;
        const char *t = lua_tolstring(L, -1, &tl);
        if (luaL_loadbuffer(L, t, tl, chunkname) != LUA_OK) {
            lua_pop(L, 2);
            continue;
        }
        lua_pop(L, 1);
        lua_replace(L, names + 1); /* the text is now this one */
        t = lua_tolstring(L, names + 1, &tl);
        *has_value = 1;
        return compile_bound(L, names, t, tl, chunkname, 1);
    }
    return compile_bound(L, names, text, n, chunkname, 1);
}

int ftl_session_compile_input(lua_State *L, const char *src, size_t len, const char *chunkname) {
    push_rewritten(L, src, len);
    size_t n;
    const char *text = lua_tolstring(L, -1, &n);
    return compile_bound(L, lua_gettop(L) - 1, text, n, chunkname, 1);
}

int ftl_session_swap_globals(lua_State *L, int on) {
    if (on) {
        if (lua_getfield(L, LUA_REGISTRYINDEX, SESSION_KEY) != LUA_TTABLE) {
            lua_pop(L, 1);
            return 0;
        }
        lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        return 1;
    }
    /* _G is the session table's __index */
    if (lua_getfield(L, LUA_REGISTRYINDEX, SESSION_KEY) != LUA_TTABLE || !lua_getmetatable(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    lua_getfield(L, -1, "__index");
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pop(L, 2);
    return 1;
}
