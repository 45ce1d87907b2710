/* lr_find.c: the lr finder's sweep, stop rule and suggestions. See lr_find.h. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "learner/lr_find.h"
#include "torch/ft_torch.h"

int ftf_lr_finder_init(ftf_lr_finder *f, double start_lr, double end_lr, int num_it, int stop_div) {
    if (!(start_lr > 0 && isfinite(start_lr)) || !(end_lr > 0 && isfinite(end_lr))) {
        ft_set_last_error(
            "lr_find: start_lr and end_lr must be positive finite numbers, got %g and %g", start_lr,
            end_lr);
        return -1;
    }
    f->start_lr = start_lr;
    f->end_lr = end_lr;
    f->num_it = num_it < 6 ? 6 : num_it; /* fewer leave nothing in [num_it//10 : -5] */
    f->stop_div = stop_div;
    f->train_iter = 0;
    f->best = INFINITY;
    return 0;
}

double ftf_lr_find_lr_at(double start_lr, double end_lr, int num_it, int i) {
    /* SchedExp(start, end)(pos) = start * (end/start)**pos, pos = train_iter/num_it */
    return start_lr * pow(end_lr / start_lr, (double)i / num_it);
}

double ftf_lr_finder_lr(const ftf_lr_finder *f) {
    return ftf_lr_find_lr_at(f->start_lr, f->end_lr, f->num_it, f->train_iter);
}

int ftf_lr_finder_after_batch(ftf_lr_finder *f, double smooth_loss) {
    f->train_iter++;              /* TrainEvalCallback.after_batch runs before LRFinder's */
    float v = (float)smooth_loss; /* fastai compares float32 tensors */
    if (v < f->best) f->best = v;
    if (f->stop_div && v > 4 * f->best) return 1;
    return f->train_iter >= f->num_it;
}

int ftf_lr_find_n_epoch(int num_it, int n_batches) { return num_it / n_batches + 1; }

/* ---------------------------------------------------------------- suggestions */

static double minimum(const float *lrs, const float *losses, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (losses[i] < losses[best]) best = i; /* torch.argmin: the first minimum */
    return (double)lrs[best] / 10;
}

/* grads = (losses[1:]-losses[:-1]) / (lrs[1:].log()-lrs[:-1].log()); lrs[grads.argmin()].
 * Done with libtorch's float32 kernels, on the same views as fastai, so the logs round the
 * same way. Returns NaN with the error recorded on failure. */
static double steep(const float *lrs, const float *losses, int n, int *failed) {
    int64_t shape[1] = {n};
    ft_tensor *lr = NULL, *lo = NULL, *a = NULL, *b = NULL, *la = NULL, *lb = NULL;
    ft_tensor *dl = NULL, *dx = NULL, *g = NULL, *idx = NULL;
    ft_status st = ft_from_data(lrs, FT_FLOAT32, shape, 1, &lr);
    if (st == FT_OK) st = ft_from_data(losses, FT_FLOAT32, shape, 1, &lo);
    if (st == FT_OK) st = ft_narrow(lo, 0, 1, n - 1, &a);
    if (st == FT_OK) st = ft_narrow(lo, 0, 0, n - 1, &b);
    if (st == FT_OK) st = ft_binary(FT_SUB, a, b, &dl);
    ft_free(a);
    ft_free(b);
    a = b = NULL;
    if (st == FT_OK) st = ft_narrow(lr, 0, 1, n - 1, &a);
    if (st == FT_OK) st = ft_narrow(lr, 0, 0, n - 1, &b);
    if (st == FT_OK) st = ft_unary(FT_LOG, a, &la);
    if (st == FT_OK) st = ft_unary(FT_LOG, b, &lb);
    if (st == FT_OK) st = ft_binary(FT_SUB, la, lb, &dx);
    if (st == FT_OK) st = ft_binary(FT_DIV, dl, dx, &g);
    if (st == FT_OK) st = ft_reduce_all(FT_ARGMIN, g, &idx);
    double i = 0;
    if (st == FT_OK) st = ft_item(idx, &i);
    ft_tensor *all[] = {lr, lo, a, b, la, lb, dl, dx, g, idx};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ft_free(all[k]);
    if (st != FT_OK) {
        ft_set_last_error("lr_find steep: %s", ft_last_error());
        *failed = 1;
        return NAN;
    }
    return (double)lrs[(int)i];
}

/* The longest strictly decreasing subsequence (O(n^2), as fastai), then a point a third plus
 * a sixth of the way into it. */
static double valley(const float *lrs, const float *losses, int n, int *lds) {
    int max_start = 0, max_end = 0;
    for (int i = 0; i < n; i++) lds[i] = 1;
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++) {
            if (losses[i] < losses[j] && lds[i] < lds[j] + 1) lds[i] = lds[j] + 1;
            if (lds[max_end] < lds[i]) {
                max_end = i;
                max_start = max_end - lds[max_end];
            }
        }
    double sections = (max_end - max_start) / 3.0;
    int idx = max_start + (int)sections + (int)(sections / 2);
    if (idx < 0) idx += n; /* max_start can be -1: Python's lrs[-1] */
    return (double)lrs[idx];
}

/* np.gradient of the float32 losses, then slide two points lr_diff apart leftwards until the
 * gradients at them agree within thresh. Python's negative indices become n + i. */
static double slide(const float *lrs, const float *losses, int n, float *g) {
    const int lr_diff = 15;
    const float thresh = 0.005f;
    g[0] = (losses[1] - losses[0]) / 1.0f;
    g[n - 1] = (losses[n - 1] - losses[n - 2]) / 1.0f;
    for (int i = 1; i < n - 1; i++) g[i] = (losses[i + 1] - losses[i - 1]) / 2.0f;
    int r = -1, l = r - lr_diff;
    float lr = lrs[n + l];
    while (l >= -n && fabsf(g[n + r] - g[n + l]) > thresh) {
        lr = lrs[n + l];
        r--;
        l--;
    }
    return (double)lr * 1.0;
}

int ftf_lr_suggest(const double *rec_lrs, const double *rec_losses, int n, int num_it,
                   ftf_lr_suggestions *out) {
    out->minimum = out->steep = out->valley = out->slide = NAN;
    int start = num_it / 10, stop = n - 5; /* [num_it//10 : -5] */
    if (start < 0) start = 0;
    if (stop < 0) stop = 0;
    if (start > n) start = n;
    int m = stop > start ? stop - start : 0;
    for (int i = 0; i < m; i++)
        if (isnan(rec_losses[start + i])) {
            m = i;
            break;
        } /* cut at the first NaN */
    if (m == 0) return 0;
    float *lrs = malloc(sizeof(float) * 3 * (size_t)m), *losses = lrs + m, *g = lrs + 2 * m;
    int *lds = malloc(sizeof(int) * (size_t)m);
    if (!lrs || !lds) {
        free(lrs);
        free(lds);
        ft_set_last_error("lr_find: out of memory");
        return -1;
    }
    for (int i = 0; i < m; i++) {
        lrs[i] = (float)rec_lrs[start + i];
        losses[i] = (float)rec_losses[start + i];
    }
    int failed = 0;
    out->minimum = minimum(lrs, losses, m);
    out->valley = valley(lrs, losses, m, lds);
    if (m >= 2) out->steep = steep(lrs, losses, m, &failed);
    if (m >= 16) out->slide = slide(lrs, losses, m, g);
    free(lrs);
    free(lds);
    return failed ? -1 : m;
}
