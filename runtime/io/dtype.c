/* dtype.c: names and sizes of the element types (see dtype.h). */
#include "io/dtype.h"

static const struct {
    const char *name;
    size_t size;
    int floating;
} DTYPES[FT_NDTYPES] = {
    [FT_FLOAT32] = {"float32", 4, 1}, [FT_FLOAT64] = {"float64", 8, 1},
    [FT_FLOAT16] = {"float16", 2, 1}, [FT_BFLOAT16] = {"bfloat16", 2, 1},
    [FT_INT64] = {"int64", 8, 0},     [FT_INT32] = {"int32", 4, 0},
    [FT_INT16] = {"int16", 2, 0},     [FT_INT8] = {"int8", 1, 0},
    [FT_UINT8] = {"uint8", 1, 0},     [FT_BOOL] = {"bool", 1, 0},
};

/* Callers may pass any int (the enum comes from C and Lua), so check as unsigned. */
const char *ft_dtype_name(ft_dtype d) {
    return (unsigned)d < FT_NDTYPES ? DTYPES[d].name : "unknown";
}
size_t ft_dtype_size(ft_dtype d) { return (unsigned)d < FT_NDTYPES ? DTYPES[d].size : 0; }
int ft_dtype_is_floating(ft_dtype d) { return (unsigned)d < FT_NDTYPES ? DTYPES[d].floating : 0; }
