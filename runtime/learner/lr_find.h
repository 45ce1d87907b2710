/* lr_find.h: fastai's learning-rate finder (callback/schedule.py): the exponential sweep, the stop
 * rule and the four suggestions (minimum, steep, valley, slide).
 *
 * fastai turns the recorded lrs and smoothed losses into float32 tensors before suggesting,
 * so the comparisons, the steep gradient and np.gradient run in float32 and every suggestion
 * is a float32 lr widened to double (e.g. 1.5848931980144698e-06 for 10**-5.8). We do the
 * same: equal curves give equal suggestions, bit for bit.
 */
#ifndef FTL_LR_FIND_H
#define FTL_LR_FIND_H

/* The sweep of one lr_find run. Batch i (0-based, counted over epochs) gets
 * lr_i = start_lr * (end_lr/start_lr)^(i/num_it); num_it below 6 becomes 6. */
typedef struct {
    double start_lr, end_lr;
    int num_it, stop_div;
    int train_iter; /* batches done */
    float best;     /* best smoothed loss so far */
} ftf_lr_finder;

/* 0 on success; -1 (ft_last_error) when an lr is not a positive finite number. */
int ftf_lr_finder_init(ftf_lr_finder *f, double start_lr, double end_lr, int num_it, int stop_div);
/* The lr of the next batch (the same for every parameter group). */
double ftf_lr_finder_lr(const ftf_lr_finder *f);
/* After a training batch, with the Recorder's smoothed loss: counts the batch and says
 * whether to stop (1) — the loss went over 4x the best, or num_it batches ran. A NaN loss
 * never stops the sweep early (fastai's comparisons are false on NaN). */
int ftf_lr_finder_after_batch(ftf_lr_finder *f, double smooth_loss);
/* fastai's lr_find fits num_it // n_batches + 1 epochs (with the num_it it was given). */
int ftf_lr_find_n_epoch(int num_it, int n_batches);
double ftf_lr_find_lr_at(double start_lr, double end_lr, int num_it, int i);

/* NaN marks a suggestion that needs more points than there are: minimum and valley need 1,
 * steep 2, slide 16 (fastai raises an error in those cases). */
typedef struct {
    double minimum; /* lrs[argmin(losses)] / 10 */
    double steep;   /* the left end of the steepest descent in log-lr */
    double valley;  /* inside the longest strictly decreasing run */
    double slide;   /* the interval slide rule (lr_diff 15, thresh 0.005) */
} ftf_lr_suggestions;

/* From the n recorded lrs and smoothed losses of a sweep and the num_it given to lr_find:
 * takes [num_it//10 : -5] (Python's slice), cuts at the first NaN loss, and suggests.
 * Returns the number of points used, or -1 on a libtorch failure (ft_last_error). */
int ftf_lr_suggest(const double *lrs, const double *losses, int n, int num_it,
                   ftf_lr_suggestions *out);

#endif /* FTL_LR_FIND_H */
