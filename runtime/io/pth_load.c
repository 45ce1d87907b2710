/* pth_load.c: the objects and storages of a PyTorch checkpoint (torch.save), read from its
 * zip or legacy layout. See pth.h and docs/checkpoints.md; pth.c is the state-dict layer above.
 *
 * The object pickle runs on the pickle machine (pickle.c) with our hooks (pth_torch_hooks):
 * GLOBAL only resolves names from a fixed table; REDUCE only "calls" those, and calling means
 * building a plain C record. Persistent ids become storage references; _rebuild_tensor_v2
 * becomes a tensor record whose view is checked against its storage's size right away. Then
 * storage references are merged by key, and each storage is bound to its bytes in the file
 * (zip record data/<key>, or the legacy records after the pickles).
 */
#include "io/pth_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/zip.h"

/* The globals a state dict may name. Storage types carry their dtype: G_STORAGE + dtype. */
enum {
    G_ORDERED_DICT = 1,
    G_REBUILD_TENSOR,
    G_REBUILD_TENSOR_V2,
    G_REBUILD_PARAMETER,
    G_REBUILD_PARAMETER_STATE,
    G_SIZE,
    G_STORAGE = 100
};

/* ---------------------------------------------------------------- checked arithmetic */

static int mul64(int64_t a, int64_t b, int64_t *r) { /* a, b >= 0 */
    if (a != 0 && b > INT64_MAX / a) return 0;
    *r = a * b;
    return 1;
}
static int add64(int64_t a, int64_t b, int64_t *r) { /* a, b >= 0 */
    if (b > INT64_MAX - a) return 0;
    *r = a + b;
    return 1;
}

/* ---------------------------------------------------------------- globals */

static const struct {
    const char *module, *name;
    int id;
} allowed_globals[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT},
    {"torch._utils", "_rebuild_tensor", G_REBUILD_TENSOR},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER},
    {"torch._utils", "_rebuild_parameter_with_state", G_REBUILD_PARAMETER_STATE},
    {"torch", "Size", G_SIZE},
    {"torch", "FloatStorage", G_STORAGE + FT_FLOAT32},
    {"torch", "DoubleStorage", G_STORAGE + FT_FLOAT64},
    {"torch", "HalfStorage", G_STORAGE + FT_FLOAT16},
    {"torch", "BFloat16Storage", G_STORAGE + FT_BFLOAT16},
    {"torch", "LongStorage", G_STORAGE + FT_INT64},
    {"torch", "IntStorage", G_STORAGE + FT_INT32},
    {"torch", "ShortStorage", G_STORAGE + FT_INT16},
    {"torch", "CharStorage", G_STORAGE + FT_INT8},
    {"torch", "ByteStorage", G_STORAGE + FT_UINT8},
    {"torch", "BoolStorage", G_STORAGE + FT_BOOL},
    {"torch", "UntypedStorage", G_STORAGE + FT_UINT8}, /* torch.load reads it as uint8 */
};

static int eq(const uint8_t *s, size_t n, const char *z) {
    return strlen(z) == n && memcmp(s, z, n) == 0;
}

/* The id of an allowed global, or 0 after fail() naming it. */
static int find_global(pk_machine *m, const uint8_t *mod, size_t mlen, const uint8_t *name,
                       size_t nlen) {
    pth_parser *p = as_p(m);
    /* Checkpoints written from CUDA by old torch versions name torch.cuda.FloatStorage etc. */
    int cuda = eq(mod, mlen, "torch.cuda");
    for (size_t k = 0; k < sizeof(allowed_globals) / sizeof(allowed_globals[0]); k++) {
        int id = allowed_globals[k].id;
        int mod_ok = eq(mod, mlen, allowed_globals[k].module) || (cuda && id >= G_STORAGE);
        if (mod_ok && eq(name, nlen, allowed_globals[k].name)) return id;
    }
    char full[300];
    snprintf(full, sizeof(full), "%s.%s", pk_show(mod, mlen).s, pk_show(name, nlen).s);
    pk_fail(
        &p->m,
        "checkpoint refers to global '%s', which ftlua does not load (only state dicts are accepted)",
        full);
    return 0;
}

/* ---------------------------------------------------------------- storages and tensors */

static int storage_dtype_of(const val *v, ft_dtype *d) {
    if (!v || v->kind != PK_GLOBAL || v->i < G_STORAGE || v->i >= G_STORAGE + FT_NDTYPES) return 0;
    *d = (ft_dtype)(v->i - G_STORAGE);
    return 1;
}

static sref *new_sref(pth_parser *p, const val *key, ft_dtype dtype, const val *numel) {
    if (!key || (key->kind != PK_STR && key->kind != PK_BYTES) || key->n == 0 || key->n > MAX_KEY ||
        memchr(key->s, 0, key->n) || memchr(key->s, '/', key->n))
        return pk_failp(&p->m, "checkpoint has a bad storage key");
    if (!numel || numel->kind != PK_INT || numel->i < 0)
        return pk_failp(&p->m, "storage '%s' has a bad element count", pk_show(key->s, key->n).s);
    int64_t nbytes;
    if (!mul64(numel->i, (int64_t)ft_dtype_size(dtype), &nbytes))
        return pk_failp(&p->m, "storage '%s' is impossibly large", pk_show(key->s, key->n).s);
    if (pk_grow(&p->m, (void **)&p->refs, &p->refs_cap, p->nrefs + 1, sizeof(sref *),
                PK_MAX_STACK) < 0)
        return NULL;
    sref *r = pk_alloc(&p->m, sizeof(sref));
    if (!r) return NULL;
    r->key = key->s;
    r->key_len = key->n;
    r->dtype = dtype;
    r->numel = numel->i;
    r->seq = p->nrefs;
    p->refs[p->nrefs++] = r;
    return r;
}

/* BINPERSID: ('storage', storage_type, key, location, numel) in zip files, with a sixth item,
 * view_metadata (None or (view_key, offset, size)), in legacy files. */
static val *persistent_load(pk_machine *m, val *pid) {
    pth_parser *p = as_p(m);
    if (!pid || pid->kind != PK_TUPLE || pid->n < 1)
        return pk_failp(&p->m, "checkpoint has a persistent id that is not a tuple");
    if (pk_str_is(pid->items[0], "module"))
        return pk_failp(
            &p->m,
            "checkpoint holds a whole pickled nn.Module (torch.save(model)); save model.state_dict() instead");
    if (!pk_str_is(pid->items[0], "storage"))
        return pk_failp(&p->m, "checkpoint has an unknown persistent id type");
    size_t want = p->legacy ? 6 : 5;
    if (pid->n != want)
        return pk_failp(&p->m, "checkpoint has a storage id with %zu fields (expected %zu)", pid->n,
                        want);
    ft_dtype dtype;
    if (!storage_dtype_of(pid->items[1], &dtype))
        return pk_failp(&p->m, "checkpoint has a storage id without a storage type");
    if (pid->items[3]->kind != PK_STR && pid->items[3]->kind != PK_BYTES)
        return pk_failp(&p->m, "checkpoint has a storage id with a bad location");
    sref *r = new_sref(p, pid->items[2], dtype, pid->items[4]);
    if (!r) return NULL;
    if (p->legacy && pid->items[5]->kind != PK_NONE) {
        /* An old-style storage view: items[2] named the root; the view has its own key. */
        val *vm = pid->items[5];
        if (vm->kind != PK_TUPLE || vm->n != 3 || vm->items[1]->kind != PK_INT ||
            vm->items[1]->i < 0)
            return pk_failp(&p->m, "checkpoint has a bad storage view");
        sref *view = new_sref(p, vm->items[0], dtype, vm->items[2]);
        if (!view) return NULL;
        int64_t end;
        if (!add64(vm->items[1]->i, view->numel, &end) || end > r->numel)
            return pk_failp(&p->m, "storage view '%s' lies outside its storage",
                            pk_show(view->key, view->key_len).s);
        view->root = r;
        view->offset = vm->items[1]->i;
        r = view;
    }
    val *v = pk_new_val(&p->m, V_STORAGE);
    if (v) v->obj = r;
    return v;
}

/* Reads a tuple of non-negative ints (sizes or strides). */
static int int_tuple(pth_parser *p, const val *v, int64_t *out, int *n, const char *what) {
    if (!v || (v->kind != PK_TUPLE && v->kind != PK_LIST))
        return pk_fail(&p->m, "tensor %s is not a tuple", what);
    if (v->n > FT_MAX_DIMS)
        return pk_fail(&p->m, "tensor has %zu dimensions (at most %d supported)", v->n,
                       FT_MAX_DIMS);
    for (size_t k = 0; k < v->n; k++) {
        if (v->items[k]->kind != PK_INT || v->items[k]->i < 0)
            return pk_fail(&p->m, "tensor %s holds a bad value", what);
        out[k] = v->items[k]->i;
    }
    *n = (int)v->n;
    return 0;
}

/* _rebuild_tensor(_v2)(storage, storage_offset, size, stride, ...): the view must stay inside. */
static val *make_tensor(pth_parser *p, val **a, int requires_grad) {
    if (a[0]->kind != V_STORAGE) return pk_failp(&p->m, "tensor is not built from a storage");
    if (a[1]->kind != PK_INT || a[1]->i < 0)
        return pk_failp(&p->m, "tensor has a bad storage offset");
    tensor *t = pk_alloc(&p->m, sizeof(tensor));
    if (!t) return NULL;
    int nstride = 0;
    if (int_tuple(p, a[2], t->size, &t->ndim, "size") < 0 ||
        int_tuple(p, a[3], t->stride, &nstride, "stride") < 0)
        return NULL;
    if (nstride != t->ndim)
        return pk_failp(&p->m, "tensor has %d sizes but %d strides", t->ndim, nstride);
    t->st = a[0]->obj;
    t->offset = a[1]->i;
    t->requires_grad = requires_grad;
    int64_t numel = 1, last = 0; /* last: the farthest element from the first */
    for (int d = 0; d < t->ndim; d++)
        if (!mul64(numel, t->size[d], &numel)) return pk_failp(&p->m, "tensor is impossibly large");
    if (numel > 0) {
        for (int d = 0; d < t->ndim; d++) {
            int64_t reach;
            if (!mul64(t->size[d] - 1, t->stride[d], &reach) || !add64(last, reach, &last))
                return pk_failp(&p->m, "tensor view is impossibly large");
        }
        int64_t end;
        if (!add64(t->offset, last, &end) || end >= t->st->numel)
            return pk_failp(
                &p->m,
                "tensor view (offset %lld, %lld elements apart) lies outside its storage '%s' of %lld elements",
                (long long)t->offset, (long long)last, pk_show(t->st->key, t->st->key_len).s,
                (long long)t->st->numel);
    }
    t->numel = numel;
    val *v = pk_new_val(&p->m, V_TENSOR);
    if (v) v->obj = t;
    return v;
}

static val *copy_tensor(pth_parser *p, const val *src, const val *requires_grad) {
    if (src->kind != V_TENSOR) return pk_failp(&p->m, "parameter does not wrap a tensor");
    if (requires_grad->kind != PK_BOOL && requires_grad->kind != PK_INT)
        return pk_failp(&p->m, "parameter has a bad requires_grad");
    tensor *t = pk_alloc(&p->m, sizeof(tensor));
    val *v = t ? pk_new_val(&p->m, V_TENSOR) : NULL;
    if (!v) return NULL;
    *t = *(const tensor *)src->obj;
    t->requires_grad = requires_grad->i != 0;
    v->obj = t;
    return v;
}

/* REDUCE: applies one of the allowed callables. Nothing outside this file runs. */
static val *call(pk_machine *m, val *f, val *args) {
    pth_parser *p = as_p(m);
    if (f->kind != PK_GLOBAL)
        return pk_failp(&p->m, "pickle calls a %s, not a function", kind_of(f));
    if (args->kind != PK_TUPLE)
        return pk_failp(&p->m, "pickle calls a function with %s arguments", kind_of(args));
    val **a = args->items;
    size_t n = args->n;
    switch (f->i) {
    case G_ORDERED_DICT:
        if (n != 0) return pk_failp(&p->m, "OrderedDict with arguments is not supported");
        return pk_new_seq(&p->m, PK_DICT, NULL, 0);
    case G_SIZE: /* torch.Size(tuple) is just the tuple */
        if (n != 1 || (a[0]->kind != PK_TUPLE && a[0]->kind != PK_LIST))
            return pk_failp(&p->m, "bad torch.Size");
        return pk_new_seq(&p->m, PK_TUPLE, a[0]->items, a[0]->n);
    case G_REBUILD_TENSOR:
        if (n != 4) return pk_failp(&p->m, "_rebuild_tensor takes 4 arguments, got %zu", n);
        return make_tensor(p, a, 0);
    case G_REBUILD_TENSOR_V2:
        /* (storage, offset, size, stride, requires_grad, backward_hooks[, metadata]).
         * Hooks and metadata are dropped: they can only hold values this parser built. */
        if (n != 6 && n != 7)
            return pk_failp(&p->m, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %zu", n);
        if (a[4]->kind != PK_BOOL && a[4]->kind != PK_INT)
            return pk_failp(&p->m, "tensor has a bad requires_grad");
        return make_tensor(p, a, a[4]->i != 0);
    case G_REBUILD_PARAMETER: /* (data, requires_grad, backward_hooks) */
        if (n != 3) return pk_failp(&p->m, "_rebuild_parameter takes 3 arguments, got %zu", n);
        return copy_tensor(p, a[0], a[1]);
    case G_REBUILD_PARAMETER_STATE: /* (data, requires_grad, backward_hooks, state) */
        if (n != 4)
            return pk_failp(&p->m, "_rebuild_parameter_with_state takes 4 arguments, got %zu", n);
        return copy_tensor(p, a[0], a[1]);
    default:
        return pk_failp(&p->m, "pickle calls a storage type directly, which torch.save never does");
    }
}

/* NEWOBJ: cls.__new__(cls, *args); only OrderedDict makes sense here. */
static val *newobj(pk_machine *m, val *cls, val *args) {
    if (cls->kind != PK_GLOBAL || cls->i != G_ORDERED_DICT || args->kind != PK_TUPLE ||
        args->n != 0)
        return pk_failp(m, "pickle: NEWOBJ is only supported for OrderedDict");
    return pk_new_seq(m, PK_DICT, NULL, 0);
}

/* BUILD: OrderedDict's state (its _metadata attribute) is dropped. */
static int build(pk_machine *m, val *obj, val *state) {
    if (obj->kind != PK_DICT)
        return pk_fail(m, "pickle: BUILD on a %s is not supported", kind_of(obj));
    if (state->kind != PK_DICT && state->kind != PK_TUPLE && state->kind != PK_NONE)
        return pk_fail(m, "pickle: bad BUILD state");
    return 0;
}

const pk_hooks pth_torch_hooks = {
    .find_global = find_global,
    .reduce = call,
    .newobj = newobj,
    .build = build,
    .persistent_load = persistent_load,
    .host_kind_names = {[V_STORAGE - PK_HOST] = "storage", [V_TENSOR - PK_HOST] = "tensor"},
};

/* ---------------------------------------------------------------- merging storages */

static int cmp_sref(const void *x, const void *y) {
    const sref *a = *(const sref *const *)x, *b = *(const sref *const *)y;
    int c = cmp_key(a->key, a->key_len, b->key, b->key_len);
    return c ? c : (a->seq > b->seq) - (a->seq < b->seq);
}

/* The leader of the references with this key, or NULL. */
static sref *find_storage(pth_parser *p, const uint8_t *key, size_t n) {
    size_t lo = 0, hi = p->nrefs;
    while (lo < hi) { /* first reference whose key is >= key */
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_key(p->sorted[mid]->key, p->sorted[mid]->key_len, key, n) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < p->nrefs && cmp_key(p->sorted[lo]->key, p->sorted[lo]->key_len, key, n) == 0)
        return p->sorted[lo];
    return NULL;
}

/* References with one key must agree; storages get indices in order of first appearance. */
static int merge_storages(pth_parser *p) {
    p->sorted = malloc((p->nrefs ? p->nrefs : 1) * sizeof(sref *));
    p->stores = calloc(p->nrefs ? p->nrefs : 1, sizeof(store));
    if (!p->sorted || !p->stores) return pk_fail(&p->m, "out of memory");
    if (p->nrefs) memcpy(p->sorted, p->refs, p->nrefs * sizeof(sref *));
    qsort(p->sorted, p->nrefs, sizeof(sref *), cmp_sref);
    for (size_t k = 0; k < p->nrefs; k++) {
        sref *r = p->sorted[k], *l = k ? p->sorted[k - 1]->leader : NULL;
        if (l && cmp_key(l->key, l->key_len, r->key, r->key_len) == 0) {
            r->leader = l;
            /* Views are compared through their roots' keys. */
            int same_root =
                (!r->root && !l->root) ||
                (r->root && l->root &&
                 cmp_key(r->root->key, r->root->key_len, l->root->key, l->root->key_len) == 0);
            if (r->dtype != l->dtype || r->numel != l->numel || !same_root ||
                r->offset != l->offset)
                return pk_fail(
                    &p->m,
                    "storage '%s' is described twice in different ways (dtype, size or view)",
                    pk_show(r->key, r->key_len).s);
        } else {
            r->leader = r;
        }
    }
    for (size_t k = 0; k < p->nrefs; k++) {
        sref *r = p->refs[k];
        if (r->leader == r) {
            r->index = (int)p->nstores;
            p->stores[p->nstores++].ref = r;
        }
        if (r->root) { /* a view's root must itself be a root storage */
            sref *root = r->root->leader ? r->root->leader : r->root;
            if (root->root)
                return pk_fail(&p->m, "storage '%s' is a view of a view",
                               pk_show(r->key, r->key_len).s);
        }
    }
    return 0;
}

static int bind(pth_parser *p, sref *leader, const uint8_t *data) {
    store *s = &p->stores[leader->index];
    if (s->bound)
        return pk_fail(&p->m, "storage '%s' has two data records",
                       pk_show(leader->key, leader->key_len).s);
    s->bound = 1;
    s->data = leader->numel ? data : NULL;
    return 0;
}

/* After binding roots: views point into their roots; all storages must have data. */
int pth_finish_storages(pth_parser *p) {
    for (size_t k = 0; k < p->nstores; k++) {
        sref *r = p->stores[k].ref;
        if (!r->root) continue;
        store *root = &p->stores[r->root->leader->index];
        if (!root->bound) continue;
        p->stores[k].bound = 1;
        p->stores[k].data =
            r->numel ? root->data + (size_t)r->offset * ft_dtype_size(r->dtype) : NULL;
    }
    for (size_t k = 0; k < p->nstores; k++) {
        sref *r = p->stores[k].ref;
        if (!p->stores[k].bound)
            return pk_fail(&p->m, "storage '%s' has no data in the checkpoint",
                           pk_show(r->key, r->key_len).s);
        /* A bool byte other than 0 or 1 is undefined behaviour in libtorch: refuse it here. */
        if (r->dtype == FT_BOOL && !r->root) {
            const uint8_t *d = p->stores[k].data;
            for (int64_t e = 0; e < r->numel; e++)
                if (d[e] > 1)
                    return pk_fail(&p->m, "bool storage '%s' holds the byte %d",
                                   pk_show(r->key, r->key_len).s, d[e]);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- the two formats */

static int host_is_little(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* A zip record the parser needs: stored, inside the file, with a matching CRC. */
static const zip_entry *record(pth_parser *p, const zip_archive *z, const char *name,
                               int required) {
    const zip_entry *e = zip_find(z, name, strlen(name));
    if (!e) {
        if (required)
            pk_fail(&p->m, "zip checkpoint has no '%s'",
                    pk_show((const uint8_t *)name, strlen(name)).s);
        return NULL;
    }
    if (e->method != 0)
        return pk_failp(
            &p->m,
            "zip entry '%s' is compressed (method %d); torch.save writes stored entries, so re-save the file with torch.save",
            pk_show((const uint8_t *)name, strlen(name)).s, e->method);
    if (zip_crc32(e->data, (size_t)e->size) != e->crc32)
        return pk_failp(&p->m, "zip entry '%s' is corrupt (CRC mismatch)",
                        pk_show((const uint8_t *)name, strlen(name)).s);
    return e;
}

val *pth_load_zip(pth_parser *p, const uint8_t *buf, size_t len, int *swap) {
    char ebuf[200];
    zip_archive *z = new_zip_archive(buf, len, ebuf, sizeof(ebuf));
    if (!z) return pk_failp(&p->m, "%s", ebuf);
    val *root = NULL;
    char name[MAX_KEY + 400];
    /* The top folder is whatever the first entry says (torch uses the file's stem). */
    const char *slash = z->n ? memchr(z->entries[0].name, '/', z->entries[0].name_len) : NULL;
    size_t plen = slash ? (size_t)(slash - z->entries[0].name) : 0;
    if (!slash || plen == 0 || plen > 256) {
        pk_fail(&p->m, "zip file is not a torch.save checkpoint (no top folder)");
        goto done;
    }
    char prefix[260];
    memcpy(prefix, z->entries[0].name, plen);
    prefix[plen] = 0;
    snprintf(name, sizeof(name), "%s/constants.pkl", prefix);
    if (zip_find(z, name, strlen(name))) {
        pk_fail(
            &p->m,
            "this is a TorchScript archive (torch.jit.save); ftlua reads torch.save state dicts");
        goto done;
    }
    snprintf(name, sizeof(name), "%s/byteorder", prefix);
    const zip_entry *bo = zip_find(z, name, strlen(name));
    *swap = 0;
    if (bo) {
        if (!(bo = record(p, z, name, 1))) goto done;
        int little = bo->size == 6 && memcmp(bo->data, "little", 6) == 0;
        int big = bo->size == 3 && memcmp(bo->data, "big", 3) == 0;
        if (!little && !big) {
            pk_fail(&p->m, "zip checkpoint has a bad byteorder record");
            goto done;
        }
        *swap = little != host_is_little();
    }
    snprintf(name, sizeof(name), "%s/data.pkl", prefix);
    const zip_entry *pkl = record(p, z, name, 1);
    if (!pkl) goto done;
    size_t pos = 0;
    if (!(root = pk_run(&p->m, pkl->data, (size_t)pkl->size, &pos))) goto done;
    if (merge_storages(p) < 0) {
        root = NULL;
        goto done;
    }
    for (size_t k = 0; k < p->nstores; k++) {
        sref *r = p->stores[k].ref;
        snprintf(name, sizeof(name), "%s/data/%.*s", prefix, (int)r->key_len, (const char *)r->key);
        const zip_entry *e = record(p, z, name, 1);
        uint64_t nbytes = (uint64_t)r->numel * ft_dtype_size(r->dtype);
        if (!e) {
            root = NULL;
            goto done;
        }
        if (e->size < nbytes) {
            pk_fail(&p->m, "storage '%s' needs %llu bytes but its record has %llu",
                    pk_show(r->key, r->key_len).s, (unsigned long long)nbytes,
                    (unsigned long long)e->size);
            root = NULL;
            goto done;
        }
        if (bind(p, r, e->data) < 0) {
            root = NULL;
            goto done;
        }
    }
done:
    free_zip_archive(z);
    return root;
}

static const uint8_t legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                         0x20, 0x6a, 0xa8, 0x50, 0x19};

val *pth_load_legacy(pth_parser *p, const uint8_t *buf, size_t len) {
    size_t pos = 0;
    p->legacy = 1;
    val *v = pk_run(&p->m, buf, len, &pos);
    if (!v) return NULL;
    if (v->kind != PK_BIGINT || v->n != sizeof(legacy_magic) ||
        memcmp(v->s, legacy_magic, v->n) != 0)
        return pk_failp(&p->m, "not a PyTorch checkpoint (bad magic number)");
    if (!(v = pk_run(&p->m, buf, len, &pos))) return NULL;
    if (v->kind != PK_INT || v->i != 1001)
        return pk_failp(&p->m, "legacy checkpoint has protocol version %lld (expected 1001)",
                        v->kind == PK_INT ? (long long)v->i : -1LL);
    if (!(v = pk_run(&p->m, buf, len, &pos)))
        return NULL; /* sys_info: the data is little-endian regardless */
    if (v->kind != PK_DICT) return pk_failp(&p->m, "legacy checkpoint has a bad sys_info record");
    val *root = pk_run(&p->m, buf, len, &pos);
    if (!root || merge_storages(p) < 0) return NULL;
    val *keys = pk_run(&p->m, buf, len, &pos);
    if (!keys) return NULL;
    if (keys->kind != PK_LIST)
        return pk_failp(&p->m, "legacy checkpoint has a bad storage key list");
    /* Then, for each key: the element count (u64, little-endian) and the raw bytes. */
    for (size_t k = 0; k < keys->n; k++) {
        val *key = keys->items[k];
        if (key->kind != PK_STR && key->kind != PK_BYTES)
            return pk_failp(&p->m, "legacy checkpoint has a bad storage key");
        sref *r = find_storage(p, key->s, key->n);
        if (!r || r->root)
            return pk_failp(&p->m, "legacy checkpoint has data for unknown storage '%s'",
                            pk_show(key->s, key->n).s);
        if (len - pos < 8)
            return pk_failp(&p->m, "legacy checkpoint is truncated in storage '%s'",
                            pk_show(key->s, key->n).s);
        uint64_t numel = pk_le64(buf + pos);
        pos += 8;
        if (numel != (uint64_t)r->numel)
            return pk_failp(
                &p->m, "storage '%s' has %llu elements in its record but %lld in the pickle",
                pk_show(key->s, key->n).s, (unsigned long long)numel, (long long)r->numel);
        uint64_t nbytes = numel * ft_dtype_size(r->dtype); /* no overflow: checked in new_sref */
        if (len - pos < nbytes)
            return pk_failp(&p->m, "legacy checkpoint is truncated in storage '%s'",
                            pk_show(key->s, key->n).s);
        if (bind(p, r, buf + pos) < 0) return NULL;
        pos += (size_t)nbytes;
    }
    return root;
}
