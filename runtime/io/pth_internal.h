/* pth_internal.h: what the checkpoint reader's two files share: pth_load.c (the objects and
 * storages a torch.save file holds, from its zip or legacy layout) and pth.c (the state-dict
 * layer: choose, flatten, copy out the result). Not a public header. */
#ifndef FTLUA_PTH_INTERNAL_H
#define FTLUA_PTH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "io/pickle.h"
#include "io/pth.h"

#define MAX_NAME 4096 /* bytes in one flattened tensor name */
#define MAX_KEY  256  /* bytes in a storage key */

/* ---------------------------------------------------------------- values */

/* The pickle machine's values (pickle.h), plus two kinds of ours. */
typedef pk_val val;
enum { V_STORAGE = PK_HOST, V_TENSOR };

typedef struct sref sref;
typedef struct tensor tensor;

/* One persistent id's storage, before references with the same key are merged. */
struct sref {
    const uint8_t *key;
    size_t key_len;
    ft_dtype dtype;
    int64_t numel;  /* elements */
    sref *root;     /* legacy storage views: the storage this one is a slice of */
    int64_t offset; /* elements into root */
    size_t seq;     /* creation order */
    sref *leader;   /* the first reference with this key */
    int index;      /* leader only: index in the public storages array */
};

struct tensor {
    sref *st;
    int64_t offset, numel;
    int ndim, requires_grad;
    int64_t size[FT_MAX_DIMS], stride[FT_MAX_DIMS];
};

/* A bound storage: its bytes in the file (or in a byte-swapped copy). */
typedef struct {
    sref *ref;
    const uint8_t *data;
    int bound;
} store;

typedef struct {
    tensor *t;
    const char *name;
    size_t name_len;
} flat;

typedef struct {
    pk_machine m; /* first: the hooks get &p->m and cast it back (as_p) */
    int legacy;
    /* storage references in creation order, then sorted by key */
    sref **refs;
    size_t nrefs, refs_cap;
    sref **sorted;
    store *stores;
    size_t nstores;
    /* the flattened result */
    flat *flats;
    size_t nflats, flats_cap;
    char name[MAX_NAME + 1];
    size_t visits_left;
} pth_parser;

/* The hooks that make the pickle machine read torch.save's objects (pth_load.c). */
extern const pk_hooks pth_torch_hooks;
static inline pth_parser *as_p(pk_machine *m) { return (pth_parser *)m; }
static inline const char *kind_of(const val *v) { return pk_kind_name(&pth_torch_hooks, v); }

/* Byte-wise order of two keys or names (a shorter prefix first). */
static inline int cmp_key(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

/* Run the checkpoint's pickle(s) and bind every storage to its bytes in buf; returns the root
 * object, or NULL after pk_fail. Zip: *swap says whether the data is in the other byte order. */
val *pth_load_zip(pth_parser *p, const uint8_t *buf, size_t len, int *swap);
val *pth_load_legacy(pth_parser *p, const uint8_t *buf, size_t len);
/* After loading: every storage that a tensor uses has its bytes. */
int pth_finish_storages(pth_parser *p);

#endif /* FTLUA_PTH_INTERNAL_H */
