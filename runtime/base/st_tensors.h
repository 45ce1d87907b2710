/* st_tensors.h: the one safetensors writer for libtorch tensors, shared by T.save
 * (tensor/tensor_io.c) and weights.save (weights/weights.c). io/safetensors.c does the format;
 * this adds the tensors' shapes, their layout order and their bytes. No Lua here: callers check
 * their arguments first and keep the names and tensors alive across the call.
 */
#ifndef FTLUA_BASE_ST_TENSORS_H
#define FTLUA_BASE_ST_TENSORS_H

#include <stddef.h>

#include "io/safetensors.h"
#include "torch/ft_torch.h"

typedef struct {
    const char *name;
    ft_tensor *t;
} st_named_tensor;

/* Write ts[0..n) to path atomically (io/safetensors.c: temporary file, fsync, rename).
 * With sort set, ts is reordered in place to largest element size first, then by name, as the
 * reference writer does: every tensor's data is then aligned to its element size, and the file
 * does not depend on the order given. Otherwise the tensors are laid out in the order given.
 * meta[0..nmeta) is sorted by key in place. Returns 0, or -1 with a message in err (and no file
 * left behind). */
int st_write_tensors(const char *path, st_named_tensor *ts, int n, int sort, st_kv *meta, int nmeta,
                     char *err, size_t errlen);

#endif /* FTLUA_BASE_ST_TENSORS_H */
