/* loader.c: loaders: batches of a dataset's items made by worker threads (decode, augment,
 * normalise, to the device) and handed out in order through a bounded prefetch ring. No Lua
 * here; loader.h describes the design, dataset.c holds the items. */
#include "data/loader.h"
#include "io/errbuf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef FT_WITH_CUDA
#include "data/augment_cuda.h"
#endif

#define SHUFFLE_STREAM 0x5348554646ULL /* "SHUFF": the order's PCG stream; batch b uses b */

int ftd_num_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > FTL_MAX_WORKERS ? FTL_MAX_WORKERS : n) : 1;
}

enum { SLOT_EMPTY = 0, SLOT_READY, SLOT_FAILED };

typedef struct {
    int state;
    ft_tensor *x, *y;
    char err[1024];
} slot;

typedef struct { /* one worker's buffers, reused from batch to batch and epoch to epoch */
    uint8_t *u8; /* [bs,H,W,3] */
    float *f32;  /* [bs,3,S,S] or [bs,C,H,W] */
    ftd_aug_params *params; /* [bs] */
    int64_t *labels;        /* [bs] */
#ifdef FT_WITH_CUDA
    ftd_aug_cuda *cuda;
    int cuda_failed; /* once CUDA could not start here, stay on the CPU */
#endif
} scratch;

struct ftd_loader {
    ftd_dataset *ds;
    int64_t *items, n;
    ftd_loader_config cfg; /* as set; `run` is the copy the running epoch uses */
    ftd_loader_config run;
    int64_t nbatches;                   /* batches of the whole epoch, all ranks together */
    int shard, shard_rank, shard_world; /* FTL_SHARD_*: this rank's part of each epoch */
    int out_h, out_w;                   /* x's spatial size */
    int item_h, item_w;                 /* the dataset's items' size (known since its scan) */
    int has_labels;                     /* the dataset has labels: batches have y */
    scratch scratch[FTL_MAX_WORKERS];
    /* the running epoch */
    int running;
    int64_t epoch;
    uint64_t epoch_seed;
    int64_t *order; /* [n] dataset indices in this epoch's order */
    int64_t end;    /* batches in this run */
    int64_t next_build, next_take;
    atomic_int stop;
    slot *ring;
    int nslots;
    pthread_t tids[FTL_MAX_WORKERS];
    int nthreads; /* 0: batches are made in ftd_loader_next */
    struct worker_arg {
        struct ftd_loader *l;
        int id; /* which scratch */
    } args[FTL_MAX_WORKERS];
    pthread_mutex_t mu;
    pthread_cond_t can_build, built;
};

ftd_loader_config ftd_loader_default_config(void) {
    ftd_loader_config c = {.bs = 64,
                           .aug = ftd_aug_default_config(),
                           .channels = 3,
                           .device = FT_CPU,
                           .nworkers = 0,
                           .mean = {0, 0, 0},
                           .std = {1, 1, 1}};
    return c;
}

/* Checks what ftd_loader_new is given; fills the batches' spatial size. Returns 0, or -1 with
 * err. */
static int check_loader_args(const ftd_dataset *ds, const int64_t *items, int64_t n,
                             const ftd_loader_config *cfg, int *out_h, int *out_w, char *err,
                             size_t errlen) {
    char num[64];
    if (!ds || n < 0 || (n > 0 && !items) || !cfg) {
        errbuf_set(err, errlen, "%s", "loader: bad arguments");
        return -1;
    }
    if (cfg->bs < 1) {
        snprintf(num, sizeof num, "%d", cfg->bs);
        errbuf_set(err, errlen, "batch size must be at least 1, got %s", num);
        return -1;
    }
    if (cfg->channels != 1 && cfg->channels != 3) {
        errbuf_set(err, errlen, "%s", "channels must be 1 or 3");
        return -1;
    }
    for (int c = 0; c < 3; c++)
        if (cfg->normalize && !(cfg->std[c] != 0)) {
            errbuf_set(err, errlen, "%s", "normalize: std must not be 0");
            return -1;
        }
    for (int64_t k = 0; k < n; k++)
        if (items[k] < 0 || items[k] >= ftd_dataset_len(ds)) {
            snprintf(num, sizeof num, "%lld", (long long)items[k] + 1);
            errbuf_set(err, errlen, "loader: item %s out of range", num);
            return -1;
        }
    ftd_dataset_item_size(ds, out_w, out_h);
    if (n > 0 && (*out_h <= 0 || *out_w <= 0)) {
        errbuf_set(err, errlen, "%s", "loader: no item of the dataset could be decoded");
        return -1;
    }
    if (cfg->augment) {
        if (cfg->size < 0 || (cfg->size == 0 && *out_h != *out_w)) {
            errbuf_set(err, errlen, "%s",
                       "aug_transforms needs size= when the items are not square");
            return -1;
        }
        if (cfg->size > 0) *out_h = *out_w = cfg->size;
    }
    return 0;
}

ftd_loader *ftd_loader_new(ftd_dataset *ds, const int64_t *items, int64_t n,
                           const ftd_loader_config *cfg, char *err, size_t errlen) {
    int out_h, out_w, item_w, item_h;
    if (check_loader_args(ds, items, n, cfg, &out_h, &out_w, err, errlen)) return NULL;
    ftd_dataset_item_size(ds, &item_w, &item_h);
    ftd_loader *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->cfg = *cfg;
    l->n = n;
    l->out_h = out_h;
    l->out_w = out_w;
    l->item_h = item_h;
    l->item_w = item_w;
    l->has_labels = ftd_dataset_has_labels(ds);
    l->epoch = -1;
    l->shard_world = 1;
    int nw = cfg->nworkers < 0                 ? 0
             : cfg->nworkers > FTL_MAX_WORKERS ? FTL_MAX_WORKERS
                                               : cfg->nworkers;
    l->cfg.nworkers = nw;
    l->nslots = cfg->prefetch >= 1 ? cfg->prefetch : (nw + 1 < 2 ? 2 : nw + 1);
    l->items = malloc((n ? (size_t)n : 1) * sizeof *l->items);
    l->order = malloc((n ? (size_t)n : 1) * sizeof *l->order);
    l->ring = calloc((size_t)l->nslots, sizeof *l->ring);
    if (!l->items || !l->order || !l->ring) {
        free(l->items);
        free(l->order);
        free(l->ring);
        free(l);
        errbuf_set(err, errlen, "%s", "loader: out of memory");
        return NULL;
    }
    memcpy(l->items, items, (size_t)n * sizeof *items);
    l->nbatches = cfg->drop_last ? n / cfg->bs : (n + cfg->bs - 1) / cfg->bs;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->can_build, NULL);
    pthread_cond_init(&l->built, NULL);
    atomic_init(&l->stop, 0);
    ftd_dataset_retain(ds);
    l->ds = ds;
    return l;
}

/* The host buffers go back between epochs (~80 MB a worker for the chapter's batches); a CUDA
 * workspace stays: pinned memory is slow to allocate. */
static void scratch_release_host(scratch *s) {
    free(s->u8);
    free(s->f32);
    free(s->params);
    free(s->labels);
    s->u8 = NULL;
    s->f32 = NULL;
    s->params = NULL;
    s->labels = NULL;
}

static void scratch_free(scratch *s) {
    scratch_release_host(s);
#ifdef FT_WITH_CUDA
    ftd_aug_cuda_free(s->cuda);
#endif
    memset(s, 0, sizeof *s);
}

void ftd_loader_free(ftd_loader *l) {
    if (!l) return;
    ftd_loader_stop(l);
    for (int t = 0; t < FTL_MAX_WORKERS; t++) scratch_free(&l->scratch[t]);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->can_build);
    pthread_cond_destroy(&l->built);
    ftd_dataset_release(l->ds);
    free(l->items);
    free(l->order);
    free(l->ring);
    free(l);
}

/* Batches this rank takes. Split: every batch, but a last batch with fewer items than ranks
 * is left out (a rank with no item could not join the step). Stride: every world-th batch. */
int64_t ftd_loader_len(const ftd_loader *l) {
    int64_t nb = l->nbatches, w = l->shard_world;
    if (l->shard == FTL_SHARD_SPLIT && nb > 0 && l->n - (nb - 1) * l->cfg.bs < w) return nb - 1;
    if (l->shard == FTL_SHARD_STRIDE)
        return nb > l->shard_rank ? (nb - l->shard_rank + w - 1) / w : 0;
    return nb;
}

void ftd_loader_set_shard(ftd_loader *l, ftd_shard_mode mode, int rank, int world) {
    if (world < 2 || rank < 0 || rank >= world) mode = FTL_SHARD_NONE;
    l->shard = mode;
    l->shard_rank = mode == FTL_SHARD_NONE ? 0 : rank;
    l->shard_world = mode == FTL_SHARD_NONE ? 1 : world;
}

void ftd_loader_set_seed(ftd_loader *l, uint64_t seed) { l->cfg.seed = seed; }
int64_t ftd_loader_items(const ftd_loader *l) { return l->n; }
int64_t ftd_loader_epoch(const ftd_loader *l) { return l->epoch; }
const ftd_loader_config *ftd_loader_config_of(const ftd_loader *l) { return &l->cfg; }

void ftd_loader_set_normalize(ftd_loader *l, int normalize, const float mean[3],
                              const float std[3]) {
    l->cfg.normalize = normalize;
    for (int c = 0; c < 3; c++) {
        l->cfg.mean[c] = normalize ? mean[c] : 0;
        l->cfg.std[c] = normalize ? std[c] : 1;
    }
}

/* ---------------------------------------------------------------- making one batch */

/* uint8 [n,h,w,3] -> float32 [n,C,h,w] as (x/255 - mean)/std: batches without augmentation. */
static void convert(const uint8_t *src, int n, int h, int w, int C, const float mean[3],
                    const float std[3], float *dst) {
    size_t plane = (size_t)h * w;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++) {
            const uint8_t *p = src + (size_t)i * plane * 3 + c;
            float *o = dst + ((size_t)i * C + c) * plane;
            float a = 1.0f / (255.0f * std[c]), b = -mean[c] / std[c];
            for (size_t k = 0; k < plane; k++) o[k] = p[3 * k] * a + b;
        }
}

static int scratch_ready(scratch *s, const ftd_loader *l) {
    if (s->u8) return 0;
    size_t bs = (size_t)l->run.bs;
    size_t in = bs * l->item_h * l->item_w * 3;
    size_t out = bs * 3 * l->out_h * l->out_w; /* 3 planes even for C = 1: the kernel writes 3 */
    s->u8 = malloc(in ? in : 1);
    s->f32 = malloc((out ? out : 1) * sizeof(float));
    s->params = malloc(bs * sizeof *s->params);
    s->labels = malloc(bs * sizeof *s->labels);
    if (s->u8 && s->f32 && s->params && s->labels) return 0;
    scratch_release_host(s);
    return -1;
}

enum { BATCH_OK = 0, BATCH_FAILED = -1, BATCH_STOPPED = -2 };

/* Batch b's items on this rank. Global batch gb; this rank takes its items [lo, hi) of the
 * nb_g there, from l->order[first]. With a shard, the draws of the items before and after ours
 * are made and dropped, so each item gets the draws it gets in one process: the ranks' batches
 * together are the one-process batch. */
typedef struct {
    int64_t gb, first;
    int nb_g, lo, hi;
} batch_span;

static batch_span span_of(const ftd_loader *l, int64_t b) {
    batch_span sp;
    sp.gb = l->shard == FTL_SHARD_STRIDE ? l->shard_rank + b * l->shard_world : b;
    int64_t first = sp.gb * l->run.bs;
    sp.nb_g = (int)(l->n - first < l->run.bs ? l->n - first : l->run.bs);
    sp.lo = 0;
    sp.hi = sp.nb_g;
    if (l->shard == FTL_SHARD_SPLIT) {
        sp.lo = (int)((int64_t)sp.nb_g * l->shard_rank / l->shard_world);
        sp.hi = (int)((int64_t)sp.nb_g * (l->shard_rank + 1) / l->shard_world);
    }
    sp.first = first + sp.lo;
    return sp;
}

/* Decode this rank's items into s->u8 and s->labels, two draws of rng each (their crop
 * position), the other ranks' items' draws dropped. Returns how many were kept (items that
 * fail are skipped with a warning under skip_errors), or BATCH_FAILED / BATCH_STOPPED. */
static int load_items(ftd_loader *l, scratch *s, const batch_span *sp, ftd_aug_rng *rng, char *err,
                      size_t errlen) {
    const ftd_loader_config *c = &l->run;
    const ftd_dataset *ds = l->ds;
    size_t isz = (size_t)l->item_h * l->item_w * 3;
    for (int k = 0; k < 2 * sp->lo; k++) ftd_aug_rng_uniform(rng, 0, 1);
    int kept = 0;
    char e[1024];
    for (int k = 0; k < sp->hi - sp->lo; k++) {
        if (atomic_load(&l->stop)) return BATCH_STOPPED;
        int64_t idx = l->order[sp->first + k];
        double px = ftd_aug_rng_uniform(rng, 0, 1), py = ftd_aug_rng_uniform(rng, 0, 1);
        if (ftd_dataset_get(ds, idx, c->train, px, py, s->u8 + kept * isz, e, sizeof e)) {
            if (!c->skip_errors) {
                errbuf_set(err, errlen, "%s", e);
                return BATCH_FAILED;
            }
            fprintf(stderr, "warning: skipping %s\n", e);
            continue;
        }
        s->labels[kept++] = ftd_dataset_label(ds, idx);
    }
    for (int k = 2 * sp->hi; k < 2 * sp->nb_g; k++) ftd_aug_rng_uniform(rng, 0, 1);
    if (kept == 0) {
        errbuf_set(err, errlen, "%s", "loader: no image of this batch could be loaded");
        return BATCH_FAILED;
    }
    return kept;
}

/* s->params for the kept items: random (the draws of items [0, lo) too, then ours moved to the
 * front) when training, the centre crop otherwise. */
static void draw_params(const ftd_loader *l, scratch *s, ftd_aug_rng *rng, int lo, int kept) {
    const ftd_loader_config *c = &l->run;
    int H = l->item_h, W = l->item_w;
    if (c->train) {
        ftd_aug_draw(rng, &c->aug, lo + kept, H, W, s->params);
        memmove(s->params, s->params + lo, (size_t)kept * sizeof *s->params);
    } else {
        for (int i = 0; i < kept; i++) s->params[i] = ftd_aug_valid_params(&c->aug, H, W);
    }
}

#ifdef FT_WITH_CUDA
/* The images as *x, augmented by the CUDA kernel in place on the device. Returns BATCH_OK, 1
 * when the kernel is not available (augment on the CPU instead), or BATCH_FAILED. */
static int images_on_gpu(const ftd_loader *l, scratch *s, int kept, const float mean[3],
                         const float std[3], ft_tensor **x, char *err, size_t errlen) {
    const ftd_loader_config *c = &l->run;
    int H = l->item_h, W = l->item_w, S = l->out_h;
    char e[1024];
    if (!s->cuda && !(s->cuda = ftd_aug_cuda_new(c->device, e, sizeof e))) {
        fprintf(stderr, "warning: augmenting on the CPU: %s\n", e);
        s->cuda_failed = 1;
        return 1;
    }
    int64_t shape3[4] = {kept, 3, S, S};
    ft_tensor *x3 = NULL, *x1 = NULL;
    ft_status st = ft_empty(shape3, 4, FT_FLOAT32, c->device, &x3);
    if (st != FT_OK) {
        errbuf_set(err, errlen, "loader: %s", ft_last_error());
        return BATCH_FAILED;
    }
    if (ftd_aug_cuda_batch(s->cuda, s->u8, kept, H, W, s->params, S, mean, std, ft_data_ptr(x3),
                           err, errlen)) {
        ft_free(x3);
        return BATCH_FAILED;
    }
    if (c->channels == 1) { /* grey: the first plane */
        st = ft_narrow(x3, 1, 0, 1, &x1);
        if (st == FT_OK) st = ft_contiguous(x1, x);
        ft_free(x1);
        ft_free(x3);
    } else {
        *x = x3;
    }
    if (st != FT_OK) {
        errbuf_set(err, errlen, "loader: %s", ft_last_error());
        return BATCH_FAILED;
    }
    return BATCH_OK;
}
#endif

/* *out, a tensor made from scratch data on the CPU, then moved to the loader's device (through
 * pinned memory when pin is set: a faster copy). Returns BATCH_OK or BATCH_FAILED. */
static int scratch_to_device(const ftd_loader *l, const void *data, ft_dtype dtype,
                             const int64_t *shape, int ndim, int pin, ft_tensor **out, char *err,
                             size_t errlen) {
    ft_tensor *cpu = NULL, *pinned = NULL;
    ft_status st = ft_from_data(data, dtype, shape, ndim, &cpu);
    if (st == FT_OK && l->run.device != FT_CPU) {
        if (pin) st = ft_pin_memory(cpu, &pinned);
        if (st == FT_OK) st = ft_to(pin ? pinned : cpu, dtype, l->run.device, out);
        ft_free(pinned);
        ft_free(cpu);
    } else if (st == FT_OK) {
        *out = cpu;
    }
    if (st != FT_OK) {
        errbuf_set(err, errlen, "loader: %s", ft_last_error());
        return BATCH_FAILED;
    }
    return BATCH_OK;
}

/* The images as *x, float32 [kept,C,S,S] made on the CPU, then copied to the loader's device
 * through pinned memory (a faster copy). Returns BATCH_OK or BATCH_FAILED. */
static int images_on_cpu(const ftd_loader *l, scratch *s, int kept, const float mean[3],
                         const float std[3], ft_tensor **x, char *err, size_t errlen) {
    const ftd_loader_config *c = &l->run;
    int H = l->item_h, W = l->item_w, S = l->out_h, C = c->channels;
    if (c->augment) {
        if (ftd_aug_batch(s->u8, kept, H, W, s->params, S, mean, std, s->f32, 1)) {
            errbuf_set(err, errlen, "%s", "loader: augmentation failed (bad crop or size)");
            return BATCH_FAILED;
        }
        if (C == 1) /* keep plane 0 of each [3,S,S]; moving down never overwrites what is next */
            for (int i = 1; i < kept; i++)
                memmove(s->f32 + (size_t)i * S * S, s->f32 + (size_t)i * 3 * S * S,
                        (size_t)S * S * sizeof(float));
    } else {
        convert(s->u8, kept, H, W, C, mean, std, s->f32);
    }
    int64_t shape[4] = {kept, C, l->out_h, l->out_w};
    return scratch_to_device(l, s->f32, FT_FLOAT32, shape, 4, 1, x, err, errlen);
}

/* The labels as *y, int64 [kept] on the loader's device. Returns BATCH_OK or BATCH_FAILED. */
static int labels_tensor(const ftd_loader *l, const scratch *s, int kept, ft_tensor **y, char *err,
                         size_t errlen) {
    int64_t n1 = kept;
    return scratch_to_device(l, s->labels, FT_INT64, &n1, 1, 0, y, err, errlen);
}

/* Batch b of the running epoch, made with scratch s: *x float32 [N,C,S,S] and *y int64 [N] (or
 * NULL) on the loader's device. */
static int make_batch(ftd_loader *l, scratch *s, int64_t b, ft_tensor **x, ft_tensor **y, char *err,
                      size_t errlen) {
    const ftd_loader_config *c = &l->run;
    *x = *y = NULL;
    if (scratch_ready(s, l)) {
        errbuf_set(err, errlen, "%s", "loader: out of memory for a batch");
        return BATCH_FAILED;
    }
    batch_span sp = span_of(l, b);
    ftd_aug_rng rng;
    ftd_aug_rng_seed(&rng, l->epoch_seed, (uint64_t)sp.gb);
    int kept = load_items(l, s, &sp, &rng, err, errlen);
    if (kept < 0) return kept;

    float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
    if (c->normalize)
        for (int ch = 0; ch < 3; ch++) {
            mean[ch] = c->mean[ch];
            std[ch] = c->std[ch];
        }
    if (c->augment) draw_params(l, s, &rng, sp.lo, kept);
    int rc = 1; /* not made yet */
#ifdef FT_WITH_CUDA
    if (c->augment && c->device != FT_CPU && !s->cuda_failed)
        rc = images_on_gpu(l, s, kept, mean, std, x, err, errlen);
#endif
    if (rc == 1) rc = images_on_cpu(l, s, kept, mean, std, x, err, errlen);
    if (rc != BATCH_OK) return rc;
    if (l->has_labels && labels_tensor(l, s, kept, y, err, errlen) != BATCH_OK) {
        ft_free(*x);
        *x = NULL;
        return BATCH_FAILED;
    }
    return BATCH_OK;
}

/* ---------------------------------------------------------------- workers and the ring */

static void *worker_main(void *arg) {
    ftd_loader *l = ((struct worker_arg *)arg)->l;
    scratch *s = &l->scratch[((struct worker_arg *)arg)->id];
    for (;;) {
        pthread_mutex_lock(&l->mu);
        while (!atomic_load(&l->stop) && l->next_build < l->end &&
               l->next_build >= l->next_take + l->nslots)
            pthread_cond_wait(&l->can_build, &l->mu);
        if (atomic_load(&l->stop) || l->next_build >= l->end) {
            pthread_mutex_unlock(&l->mu);
            break;
        }
        int64_t b = l->next_build++;
        pthread_mutex_unlock(&l->mu);

        ft_tensor *x = NULL, *y = NULL;
        char err[1024] = "";
        int rc = make_batch(l, s, b, &x, &y, err, sizeof err);

        pthread_mutex_lock(&l->mu);
        slot *sl = &l->ring[b % l->nslots]; /* free: batch b - nslots was taken */
        sl->x = x;
        sl->y = y;
        sl->state = rc == BATCH_OK ? SLOT_READY : SLOT_FAILED;
        snprintf(sl->err, sizeof sl->err, "%s", err);
        pthread_cond_broadcast(&l->built);
        pthread_mutex_unlock(&l->mu);
    }
    return NULL;
}

void ftd_loader_stop(ftd_loader *l) {
    if (!l || !l->running) return;
    pthread_mutex_lock(&l->mu);
    atomic_store(&l->stop, 1);
    pthread_cond_broadcast(&l->can_build);
    pthread_mutex_unlock(&l->mu);
    for (int t = 0; t < l->nthreads; t++) pthread_join(l->tids[t], NULL);
    for (int k = 0; k < l->nslots; k++) {
        ft_free(l->ring[k].x);
        ft_free(l->ring[k].y);
        l->ring[k].x = l->ring[k].y = NULL;
        l->ring[k].state = SLOT_EMPTY;
    }
    for (int t = 0; t < FTL_MAX_WORKERS; t++) scratch_release_host(&l->scratch[t]);
    l->nthreads = 0;
    l->running = 0;
}

int ftd_loader_start(ftd_loader *l, int64_t epoch, int64_t max_batches, char *err, size_t errlen) {
    ftd_loader_stop(l);
    l->run = l->cfg;
    l->epoch = epoch;
    l->epoch_seed = l->cfg.seed + (uint64_t)epoch;
    memcpy(l->order, l->items, (size_t)l->n * sizeof *l->order);
    if (l->run.shuffle && l->n > 1) { /* Fisher-Yates */
        ftd_aug_rng r;
        ftd_aug_rng_seed(&r, l->epoch_seed, SHUFFLE_STREAM);
        for (int64_t k = l->n - 1; k > 0; k--) {
            int64_t j = ftd_aug_rng_int(&r, 0, (int)k);
            int64_t t = l->order[k];
            l->order[k] = l->order[j];
            l->order[j] = t;
        }
    }
    int64_t len = ftd_loader_len(l);
    l->end = max_batches >= 0 && max_batches < len ? max_batches : len;
    l->next_build = l->next_take = 0;
    atomic_store(&l->stop, 0);
    int want = l->run.nworkers < l->end ? l->run.nworkers : (int)l->end;
    l->nthreads = 0;
    for (int t = 0; t < want; t++) {
        l->args[t].l = l;
        l->args[t].id = t;
        if (pthread_create(&l->tids[t], NULL, worker_main, &l->args[t]) != 0)
            break; /* fewer workers; with none, ftd_loader_next makes the batches */
        l->nthreads++;
    }
    (void)err;
    (void)errlen;
    l->running = 1;
    return 0;
}

int ftd_loader_next(ftd_loader *l, ft_tensor **x, ft_tensor **y, char *err, size_t errlen) {
    *x = *y = NULL;
    if (!l->running) return 0;
    if (l->next_take >= l->end) {
        ftd_loader_stop(l);
        return 0;
    }
    int64_t b = l->next_take;
    if (l->nthreads == 0) { /* no workers: make it here */
        int rc = make_batch(l, &l->scratch[0], b, x, y, err, errlen);
        l->next_take++;
        if (rc != BATCH_OK) {
            ftd_loader_stop(l);
            return -1;
        }
        return 1;
    }
    pthread_mutex_lock(&l->mu);
    slot *sl = &l->ring[b % l->nslots];
    while (sl->state == SLOT_EMPTY) pthread_cond_wait(&l->built, &l->mu);
    int failed = sl->state == SLOT_FAILED;
    *x = sl->x;
    *y = sl->y;
    if (failed) errbuf_set(err, errlen, "%s", sl->err);
    sl->x = sl->y = NULL;
    sl->state = SLOT_EMPTY;
    l->next_take++;
    pthread_cond_broadcast(&l->can_build);
    pthread_mutex_unlock(&l->mu);
    if (failed) {
        ftd_loader_stop(l);
        return -1;
    }
    return 1;
}
