/* errbuf.c: see errbuf.h. */
#include <stdio.h>

#include "io/errbuf.h"

void errbuf_vset(char *err, size_t errlen, const char *fmt, va_list ap) {
    if (!err || errlen == 0) return;
    vsnprintf(err, errlen, fmt, ap);
}

void errbuf_set(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    errbuf_vset(err, errlen, fmt, ap);
    va_end(ap);
}

void errbuf_vset_prefixed(char *err, size_t errlen, const char *prefix, const char *fmt,
                          va_list ap) {
    if (!err || errlen == 0) return;
    int n = snprintf(err, errlen, "%s: ", prefix);
    if (n < 0 || (size_t)n >= errlen) return;
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
}
