/* pth.h: read PyTorch checkpoints written by torch.save(model.state_dict()) without Python,
 * without libtorch, and without running anything the file asks for.
 *
 * Accepted: the zip format (torch >= 1.6, the default) and the legacy stream format
 * (_use_new_zipfile_serialization=False). The pickle inside is read by a restricted
 * unpickler that knows a handful of globals (OrderedDict, the tensor/parameter rebuild
 * functions, the storage types, torch.Size) and refuses every other one; see
 * docs/checkpoints.md.
 *
 * The result is a flat list of tensors in file order, each described as a strided view of a
 * storage whose bytes stay inside the loaded file (nothing is copied except for big-endian
 * files). Nested dicts and lists at the chosen level are flattened with '.' between keys,
 * as in state_dict names; values that are not tensors (ints, floats, strings) are skipped.
 */
#ifndef FTLUA_PTH_H
#define FTLUA_PTH_H

#include <stddef.h>
#include <stdint.h>

#include "io/dtype.h"

typedef enum { PTH_ZIP = 1, PTH_LEGACY = 2 } pth_format;

typedef struct {
    const char *key; /* the storage's key in the file ("0", "1", ... in zip files) */
    ft_dtype dtype;
    int64_t numel;       /* elements */
    size_t nbytes;       /* numel * element size */
    const uint8_t *data; /* nbytes bytes in host byte order; NULL when nbytes is 0.
                          * NOT necessarily aligned to the element size: copy out of it. */
} pth_storage;

typedef struct {
    const char *name; /* "layer1.0.conv1.weight" */
    ft_dtype dtype;
    int ndim; /* 0 for a scalar */
    int64_t shape[FT_MAX_DIMS];
    int64_t stride[FT_MAX_DIMS]; /* in elements, >= 0 */
    int64_t numel;
    int64_t storage_offset; /* in elements */
    int storage;            /* index into pth_file.storages; tensors that share one share this */
    const uint8_t *data;    /* first element: storages[storage].data + storage_offset * elsize,
                             * NULL when numel is 0. Every element the view reaches lies inside
                             * the storage (checked). */
    int requires_grad;
} pth_entry;

typedef struct pth_file {
    pth_format format;
    int n_entries;
    pth_entry *entries; /* in the order the checkpoint lists them */
    int n_storages;
    pth_storage *storages;
    /* private */
    void *map; /* the mmap'd file (new_pth_file) */
    size_t map_len;
    char *strings;   /* names and keys */
    uint8_t **owned; /* byte-swapped copies (big-endian files) */
    int n_owned;
} pth_file;

/* Opens and parses a checkpoint. key_path picks a nested dict: NULL or "" means the root,
 * "model" means checkpoint['model'], "a/b" means checkpoint['a']['b'].
 * Returns NULL and writes a one-line message to err (when err is not NULL) on any error. */
pth_file *new_pth_file(const char *path, const char *key_path, char *err, size_t errlen);

/* The same over bytes already in memory. The buffer is NOT copied: it must stay alive and
 * unchanged until free_pth_file, because storages point into it. */
pth_file *new_pth_file_from_buffer(const void *buf, size_t len, const char *key_path, char *err,
                                   size_t errlen);

void free_pth_file(pth_file *f); /* NULL is fine */

/* The entry with this exact name, or NULL. Linear search. */
const pth_entry *pth_find(const pth_file *f, const char *name);

#endif
