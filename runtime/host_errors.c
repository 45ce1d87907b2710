/* host_errors.c: the host's message handler (host.h, "errors"): a user's mistake said at the
 * user's own line, a traceback of the user's frames only, and "did you mean ...?" for a misspelt
 * method, field or global.
 */
#include <ctype.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "host.h"
#include "host_internal.h"

#define LIB_CHUNK "lua/ftlua/" /* the library's Lua files: their frames are not the user's */

int ftl_full_traceback;

/* Find "<path>.name" or "<path>:name" in the line and push the value of path, looked up as the
 * frame at `level` sees it (its locals, its upvalues, then the globals). Returns 0, nothing
 * pushed, when the text before it is not a plain path of names. */
static int push_owner(lua_State *L, lua_Debug *ar, const char *line, const char *name, char sep) {
    size_t nlen = strlen(name);
    for (const char *p = strchr(line, sep); p; p = strchr(p + 1, sep)) {
        if (strncmp(p + 1, name, nlen) != 0 || isalnum((unsigned char)p[1 + nlen]) ||
            p[1 + nlen] == '_')
            continue;
        const char *start = p;
        while (start > line &&
               (isalnum((unsigned char)start[-1]) || start[-1] == '_' || start[-1] == '.'))
            start--;
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
                if (strcmp(lname, first) == 0) {
                    found = 1;
                    break;
                }
                lua_pop(L, 1);
            }
            if (found)
                lua_remove(L, -2);
            else
                lua_pop(L, 1);
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
            if (!lua_istable(L, -1)) {
                lua_pop(L, 1);
                return 0;
            }
            lua_pushlstring(L, s, (size_t)(e - s));
            lua_gettable(L, -2);
            lua_remove(L, -2);
            end = e;
        }
        return 1;
    }
    return 0;
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
    static const struct {
        const char *kind;
        char sep;
        int methods;
    } KINDS[] = {
        {"(method '", ':', 1},
        {"(field '", '.', 0},
        {"(global '", 0, 0},
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
        } else if (ftl_host_push_source_line(L, ar->source, ar->currentline)) {
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
    if (*ar->what == 'm')
        lua_pushliteral(L, "main chunk");
    else if (*ar->namewhat)
        lua_pushfstring(L, "%s '%s'",
                        strcmp(ar->namewhat, "global") == 0 ? "function" : ar->namewhat, ar->name);
    else
        lua_pushfstring(L, "function <%s:%d>", ar->short_src, ar->linedefined);
    lua_concat(L, 2);
}

/* The deepest level on the stack, by bisection (as lauxlib's traceback finds it): walking a
 * stack overflow's 200000 levels one lua_getstack at a time would be quadratic. */
static int last_level(lua_State *L) {
    lua_Debug ar;
    int li = 1, le = 1;
    while (lua_getstack(L, le, &ar)) {
        li = le;
        le *= 2;
    }
    while (li < le) {
        int m = (li + le) / 2;
        if (lua_getstack(L, m, &ar))
            li = m + 1;
        else
            le = m;
    }
    return le - 1;
}

#define TOP_LEVELS 20 /* levels looked at from the error up... */
#define BOTTOM_LEVELS                                                                              \
    10 /* ...and from the main chunk down; the middle of a deep stack is skipped */

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
        if (!lua_getstack(L, level, &ar) || !lua_getinfo(L, "Slnt", &ar) || !user_frame(&ar))
            continue;
        if (n_user++ == 0) {
            first_user = level;
            user = ar;
        }
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
                lua_pushfstring(L, "\n\t...\t(skipping %d levels)",
                                last - BOTTOM_LEVELS - TOP_LEVELS);
            else
                lua_pushliteral(L, "");
            if (lua_getstack(L, level, &ar) && lua_getinfo(L, "Slnt", &ar) && user_frame(&ar))
                push_frame(L, &ar);
            else
                lua_pushliteral(L, "");
            lua_concat(L, 3); /* the stack stays short however deep the recursion */
        }
    }
    lua_concat(L, lua_gettop(L) - base);
    return 1;
}
