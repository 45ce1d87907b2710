/* strbuf.h: the one growable string of the runtime (safetensors headers, --report pages, ...).
 * It lives in io/, the lowest layer, so every file can use it. Start from {0}; free with
 * sb_free. The text is always NUL-terminated once something was added. An allocation failure
 * is sticky: oom is set and every later append does nothing, so a writer checks once at the end.
 */
#ifndef FTLUA_IO_STRBUF_H
#define FTLUA_IO_STRBUF_H

#include <stddef.h>

typedef struct {
    char *p;    /* the text, or NULL while empty */
    size_t len; /* bytes of text, not counting the NUL */
    size_t cap; /* bytes allocated */
    int oom;    /* an append failed: the text is incomplete */
} strbuf;

void sb_put(strbuf *s, const char *p, size_t n);
void sb_puts(strbuf *s, const char *str);
void sb_printf(strbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_repeat(strbuf *s, char c, int n); /* c, n times */
void sb_free(strbuf *s);                  /* back to {0} */

#endif /* FTLUA_IO_STRBUF_H */
