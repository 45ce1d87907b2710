/* loader.h: image datasets and threaded batch loaders, in C over the shim (no Lua here).
 *
 * A DATASET is a list of items (image files, or images already in memory such as Fashion-MNIST),
 * their 0-based labels and the item transform (fastai's Resize). Building one decodes every file
 * once on worker threads ("the scan"): bad files are found before training starts, and what was
 * decoded stays in RAM across epochs within a memory budget (decoding is a real share of an
 * epoch on a CPU: ../shared/reference/decode-speed.md). Items of a train split keep the decoded
 * image (their crop position is drawn anew every epoch) up to 16 item sizes or 4 megapixels,
 * a bigger one is decoded again each epoch; the others keep their final, resized pixels
 * (deterministic). JPEGs over 4 megapixels decode at a DCT scale that keeps twice the item
 * size (image.h, ftd_image_new_item_from_file; FTLUA_JPEG_DRAFT=0 turns that off).
 *
 * A LOADER walks a subset of a dataset in batches. Worker threads (pthreads) each build whole
 * batches: fetch and resize the items into a uint8 [N,H,W,3] buffer, then run the fused
 * augmentation (augment.h; the CUDA twin when the batch goes to a CUDA device and the build has
 * it), which also turns uint8 into float and normalises, giving x float32 [N,C,S,S] on the
 * loader's device and y int64 [N] (0-based; -1 when the items have no labels). Finished batches
 * wait in a bounded ring of `prefetch` slots and come out in order. Workers never see Lua.
 *
 * Determinism: everything random in epoch e comes from PCG32 streams seeded with seed + e: the
 * shuffle from one stream, batch b's crop positions and augmentation draws from stream b. So a
 * batch does not depend on the number of threads or on timing.
 *
 * Lifetime: a dataset is reference-counted (loaders hold a reference). ftd_loader_stop (and
 * ftd_loader_free) make the workers finish their current item and joins them: no hang when a
 * loader is dropped mid-epoch.
 */
#ifndef FTL_LOADER_H
#define FTL_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "data/augment.h"
#include "torch/ft_torch.h"

#define FTL_MAX_WORKERS 64 /* threads of a scan or of a loader, at most */

/* ---------------------------------------------------------------- datasets (dataset.c) */

typedef struct ftd_dataset ftd_dataset;

typedef struct {
    int resize_w, resize_h; /* the item size after Resize; 0, 0: no resize (then every image
                               must have the same size) */
    int method;             /* FTL_RESIZE_* (image.h) */
    int nworkers;           /* threads for the scan; < 1: one */
    size_t cache_bytes;     /* RAM for items kept across epochs; 0: keep none */
} ftd_dataset_config;

/* Image files. labels [n] are 0-based (-1: none; labels NULL: no labels). train [n] marks the
 * items a train loader will use (random crop position; cached decoded); NULL: none. Copies
 * everything it is given. Then call ftd_dataset_scan. NULL when out of memory. */
ftd_dataset *ftd_dataset_new_files(const char *const *paths, const int32_t *labels,
                                   const uint8_t *train, int64_t n, const ftd_dataset_config *cfg);
/* Images in memory: pixels [n,h,w,c] uint8 with c = 1 (grey, replicated to RGB) or 3; copied.
 * They need no scan. NULL on bad sizes or out of memory. */
ftd_dataset *ftd_dataset_new_array(const uint8_t *pixels, int64_t n, int h, int w, int c,
                                   const int32_t *labels, const uint8_t *train,
                                   const ftd_dataset_config *cfg);
void ftd_dataset_retain(ftd_dataset *ds);
void ftd_dataset_release(ftd_dataset *ds); /* frees it with the last reference; NULL is fine */

/* Decode every file item on cfg->nworkers threads, keep what fits the cache, record why each bad
 * item failed. Returns 0, or -1 with err when the good items cannot make batches (sizes differ
 * without a resize; out of memory). A bad file alone is not an error here: see
 * ftd_dataset_item_error. */
int ftd_dataset_scan(ftd_dataset *ds, char *err, size_t errlen);
int64_t ftd_dataset_len(const ftd_dataset *ds);
/* "<path>: <reason>" for an item that could not be decoded, NULL for a good one. */
const char *ftd_dataset_item_error(const ftd_dataset *ds, int64_t i);
int ftd_dataset_has_labels(const ftd_dataset *ds);
int32_t ftd_dataset_label(const ftd_dataset *ds, int64_t i); /* 0-based; -1: none */
/* The size of every item after the item transform (known after the scan for file items). */
void ftd_dataset_item_size(const ftd_dataset *ds, int *w, int *h);
size_t ftd_dataset_cached_bytes(const ftd_dataset *ds);
/* Bytes the dataset holds in RAM: the cache plus images in memory (for Lua's GC pacing). */
size_t ftd_dataset_memory(const ftd_dataset *ds);
/* Item i as uint8 [h,w,3] (the item size) into dst; train: Resize at (px, py), else the centre.
 * Returns 0, or -1 with err. Thread-safe once the scan is done. */
int ftd_dataset_get(const ftd_dataset *ds, int64_t i, int train, double px, double py, uint8_t *dst,
                    char *err, size_t errlen);

/* ---------------------------------------------------------------- loaders (loader.c) */

typedef struct ftd_loader ftd_loader;

typedef struct {
    int bs;
    int shuffle, drop_last;
    int train;     /* random crop positions and augmentation draws; else the valid split:
                      centre crops, deterministic augmentation params */
    uint64_t seed; /* epoch e uses seed + e */
    int augment;   /* run the fused augmentation with `aug` (train draws / valid params) */
    ftd_aug_config aug;
    int size;      /* output side S with augment; 0: the item size (square items) */
    int normalize; /* (x - mean) / std after scaling to [0,1]; else x in [0,1] */
    float mean[3], std[3];
    int channels;    /* 3, or 1: the first channel only (grey data) */
    int device;      /* FT_CPU or a cuda index */
    int nworkers;    /* 0: batches are made by the caller of ftd_loader_next */
    int prefetch;    /* batches ready or being made ahead of the consumer; < 1: nworkers+1 */
    int skip_errors; /* an item that fails now is left out of its batch (with a warning on
                        stderr); else the batch fails */
} ftd_loader_config;

ftd_loader_config ftd_loader_default_config(void); /* bs 64, no shuffle, 3 channels, CPU, ... */

/* A loader over items[0..n) (dataset indices, 0-based). Takes a reference on ds. NULL with err on
 * bad arguments (bs < 1, an index out of range, augment of non-square items without size, ...). */
ftd_loader *ftd_loader_new(ftd_dataset *ds, const int64_t *items, int64_t n,
                           const ftd_loader_config *cfg, char *err, size_t errlen);
void ftd_loader_free(ftd_loader *l); /* stops a running epoch first; NULL is fine */

int64_t ftd_loader_len(const ftd_loader *l);   /* batches per epoch (this rank's: see shards) */
int64_t ftd_loader_items(const ftd_loader *l); /* items */
const ftd_loader_config *ftd_loader_config_of(const ftd_loader *l);
/* Change normalisation (e.g. the learner adding ImageNet stats); applies from the next epoch. */
void ftd_loader_set_normalize(ftd_loader *l, int normalize, const float mean[3],
                              const float std[3]);

/* Data parallel: which part of every epoch this rank takes (set before ftd_loader_start).
 * SPLIT (training): every global batch, as one process makes it, is split into world nearly
 * equal parts and this rank takes part `rank`; all ranks take the same number of steps.
 * STRIDE (validation): whole batches rank, rank + world, ... NONE (or world < 2): everything.
 * ftd_loader_len then counts this rank's batches. */
typedef enum { FTL_SHARD_NONE = 0, FTL_SHARD_SPLIT, FTL_SHARD_STRIDE } ftd_shard_mode;
void ftd_loader_set_shard(ftd_loader *l, ftd_shard_mode mode, int rank, int world);
/* The seed of epoch 0's order and draws (ranks agree on rank 0's). */
void ftd_loader_set_seed(ftd_loader *l, uint64_t seed);

/* Start epoch `epoch` (its order and draws) and its workers; max_batches < 0: the whole epoch,
 * else at most that many batches (one_batch uses 1). Stops a running epoch first. */
int ftd_loader_start(ftd_loader *l, int64_t epoch, int64_t max_batches, char *err, size_t errlen);
/* The next batch, in order: 1 with *x (float32 [N,C,S,S]) and *y (int64 [N], 0-based; NULL when
 * the dataset has no labels) owned by the caller; 0 at the end of the epoch (workers joined);
 * -1 with err on a failure (the epoch is stopped). Call from one thread at a time. */
int ftd_loader_next(ftd_loader *l, ft_tensor **x, ft_tensor **y, char *err, size_t errlen);
/* End the running epoch now: workers finish their current item and are joined; batches waiting
 * in the ring are freed. Safe to call when nothing runs. */
void ftd_loader_stop(ftd_loader *l);
int64_t ftd_loader_epoch(const ftd_loader *l); /* the epoch last started, -1 before any */

/* The number of online CPU cores (the default number of workers). */
int ftd_num_cores(void);

#endif
