/* learner_dist.c: the data-parallel glue of a fit (learn:to_distributed()): each rank's shard
 * of the loaders, gradients averaged over the global batch, validation sums added over ranks.
 */
#include <stdlib.h>
#include <string.h>

#include "learner/learner_internal.h"

/* The group this learner trains over, or NULL (one process, or no learn:to_distributed()). */
ft_dist *ftl_fit_dist(const ftl_learner *ln) { return ln->dist ? ftr_dist_group() : NULL; }

/* After backward: every rank's gradients, and its batch loss, become their mean over the
 * global batch, sum_r(n_r * g_r) / sum_r(n_r) with n_r the rank's items: what one process's
 * mean loss over the whole batch gives. fs->loss becomes that (detached) global loss, so the
 * smoothed loss, the recorder and lr_find's stop agree on every rank. */
int ftl_fit_reduce_grads(fit_state *fs, ft_dist *d) {
    ftf_adam *o = fs->ln->opt;
    ft_tensor **ts = calloc((size_t)o->n_params + 1, sizeof *ts);
    if (!ts) return ftl_fit_failf(fs, "all_reduce: out of memory");
    int n = 0, r = GO;
    ft_tensor *det = NULL, *loss = NULL;
    ft_status st = ft_detach(fs->loss, &det);
    if (st == FT_OK) st = ft_clone(det, &loss);
    ft_free(det);
    if (st == FT_OK && fs->reducer) { /* the buckets went out during backward */
        free(ts);
        if (ft_dist_reducer_finish(fs->reducer, loss, NULL) != FT_OK) {
            ft_free(loss);
            return ftl_fit_shim_fail(fs, "data parallel step");
        }
        ft_free(fs->loss);
        fs->loss = loss;
        return GO;
    }
    for (int i = 0; st == FT_OK && i < o->n_params; i++) {
        ft_tensor *g = NULL;
        st = ft_grad(o->params[i].p, &g);
        if (g) ts[n++] = g;
    }
    if (st != FT_OK)
        r = ftl_fit_shim_fail(fs, "all_reduce");
    else {
        ts[n] = loss;
        if (ft_dist_all_reduce_mean(d, ts, n + 1, (double)ft_size(fs->y, 0), 0, NULL) != FT_OK)
            r = ftl_fit_shim_fail(fs, "data parallel step");
    }
    for (int i = 0; i < n; i++) ft_free(ts[i]);
    free(ts);
    if (r == GO) {
        ft_free(fs->loss);
        fs->loss = loss;
    } else {
        ft_free(loss);
    }
    return r;
}

/* After validation: the sums and counts of the loss and every metric, added over the ranks
 * (each validated its own batches), so every rank reports the same numbers. */
int ftl_fit_reduce_avgs(fit_state *fs, ft_dist *d) {
    int k = 1 + fs->ln->n_metrics;
    double v[2 * (FTL_MAX_METRICS + 1)];
    for (int i = 0; i < k; i++) {
        ftf_avg *a = i == 0 ? &fs->vloss : &fs->vmet[i - 1];
        double t = 0;
        if (a->total && ft_item(a->total, &t) != FT_OK) return ftl_fit_shim_fail(fs, "valid");
        v[2 * i] = a->dtotal + t;
        v[2 * i + 1] = (double)a->count;
    }
    if (ft_dist_all_reduce_doubles(d, v, 2 * k, FT_DIST_SUM) != FT_OK)
        return ftl_fit_shim_fail(fs, "valid");
    for (int i = 0; i < k; i++) {
        ftf_avg *a = i == 0 ? &fs->vloss : &fs->vmet[i - 1];
        ftf_avg_reset(a);
        a->dtotal = v[2 * i];
        a->count = (int64_t)v[2 * i + 1];
    }
    return GO;
}

/* fit's data-parallel setup: the ranks agree on rank 0's shuffle seed, the train loader gives
 * this rank its part of every global batch, the valid loader every world-th batch. */
int ftl_fit_shard(fit_state *fs, ft_dist *d, ftd_loader *train, ftd_loader *valid) {
    int rank = ft_dist_rank(d), world = ft_dist_world(d);
    if (ftd_loader_config_of(train)->bs < world) {
        snprintf(fs->err, sizeof fs->err,
                 "fit: the batch size (%d) is smaller than the number of ranks (%d)",
                 ftd_loader_config_of(train)->bs, world);
        return FAIL;
    }
    uint64_t seed = ftd_loader_config_of(train)->seed;
    if (ft_dist_broadcast_bytes(d, &seed, sizeof seed, 0) != FT_OK)
        return ftl_fit_shim_fail(fs, "fit");
    ftd_loader_set_seed(train, seed);
    ftd_loader_set_shard(train, FTL_SHARD_SPLIT, rank, world);
    fs->sharded[0] = train;
    if (valid && valid != train) {
        ftd_loader_set_shard(valid, FTL_SHARD_STRIDE, rank, world);
        fs->sharded[1] = valid;
    }
    /* Overlap the all-reduce with backward over the parameters this fit trains (freezing
     * changes them between fits), unless FTLUA_DIST_OVERLAP=0. FTLUA_DIST_BUCKET_MB sets the
     * bucket size (25, DDP's). */
    const char *ov = getenv("FTLUA_DIST_OVERLAP");
    if (ov && !strcmp(ov, "0")) return GO;
    const char *mb = getenv("FTLUA_DIST_BUCKET_MB");
    int64_t bucket = mb && atof(mb) > 0 ? (int64_t)(atof(mb) * 1048576.0) : 0;
    ftf_adam *o = fs->ln->opt;
    ft_tensor **ps = calloc((size_t)o->n_params + 1, sizeof *ps);
    if (!ps) return ftl_fit_failf(fs, "fit: out of memory");
    int n = 0;
    for (int i = 0; i < o->n_params; i++)
        if (ft_requires_grad(o->params[i].p)) ps[n++] = o->params[i].p;
    ft_status st = new_ft_dist_reducer(d, ps, n, bucket, &fs->reducer);
    free(ps);
    return st == FT_OK ? GO : ftl_fit_shim_fail(fs, "fit");
}
