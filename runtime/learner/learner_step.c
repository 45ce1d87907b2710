/* learner_step.c: one batch, as fastai's _do_one_batch: pred = model(x); loss = loss_func(pred, y);
 * loss.backward(); opt.step(); opt.zero_grad(). Hypers come from the schedule at fastai's
 * pct_train before the batch; the smoothed loss (beta 0.98) is updated after it. Validation
 * runs in eval mode without autograd and keeps sample-weighted means.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/hooks.h"
#include "learner/learner_internal.h"

/* ---------------------------------------------------------------- one batch */

int ftl_fit_forward(lua_State *L, fit_state *fs, const ft_tensor *x, ft_tensor **out) {
    ftl_learner *ln = fs->ln;
    ftm_ctx c;
    memset(&c, 0, sizeof c);
    c.L = L;
    ft_autocast_state saved;
    int amp = ln->amp != FTL_AMP_OFF;
    if (amp &&
        ft_autocast_enter(ln->amp == FTL_AMP_FP16,
                          ln->amp == FTL_AMP_FP16 ? FT_FLOAT16 : FT_BFLOAT16, &saved) != FT_OK)
        return ftl_fit_shim_fail(fs, "autocast");
    ft_tensor *r = NULL;
    ft_status st = ftm_forward(&c, ln->model, x, &r);
    if (amp) ft_autocast_exit(&saved);
    if (st != FT_OK) {
        if (c.lua_error) {
            snprintf(fs->err, sizeof fs->err, "model forward: %s", lua_tostring(L, -1));
            lua_pop(L, 1);
        } else {
            snprintf(fs->err, sizeof fs->err, "model forward%s%s: %s", c.where[0] ? " at " : "",
                     c.where, c.msg);
        }
        return FAIL;
    }
    if (ft_get_dtype(r) != FT_FLOAT32) { /* fastai casts the prediction to float for the loss */
        ft_tensor *f = NULL;
        st = ft_to(r, FT_FLOAT32, ft_device(r), &f);
        ft_free(r);
        if (st != FT_OK) return ftl_fit_shim_fail(fs, "model output");
        r = f;
    }
    *out = r;
    return GO;
}

/* y + 1: the shim's 0-based classes to Lua's 1-based ones, as a Lua tensor on the stack. */
static int push_targets(lua_State *L, fit_state *fs, const ft_tensor *y) {
    ft_tensor *t = NULL;
    if (ft_binary_scalar(FT_ADD, y, 1, &t) != FT_OK) return ftl_fit_shim_fail(fs, "targets");
    ftl_push_tensor(L, t);
    return GO;
}

/* loss_func(pred, y) with the given reduction ("mean" for training). */
int ftl_fit_loss(lua_State *L, fit_state *fs, const ft_tensor *pred, const ft_tensor *y,
                 ft_reduction red, ft_tensor **out) {
    ftl_learner *ln = fs->ln;
    ft_status st;
    switch (ln->loss) {
    case FTL_LOSS_CE:
        st = ft_cross_entropy(pred, y, NULL, red, 0.0, out);
        return st == FT_OK ? GO : ftl_fit_shim_fail(fs, "loss");
    case FTL_LOSS_LS:
        st = ftf_label_smoothing_ce(pred, y, ln->ls_eps, red, out);
        return st == FT_OK ? GO : ftl_fit_shim_fail(fs, "loss");
    default: {
        int top = lua_gettop(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, ln->loss_ref);
        ft_tensor *p = NULL;
        if (ft_shallow_copy(pred, &p) != FT_OK) return ftl_fit_shim_fail(fs, "loss");
        ftl_push_tensor(L, p);
        if (push_targets(L, fs, y) != GO) return lua_settop(L, top), FAIL;
        lua_pushstring(L, red == FT_REDUCE_NONE ? "none" : red == FT_REDUCE_SUM ? "sum" : "mean");
        if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
            snprintf(fs->err, sizeof fs->err, "loss function failed: %s", lua_tostring(L, -1));
            lua_settop(L, top);
            return FAIL;
        }
        ft_tensor *t = ftl_to_tensor(L, -1);
        int r = GO;
        if (!t)
            r = ftl_fit_failf(fs, "loss function returned a %s, expected a tensor",
                              luaL_typename(L, -1));
        else if (ft_shallow_copy(t, out) != FT_OK)
            r = ftl_fit_shim_fail(fs, "loss");
        lua_settop(L, top);
        return r;
    }
    }
}

/* fp16 on CUDA: a step only when every gradient is finite; the scale halves on overflow and
 * doubles after 2000 good steps (torch's GradScaler defaults). Returns 1 when the step should
 * be skipped. Gradients are unscaled in place. */
static int unscale_grads(fit_state *fs, int *skip) {
    ftf_adam *o = fs->ln->opt;
    int finite = 1;
    for (int i = 0; i < o->n_params && finite; i++) {
        ft_tensor *g = NULL;
        if (ft_grad(o->params[i].p, &g) != FT_OK) return ftl_fit_shim_fail(fs, "fp16");
        if (!g) continue;
        ft_tensor *ok = NULL, *all = NULL;
        ft_status st = ft_binary_scalar_(FT_MUL, g, 1.0 / fs->ln->loss_scale);
        if (st == FT_OK) st = ft_unary(FT_ISFINITE, g, &ok);
        if (st == FT_OK) st = ft_reduce_all(FT_ALL, ok, &all);
        double v = 1;
        if (st == FT_OK) st = ft_item(all, &v);
        ft_free(g);
        ft_free(ok);
        ft_free(all);
        if (st != FT_OK) return ftl_fit_shim_fail(fs, "fp16");
        finite = v != 0;
    }
    ftl_learner *ln = fs->ln;
    if (!finite) {
        ln->loss_scale /= 2;
        ln->good_steps = 0;
    } else if (++ln->good_steps >= 2000) {
        ln->loss_scale *= 2;
        ln->good_steps = 0;
    }
    *skip = !finite;
    return GO;
}

/* ---------------------------------------------------------------- validation */

static int add_metrics(lua_State *L, fit_state *fs, const ft_tensor *pred, const ft_tensor *y,
                       int64_t bs) {
    ftl_learner *ln = fs->ln;
    for (int i = 0; i < ln->n_metrics; i++) {
        ftl_metric *m = &ln->metrics[i];
        ft_tensor *v = NULL;
        ft_status st = FT_OK;
        if (m->kind == FTL_MET_ERROR_RATE)
            st = ftf_error_rate(pred, y, &v);
        else if (m->kind == FTL_MET_ACCURACY)
            st = ftf_accuracy(pred, y, &v);
        else if (m->kind == FTL_MET_TOP_K)
            st = ftf_top_k_accuracy(pred, y, m->k, &v);
        else {
            int top = lua_gettop(L);
            lua_rawgeti(L, LUA_REGISTRYINDEX, m->ref);
            ft_tensor *p = NULL;
            if (ft_shallow_copy(pred, &p) != FT_OK) return ftl_fit_shim_fail(fs, "metric");
            ftl_push_tensor(L, p);
            if (push_targets(L, fs, y) != GO) return lua_settop(L, top), FAIL;
            if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
                snprintf(fs->err, sizeof fs->err, "metric '%s' failed: %s", m->name,
                         lua_tostring(L, -1));
                lua_settop(L, top);
                return FAIL;
            }
            ft_tensor *t = ftl_to_tensor(L, -1);
            if (t)
                st = ftf_avg_add(&fs->vmet[i], t, bs);
            else if (lua_type(L, -1) == LUA_TNUMBER)
                ftf_avg_add_number(&fs->vmet[i], lua_tonumber(L, -1), bs);
            else {
                snprintf(fs->err, sizeof fs->err,
                         "metric '%s' returned a %s, expected a number or a tensor", m->name,
                         luaL_typename(L, -1));
                lua_settop(L, top);
                return FAIL;
            }
            lua_settop(L, top);
            if (st != FT_OK) return ftl_fit_failf(fs, "metric '%s': %s", m->name, ft_last_error());
            continue;
        }
        if (st == FT_OK) st = ftf_avg_add(&fs->vmet[i], v, bs);
        ft_free(v);
        if (st != FT_OK) return ftl_fit_failf(fs, "metric '%s': %s", m->name, ft_last_error());
    }
    return GO;
}

int ftl_validate(lua_State *L, fit_state *fs, fit_lua *fl, ftd_loader *valid, int epoch,
                 int n_epoch) {
    ftl_learner *ln = fs->ln;
    ftf_avg_reset(&fs->vloss);
    for (int i = 0; i < FTL_MAX_METRICS; i++) ftf_avg_reset(&fs->vmet[i]);
    int r = ftl_run_event(L, fs, fl, EV_BEFORE_VALIDATE);
    if (r == FAIL || r >= CANCEL_EPOCH) return r;
    if (r == CANCEL_VALID) return GO;
    ftm_set_training(ln->model, 0);
    char err[512];
    if (ftd_loader_start(valid, 0, -1, err, sizeof err))
        return ftl_fit_failf(fs, "valid loader: %s", err);
    fs->running = valid;
    int64_t total = ftd_loader_len(valid), v = 0;
    if (!fl->has[EV_BEFORE_BATCH] &&
        ftr_dist_is_main()) { /* a valid bar, as fastprogress draws one */
        ftf_pbar_start(&fs->bar, stdout, epoch, n_epoch, (int)total, monotonic_seconds());
        fs->bar_on = 1;
    }
    ft_set_grad_enabled(0);
    fs->grad_off = 1;
    r = GO;
    for (;;) {
        int got = ftl_fit_next_batch(fs, ln, valid, "validation");
        if (got == 0) break;
        if (got != 1) {
            r = got;
            break;
        }
        int64_t bs = ft_size(fs->y, 0);
        if ((r = ftl_fit_forward(L, fs, fs->x, &fs->pred)) != GO) break;
        if ((r = ftl_fit_loss(L, fs, fs->pred, fs->y, FT_REDUCE_MEAN, &fs->loss)) != GO) break;
        if (ftf_avg_add(&fs->vloss, fs->loss, bs) != FT_OK) {
            r = ftl_fit_shim_fail(fs, "valid loss");
            break;
        }
        if ((r = add_metrics(L, fs, fs->pred, fs->y, bs)) != GO) break;
        ftl_fit_batch_free(fs);
        if (fs->bar_on) ftf_pbar_update(&fs->bar, (int)++v, monotonic_seconds());
        if (ftb_interrupted()) break;
    }
    ftl_fit_batch_free(fs);
    ft_set_grad_enabled(1);
    fs->grad_off = 0;
    ftd_loader_stop(valid);
    fs->running = NULL;
    if (fs->bar_on) ftf_pbar_finish(&fs->bar);
    fs->bar_on = 0;
    if (r == GO && ftl_fit_dist(ln)) r = ftl_fit_reduce_avgs(fs, ftl_fit_dist(ln));
    if (r != GO) return r;
    return ftl_run_event(L, fs, fl, EV_AFTER_VALIDATE);
}

/* ParamScheduler/LRFinder before_batch: the hypers of the batch at training position pos. */
static void set_batch_hypers(fit_state *fs, fit_spec *sp, double pos) {
    ftl_learner *ln = fs->ln;
    int ng = ln->n_groups;
    double lrs[64], moms[64];
    if (sp->kind == SCHED_LR_FIND) {
        double lr = ftf_lr_finder_lr(&sp->finder);
        for (int g = 0; g < ng; g++) lrs[g] = lr;
        ftf_adam_set_hyper(ln->opt, FTL_LR, lrs);
    } else if (fs->lr_s) {
        ftf_sched_at(fs->lr_s, pos, lrs);
        ftf_adam_set_hyper(ln->opt, FTL_LR, lrs);
    }
    if (fs->mom_s) {
        double m[64];
        ftf_sched_at(fs->mom_s, pos, m);
        for (int g = 0; g < ng; g++) moms[g] = fs->mom_s->n_groups == 1 ? m[0] : m[g];
        ftf_adam_set_hyper(ln->opt, FTL_MOM, moms);
    }
}

/* learn.epoch, iter, n_iter, pct_train, train_iter, training, xb, yb: what batch callbacks
 * read. Returns -1 when a tensor could not be shared. */
static int expose_batch(lua_State *L, fit_state *fs, fit_lua *fl, int epoch, int it, int n_iter,
                        double pos, int64_t train_iter) {
    ftl_fit_set_int(L, fl->learn, "epoch", epoch);
    ftl_fit_set_int(L, fl->learn, "iter", it);
    ftl_fit_set_int(L, fl->learn, "n_iter", n_iter);
    ftl_fit_set_num(L, fl->learn, "pct_train", pos);
    ftl_fit_set_int(L, fl->learn, "train_iter", train_iter);
    lua_pushboolean(L, 1);
    lua_setfield(L, fl->learn, "training");
    if (ftl_fit_set_tensor(L, fl->learn, "xb", fs->x) ||
        ftl_fit_set_tensor(L, fl->learn, "yb", fs->y))
        return -1;
    return 0;
}

/* pred = model(x); loss = loss_func(pred, y); after_loss. Returns GO or what after_loss says. */
static int batch_loss(lua_State *L, fit_state *fs, fit_lua *fl) {
    int r;
    if ((r = ftl_fit_forward(L, fs, fs->x, &fs->pred)) != GO) return r;
    if ((r = ftl_fit_loss(L, fs, fs->pred, fs->y, FT_REDUCE_MEAN, &fs->loss)) != GO) return r;
    if (fl->has[EV_AFTER_LOSS]) {
        if (ftl_fit_set_tensor(L, fl->learn, "loss", fs->loss) ||
            ftl_fit_set_tensor(L, fl->learn, "pred", fs->pred))
            return ftl_fit_shim_fail(fs, "batch");
    }
    return ftl_run_event(L, fs, fl, EV_AFTER_LOSS);
}

/* loss.backward() (scaled for fp16), the data-parallel reduce, opt.step(), opt.zero_grad(). */
static int backward_and_step(fit_state *fs) {
    ftl_learner *ln = fs->ln;
    ft_dist *d = ftl_fit_dist(ln);
    int skip = 0, r;
    if (fs->reducer && ft_dist_reducer_prepare(fs->reducer, (double)ft_size(fs->y, 0)) != FT_OK)
        return ftl_fit_shim_fail(fs, "data parallel step");
    if (ln->amp == FTL_AMP_FP16) {
        ft_tensor *scaled = NULL;
        ft_status st = ft_binary_scalar(FT_MUL, fs->loss, ln->loss_scale, &scaled);
        if (st == FT_OK) st = ft_backward(scaled, NULL, 0);
        ft_free(scaled);
        if (st != FT_OK) return ftl_fit_shim_fail(fs, "backward");
        /* reduced before the check, so every rank skips the same steps */
        if (d && (r = ftl_fit_reduce_grads(fs, d)) != GO) return r;
        if ((r = unscale_grads(fs, &skip)) != GO) return r;
    } else {
        if (ft_backward(fs->loss, NULL, 0) != FT_OK) return ftl_fit_shim_fail(fs, "backward");
        if (d && (r = ftl_fit_reduce_grads(fs, d)) != GO) return r;
    }
    if (!skip && ftf_adam_step(ln->opt) != FT_OK) return ftl_fit_shim_fail(fs, "optimizer step");
    if (ftf_adam_zero_grad(ln->opt, 1) != FT_OK) return ftl_fit_shim_fail(fs, "zero_grad");
    return GO;
}

/* Appends the n per-group values v to d. */
static int rec_push_groups(ftl_dvec *d, const double *v, int n) {
    for (int i = 0; i < n; i++)
        if (ftl_dvec_push(d, v[i])) return -1;
    return 0;
}

/* Recorder.after_batch: the smoothed loss (into *sl) and the hypers of this batch. */
static int record_batch(fit_state *fs, double *sl) {
    ftl_learner *ln = fs->ln;
    int ng = ln->n_groups;
    double lrs[64], moms[64];
    *sl = NAN;
    if (ftf_smooth_add(&fs->smooth, fs->loss) != FT_OK ||
        ftf_smooth_value(&fs->smooth, sl) != FT_OK)
        return ftl_fit_shim_fail(fs, "smooth loss");
    for (int g = 0; g < ng; g++) {
        lrs[g] = ftf_adam_get_hyper(ln->opt, g, FTL_LR);
        moms[g] = ftf_adam_get_hyper(ln->opt, g, FTL_MOM);
    }
    if (rec_push_groups(&ln->rec.lrs, lrs, ng) || rec_push_groups(&ln->rec.moms, moms, ng) ||
        ftl_dvec_push(&ln->rec.losses, *sl))
        return ftl_fit_failf(fs, "recorder: out of memory");
    return GO;
}

/* The optimizer's part of batch it, and what follows it: the recorder, the progress bar's
 * loss, and lr_find's stop (CANCEL_FIT when the loss diverged or num_it was reached). */
static int step_and_record(lua_State *L, fit_state *fs, fit_lua *fl, fit_spec *sp, int it,
                           int64_t *train_iter) {
    int r = backward_and_step(fs);
    if (r != GO) return r;
    double sl;
    if ((r = record_batch(fs, &sl)) != GO) return r;
    if (fs->bar_on) ftf_pbar_comment(&fs->bar, sl);
    (*train_iter)++;
    if (fl->has[EV_AFTER_BATCH]) ftl_fit_set_num(L, fl->learn, "smooth_loss", sl);
    if (sp->kind == SCHED_LR_FIND && ftf_lr_finder_after_batch(&sp->finder, sl)) {
        ftl_fit_batch_free(fs);
        if (fs->bar_on) ftf_pbar_update(&fs->bar, it + 1, monotonic_seconds());
        return CANCEL_FIT;
    }
    return GO;
}

/* Training batch it (already in fs->x, fs->y) with its callbacks. Returns GO to go on, or
 * what ends the epoch. */
static int train_batch(lua_State *L, fit_state *fs, fit_lua *fl, fit_spec *sp, int epoch, int it,
                       int n_iter, int n_epoch, int64_t *train_iter) {
    double pos = ftf_train_pos(epoch, it, n_iter, n_epoch);
    set_batch_hypers(fs, sp, pos);
    if (fl->has[EV_BEFORE_BATCH] || fl->has[EV_AFTER_LOSS] || fl->has[EV_AFTER_BATCH]) {
        if (expose_batch(L, fs, fl, epoch, it, n_iter, pos, *train_iter))
            return ftl_fit_shim_fail(fs, "batch");
    }
    int c = ftl_run_event(L, fs, fl, EV_BEFORE_BATCH);
    if (c == FAIL || c >= CANCEL_TRAIN) return c;
    if (c != CANCEL_BATCH) c = batch_loss(L, fs, fl);
    if (c == FAIL || c >= CANCEL_TRAIN) return c;
    if (c != CANCEL_BATCH) {
        int r = step_and_record(L, fs, fl, sp, it, train_iter);
        if (r != GO) return r;
    }
    c = ftl_run_event(L, fs, fl, EV_AFTER_BATCH);
    ftl_fit_batch_free(fs);
    if (fs->bar_on) ftf_pbar_update(&fs->bar, it + 1, monotonic_seconds());
    if (c == FAIL || c >= CANCEL_TRAIN) return c;
    if (ftb_interrupted()) {
        snprintf(fs->err, sizeof fs->err, "interrupted!");
        return CANCEL_FIT;
    }
    return GO;
}

/* The training part of one epoch. */
int ftl_train_epoch(lua_State *L, fit_state *fs, fit_lua *fl, fit_spec *sp, ftd_loader *train,
                    int epoch, int n_epoch, int64_t *train_iter) {
    ftl_learner *ln = fs->ln;
    if (ln->n_groups > 64) return ftl_fit_failf(fs, "at most 64 parameter groups");
    int r = ftl_run_event(L, fs, fl, EV_BEFORE_TRAIN);
    if (r == FAIL || r >= CANCEL_EPOCH) return r;
    if (r == CANCEL_TRAIN) return GO;
    ftm_set_training(ln->model, 1);
    char err[512];
    if (ftd_loader_start(train, ln->data_epoch++, -1, err, sizeof err))
        return ftl_fit_failf(fs, "train loader: %s", err);
    fs->running = train;
    int n_iter = (int)ftd_loader_len(train);
    if (ftr_dist_is_main()) { /* only rank 0 prints */
        ftf_pbar_start(&fs->bar, stdout, epoch, n_epoch, n_iter, monotonic_seconds());
        fs->bar_on = 1;
    }
    r = GO;
    for (int it = 0; r == GO; it++) {
        int got = ftl_fit_next_batch(fs, ln, train, "training");
        if (got != 1) {
            if (got != 0) r = got;
            break;
        }
        r = train_batch(L, fs, fl, sp, epoch, it, n_iter, n_epoch, train_iter);
    }
    ftl_fit_batch_free(fs);
    ftd_loader_stop(train);
    fs->running = NULL;
    if (fs->bar_on) ftf_pbar_finish(&fs->bar);
    fs->bar_on = 0;
    if (r == CANCEL_TRAIN) r = GO;
    if (r != GO) return r;
    return ftl_run_event(L, fs, fl, EV_AFTER_TRAIN);
}
