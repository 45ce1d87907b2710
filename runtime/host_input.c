/* host_input.c: reading input (host.h, "reading input" and "source text"): the REPL's rule for an
 * expression and for unfinished input, the hint for a Python habit, and the source text of the
 * inputs compiled here (kept so that messages and nn.Module can read a line of them again).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "host.h"
#include "host_internal.h"

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
        lua_pushfstring(
            L,
            "stdin:1: `%s` alone is not a statement in Lua. To see its value: `print(%s)`, or end "
            "the line with `return %s` (a line of just `%s` works too)",
            t, t, t, t);
        lua_remove(L, -2);
        return 1;
    }
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
int ftl_host_push_source_line(lua_State *L, const char *source, int line) {
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
