/* optimizer.h: fastai's Adam and SGD over shim tensors (fastai's optimizer.py), and in-memory
 * snapshots of their state and of tensor lists (what lr_find needs to restore exactly).
 *
 * One optimizer type, ftf_adam, with a kind: the groups, flags, freeze and snapshots are shared,
 * only the per-parameter step differs. Both start with fastai's weight decay:
 *     if do_wd and wd != 0:  p *= 1 - lr*wd                    (decoupled, decouple_wd=True)
 *                       or:  grad += wd*p                      (l2_reg, decouple_wd=False)
 *
 * Adam, per parameter with a gradient, using its group's hypers, in this order:
 *     weight decay, as above
 *     grad_avg = grad_avg*mom + grad*(1-mom)                    (mul_ then add_, as fastai)
 *     sqr_avg  = sqr_avg*sqr_mom + grad*grad*(1-sqr_mom)        (mul_ then addcmul_)
 *     step += 1
 *     debias1 = (1-mom)*(1-mom^step)/(1-mom), debias2 likewise with sqr_mom
 *     p += -lr/debias1 * grad_avg / (sqrt(sqr_avg/debias2) + eps)
 * The same libtorch ops in the same order as fastai's callbacks, so a step is bit-identical
 * to fastai's.
 *
 * SGD (fastai's SGD(params, lr, mom=0, wd=0, decouple_wd=True)):
 *     weight decay, as above
 *     if momentum:  grad_avg = grad_avg*mom + grad              (average_grad, no dampening)
 *     p += -lr * (momentum ? grad_avg : grad)                   (momentum_step or sgd_step)
 * Like fastai, whether SGD keeps grad_avg is decided once, when it is made (mom != 0); a
 * scheduled mom then changes the average's coefficient, and one made with mom 0 ignores mom.
 *
 * A parameter whose grad is undefined (frozen) is skipped entirely: no decay, no
 * state change. The optimizer holds its own handles on the parameters (shim shallow copies:
 * the same tensors), so it never depends on a Lua value staying alive.
 *
 * Failures return a status other than FT_OK and leave a message for ft_last_error().
 */
#ifndef FTL_OPTIMIZER_H
#define FTL_OPTIMIZER_H

#include <stdint.h>

#include "torch/ft_torch.h"

typedef enum { FTL_LR = 0, FTL_MOM, FTL_SQR_MOM, FTL_EPS, FTL_WD, FTL_NHYPERS } ftf_hyper;

typedef struct {
    double lr, mom, sqr_mom, eps, wd;
} ftf_adam_hypers;

/* fastai's Adam defaults with the Learner's lr: lr 1e-3, mom 0.9, sqr_mom 0.99, eps 1e-5,
 * wd 0.01. */
ftf_adam_hypers ftf_adam_defaults(void);
/* "lr", "mom", "sqr_mom", "eps", "wd" -> ftf_hyper, or -1. */
int ftf_hyper_from_name(const char *name);
const char *ftf_hyper_name(ftf_hyper k);

typedef struct {
    ft_tensor *p;                  /* our handle on the parameter (shares its tensor) */
    ft_tensor *grad_avg, *sqr_avg; /* NULL until the first step, like fastai's lazy state */
    int64_t step;
    int do_wd;       /* 0 for norm-layer params and biases (fastai's wd_bn_bias=False) */
    int force_train; /* norm-layer params stay trainable when frozen (train_bn=True) */
    int group;
} ftf_adam_param;

typedef enum { FTL_OPT_ADAM = 0, FTL_OPT_SGD } ftf_opt_kind;

/* fastai's SGD defaults: lr 1e-3 (the Learner's), mom 0, wd 0 (sqr_mom and eps unused). */
ftf_adam_hypers ftf_sgd_defaults(void);
const char *ftf_opt_kind_name(ftf_opt_kind kind); /* "Adam", "SGD" */

typedef struct {
    ftf_opt_kind kind;
    int l2_wd;    /* 1: fastai's decouple_wd=False (l2_reg into the grad); 0: decoupled */
    int momentum; /* SGD: keeps grad_avg (fastai's mom != 0 at creation); Adam always does */
    int n_groups, n_params;
    ftf_adam_hypers *hypers; /* per group */
    int *group_start;        /* group g holds params [group_start[g], group_start[g+1]) */
    ftf_adam_param *params;
} ftf_adam;

ftf_adam *new_ftl_adam(void); /* Adam, decoupled wd; NULL when out of memory */
/* SGD; momentum as fastai's mom != 0 at creation, l2_wd as decouple_wd=False. */
ftf_adam *new_ftl_sgd(int momentum, int l2_wd);
void free_ftl_adam(ftf_adam *o);
/* Appends a parameter group (do_wd 1, force_train 0 for each param). */
ft_status ftf_adam_add_group(ftf_adam *o, ft_tensor *const *params, int n,
                             const ftf_adam_hypers *h);

/* One step over every parameter that has a grad (autograd off while it runs). */
ft_status ftf_adam_step(ftf_adam *o);
/* set_to_none: grads become undefined (the default in ftlua: see docs/learner.md); otherwise
 * they are zeroed in place like fastai's grad.detach_().zero_(). */
ft_status ftf_adam_zero_grad(ftf_adam *o, int set_to_none);
/* Drops grad_avg, sqr_avg and step of every param; keeps do_wd and force_train. */
void ftf_adam_clear_state(ftf_adam *o);
/* Sets hyper k of every group: values[g] for group g. */
void ftf_adam_set_hyper(ftf_adam *o, ftf_hyper k, const double *values);
double ftf_adam_get_hyper(const ftf_adam *o, int group, ftf_hyper k);
/* fastai's freeze_to(n): groups before n (n < 0 counts from the end) get requires_grad =
 * force_train, the others requires_grad = 1. *frozen_idx (may be NULL) gets fastai's
 * frozen_idx; when it is >= n_groups the whole model is frozen (fastai warns). The caller
 * clears the state afterwards, as Learner.freeze_to does. */
ft_status ftf_adam_freeze_to(ftf_adam *o, int n, int *frozen_idx);

/* A deep copy of the hypers and of every param's state (tensors cloned). */
typedef struct {
    int n_groups, n_params;
    ftf_adam_hypers *hypers;
    ftf_adam_param *params; /* p is NULL here */
} ftf_adam_snapshot;
ft_status new_ftl_adam_snapshot(const ftf_adam *o, ftf_adam_snapshot **out);
/* Puts the snapshot's hypers and state back, bit for bit (the snapshot stays usable). The
 * optimizer must have the same groups and params as when it was taken. */
ft_status ftf_adam_restore(ftf_adam *o, const ftf_adam_snapshot *s);
void free_ftl_adam_snapshot(ftf_adam_snapshot *s);

/* Copies of a list of tensors (weights, buffers), restored in place with copy_ so that every
 * handle on them sees the old values again, bit for bit. NULL entries are kept as NULL. */
typedef struct {
    int n;
    ft_tensor **copies;
} ftf_tensor_snapshot;
ft_status new_ftl_tensor_snapshot(ft_tensor *const *ts, int n, ftf_tensor_snapshot **out);
ft_status ftf_tensor_snapshot_restore(const ftf_tensor_snapshot *s, ft_tensor *const *ts, int n);
void free_ftl_tensor_snapshot(ftf_tensor_snapshot *s);

#endif /* FTL_OPTIMIZER_H */
