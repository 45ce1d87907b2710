/* dtype.h: the element types every layer shares, from the file formats (io/) up to Lua. The
 * shim (torch/ft_torch.h) maps them to libtorch's; this header needs no libtorch. */
#ifndef FTLUA_IO_DTYPE_H
#define FTLUA_IO_DTYPE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FT_MAX_DIMS 16

/* Keep in sync with the table in dtype.c and the shim's mapping table (torch/ft_internal.hpp). */
typedef enum {
    FT_FLOAT32 = 0,
    FT_FLOAT64,
    FT_FLOAT16,
    FT_BFLOAT16,
    FT_INT64,
    FT_INT32,
    FT_INT16,
    FT_INT8,
    FT_UINT8,
    FT_BOOL,
    FT_NDTYPES
} ft_dtype;

const char *ft_dtype_name(ft_dtype dtype); /* "float32", "int64", ...; "unknown" out of range */
size_t ft_dtype_size(ft_dtype dtype);      /* bytes per element; 0 out of range */
int ft_dtype_is_floating(ft_dtype dtype);

#ifdef __cplusplus
}
#endif

#endif /* FTLUA_IO_DTYPE_H */
