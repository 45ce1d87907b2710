/* pickle.h: a restricted unpickler, Python's pickle stack machine over a byte buffer.
 *
 * It knows pickle's opcodes and values, not PyTorch: what a GLOBAL may name, what REDUCE,
 * NEWOBJ and BUILD mean and what a persistent id becomes are the host's hooks (pth_load.c answers
 * them for torch.save's state dicts). Values live in an arena freed by pk_free_machine, so an error
 * anywhere needs no cleanup; the first error's message is kept in the caller's buffer.
 *
 * Every read is bounds-checked before it happens, lengths are checked against the bytes left
 * before anything is allocated, and memory grows in proportion to the input (the arena cap).
 */
#ifndef FTLUA_IO_PICKLE_H
#define FTLUA_IO_PICKLE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define PK_MAX_STACK (1u << 20) /* stack and mark stack entries */

/* The value kinds. The host's own kinds (a storage, a tensor) are PK_HOST + k, k < 4. */
enum {
    PK_NONE,
    PK_BOOL,
    PK_INT,
    PK_BIGINT,
    PK_FLOAT,
    PK_STR,
    PK_BYTES,
    PK_TUPLE,
    PK_LIST,
    PK_DICT,
    PK_GLOBAL,
    PK_HOST
};
#define PK_MAX_HOST_KINDS 4

typedef struct pk_val pk_val;
struct pk_val {
    int kind;
    int64_t i;        /* PK_BOOL, PK_INT; PK_GLOBAL: the host's id for it */
    double f;         /* PK_FLOAT */
    const uint8_t *s; /* PK_STR, PK_BYTES, PK_BIGINT: bytes inside the pickle */
    size_t n;         /* bytes of s, or items of a container (a dict holds key, value, ...) */
    size_t cap;
    pk_val **items;
    void *obj; /* the host's kinds: its record */
};

typedef struct pk_machine pk_machine;

/* The host's answers. Each returns NULL (or 0, or -1) after pk_fail saying why. */
typedef struct {
    /* GLOBAL and STACK_GLOBAL: an id > 0 for an allowed module.name */
    int (*find_global)(pk_machine *m, const uint8_t *mod, size_t mlen, const uint8_t *name,
                       size_t nlen);
    pk_val *(*reduce)(pk_machine *m, pk_val *f, pk_val *args);   /* REDUCE: f(*args) */
    pk_val *(*newobj)(pk_machine *m, pk_val *cls, pk_val *args); /* NEWOBJ */
    int (*build)(pk_machine *m, pk_val *obj, pk_val *state);     /* BUILD: 0 or -1 */
    pk_val *(*persistent_load)(pk_machine *m, pk_val *pid);      /* BINPERSID */
    const char *host_kind_names[PK_MAX_HOST_KINDS];              /* for messages */
} pk_hooks;

typedef struct pk_block pk_block;

struct pk_machine {
    const pk_hooks *hooks;
    char *err;
    size_t errlen;
    int failed;
    /* arena: every value, and the host's records */
    pk_block *blocks;
    size_t arena_total, arena_cap;
    size_t nvals;
    /* the stack machine, reset for each pickle */
    pk_val **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t nmarks, marks_cap;
    pk_val **memo;
    size_t memo_cap, memo_count;
};

/* Sets up a machine in m (the caller's struct; values and arrays are allocated as it runs).
 * arena_cap bounds all the memory values take (make it proportional to the input). */
void pk_new_machine(pk_machine *m, const pk_hooks *hooks, size_t arena_cap, char *err,
                    size_t errlen);
void pk_free_machine(pk_machine *m); /* the arena and the machine's arrays */

/* Runs one pickle from buf[*pos]: returns what STOP leaves and moves *pos past it. */
pk_val *pk_run(pk_machine *m, const uint8_t *buf, size_t len, size_t *pos);

/* The first failure's message wins; both return their "failed" value (-1, NULL). */
int pk_fail(pk_machine *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *pk_failp(pk_machine *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void *pk_alloc(pk_machine *m, size_t n); /* zeroed, from the arena */
/* Makes room for need elements in a malloc'd array of at most limit. */
int pk_grow(pk_machine *m, void **arr, size_t *cap, size_t need, size_t elsize, size_t limit);
pk_val *pk_new_val(pk_machine *m, int kind);
pk_val *pk_new_seq(pk_machine *m, int kind, pk_val **items, size_t n); /* a copy of items */

int pk_str_is(const pk_val *v, const char *s); /* a str or bytes with exactly these bytes */
const char *pk_kind_name(const pk_hooks *hooks, const pk_val *v); /* "dict", "tensor", ... */

/* Text from the file, made safe to print: at most 80 bytes, control bytes as '?'. */
typedef struct {
    char s[96];
} pk_shown;
pk_shown pk_show(const uint8_t *s, size_t n);

static inline uint32_t pk_le32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static inline uint64_t pk_le64(const uint8_t *b) {
    return (uint64_t)pk_le32(b) | (uint64_t)pk_le32(b + 4) << 32;
}

#endif /* FTLUA_IO_PICKLE_H */
