/* data.h: what the files of the data module (ft.data, merged into ft.vision) share, and the door
 * the learner uses to pull batches from a Lua loader without going through Lua. */
#ifndef FTL_DATA_H
#define FTL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "data/loader.h"
#include "ftlua.h"

#define FTL_LOADER_MT  "ftlua.Loader"  /* registry name of the loader userdata's metatable */
#define FTL_DATASET_MT "ftlua.Dataset" /* ... and of the dataset's */

/* The C loader behind the value at idx: a loader userdata, or a table (a Lua DataLoader) whose
 * field `_loader` holds one. Raises a Lua error otherwise. The loader lives as long as that Lua
 * value does: keep the value reachable while using the pointer. */
ftd_loader *ftl_check_loader(lua_State *L, int idx);

/* items.c */
int ftl_data_get_image_files(lua_State *L); /* (dir [, extensions]) -> sorted paths */
int ftl_data_random_split(lua_State *L);    /* (n, valid_pct [, seed]) -> train, valid (1-based) */
/* idx.c */
int ftl_data_read_idx(lua_State *L); /* (path) -> tensor */

/* grid.c: imgs [n,h,w,3] uint8 as a PNG grid, ncols wide, each image with its label (labels or
 * labels[i] may be NULL) under it; images under 128 px are scaled up (nearest) so labels fit.
 * Returns 0, or -1 with err. *out_w, *out_h (may be NULL) get the PNG's size. */
int ftd_grid_write_png(const char *path, const uint8_t *imgs, int n, int h, int w,
                       const char *const *labels, int ncols, int *out_w, int *out_h, char *err,
                       size_t errlen);

#endif
