/* st_tensors.c: safetensors files from libtorch tensors (see st_tensors.h). */
#include "base/st_tensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_size_then_name(const void *a, const void *b) {
    const st_named_tensor *x = a, *y = b;
    size_t sx = st_dtype_size(ft_get_dtype(x->t)), sy = st_dtype_size(ft_get_dtype(y->t));
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int by_key(const void *a, const void *b) {
    return strcmp(((const st_kv *)a)->key, ((const st_kv *)b)->key);
}

/* Tensor i's bytes, contiguous and on the CPU; ctx is the st_named_tensor array. */
static int fill_from_tensor(void *ctx, int i, void *dst, size_t nbytes, char *err, size_t errlen) {
    const st_named_tensor *ts = ctx;
    if (ft_copy_to_buffer(ts[i].t, dst, nbytes) == FT_OK) return 0;
    snprintf(err, errlen, "%s", ft_last_error());
    return 1;
}

int st_write_tensors(const char *path, st_named_tensor *ts, int n, int sort, st_kv *meta, int nmeta,
                     char *err, size_t errlen) {
    if (sort) qsort(ts, (size_t)n, sizeof *ts, by_size_then_name);
    if (nmeta > 0) qsort(meta, (size_t)nmeta, sizeof *meta, by_key);
    st_tensor_in *in = calloc((size_t)n + 1, sizeof *in);
    if (!in) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        ft_tensor *t = ts[i].t;
        in[i].name = ts[i].name;
        in[i].dtype = ft_get_dtype(t);
        in[i].ndim = ft_dim(t);
        for (int d = 0; d < in[i].ndim; d++) in[i].shape[d] = ft_size(t, d);
        in[i].nbytes = (size_t)ft_numel(t) * st_dtype_size(in[i].dtype);
    }
    int rc = st_write_fill(path, in, n, meta, nmeta, fill_from_tensor, ts, err, errlen);
    free(in);
    return rc;
}
