/* strbuf.c: a growable string (see strbuf.h). */
#include "io/strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_put(strbuf *s, const char *p, size_t n) {
    if (s->oom || n == 0) return;
    if (n >= s->cap - s->len || s->p == NULL) { /* room for n bytes and the NUL */
        size_t cap = s->cap ? s->cap : 256;
        while (cap - s->len <= n) {
            if (cap > SIZE_MAX / 2) {
                s->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *q = realloc(s->p, cap);
        if (!q) {
            s->oom = 1;
            return;
        }
        s->p = q;
        s->cap = cap;
    }
    memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = '\0';
}

void sb_puts(strbuf *s, const char *str) { sb_put(s, str, strlen(str)); }

void sb_printf(strbuf *s, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        sb_put(s, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1); /* rare: a long piece */
    if (!big) {
        s->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_put(s, big, (size_t)n);
    free(big);
}

void sb_repeat(strbuf *s, char c, int n) {
    char chunk[64];
    memset(chunk, c, sizeof chunk);
    while (n > 0) {
        int k = n < (int)sizeof chunk ? n : (int)sizeof chunk;
        sb_put(s, chunk, (size_t)k);
        n -= k;
    }
}

void sb_free(strbuf *s) {
    free(s->p);
    *s = (strbuf){0};
}
