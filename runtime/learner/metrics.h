/* metrics.h: fastai's metrics, their accumulators and LabelSmoothingCrossEntropy over shim
 * tensors (fastai's metrics.py, losses.py).
 *
 * Targets are class indices, 0-based int64 (the shim's convention; the Lua bindings take
 * 1-based ones). Metric results are 0-dim float32 tensors, as fastai's. The accumulators keep
 * their totals as tensors on the values' device, adding with the same float32 ops as fastai's
 * (total += value*bs; lerp for the smoothed loss), so nothing waits for the device until a
 * value is read. Failures return a status other than FT_OK with ft_last_error() set.
 */
#ifndef FTL_METRICS_H
#define FTL_METRICS_H

#include <stdint.h>

#include "torch/ft_torch.h"

/* accuracy: (pred.argmax(-1) == targ).float().mean(), both flattened, lengths must match. */
ft_status ftf_accuracy(const ft_tensor *pred, const ft_tensor *targ, ft_tensor **out);
/* error_rate: 1 - accuracy */
ft_status ftf_error_rate(const ft_tensor *pred, const ft_tensor *targ, ft_tensor **out);
/* top_k_accuracy: is targ among the k largest of pred's last dim; the mean of that. */
ft_status ftf_top_k_accuracy(const ft_tensor *pred, const ft_tensor *targ, int k, ft_tensor **out);

/* LabelSmoothingCrossEntropy(eps): lp = log_softmax(out, 1), c = out.size(1);
 *   mean: (-lp.sum(1)).mean()*eps/c + (1-eps)*nll_loss(lp, targ)
 *   sum:  (-lp.sum())*eps/c + (1-eps)*nll_loss(lp, targ, sum)
 *   none: (-lp.sum(1))*eps/c + (1-eps)*nll_loss(lp, targ, none)
 * Differentiable (autograd follows the shim's ops). */
ft_status ftf_label_smoothing_ce(const ft_tensor *logits, const ft_tensor *targ, double eps,
                                 ft_reduction reduction, ft_tensor **out);

/* AvgMetric and AvgLoss: total += value*bs, count += bs; value = total/count. A metric may
 * give tensors or plain numbers; numbers add up in double until a tensor comes, as Python's
 * float + tensor does. For AvgLoss pass loss.mean(). */
typedef struct {
    ft_tensor *total; /* NULL while only numbers came */
    double dtotal;
    int64_t count;
} ftf_avg;
void ftf_avg_reset(ftf_avg *a); /* frees the total */
ft_status ftf_avg_add(ftf_avg *a, const ft_tensor *value, int64_t bs);
void ftf_avg_add_number(ftf_avg *a, double value, int64_t bs);
/* total/count (float32 when the total is a tensor, as fastai's); NaN when count is 0. */
ft_status ftf_avg_value(const ftf_avg *a, double *out);

/* AvgSmoothLoss(beta=0.98): val = lerp(loss.mean(), val, beta), count += 1; value is
 * val/(1-beta^count). Reset only when a fit starts, not per epoch. */
typedef struct {
    ft_tensor *val; /* float32, 0-dim, on the loss's device; NULL means 0 */
    int64_t count;
    double beta;
} ftf_smooth_loss;
void ftf_smooth_reset(ftf_smooth_loss *s, double beta); /* frees val */
ft_status ftf_smooth_add(ftf_smooth_loss *s, const ft_tensor *loss);
ft_status ftf_smooth_value(const ftf_smooth_loss *s, double *out); /* NaN before any batch */

#endif /* FTL_METRICS_H */
