/* pickle.c: the restricted unpickler (see pickle.h). Python's pickle opcodes, as its
 * pickletools documents them, on a stack of arena-allocated values; the host's hooks decide what
 * globals, calls and persistent ids mean. */
#include "io/pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pk_block {
    struct pk_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
};

static const char *kind_names[PK_HOST] = {"None",  "bool",  "int",  "int",  "float", "str",
                                          "bytes", "tuple", "list", "dict", "global"};

const char *pk_kind_name(const pk_hooks *hooks, const pk_val *v) {
    if (v->kind < PK_HOST) return kind_names[v->kind];
    int k = v->kind - PK_HOST;
    const char *s = k < PK_MAX_HOST_KINDS ? hooks->host_kind_names[k] : NULL;
    return s ? s : "object";
}

int pk_str_is(const pk_val *v, const char *s) {
    return v && (v->kind == PK_STR || v->kind == PK_BYTES) && v->n == strlen(s) &&
           memcmp(v->s, s, v->n) == 0;
}

void pk_new_machine(pk_machine *m, const pk_hooks *hooks, size_t arena_cap, char *err,
                    size_t errlen) {
    memset(m, 0, sizeof *m);
    m->hooks = hooks;
    m->arena_cap = arena_cap;
    m->err = err;
    m->errlen = errlen;
    if (err && errlen) err[0] = 0;
}

void pk_free_machine(pk_machine *m) {
    while (m->blocks) {
        pk_block *b = m->blocks;
        m->blocks = b->next;
        free(b);
    }
    free(m->stack);
    free(m->marks);
    free(m->memo);
    m->stack = NULL;
    m->marks = NULL;
    m->memo = NULL;
}

/* ---------------------------------------------------------------- errors */

#if defined(__GNUC__)
#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))
#else
#define PRINTF_LIKE(a, b)
#endif

PRINTF_LIKE(2, 0) static void vfail(pk_machine *m, const char *fmt, va_list ap) {
    if (m->failed) return; /* the first message is the one that explains */
    m->failed = 1;
    if (m->err && m->errlen) vsnprintf(m->err, m->errlen, fmt, ap);
}
int pk_fail(pk_machine *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(m, fmt, ap);
    va_end(ap);
    return -1;
}
void *pk_failp(pk_machine *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(m, fmt, ap);
    va_end(ap);
    return NULL;
}

pk_shown pk_show(const uint8_t *s, size_t n) {
    pk_shown o;
    size_t k = 0;
    for (size_t i = 0; i < n && k < 80; i++)
        o.s[k++] = (s[i] < 32 || s[i] == 127) ? '?' : (char)s[i];
    if (n > 80) {
        memcpy(o.s + k, "...", 3);
        k += 3;
    }
    o.s[k] = 0;
    return o;
}

/* ---------------------------------------------------------------- memory */

/* Zeroed memory from the arena; NULL (after pk_fail) past the cap, which scales with input. */
void *pk_alloc(pk_machine *m, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0 || n > m->arena_cap || m->arena_total > m->arena_cap - n)
        return pk_failp(m, "checkpoint structure is too large to parse (over %zu MB of metadata)",
                        m->arena_cap >> 20);
    pk_block *b = m->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof(pk_block) + cap);
        if (!b) return pk_failp(m, "out of memory");
        b->next = m->blocks;
        b->used = 0;
        b->cap = cap;
        m->blocks = b;
    }
    void *mem = b->mem + b->used;
    b->used += n;
    m->arena_total += n;
    memset(mem, 0, n);
    return mem;
}

int pk_grow(pk_machine *m, void **arr, size_t *cap, size_t need, size_t elsize, size_t limit) {
    if (need <= *cap) return 0;
    if (need > limit)
        return pk_fail(m, "checkpoint structure is too large (more than %zu items on one list)",
                       limit);
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    if (c > limit) c = limit;
    void *a = realloc(*arr, c * elsize);
    if (!a) return pk_fail(m, "out of memory");
    *arr = a;
    *cap = c;
    return 0;
}

pk_val *pk_new_val(pk_machine *m, int kind) {
    pk_val *v = pk_alloc(m, sizeof(pk_val));
    if (v) {
        v->kind = kind;
        m->nvals++;
    }
    return v;
}

pk_val *pk_new_seq(pk_machine *m, int kind, pk_val **items, size_t n) {
    pk_val *v = pk_new_val(m, kind);
    if (!v) return NULL;
    v->cap = n < 4 ? 4 : n;
    if (!(v->items = pk_alloc(m, v->cap * sizeof(pk_val *)))) return NULL;
    if (n) memcpy(v->items, items, n * sizeof(pk_val *));
    v->n = n;
    return v;
}

/* Appends n values to a list or dict, doubling its items array inside the arena. */
static int seq_add(pk_machine *m, pk_val *v, pk_val **items, size_t n) {
    if (v->cap - v->n < n) {
        size_t c = v->cap;
        while (c - v->n < n) {
            if (c > ((size_t)1 << 40)) return pk_fail(m, "checkpoint structure is too large");
            c *= 2;
        }
        pk_val **a = pk_alloc(m, c * sizeof(pk_val *));
        if (!a) return -1;
        memcpy(a, v->items, v->n * sizeof(pk_val *));
        v->items = a;
        v->cap = c;
    }
    memcpy(v->items + v->n, items, n * sizeof(pk_val *));
    v->n += n;
    return 0;
}

/* ---------------------------------------------------------------- the unpickler */

static int push(pk_machine *m, pk_val *v) {
    if (!v) return -1;
    size_t need = m->sp + 1;
    if (pk_grow(m, (void **)&m->stack, &m->stack_cap, need, sizeof(pk_val *), PK_MAX_STACK) < 0)
        return -1;
    m->stack[m->sp++] = v;
    return 0;
}

/* The stack above the last MARK is all an opcode may touch, as in Python's unpickler. */
static size_t base(const pk_machine *m) { return m->nmarks ? m->marks[m->nmarks - 1] : 0; }

static pk_val *pop(pk_machine *m) {
    if (m->sp <= base(m)) return pk_failp(m, "pickle: stack underflow");
    return m->stack[--m->sp];
}

static pk_val *top(pk_machine *m) {
    if (m->sp <= base(m)) return pk_failp(m, "pickle: stack underflow");
    return m->stack[m->sp - 1];
}

/* Pops to the last MARK; the popped items are stack[*from .. *from + *n). */
static int pop_mark(pk_machine *m, size_t *from, size_t *n) {
    if (!m->nmarks) return pk_fail(m, "pickle: no MARK on the stack");
    *from = m->marks[--m->nmarks];
    *n = m->sp - *from;
    m->sp = *from;
    return 0;
}

static int memo_put(pk_machine *m, size_t idx, size_t limit) {
    /* Python's pickler numbers memo slots 0, 1, 2, ... so a slot past the bytes read so far
     * cannot come from it; the cap keeps the memo proportional to the pickle. */
    if (idx >= limit) return pk_fail(m, "pickle: memo index %zu is out of range", idx);
    pk_val *v = top(m);
    if (!v) return -1;
    size_t old = m->memo_cap;
    if (pk_grow(m, (void **)&m->memo, &m->memo_cap, idx + 1, sizeof(pk_val *), (size_t)1 << 40) < 0)
        return -1;
    if (m->memo_cap > old) memset(m->memo + old, 0, (m->memo_cap - old) * sizeof(pk_val *));
    if (!m->memo[idx]) m->memo_count++;
    m->memo[idx] = v;
    return 0;
}

static int memo_get(pk_machine *m, size_t idx) {
    if (idx >= m->memo_cap || !m->memo[idx])
        return pk_fail(m, "pickle: memo slot %zu was never set", idx);
    return push(m, m->memo[idx]);
}

static int is_str(const pk_val *v) { return v->kind == PK_STR; }

pk_val *pk_run(pk_machine *m, const uint8_t *buf, size_t len, size_t *pos) {
    size_t i = *pos, start = *pos;
    m->sp = m->nmarks = 0;
    if (pk_grow(m, (void **)&m->stack, &m->stack_cap, 64, sizeof(pk_val *), PK_MAX_STACK) < 0)
        return NULL; /* never NULL below */
    if (m->memo_cap) memset(m->memo, 0, m->memo_cap * sizeof(pk_val *));
    m->memo_count = 0;
#define NEED(k)                                                                                    \
    do {                                                                                           \
        if ((uint64_t)(len - i) < (uint64_t)(k))                                                   \
            return pk_failp(m, "pickle: truncated at byte %zu (opcode 0x%02x)", at - start, op);   \
    } while (0)
#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((x) < 0) return NULL;                                                                  \
    } while (0)
    for (;;) {
        if (i >= len) return pk_failp(m, "pickle: ran out of bytes before STOP (truncated file?)");
        size_t at = i, from = 0, n = 0;
        uint8_t op = buf[i++];
        pk_val *v, *w, *x;
        switch (op) {
        case 0x80: /* PROTO */
            NEED(1);
            if (buf[i] > 5) return pk_failp(m, "pickle: unknown protocol %d", buf[i]);
            i += 1;
            break;
        case 0x95: /* FRAME: a length hint; the bytes follow inline */
            NEED(8);
            i += 8;
            break;
        case '.': /* STOP */
            if (!(v = pop(m))) return NULL;
            *pos = i;
            return v;
        case '(': /* MARK */
            TRY(pk_grow(m, (void **)&m->marks, &m->marks_cap, m->nmarks + 1, sizeof(size_t),
                        PK_MAX_STACK));
            m->marks[m->nmarks++] = m->sp;
            break;
        case '0': /* POP */
            if (m->sp > base(m))
                m->sp--;
            else
                TRY(pop_mark(m, &from, &n));
            break;
        case '1': /* POP_MARK */ TRY(pop_mark(m, &from, &n)); break;
        case '2': /* DUP */
            if (!(v = top(m))) return NULL;
            TRY(push(m, v));
            break;
        case 'N': TRY(push(m, pk_new_val(m, PK_NONE))); break;
        case 0x88: /* NEWTRUE */
        case 0x89: /* NEWFALSE */
            if (!(v = pk_new_val(m, PK_BOOL))) return NULL;
            v->i = op == 0x88;
            TRY(push(m, v));
            break;
        case 'J': /* BININT: signed 32-bit */
            NEED(4);
            if (!(v = pk_new_val(m, PK_INT))) return NULL;
            v->i = (int32_t)pk_le32(buf + i);
            i += 4;
            TRY(push(m, v));
            break;
        case 'K': /* BININT1 */
            NEED(1);
            if (!(v = pk_new_val(m, PK_INT))) return NULL;
            v->i = buf[i++];
            TRY(push(m, v));
            break;
        case 'M': /* BININT2 */
            NEED(2);
            if (!(v = pk_new_val(m, PK_INT))) return NULL;
            v->i = buf[i] | buf[i + 1] << 8;
            i += 2;
            TRY(push(m, v));
            break;
        case 0x8a: /* LONG1: n little-endian two's-complement bytes */
        case 0x8b: /* LONG4 */
        {
            uint64_t k;
            if (op == 0x8a) {
                NEED(1);
                k = buf[i++];
            } else {
                NEED(4);
                k = pk_le32(buf + i);
                i += 4;
                if (k > INT32_MAX) return pk_failp(m, "pickle: bad LONG4 length");
            }
            NEED(k);
            if (k <= 8) {
                uint64_t u = 0;
                for (uint64_t b = 0; b < k; b++) u |= (uint64_t)buf[i + b] << (8 * b);
                if (k > 0 && k < 8 && (buf[i + k - 1] & 0x80))
                    u |= ~(uint64_t)0 << (8 * k); /* sign-extend */
                if (!(v = pk_new_val(m, PK_INT))) return NULL;
                memcpy(&v->i, &u, 8);
            } else { /* only the legacy magic number is this big */
                if (!(v = pk_new_val(m, PK_BIGINT))) return NULL;
                v->s = buf + i;
                v->n = (size_t)k;
            }
            i += (size_t)k;
            TRY(push(m, v));
            break;
        }
        case 'G': /* BINFLOAT: big-endian IEEE double */
        {
            NEED(8);
            uint64_t u = 0;
            for (int b = 0; b < 8; b++) u = u << 8 | buf[i + b];
            i += 8;
            if (!(v = pk_new_val(m, PK_FLOAT))) return NULL;
            memcpy(&v->f, &u, 8);
            TRY(push(m, v));
            break;
        }
        case 'X':
        case 0x8c:
        case 0x8d: /* BINUNICODE, SHORT_BINUNICODE, BINUNICODE8 */
        case 'T':
        case 'U': /* BINSTRING, SHORT_BINSTRING (Python 2 str) */
        case 'B':
        case 'C':
        case 0x8e: /* BINBYTES, SHORT_BINBYTES, BINBYTES8 */
        {
            uint64_t k;
            if (op == 0x8c || op == 'U' || op == 'C') {
                NEED(1);
                k = buf[i];
                i += 1;
            } else if (op == 0x8d || op == 0x8e) {
                NEED(8);
                k = pk_le64(buf + i);
                i += 8;
            } else {
                NEED(4);
                k = pk_le32(buf + i);
                i += 4;
                if (op == 'T' && k > INT32_MAX) return pk_failp(m, "pickle: bad string length");
            }
            NEED(k); /* the length is checked against the bytes left before anything uses it */
            if (!(v = pk_new_val(m, (op == 'B' || op == 'C' || op == 0x8e) ? PK_BYTES : PK_STR)))
                return NULL;
            v->s = buf + i;
            v->n = (size_t)k;
            i += (size_t)k;
            TRY(push(m, v));
            break;
        }
        case '}': TRY(push(m, pk_new_seq(m, PK_DICT, NULL, 0))); break;  /* EMPTY_DICT */
        case ']': TRY(push(m, pk_new_seq(m, PK_LIST, NULL, 0))); break;  /* EMPTY_LIST */
        case ')': TRY(push(m, pk_new_seq(m, PK_TUPLE, NULL, 0))); break; /* EMPTY_TUPLE */
        case 't':
        case 'l':
        case 'd': /* TUPLE, LIST, DICT from the items above MARK */
            TRY(pop_mark(m, &from, &n));
            if (op == 'd' && n % 2) return pk_failp(m, "pickle: DICT with an odd number of items");
            TRY(push(m, pk_new_seq(m,
                                   op == 't'   ? PK_TUPLE
                                   : op == 'l' ? PK_LIST
                                               : PK_DICT,
                                   m->stack + from, n)));
            break;
        case 0x85:
        case 0x86:
        case 0x87: /* TUPLE1, TUPLE2, TUPLE3 */
            n = (size_t)(op - 0x84);
            if (m->sp - base(m) < n) return pk_failp(m, "pickle: stack underflow");
            m->sp -= n;
            TRY(push(m, pk_new_seq(m, PK_TUPLE, m->stack + m->sp, n)));
            break;
        case 's': /* SETITEM */
            if (!(w = pop(m)) || !(v = pop(m)) || !(x = top(m))) return NULL;
            if (x->kind != PK_DICT)
                return pk_failp(m, "pickle: SETITEM on a %s", pk_kind_name(m->hooks, x));
            {
                pk_val *kv[2] = {v, w};
                TRY(seq_add(m, x, kv, 2));
            }
            break;
        case 'u': /* SETITEMS */
        case 'e': /* APPENDS */
            TRY(pop_mark(m, &from, &n));
            if (!(x = top(m))) return NULL;
            if (x->kind != (op == 'u' ? PK_DICT : PK_LIST))
                return pk_failp(m, "pickle: %s on a %s", op == 'u' ? "SETITEMS" : "APPENDS",
                                pk_kind_name(m->hooks, x));
            if (op == 'u' && n % 2)
                return pk_failp(m, "pickle: SETITEMS with an odd number of items");
            TRY(seq_add(m, x, m->stack + from, n));
            break;
        case 'a': /* APPEND */
            if (!(v = pop(m)) || !(x = top(m))) return NULL;
            if (x->kind != PK_LIST)
                return pk_failp(m, "pickle: APPEND on a %s", pk_kind_name(m->hooks, x));
            TRY(seq_add(m, x, &v, 1));
            break;
        case 'q':
            NEED(1);
            TRY(memo_put(m, buf[i], i - start));
            i += 1;
            break; /* BINPUT */
        case 'r':
            NEED(4);
            TRY(memo_put(m, pk_le32(buf + i), i - start));
            i += 4;
            break;                                                    /* LONG_BINPUT */
        case 0x94: TRY(memo_put(m, m->memo_count, i - start)); break; /* MEMOIZE */
        case 'h':
            NEED(1);
            TRY(memo_get(m, buf[i]));
            i += 1;
            break; /* BINGET */
        case 'j':
            NEED(4);
            TRY(memo_get(m, pk_le32(buf + i)));
            i += 4;
            break; /* LONG_BINGET */
        case 'c':  /* GLOBAL "module\nname\n" */
        {
            const uint8_t *line[2];
            size_t llen[2];
            for (int k = 0; k < 2; k++) {
                const uint8_t *nl = memchr(buf + i, '\n', (len - i) < 512 ? len - i : 512);
                if (!nl) return pk_failp(m, "pickle: bad GLOBAL at byte %zu", at - start);
                line[k] = buf + i;
                llen[k] = (size_t)(nl - (buf + i));
                i += llen[k] + 1;
            }
            int id = m->hooks->find_global(m, line[0], llen[0], line[1], llen[1]);
            if (!id || !(v = pk_new_val(m, PK_GLOBAL))) return NULL;
            v->i = id;
            TRY(push(m, v));
            break;
        }
        case 0x93: /* STACK_GLOBAL: module and name strings on the stack */
        {
            if (!(w = pop(m)) || !(v = pop(m))) return NULL;
            if (!is_str(v) || !is_str(w))
                return pk_failp(m, "pickle: STACK_GLOBAL needs two strings");
            int id = m->hooks->find_global(m, v->s, v->n, w->s, w->n);
            if (!id || !(x = pk_new_val(m, PK_GLOBAL))) return NULL;
            x->i = id;
            TRY(push(m, x));
            break;
        }
        case 'R': /* REDUCE: f(*args) */
            if (!(w = pop(m)) || !(v = pop(m))) return NULL;
            TRY(push(m, m->hooks->reduce(m, v, w)));
            break;
        case 0x81: /* NEWOBJ: cls.__new__(cls, *args) */
            if (!(w = pop(m)) || !(v = pop(m))) return NULL;
            TRY(push(m, m->hooks->newobj(m, v, w)));
            break;
        case 'b': /* BUILD: obj.__setstate__(state); obj stays on the stack */
            if (!(w = pop(m)) || !(x = top(m))) return NULL;
            TRY(m->hooks->build(m, x, w));
            break;
        case 'Q': /* BINPERSID */
            if (!(v = pop(m))) return NULL;
            TRY(push(m, m->hooks->persistent_load(m, v)));
            break;
        default:
            if (op >= 32 && op < 127)
                return pk_failp(
                    m, "pickle: opcode '%c' (0x%02x) at byte %zu is not supported in a state dict",
                    op, op, at - start);
            return pk_failp(m, "pickle: opcode 0x%02x at byte %zu is not supported in a state dict",
                            op, at - start);
        }
    }
#undef NEED
#undef TRY
}
