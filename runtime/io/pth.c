/* pth.c: PyTorch checkpoints (torch.save) in C: the state-dict layer and the public API, over
 * pth_load.c (objects and storages) and the restricted unpickler of pickle.c. See pth.h and
 * docs/checkpoints.md.
 *
 * How it goes:
 *   1. Recognise the format: zip ("PK\3\4"), legacy stream (a pickle first), tar (refused).
 *   2. Run the object pickle on the pickle machine (pickle.c), whose values live in an arena
 *      freed at the end, so an error anywhere needs no cleanup. The hooks of pth_load.c: GLOBAL
 *      only resolves names from a fixed table; REDUCE only "calls" those, and calling means
 *      building a plain C record.
 *      Persistent ids become storage references; _rebuild_tensor_v2 becomes a tensor record
 *      whose view is checked against its storage's size right away.
 *   3. Merge storage references by key, then bind each storage to its bytes in the file
 *      (zip record data/<key>, or the legacy records after the pickles).
 *   4. Walk the chosen dict, flatten it to named tensors, and copy out the public arrays.
 *
 * Every read is bounds-checked before it happens, lengths are checked against the bytes left
 * before anything is allocated, and all memory grows in proportion to the input.
 */
#include "io/pth_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/zip.h"

#define MAX_DEPTH       64 /* nesting the flattener and key listing follow */
#define MAX_LISTED_KEYS 24 /* keys shown when key_path names a missing key */

/* ---------------------------------------------------------------- choosing and flattening */

/* Writes "checkpoint['a']['b']" for the first depth components of the path. */
static void where(char *out, size_t outlen, const char *path, size_t upto) {
    size_t k = (size_t)snprintf(out, outlen, "checkpoint");
    const char *s = path;
    while (s && *s && s < path + upto && k < outlen) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (s + n > path + upto) n = (size_t)(path + upto - s);
        k += (size_t)snprintf(out + k, outlen - k, "['%s']", pk_show((const uint8_t *)s, n).s);
        s += n + (e ? 1 : 0);
    }
}

/* "a, b, c, ... (5 more)" for an error message. */
static void list_keys(const val *d, char *out, size_t outlen) {
    size_t k = 0, shown_n = 0, total = d->n / 2;
    out[0] = 0;
    for (size_t j = 0; j < d->n && k < outlen; j += 2) {
        const val *key = d->items[j];
        if (shown_n == MAX_LISTED_KEYS) {
            snprintf(out + k, outlen - k, ", ... (%zu more)", total - shown_n);
            return;
        }
        const char *sep = shown_n ? ", " : "";
        if (key->kind == PK_STR || key->kind == PK_BYTES)
            k += (size_t)snprintf(out + k, outlen - k, "%s%s", sep, pk_show(key->s, key->n).s);
        else if (key->kind == PK_INT)
            k += (size_t)snprintf(out + k, outlen - k, "%s%lld", sep, (long long)key->i);
        else
            k += (size_t)snprintf(out + k, outlen - k, "%s<%s>", sep, kind_of(key));
        shown_n++;
    }
    if (total == 0) snprintf(out, outlen, "(none)");
}

static int key_matches(const val *key, const char *s, size_t n) {
    if (key->kind == PK_STR || key->kind == PK_BYTES)
        return key->n == n && memcmp(key->s, s, n) == 0;
    if (key->kind == PK_INT) {
        char num[32];
        int k = snprintf(num, sizeof(num), "%lld", (long long)key->i);
        return (size_t)k == n && memcmp(num, s, n) == 0;
    }
    return 0;
}

/* Follows key_path ("a/b") from the root; the last equal key wins, as in a Python dict. */
static val *choose(pth_parser *p, val *root, const char *path) {
    val *cur = root;
    char here[512], keys[1024];
    const char *s = path;
    while (s && *s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        where(here, sizeof(here), path, (size_t)(s - path));
        if (n == 0)
            return pk_failp(&p->m, "empty key in key path '%s'",
                            pk_show((const uint8_t *)path, strlen(path)).s);
        if (cur->kind != PK_DICT)
            return pk_failp(&p->m, "%s is a %s, not a dict, so it has no key '%s'", here,
                            kind_of(cur), pk_show((const uint8_t *)s, n).s);
        val *next = NULL;
        for (size_t j = 0; j < cur->n; j += 2)
            if (key_matches(cur->items[j], s, n)) next = cur->items[j + 1];
        if (!next) {
            list_keys(cur, keys, sizeof(keys));
            return pk_failp(&p->m, "no key '%s' in %s; keys: %s", pk_show((const uint8_t *)s, n).s,
                            here, keys);
        }
        cur = next;
        s += n + (e ? 1 : 0);
    }
    if (cur->kind != PK_DICT && cur->kind != PK_LIST && cur->kind != PK_TUPLE &&
        cur->kind != V_TENSOR) {
        where(here, sizeof(here), path ? path : "", path ? strlen(path) : 0);
        return pk_failp(&p->m, "%s holds a value of type %s, not a state dict", here, kind_of(cur));
    }
    return cur;
}

static int add_flat(pth_parser *p, tensor *t, size_t name_len) {
    if (pk_grow(&p->m, (void **)&p->flats, &p->flats_cap, p->nflats + 1, sizeof(flat),
                (size_t)1 << 30) < 0)
        return -1;
    char *name = pk_alloc(&p->m, name_len + 1);
    if (!name) return -1;
    memcpy(name, p->name, name_len);
    p->flats[p->nflats++] = (flat){t, name, name_len};
    return 0;
}

/* Appends ".key" (or "key" at the top) to p->name; returns the new length or -1. */
static long append_name(pth_parser *p, size_t len, const char *s, size_t n) {
    size_t dot = len ? 1 : 0;
    if (len + dot + n > MAX_NAME)
        return pk_fail(&p->m, "tensor name longer than %d bytes", MAX_NAME);
    if (memchr(s, 0, n)) return pk_fail(&p->m, "tensor name with a NUL byte");
    if (dot) p->name[len] = '.';
    memcpy(p->name + len + dot, s, n);
    p->name[len + dot + n] = 0;
    return (long)(len + dot + n);
}

static int flatten(pth_parser *p, const val *v, size_t len, int depth) {
    /* Shared sub-containers could make this walk exponential; the budget bounds it. */
    if (p->visits_left-- == 0)
        return pk_fail(&p->m, "checkpoint structure shares containers too much to flatten");
    if (depth > MAX_DEPTH)
        return pk_fail(&p->m, "checkpoint is nested more than %d levels deep", MAX_DEPTH);
    if (v->kind == V_TENSOR) return add_flat(p, v->obj, len);
    if (v->kind == PK_DICT) {
        for (size_t j = 0; j < v->n; j += 2) {
            const val *key = v->items[j];
            char num[32];
            long nl;
            if (key->kind == PK_STR || key->kind == PK_BYTES)
                nl = append_name(p, len, (const char *)key->s, key->n);
            else if (key->kind == PK_INT)
                nl = append_name(p, len, num,
                                 (size_t)snprintf(num, sizeof(num), "%lld", (long long)key->i));
            else
                continue; /* keys of other types cannot name a parameter */
            if (nl < 0 || flatten(p, v->items[j + 1], (size_t)nl, depth + 1) < 0) return -1;
        }
    } else if (v->kind == PK_LIST || v->kind == PK_TUPLE) {
        for (size_t j = 0; j < v->n; j++) {
            char num[32];
            long nl = append_name(p, len, num, (size_t)snprintf(num, sizeof(num), "%zu", j));
            if (nl < 0 || flatten(p, v->items[j], (size_t)nl, depth + 1) < 0) return -1;
        }
    }
    return 0;
}

static int cmp_flat_name(const void *x, const void *y) {
    const flat *a = *(const flat *const *)x, *b = *(const flat *const *)y;
    return cmp_key((const uint8_t *)a->name, a->name_len, (const uint8_t *)b->name, b->name_len);
}

static int check_unique_names(pth_parser *p) {
    if (p->nflats < 2) return 0;
    const flat **s = malloc(p->nflats * sizeof(flat *));
    if (!s) return pk_fail(&p->m, "out of memory");
    for (size_t k = 0; k < p->nflats; k++) s[k] = &p->flats[k];
    qsort(s, p->nflats, sizeof(flat *), cmp_flat_name);
    for (size_t k = 1; k < p->nflats; k++) {
        if (cmp_flat_name(&s[k - 1], &s[k]) == 0) {
            pk_fail(&p->m, "checkpoint has two tensors named '%s'",
                    pk_show((const uint8_t *)s[k]->name, s[k]->name_len).s);
            free(s);
            return -1;
        }
    }
    free(s);
    return 0;
}

/* ---------------------------------------------------------------- the public result */

static void swap_bytes(uint8_t *d, size_t nbytes, size_t elsize) {
    for (size_t e = 0; e + elsize <= nbytes; e += elsize)
        for (size_t a = 0, b = elsize - 1; a < b; a++, b--) {
            uint8_t t = d[e + a];
            d[e + a] = d[e + b];
            d[e + b] = t;
        }
}

/* Copies storages, entries and their strings out of the arena into f. */
static int build_result(pth_parser *p, pth_file *f, int swap) {
    size_t strbytes = 0;
    for (size_t k = 0; k < p->nflats; k++) strbytes += p->flats[k].name_len + 1;
    for (size_t k = 0; k < p->nstores; k++) strbytes += p->stores[k].ref->key_len + 1;
    if (p->nflats > INT32_MAX || p->nstores > INT32_MAX)
        return pk_fail(&p->m, "checkpoint has too many tensors");
    f->strings = malloc(strbytes ? strbytes : 1);
    f->storages = calloc(p->nstores ? p->nstores : 1, sizeof(pth_storage));
    f->entries = calloc(p->nflats ? p->nflats : 1, sizeof(pth_entry));
    if (!f->strings || !f->storages || !f->entries) return pk_fail(&p->m, "out of memory");
    char *s = f->strings;
    if (swap) {
        f->owned = calloc(p->nstores ? p->nstores : 1, sizeof(uint8_t *));
        if (!f->owned) return pk_fail(&p->m, "out of memory");
    }
    for (size_t k = 0; k < p->nstores; k++) {
        sref *r = p->stores[k].ref;
        pth_storage *ps = &f->storages[k];
        memcpy(s, r->key, r->key_len);
        s[r->key_len] = 0;
        ps->key = s;
        s += r->key_len + 1;
        ps->dtype = r->dtype;
        ps->numel = r->numel;
        ps->nbytes = (size_t)r->numel * ft_dtype_size(r->dtype);
        ps->data = p->stores[k].data;
        /* A byte-swapped copy for roots; views of a swapped root are rebased below. */
        if (swap && !r->root && ps->nbytes && ft_dtype_size(r->dtype) > 1) {
            uint8_t *copy = malloc(ps->nbytes);
            if (!copy) return pk_fail(&p->m, "out of memory");
            memcpy(copy, ps->data, ps->nbytes);
            swap_bytes(copy, ps->nbytes, ft_dtype_size(r->dtype));
            f->owned[f->n_owned++] = copy;
            ps->data = copy;
        }
    }
    for (size_t k = 0; k < p->nstores; k++) {
        sref *r = p->stores[k].ref;
        if (r->root && f->storages[k].data)
            f->storages[k].data = f->storages[r->root->leader->index].data +
                                  (size_t)r->offset * ft_dtype_size(r->dtype);
    }
    f->n_storages = (int)p->nstores;
    for (size_t k = 0; k < p->nflats; k++) {
        const tensor *t = p->flats[k].t;
        pth_entry *e = &f->entries[k];
        memcpy(s, p->flats[k].name, p->flats[k].name_len);
        s[p->flats[k].name_len] = 0;
        e->name = s;
        s += p->flats[k].name_len + 1;
        e->storage = t->st->leader->index;
        e->dtype = t->st->dtype;
        e->ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) {
            e->shape[d] = t->size[d];
            e->stride[d] = t->stride[d];
        }
        e->numel = t->numel;
        e->storage_offset = t->offset;
        e->requires_grad = t->requires_grad;
        e->data = t->numel
                      ? f->storages[e->storage].data + (size_t)t->offset * ft_dtype_size(e->dtype)
                      : NULL;
    }
    f->n_entries = (int)p->nflats;
    return 0;
}

/* A parser for a len-byte file; its messages go to err. */
static void new_parser(pth_parser *p, size_t len, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    size_t arena_cap =
        ((size_t)32 << 20) + (len < ((size_t)1 << 40) ? 32 * len : ((size_t)1 << 45));
    pk_new_machine(&p->m, &pth_torch_hooks, arena_cap, err, errlen);
}

static void free_parser(pth_parser *p) {
    pk_free_machine(&p->m);
    free(p->refs);
    free(p->sorted);
    free(p->stores);
    free(p->flats);
}

static pth_file *parse(const uint8_t *buf, size_t len, const char *key_path, char *err,
                       size_t errlen) {
    pth_parser p;
    new_parser(&p, len, err, errlen);
    pth_file *f = calloc(1, sizeof(pth_file));
    if (!f) {
        pk_fail(&p.m, "out of memory");
        return NULL;
    }
    val *root = NULL;
    int swap = 0;
    if (len == 0) {
        pk_fail(&p.m, "empty file");
    } else if (zip_looks_like(buf, len)) {
        f->format = PTH_ZIP;
        root = pth_load_zip(&p, buf, len, &swap);
    } else if (len >= 512 && memcmp(buf + 257, "ustar", 5) == 0) {
        pk_fail(&p.m, "legacy tar checkpoint: re-save it with torch.save");
    } else if (buf[0] == 0x80) {
        f->format = PTH_LEGACY;
        root = pth_load_legacy(&p, buf, len);
    } else {
        pk_fail(&p.m,
                "not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save stream)");
    }
    val *chosen = NULL;
    if (root && pth_finish_storages(&p) == 0) chosen = choose(&p, root, key_path);
    if (chosen) {
        p.visits_left = 8 * p.m.nvals + 65536;
        p.name[0] = 0;
        if (flatten(&p, chosen, 0, 0) == 0 && check_unique_names(&p) == 0)
            build_result(&p, f, swap);
    }
    free_parser(&p);
    if (p.m.failed) {
        free_pth_file(f);
        return NULL;
    }
    return f;
}

pth_file *new_pth_file_from_buffer(const void *buf, size_t len, const char *key_path, char *err,
                                   size_t errlen) {
    return parse((const uint8_t *)buf, len, key_path, err, errlen);
}

pth_file *new_pth_file(const char *path, const char *key_path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (err && errlen) snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (err && errlen) snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            if (err && errlen) snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
            close(fd);
            return NULL;
        }
    }
    close(fd); /* the mapping keeps the file's pages */
    pth_file *f = parse(map, len, key_path, err, errlen);
    if (!f) {
        if (map) munmap(map, len);
        /* Say which file: prefix the message with the path. */
        if (err && errlen) {
            size_t n = strlen(err), pl = strlen(path) + 2;
            if (n + pl < errlen) {
                memmove(err + pl, err, n + 1);
                memcpy(err, path, pl - 2);
                memcpy(err + pl - 2, ": ", 2);
            }
        }
        return NULL;
    }
    f->map = map;
    f->map_len = len;
    return f;
}

void free_pth_file(pth_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    for (int k = 0; k < f->n_owned; k++) free(f->owned[k]);
    free(f->owned);
    free(f->strings);
    free(f->storages);
    free(f->entries);
    free(f);
}

const pth_entry *pth_find(const pth_file *f, const char *name) {
    for (int k = 0; k < f->n_entries; k++)
        if (strcmp(f->entries[k].name, name) == 0) return &f->entries[k];
    return NULL;
}
