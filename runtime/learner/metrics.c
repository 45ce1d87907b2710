/* metrics.c: accuracy, error_rate, top_k_accuracy, their accumulators, the smoothed loss and
 * LabelSmoothingCrossEntropy over shim tensors. See metrics.h. */
#include <math.h>
#include <stdlib.h>

#include "learner/metrics.h"

static ft_status fail(ft_status st, const char *what) {
    if (st != FT_OK) ft_set_last_error("%s: %s", what, ft_last_error());
    return st;
}

static void free_all(ft_tensor **ts, int n) {
    for (int i = 0; i < n; i++) ft_free(ts[i]);
}

/* fastai's flatten_check: both made contiguous and flattened; the lengths must agree. */
static ft_status flatten_pair(const ft_tensor *a, const ft_tensor *b, ft_tensor **fa,
                              ft_tensor **fb, const char *what) {
    *fa = *fb = NULL;
    if (ft_numel(a) != ft_numel(b)) {
        ft_set_last_error("%s: %lld predictions but %lld targets", what, (long long)ft_numel(a),
                          (long long)ft_numel(b));
        return FT_ERR;
    }
    int64_t flat[1] = {-1};
    ft_tensor *ca = NULL, *cb = NULL;
    ft_status st = ft_contiguous(a, &ca);
    if (st == FT_OK) st = ft_contiguous(b, &cb);
    if (st == FT_OK) st = ft_view(ca, flat, 1, fa);
    if (st == FT_OK) st = ft_view(cb, flat, 1, fb);
    ft_free(ca);
    ft_free(cb);
    if (st != FT_OK) {
        ft_free(*fa);
        *fa = NULL;
        return fail(st, what);
    }
    return FT_OK;
}

/* (a == b).float().mean() */
static ft_status mean_equal(const ft_tensor *a, const ft_tensor *b, ft_tensor **out) {
    ft_tensor *eq = NULL, *f = NULL;
    ft_status st = ft_binary(FT_EQ, a, b, &eq);
    if (st == FT_OK) st = ft_to(eq, FT_FLOAT32, ft_device(eq), &f);
    if (st == FT_OK) st = ft_reduce_all(FT_MEAN, f, out);
    ft_free(eq);
    ft_free(f);
    return st;
}

ft_status ftf_accuracy(const ft_tensor *pred, const ft_tensor *targ, ft_tensor **out) {
    *out = NULL;
    int nd = ft_dim(pred);
    ft_tensor *am = NULL, *a = NULL, *t = NULL;
    ft_status st = ft_reduce_dim(FT_ARGMAX, pred, nd > 0 ? nd - 1 : 0, 0, &am);
    if (st != FT_OK) return fail(st, "accuracy");
    st = flatten_pair(am, targ, &a, &t, "accuracy");
    if (st == FT_OK) st = fail(mean_equal(a, t, out), "accuracy");
    ft_tensor *all[] = {am, a, t};
    free_all(all, 3);
    return st;
}

ft_status ftf_error_rate(const ft_tensor *pred, const ft_tensor *targ, ft_tensor **out) {
    ft_tensor *acc = NULL;
    *out = NULL;
    ft_status st = ftf_accuracy(pred, targ, &acc);
    if (st != FT_OK) return st;
    st = ft_scalar_binary(FT_SUB, 1, acc, out);
    ft_free(acc);
    return fail(st, "error_rate");
}

ft_status ftf_top_k_accuracy(const ft_tensor *pred, const ft_tensor *targ, int k, ft_tensor **out) {
    *out = NULL;
    int nd = ft_dim(pred);
    if (nd < 1 || k < 1 || k > ft_size(pred, nd - 1)) {
        ft_set_last_error("top_k_accuracy: k = %d for %lld classes", k,
                          nd < 1 ? 0LL : (long long)ft_size(pred, nd - 1));
        return FT_ERR;
    }
    ft_tensor *vals = NULL, *idx = NULL, *t = NULL, *te = NULL, *eq = NULL, *hits = NULL, *f = NULL;
    ft_status st = ft_topk(pred, k, nd - 1, 1, &vals, &idx);
    if (st == FT_OK) st = ft_unsqueeze(targ, ft_dim(targ), &t);
    if (st == FT_OK) {
        int64_t shape[FT_MAX_DIMS];
        int n = ft_dim(idx);
        for (int i = 0; i < n; i++) shape[i] = ft_size(idx, i);
        st = ft_expand(t, shape, n, &te);
    }
    if (st == FT_OK) st = ft_binary(FT_EQ, idx, te, &eq);
    if (st == FT_OK) st = ft_reduce_dim(FT_SUM, eq, ft_dim(eq) - 1, 0, &hits);
    if (st == FT_OK) st = ft_to(hits, FT_FLOAT32, ft_device(hits), &f);
    if (st == FT_OK) st = ft_reduce_all(FT_MEAN, f, out);
    ft_tensor *all[] = {vals, idx, t, te, eq, hits, f};
    free_all(all, 7);
    return fail(st, "top_k_accuracy");
}

ft_status ftf_label_smoothing_ce(const ft_tensor *logits, const ft_tensor *targ, double eps,
                                 ft_reduction reduction, ft_tensor **out) {
    *out = NULL;
    if (ft_dim(logits) < 2) {
        ft_set_last_error("LabelSmoothingCrossEntropy: expected logits [N, C, ...], got %d dims",
                          ft_dim(logits));
        return FT_ERR;
    }
    double c = (double)ft_size(logits, 1);
    ft_tensor *lp = NULL, *s = NULL, *neg = NULL, *m = NULL, *a = NULL, *b = NULL, *nll = NULL,
              *w = NULL;
    ft_status st = ft_log_softmax(logits, 1, &lp);
    if (st == FT_OK) {
        if (reduction == FT_REDUCE_SUM)
            st = ft_reduce_all(FT_SUM, lp, &s);
        else
            st = ft_reduce_dim(FT_SUM, lp, 1, 0, &s);
    }
    if (st == FT_OK) st = ft_unary(FT_NEG, s, &neg);
    if (st == FT_OK && reduction == FT_REDUCE_MEAN) st = ft_reduce_all(FT_MEAN, neg, &m);
    if (st == FT_OK) st = ft_binary_scalar(FT_MUL, m ? m : neg, eps, &a);
    if (st == FT_OK) st = ft_binary_scalar(FT_DIV, a, c, &b);
    if (st == FT_OK) st = ft_nll_loss(lp, targ, reduction, &nll);
    if (st == FT_OK) st = ft_scalar_binary(FT_MUL, 1 - eps, nll, &w);
    if (st == FT_OK) st = ft_binary(FT_ADD, b, w, out);
    ft_tensor *all[] = {lp, s, neg, m, a, b, nll, w};
    free_all(all, 8);
    return fail(st, "LabelSmoothingCrossEntropy");
}

/* ---------------------------------------------------------------- accumulators */

void ftf_avg_reset(ftf_avg *a) {
    ft_free(a->total);
    a->total = NULL;
    a->dtotal = 0;
    a->count = 0;
}

ft_status ftf_avg_add(ftf_avg *a, const ft_tensor *value, int64_t bs) {
    int was = ft_grad_enabled();
    ft_set_grad_enabled(0); /* fastai detaches */
    ft_tensor *t = NULL;
    ft_status st = ft_binary_scalar(FT_MUL, value, (double)bs, &t);
    if (st == FT_OK) {
        if (a->total) {
            st = ft_binary_(FT_ADD, a->total, t); /* total += value*bs */
        } else {
            st = ft_binary_scalar(FT_ADD, t, a->dtotal, &a->total); /* 0. + tensor */
        }
    }
    ft_free(t);
    ft_set_grad_enabled(was);
    if (st == FT_OK) a->count += bs;
    return fail(st, "metric");
}

void ftf_avg_add_number(ftf_avg *a, double value, int64_t bs) {
    if (a->total && ft_binary_scalar_(FT_ADD, a->total, value * (double)bs) != FT_OK) return;
    if (!a->total) a->dtotal += value * (double)bs;
    a->count += bs;
}

ft_status ftf_avg_value(const ftf_avg *a, double *out) {
    *out = NAN;
    if (a->count == 0) return FT_OK;
    if (!a->total) {
        *out = a->dtotal / (double)a->count;
        return FT_OK;
    }
    ft_tensor *v = NULL;
    ft_status st = ft_binary_scalar(FT_DIV, a->total, (double)a->count, &v);
    if (st == FT_OK) st = ft_item(v, out);
    ft_free(v);
    return fail(st, "metric value");
}

void ftf_smooth_reset(ftf_smooth_loss *s, double beta) {
    ft_free(s->val);
    s->val = NULL;
    s->count = 0;
    s->beta = beta;
}

ft_status ftf_smooth_add(ftf_smooth_loss *s, const ft_tensor *loss) {
    int was = ft_grad_enabled();
    ft_set_grad_enabled(0);
    ft_tensor *m = NULL, *t = NULL;
    ft_status st = ft_reduce_all(FT_MEAN, loss, &m);
    if (st == FT_OK) st = ft_to(m, FT_FLOAT32, ft_device(m), &t); /* the same tensor if float32 */
    if (st == FT_OK && !s->val) st = ft_full(NULL, 0, 0, FT_FLOAT32, ft_device(t), &s->val);
    if (st == FT_OK) st = ft_lerp_(t, s->val, s->beta); /* torch.lerp(loss, val, beta) */
    ft_free(m);
    ft_set_grad_enabled(was);
    if (st != FT_OK) {
        ft_free(t);
        return fail(st, "smooth loss");
    }
    ft_free(s->val);
    s->val = t;
    s->count++;
    return FT_OK;
}

ft_status ftf_smooth_value(const ftf_smooth_loss *s, double *out) {
    *out = NAN;
    if (!s->val) return FT_OK;
    ft_tensor *v = NULL;
    ft_status st = ft_binary_scalar(FT_DIV, s->val, 1 - pow(s->beta, (double)s->count), &v);
    if (st == FT_OK) st = ft_item(v, out);
    ft_free(v);
    return fail(st, "smooth loss value");
}
