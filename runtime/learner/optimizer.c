/* optimizer.c: fastai's Adam and SGD over shim tensors, and state snapshots. See optimizer.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "learner/optimizer.h"

/* Records the shim's message for ft_last_error() and passes the status on. */
static ft_status fail(ft_status st, const char *what) {
    if (st != FT_OK) ft_set_last_error("%s: %s", what, ft_last_error());
    return st;
}

static ft_status oom(const char *what) {
    ft_set_last_error("%s: out of memory", what);
    return FT_ERR_OOM;
}

ftf_adam_hypers ftf_adam_defaults(void) {
    ftf_adam_hypers h = {1e-3, 0.9, 0.99, 1e-5, 0.01};
    return h;
}

ftf_adam_hypers ftf_sgd_defaults(void) {
    ftf_adam_hypers h = ftf_adam_defaults();
    h.mom = 0;
    h.wd = 0;
    return h;
}

const char *ftf_opt_kind_name(ftf_opt_kind kind) { return kind == FTL_OPT_SGD ? "SGD" : "Adam"; }

static const char *const HYPER_NAMES[FTL_NHYPERS] = {"lr", "mom", "sqr_mom", "eps", "wd"};

int ftf_hyper_from_name(const char *name) {
    for (int k = 0; k < FTL_NHYPERS; k++)
        if (!strcmp(name, HYPER_NAMES[k])) return k;
    return -1;
}

const char *ftf_hyper_name(ftf_hyper k) { return k >= 0 && k < FTL_NHYPERS ? HYPER_NAMES[k] : "?"; }

static double *hyper_field(ftf_adam_hypers *h, ftf_hyper k) {
    switch (k) {
    case FTL_LR: return &h->lr;
    case FTL_MOM: return &h->mom;
    case FTL_SQR_MOM: return &h->sqr_mom;
    case FTL_EPS: return &h->eps;
    default: return &h->wd;
    }
}

/* ---------------------------------------------------------------- lifetime */

ftf_adam *new_ftl_adam(void) {
    ftf_adam *o = calloc(1, sizeof *o);
    if (o) o->group_start = calloc(1, sizeof(int));
    if (!o || !o->group_start) {
        free(o);
        return NULL;
    }
    o->momentum = 1; /* Adam's grad_avg */
    return o;
}

ftf_adam *new_ftl_sgd(int momentum, int l2_wd) {
    ftf_adam *o = new_ftl_adam();
    if (o) {
        o->kind = FTL_OPT_SGD;
        o->momentum = momentum;
        o->l2_wd = l2_wd;
    }
    return o;
}

static void drop_state(ftf_adam_param *q) {
    ft_free(q->grad_avg);
    ft_free(q->sqr_avg);
    q->grad_avg = q->sqr_avg = NULL;
    q->step = 0;
}

void free_ftl_adam(ftf_adam *o) {
    if (!o) return;
    for (int i = 0; i < o->n_params; i++) {
        drop_state(&o->params[i]);
        ft_free(o->params[i].p);
    }
    free(o->params);
    free(o->hypers);
    free(o->group_start);
    free(o);
}

ft_status ftf_adam_add_group(ftf_adam *o, ft_tensor *const *params, int n,
                             const ftf_adam_hypers *h) {
    if (n < 0) n = 0;
    ftf_adam_hypers *hy = realloc(o->hypers, sizeof *hy * (size_t)(o->n_groups + 1));
    if (!hy) return oom("add_group");
    o->hypers = hy;
    int *gs = realloc(o->group_start, sizeof *gs * (size_t)(o->n_groups + 2));
    if (!gs) return oom("add_group");
    o->group_start = gs;
    ftf_adam_param *ps = realloc(o->params, sizeof *ps * (size_t)(o->n_params + n + 1));
    if (!ps) return oom("add_group");
    o->params = ps;
    for (int i = 0; i < n; i++) {
        ft_tensor *p = NULL;
        ft_status st = ft_shallow_copy(params[i], &p);
        if (st != FT_OK) { /* undo this group's params */
            for (int j = 0; j < i; j++) ft_free(o->params[o->n_params + j].p);
            return fail(st, "add_group");
        }
        ftf_adam_param q = {.p = p, .do_wd = 1, .group = o->n_groups};
        o->params[o->n_params + i] = q;
    }
    o->hypers[o->n_groups] = *h;
    o->n_params += n;
    o->n_groups++;
    o->group_start[o->n_groups] = o->n_params;
    return FT_OK;
}

/* ---------------------------------------------------------------- step */

/* zeros_like(grad): a clone keeps the grad's memory format, as zeros_like does. */
static ft_status zeros_like(const ft_tensor *t, ft_tensor **out) {
    ft_status st = ft_clone(t, out);
    if (st == FT_OK && (st = ft_fill_(*out, 0)) != FT_OK) {
        ft_free(*out);
        *out = NULL;
    }
    return st;
}

/* fastai's weight_decay (p *= 1 - lr*wd) or, with l2, its l2_reg (grad += wd*p, in place on
 * the parameter's grad as fastai does). */
static ft_status weight_decay(ftf_adam_param *q, const ftf_adam_hypers *h, ft_tensor *grad,
                              int l2) {
    if (!q->do_wd || h->wd == 0) return FT_OK;
    return l2 ? ft_add_scaled_(grad, q->p, h->wd)
              : ft_binary_scalar_(FT_MUL, q->p, 1 - h->lr * h->wd);
}

static ft_status adam_step_param(ftf_adam_param *q, const ftf_adam_hypers *h, ft_tensor *grad) {
    ft_tensor *den = NULL;
    double lr = h->lr, mom = h->mom, sqr_mom = h->sqr_mom;
    ft_status st = FT_OK;
    if (!q->grad_avg) {
        st = zeros_like(grad, &q->grad_avg);
        if (st == FT_OK) st = zeros_like(grad, &q->sqr_avg);
        if (st != FT_OK) drop_state(q);
    }
    if (st == FT_OK) st = ft_binary_scalar_(FT_MUL, q->grad_avg, mom);
    if (st == FT_OK) st = ft_add_scaled_(q->grad_avg, grad, 1 - mom);
    if (st == FT_OK) st = ft_binary_scalar_(FT_MUL, q->sqr_avg, sqr_mom);
    if (st == FT_OK) st = ft_addcmul_(q->sqr_avg, grad, grad, 1 - sqr_mom);
    if (st == FT_OK) {
        q->step++;
        double step = (double)q->step;
        double debias1 = (1 - mom) * (1 - pow(mom, step)) / (1 - mom);
        double debias2 = (1 - sqr_mom) * (1 - pow(sqr_mom, step)) / (1 - sqr_mom);
        st = ft_binary_scalar(FT_DIV, q->sqr_avg, debias2, &den);
        if (st == FT_OK) st = ft_unary_(FT_SQRT, den);
        if (st == FT_OK) st = ft_binary_scalar_(FT_ADD, den, h->eps);
        if (st == FT_OK) st = ft_addcdiv_(q->p, q->grad_avg, den, -lr / debias1);
    }
    ft_free(den);
    return st;
}

/* fastai's average_grad without dampening, then momentum_step; or sgd_step without momentum. */
static ft_status sgd_step_param(ftf_adam_param *q, const ftf_adam_hypers *h, ft_tensor *grad,
                                int momentum) {
    if (!momentum) return ft_add_scaled_(q->p, grad, -h->lr);
    ft_status st = q->grad_avg ? FT_OK : zeros_like(grad, &q->grad_avg);
    if (st == FT_OK) st = ft_binary_scalar_(FT_MUL, q->grad_avg, h->mom);
    if (st == FT_OK) st = ft_add_scaled_(q->grad_avg, grad, 1.0);
    if (st == FT_OK) st = ft_add_scaled_(q->p, q->grad_avg, -h->lr);
    return st;
}

static ft_status step_param(const ftf_adam *o, ftf_adam_param *q, const ftf_adam_hypers *h) {
    ft_tensor *grad = NULL;
    ft_status st = ft_grad(q->p, &grad);
    if (st != FT_OK || !grad) return st; /* no grad: frozen, skipped like fastai's with_grad */
    st = weight_decay(q, h, grad, o->l2_wd);
    if (st == FT_OK)
        st = o->kind == FTL_OPT_SGD ? sgd_step_param(q, h, grad, o->momentum)
                                    : adam_step_param(q, h, grad);
    ft_free(grad);
    return st;
}

ft_status ftf_adam_step(ftf_adam *o) {
    int was = ft_grad_enabled();
    ft_set_grad_enabled(0); /* in-place updates of leaves that require grad */
    ft_status st = FT_OK;
    for (int i = 0; i < o->n_params && st == FT_OK; i++)
        st = step_param(o, &o->params[i], &o->hypers[o->params[i].group]);
    ft_set_grad_enabled(was);
    return fail(st, o->kind == FTL_OPT_SGD ? "SGD step" : "Adam step");
}

ft_status ftf_adam_zero_grad(ftf_adam *o, int set_to_none) {
    int was = ft_grad_enabled();
    ft_set_grad_enabled(0);
    ft_status st = FT_OK;
    for (int i = 0; i < o->n_params && st == FT_OK; i++) {
        ft_tensor *g = NULL;
        st = ft_grad(o->params[i].p, &g);
        if (st != FT_OK || !g) continue;
        st = set_to_none ? ft_set_grad(o->params[i].p, NULL) : ft_fill_(g, 0);
        ft_free(g);
    }
    ft_set_grad_enabled(was);
    return fail(st, "zero_grad");
}

void ftf_adam_clear_state(ftf_adam *o) {
    for (int i = 0; i < o->n_params; i++) drop_state(&o->params[i]);
}

void ftf_adam_set_hyper(ftf_adam *o, ftf_hyper k, const double *values) {
    for (int g = 0; g < o->n_groups; g++) *hyper_field(&o->hypers[g], k) = values[g];
}

double ftf_adam_get_hyper(const ftf_adam *o, int group, ftf_hyper k) {
    ftf_adam_hypers h = o->hypers[group];
    return *hyper_field(&h, k);
}

ft_status ftf_adam_freeze_to(ftf_adam *o, int n, int *frozen_idx) {
    int ng = o->n_groups;
    if (frozen_idx) *frozen_idx = n >= 0 ? n : ng + n;
    int cut = n >= 0 ? (n < ng ? n : ng) : (ng + n > 0 ? ng + n : 0); /* Python's groups[:n] */
    for (int i = 0; i < o->n_params; i++) {
        ftf_adam_param *q = &o->params[i];
        ft_status st = ft_set_requires_grad(q->p, q->group >= cut || q->force_train);
        if (st != FT_OK) return fail(st, "freeze_to");
    }
    return FT_OK;
}

/* ---------------------------------------------------------------- snapshots */

static ft_status clone_or_null(const ft_tensor *t, ft_tensor **out) {
    *out = NULL;
    return t ? ft_clone(t, out) : FT_OK;
}

void free_ftl_adam_snapshot(ftf_adam_snapshot *s) {
    if (!s) return;
    for (int i = 0; i < s->n_params; i++) drop_state(&s->params[i]);
    free(s->params);
    free(s->hypers);
    free(s);
}

ft_status new_ftl_adam_snapshot(const ftf_adam *o, ftf_adam_snapshot **out) {
    *out = NULL;
    ftf_adam_snapshot *s = calloc(1, sizeof *s);
    if (!s) return oom("optimizer snapshot");
    s->hypers = malloc(sizeof *s->hypers * (size_t)(o->n_groups + 1));
    s->params = calloc((size_t)o->n_params + 1, sizeof *s->params);
    if (!s->hypers || !s->params) {
        free_ftl_adam_snapshot(s);
        return oom("optimizer snapshot");
    }
    memcpy(s->hypers, o->hypers, sizeof *s->hypers * (size_t)o->n_groups);
    s->n_groups = o->n_groups;
    s->n_params = o->n_params;
    int was = ft_grad_enabled();
    ft_set_grad_enabled(0);
    ft_status st = FT_OK;
    for (int i = 0; i < o->n_params && st == FT_OK; i++) {
        const ftf_adam_param *q = &o->params[i];
        ftf_adam_param *c = &s->params[i];
        c->step = q->step;
        c->do_wd = q->do_wd;
        c->force_train = q->force_train;
        c->group = q->group;
        st = clone_or_null(q->grad_avg, &c->grad_avg);
        if (st == FT_OK) st = clone_or_null(q->sqr_avg, &c->sqr_avg);
    }
    ft_set_grad_enabled(was);
    if (st != FT_OK) {
        free_ftl_adam_snapshot(s);
        return fail(st, "optimizer snapshot");
    }
    *out = s;
    return FT_OK;
}

ft_status ftf_adam_restore(ftf_adam *o, const ftf_adam_snapshot *s) {
    if (s->n_groups != o->n_groups || s->n_params != o->n_params) {
        ft_set_last_error("optimizer restore: the snapshot has %d groups and %d params, the "
                          "optimizer %d and %d",
                          s->n_groups, s->n_params, o->n_groups, o->n_params);
        return FT_ERR;
    }
    /* Clone everything first, so that a failure leaves the optimizer as it was. */
    ft_tensor **fresh = calloc(2 * (size_t)s->n_params + 1, sizeof *fresh);
    if (!fresh) return oom("optimizer restore");
    int was = ft_grad_enabled();
    ft_set_grad_enabled(0);
    ft_status st = FT_OK;
    for (int i = 0; i < s->n_params && st == FT_OK; i++) {
        st = clone_or_null(s->params[i].grad_avg, &fresh[2 * i]);
        if (st == FT_OK) st = clone_or_null(s->params[i].sqr_avg, &fresh[2 * i + 1]);
    }
    ft_set_grad_enabled(was);
    if (st != FT_OK) {
        for (int i = 0; i < 2 * s->n_params; i++) ft_free(fresh[i]);
        free(fresh);
        return fail(st, "optimizer restore");
    }
    for (int i = 0; i < s->n_params; i++) {
        ftf_adam_param *q = &o->params[i];
        drop_state(q);
        q->grad_avg = fresh[2 * i];
        q->sqr_avg = fresh[2 * i + 1];
        q->step = s->params[i].step;
        q->do_wd = s->params[i].do_wd;
        q->force_train = s->params[i].force_train;
    }
    free(fresh);
    memcpy(o->hypers, s->hypers, sizeof *o->hypers * (size_t)o->n_groups);
    return FT_OK;
}

void free_ftl_tensor_snapshot(ftf_tensor_snapshot *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) ft_free(s->copies[i]);
    free(s->copies);
    free(s);
}

ft_status new_ftl_tensor_snapshot(ft_tensor *const *ts, int n, ftf_tensor_snapshot **out) {
    *out = NULL;
    ftf_tensor_snapshot *s = calloc(1, sizeof *s);
    if (s) s->copies = calloc((size_t)n + 1, sizeof *s->copies);
    if (!s || !s->copies) {
        free(s);
        return oom("tensor snapshot");
    }
    s->n = n;
    int was = ft_grad_enabled();
    ft_set_grad_enabled(0); /* plain copies, no autograd history */
    ft_status st = FT_OK;
    for (int i = 0; i < n && st == FT_OK; i++) st = clone_or_null(ts[i], &s->copies[i]);
    ft_set_grad_enabled(was);
    if (st != FT_OK) {
        free_ftl_tensor_snapshot(s);
        return fail(st, "tensor snapshot");
    }
    *out = s;
    return FT_OK;
}

ft_status ftf_tensor_snapshot_restore(const ftf_tensor_snapshot *s, ft_tensor *const *ts, int n) {
    if (n != s->n) {
        ft_set_last_error("tensor restore: the snapshot has %d tensors, got %d", s->n, n);
        return FT_ERR;
    }
    for (int i = 0; i < n; i++)
        if (!ts[i] != !s->copies[i] || (ts[i] && ft_numel(ts[i]) != ft_numel(s->copies[i]))) {
            ft_set_last_error("tensor restore: tensor %d does not match its snapshot", i + 1);
            return FT_ERR;
        }
    int was = ft_grad_enabled();
    ft_set_grad_enabled(0);
    ft_status st = FT_OK;
    for (int i = 0; i < n && st == FT_OK; i++)
        if (ts[i]) st = ft_copy_(ts[i], s->copies[i]);
    ft_set_grad_enabled(was);
    return fail(st, "tensor restore");
}
