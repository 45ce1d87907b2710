/* dataset.c: image datasets: the items (files or images in memory), the scan that decodes every
 * file once on worker threads, the item cache kept across epochs, and one item after the item
 * transform (ftd_dataset_get). No Lua here; loader.h describes the design. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "data/loader.h"

struct ftd_dataset {
    atomic_int refs;
    int64_t n;
    char **paths;    /* [n] file items; NULL for images in memory */
    uint8_t *pixels; /* [n,ah,aw,ac] images in memory */
    int ah, aw, ac;
    int32_t *labels; /* [n] 0-based; NULL: no labels */
    uint8_t *train;  /* [n] 1: a train loader uses it (random crop position) */
    ftd_dataset_config cfg;
    int item_w, item_h; /* after the item transform */
    ftd_image **cache;  /* [n] kept across epochs, NULL when not kept */
    uint8_t *final;     /* [n] 1: cache[i] is the finished item, else the decoded image */
    char **errors;      /* [n] why item i failed, NULL when it is good */
    atomic_size_t cached;
    int full_decode; /* FTLUA_JPEG_DRAFT=0: no DCT scaling of big JPEGs (draft_side) */
};

static char OOM_TEXT[] = "(out of memory while recording an error)"; /* never freed */

static ftd_dataset *dataset_alloc(int64_t n, const int32_t *labels, const uint8_t *train,
                                  const ftd_dataset_config *cfg) {
    if (n < 0 || !cfg) return NULL;
    ftd_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return NULL;
    atomic_init(&ds->refs, 1);
    atomic_init(&ds->cached, 0);
    ds->n = n;
    ds->cfg = *cfg;
    size_t m = n ? (size_t)n : 1;
    ds->train = calloc(m, 1);
    ds->cache = calloc(m, sizeof *ds->cache);
    ds->final = calloc(m, 1);
    ds->errors = calloc(m, sizeof *ds->errors);
    if (labels) ds->labels = malloc(m * sizeof *ds->labels);
    if (!ds->train || !ds->cache || !ds->final || !ds->errors || (labels && !ds->labels)) {
        ftd_dataset_release(ds);
        return NULL;
    }
    if (labels) memcpy(ds->labels, labels, (size_t)n * sizeof *labels);
    if (train) memcpy(ds->train, train, (size_t)n);
    ds->item_w = cfg->resize_w;
    ds->item_h = cfg->resize_h;
    const char *draft = getenv("FTLUA_JPEG_DRAFT");
    ds->full_decode = draft && !strcmp(draft, "0");
    return ds;
}

ftd_dataset *ftd_dataset_new_files(const char *const *paths, const int32_t *labels,
                                   const uint8_t *train, int64_t n, const ftd_dataset_config *cfg) {
    ftd_dataset *ds = dataset_alloc(n, labels, train, cfg);
    if (!ds) return NULL;
    ds->paths = calloc(n ? (size_t)n : 1, sizeof *ds->paths);
    for (int64_t i = 0; ds->paths && i < n; i++)
        if (!(ds->paths[i] = strdup(paths[i]))) break;
    if (!ds->paths || (n && !ds->paths[n - 1])) {
        ftd_dataset_release(ds);
        return NULL;
    }
    return ds;
}

ftd_dataset *ftd_dataset_new_array(const uint8_t *pixels, int64_t n, int h, int w, int c,
                                   const int32_t *labels, const uint8_t *train,
                                   const ftd_dataset_config *cfg) {
    if (h <= 0 || w <= 0 || (c != 1 && c != 3) || !pixels) return NULL;
    ftd_dataset *ds = dataset_alloc(n, labels, train, cfg);
    if (!ds) return NULL;
    size_t bytes = (size_t)n * h * w * c;
    ds->pixels = malloc(bytes ? bytes : 1);
    if (!ds->pixels) {
        ftd_dataset_release(ds);
        return NULL;
    }
    memcpy(ds->pixels, pixels, bytes);
    ds->ah = h;
    ds->aw = w;
    ds->ac = c;
    if (!cfg->resize_w) {
        ds->item_w = w;
        ds->item_h = h;
    }
    return ds;
}

void ftd_dataset_retain(ftd_dataset *ds) { atomic_fetch_add(&ds->refs, 1); }

void ftd_dataset_release(ftd_dataset *ds) {
    if (!ds || atomic_fetch_sub(&ds->refs, 1) != 1) return;
    for (int64_t i = 0; i < ds->n; i++) {
        if (ds->paths) free(ds->paths[i]);
        if (ds->cache) ftd_image_free(ds->cache[i]);
        if (ds->errors && ds->errors[i] != OOM_TEXT) free(ds->errors[i]);
    }
    free(ds->paths);
    free(ds->pixels);
    free(ds->labels);
    free(ds->train);
    free(ds->cache);
    free(ds->final);
    free(ds->errors);
    free(ds);
}

int64_t ftd_dataset_len(const ftd_dataset *ds) { return ds->n; }
const char *ftd_dataset_item_error(const ftd_dataset *ds, int64_t i) { return ds->errors[i]; }
int ftd_dataset_has_labels(const ftd_dataset *ds) { return ds->labels != NULL; }
int32_t ftd_dataset_label(const ftd_dataset *ds, int64_t i) {
    return ds->labels ? ds->labels[i] : -1;
}
void ftd_dataset_item_size(const ftd_dataset *ds, int *w, int *h) {
    *w = ds->item_w;
    *h = ds->item_h;
}
size_t ftd_dataset_cached_bytes(const ftd_dataset *ds) { return atomic_load(&ds->cached); }
size_t ftd_dataset_memory(const ftd_dataset *ds) {
    size_t pixels = ds->pixels ? (size_t)ds->n * ds->ah * ds->aw * ds->ac : 0;
    return atomic_load(&ds->cached) + pixels;
}

/* Where the crop lands does not matter: no resize, or squish (the whole image). */
static int position_free(const ftd_dataset *ds) {
    return !ds->cfg.resize_w || ds->cfg.method == FTL_RESIZE_SQUISH;
}

/* JPEGs over FTL_IMAGE_DRAFT_PIXELS decode at a DCT scale that keeps their shorter side at least
 * twice the item's longer side (image.h); 0 (full size) without a resize. */
static int draft_side(const ftd_dataset *ds) {
    int s = ds->cfg.resize_w > ds->cfg.resize_h ? ds->cfg.resize_w : ds->cfg.resize_h;
    return ds->full_decode ? 0 : 2 * s;
}

/* A train item keeps its decoded image in the cache (its crop moves every epoch) only up to this
 * many pixels: 16 items' worth, at least 4 megapixels (12 MB). A bigger one is decoded again
 * each epoch, so a few huge images cannot take the RAM. */
static int cacheable_train_image(const ftd_dataset *ds, const ftd_image *im) {
    uint64_t item = (uint64_t)ds->item_w * ds->item_h, most = 16 * item;
    if (most < (1u << 22)) most = 1u << 22;
    return (uint64_t)im->w * im->h <= most;
}

static const char *item_name(const ftd_dataset *ds, int64_t i, char *buf, size_t len) {
    if (ds->paths) return ds->paths[i];
    snprintf(buf, len, "item %lld", (long long)i + 1);
    return buf;
}

/* Item i as a new RGB image: decoded from its file, or copied from memory (grey -> RGB). */
static ftd_image *load_source(const ftd_dataset *ds, int64_t i, char *err, size_t errlen) {
    if (ds->paths) return ftd_image_new_item_from_file(ds->paths[i], draft_side(ds), err, errlen);
    ftd_image *im = ftd_image_new(ds->aw, ds->ah);
    if (!im) {
        snprintf(err, errlen, "item %lld: out of memory", (long long)i + 1);
        return NULL;
    }
    size_t npix = (size_t)ds->ah * ds->aw;
    const uint8_t *p = ds->pixels + (size_t)i * npix * ds->ac;
    if (ds->ac == 3)
        memcpy(im->rgb, p, npix * 3);
    else
        for (size_t k = 0; k < npix; k++)
            im->rgb[3 * k] = im->rgb[3 * k + 1] = im->rgb[3 * k + 2] = p[k];
    return im;
}

/* Resize src into dst [item_h,item_w,3] (fastai's Resize at pcts px, py), or copy it when the
 * dataset has no resize. */
static int finish_item(const ftd_dataset *ds, int64_t i, const ftd_image *src, double px, double py,
                       uint8_t *dst, char *err, size_t errlen) {
    char nb[32];
    const char *name = item_name(ds, i, nb, sizeof nb);
    if (!ds->cfg.resize_w) {
        if (src->w != ds->item_w || src->h != ds->item_h) {
            snprintf(err, errlen, "%s: is %dx%d, the other images %dx%d (add a Resize)", name,
                     src->w, src->h, ds->item_w, ds->item_h);
            return -1;
        }
        memcpy(dst, src->rgb, (size_t)src->w * src->h * 3);
        return 0;
    }
    ftd_image *r =
        ftd_image_resize(src, ds->cfg.resize_w, ds->cfg.resize_h, ds->cfg.method, px, py);
    if (!r) {
        snprintf(err, errlen,
                 "%s: cannot resize a %dx%d image to %dx%d (out of memory, or an "
                 "aspect ratio beyond 64:1 to pad)",
                 name, src->w, src->h, ds->cfg.resize_w, ds->cfg.resize_h);
        return -1;
    }
    memcpy(dst, r->rgb, (size_t)r->w * r->h * 3);
    ftd_image_free(r);
    return 0;
}

int ftd_dataset_get(const ftd_dataset *ds, int64_t i, int train, double px, double py, uint8_t *dst,
                    char *err, size_t errlen) {
    if (!train) px = py = 0.5; /* fastai's valid split: the centre */
    size_t isz = (size_t)ds->item_w * ds->item_h * 3;
    const ftd_image *c = ds->cache[i];
    if (c && ds->final[i]) {
        if (!train || position_free(ds)) {
            memcpy(dst, c->rgb, isz);
            return 0;
        }
        c = NULL; /* a centre crop cannot serve a random one: decode again */
    }
    if (ds->pixels && !ds->cfg.resize_w) { /* images in memory at their size: copy straight */
        size_t npix = (size_t)ds->ah * ds->aw;
        const uint8_t *p = ds->pixels + (size_t)i * npix * ds->ac;
        if (ds->ac == 3)
            memcpy(dst, p, isz);
        else
            for (size_t k = 0; k < npix; k++) dst[3 * k] = dst[3 * k + 1] = dst[3 * k + 2] = p[k];
        return 0;
    }
    ftd_image *own = NULL;
    if (!c) {
        own = load_source(ds, i, err, errlen);
        if (!own) return -1;
        c = own;
    }
    int rc = finish_item(ds, i, c, px, py, dst, err, errlen);
    ftd_image_free(own);
    return rc;
}

/* ---------------------------------------------------------------- the scan */

typedef struct {
    ftd_dataset *ds;
    atomic_llong next;
    int *sizes; /* [n,2] decoded w, h; 0 for bad items */
} scan_job;

static void record_error(ftd_dataset *ds, int64_t i, const char *msg) {
    ds->errors[i] = strdup(msg);
    if (!ds->errors[i]) ds->errors[i] = OOM_TEXT;
}

static void *scan_worker(void *arg) {
    scan_job *job = arg;
    ftd_dataset *ds = job->ds;
    const ftd_dataset_config *cfg = &ds->cfg;
    char err[1024];
    for (;;) {
        int64_t i = atomic_fetch_add(&job->next, 1);
        if (i >= ds->n) break;
        ftd_image *im = ftd_image_new_item_from_file(ds->paths[i], draft_side(ds), err, sizeof err);
        if (!im) {
            record_error(ds, i, err);
            continue;
        }
        job->sizes[2 * i] = im->w;
        job->sizes[2 * i + 1] = im->h;
        /* Keep the finished item when its crop is known (valid items, squish, no resize); keep
         * the decoded image for train items, whose crop position changes every epoch. */
        ftd_image *keep = im;
        int final = !cfg->resize_w;
        if (cfg->resize_w && (!ds->train[i] || position_free(ds))) {
            keep = ftd_image_resize(im, cfg->resize_w, cfg->resize_h, cfg->method, 0.5, 0.5);
            if (!keep) {
                snprintf(err, sizeof err, "%s: cannot resize a %dx%d image to %dx%d", ds->paths[i],
                         im->w, im->h, cfg->resize_w, cfg->resize_h);
                ftd_image_free(im);
                record_error(ds, i, err);
                continue;
            }
            ftd_image_free(im);
            final = 1;
        }
        if (!final && !cacheable_train_image(ds, keep)) {
            ftd_image_free(keep);
            continue;
        }
        size_t bytes = sizeof *keep + (size_t)keep->w * keep->h * 3;
        if (atomic_fetch_add(&ds->cached, bytes) + bytes <= cfg->cache_bytes) {
            ds->cache[i] = keep;
            ds->final[i] = (uint8_t) final;
        } else {
            atomic_fetch_sub(&ds->cached, bytes);
            ftd_image_free(keep);
        }
    }
    return NULL;
}

int ftd_dataset_scan(ftd_dataset *ds, char *err, size_t errlen) {
    if (!ds->paths || ds->n == 0) return 0; /* images in memory are all good */
    scan_job job = {.ds = ds, .sizes = calloc((size_t)ds->n * 2, sizeof(int))};
    if (!job.sizes) {
        if (err && errlen) snprintf(err, errlen, "scan: out of memory");
        return -1;
    }
    atomic_init(&job.next, 0);
    int nt = ds->cfg.nworkers < 1                 ? 1
             : ds->cfg.nworkers > FTL_MAX_WORKERS ? FTL_MAX_WORKERS
                                                  : ds->cfg.nworkers;
    if (nt > ds->n) nt = (int)ds->n;
    pthread_t tid[FTL_MAX_WORKERS];
    int started = 0;
    for (int t = 1; t < nt; t++) /* the caller is worker 0 */
        if (pthread_create(&tid[started], NULL, scan_worker, &job) == 0) started++;
    scan_worker(&job);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    int rc = 0;
    if (!ds->cfg.resize_w) { /* no resize: batches need one size for every image */
        int64_t first = -1;
        for (int64_t i = 0; i < ds->n && rc == 0; i++) {
            if (ds->errors[i]) continue;
            if (first < 0) {
                first = i;
                ds->item_w = job.sizes[2 * i];
                ds->item_h = job.sizes[2 * i + 1];
            } else if (job.sizes[2 * i] != ds->item_w || job.sizes[2 * i + 1] != ds->item_h) {
                if (err && errlen)
                    snprintf(err, errlen,
                             "images differ in size (%s is %dx%d, %s is %dx%d): add "
                             "an item transform such as Resize(224)",
                             ds->paths[first], ds->item_w, ds->item_h, ds->paths[i],
                             job.sizes[2 * i], job.sizes[2 * i + 1]);
                rc = -1;
            }
        }
    }
    free(job.sizes);
    return rc;
}
