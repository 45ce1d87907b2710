/* errbuf.h: the caller's error buffer, the second of the two error idioms (docs/design.md,
 * "Errors"): a function that can fail takes `char *err, size_t errlen` and writes one line there.
 * These write it for everyone. A NULL err or a zero errlen writes nothing; a long message is cut.
 * It lives in io/, the lowest layer, so every file can use it. */
#ifndef FTLUA_IO_ERRBUF_H
#define FTLUA_IO_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>

void errbuf_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void errbuf_vset(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* "prefix: message" (the file or format a message is about, named once). */
void errbuf_vset_prefixed(char *err, size_t errlen, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif /* FTLUA_IO_ERRBUF_H */
