/* host_internal.h: what the files of host.h's implementation share among themselves (host.c,
 * host_show.c, host_complete.c, host_input.c, host_errors.c). */
#ifndef FTLUA_HOST_INTERNAL_H
#define FTLUA_HOST_INTERNAL_H

#include <stddef.h>

#include <lua.h>

/* 1 when s[0, len) is a Lua name that is not a keyword (it can follow '.' or stand alone). */
int fth_host_is_name(const char *s, size_t len);

/* Push the text of line `line` of the chunk named `source` (ftl_push_chunk_source) and return 1;
 * or return 0 with nothing pushed. */
int ftl_host_push_source_line(lua_State *L, const char *source, int line);

#endif /* FTLUA_HOST_INTERNAL_H */
