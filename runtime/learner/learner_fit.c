/* learner_fit.c: core:fit, fastai's Learner.fit: the fit state, callbacks, the schedules of a
 * fit, fastai's table and Recorder, and the loop over epochs (one epoch's training and
 * validation are in learner_step.c).
 *
 * Everything the loop owns (batch tensors, schedules, accumulators, snapshots) lives in a
 * fit_state userdata whose __gc frees it, so even an unexpected Lua error cannot leak it; the
 * loop itself never raises: failures are written to fs->err, the loop unwinds, frees, and only
 * then raises the Lua error.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/hooks.h"
#include "learner/learner_internal.h"

/* ---------------------------------------------------------------- the fit state */

const char *const ftl_event_names[NEV] = {
    "before_fit",  "before_epoch",    "before_train",   "before_batch", "after_loss", "after_batch",
    "after_train", "before_validate", "after_validate", "after_epoch",  "after_fit"};

void ftl_fit_batch_free(fit_state *fs) {
    ft_free(fs->x);
    ft_free(fs->y);
    ft_free(fs->pred);
    ft_free(fs->loss);
    fs->x = fs->y = fs->pred = fs->loss = NULL;
}

void ftl_fit_state_clear(fit_state *fs) {
    ftl_fit_batch_free(fs);
    if (fs->running) ftd_loader_stop(fs->running);
    fs->running = NULL;
    if (fs->bar_on) ftf_pbar_finish(&fs->bar);
    fs->bar_on = 0;
    free_ftl_sched(fs->lr_s);
    free_ftl_sched(fs->mom_s);
    fs->lr_s = fs->mom_s = NULL;
    ftf_smooth_reset(&fs->smooth, 0.98);
    ftf_avg_reset(&fs->vloss);
    for (int i = 0; i < FTL_MAX_METRICS; i++) ftf_avg_reset(&fs->vmet[i]);
    free_ftl_tensor_snapshot(fs->wsnap);
    free_ftl_adam_snapshot(fs->osnap);
    fs->wsnap = NULL;
    fs->osnap = NULL;
    free(fs->state);
    fs->state = NULL;
    if (fs->grad_off) ft_set_grad_enabled(1);
    fs->grad_off = 0;
    for (int i = 0; i < 2; i++) {
        if (fs->sharded[i]) ftd_loader_set_shard(fs->sharded[i], FTL_SHARD_NONE, 0, 1);
        fs->sharded[i] = NULL;
    }
    free_ft_dist_reducer(fs->reducer);
    fs->reducer = NULL;
}

int ftl_fit_state_gc(lua_State *L) {
    ftl_fit_state_clear(luaL_checkudata(L, 1, FIT_MT));
    return 0;
}

fit_state *new_ftl_fit_state(lua_State *L, ftl_learner *ln) {
    fit_state *fs = lua_newuserdatauv(L, sizeof *fs, 0);
    memset(fs, 0, sizeof *fs);
    fs->ln = ln;
    fs->smooth.beta = 0.98;
    luaL_setmetatable(L, FIT_MT);
    return fs;
}

int ftl_fit_failf(fit_state *fs, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fs->err, sizeof fs->err, fmt, ap);
    va_end(ap);
    return FAIL;
}

int ftl_fit_shim_fail(fit_state *fs, const char *what) {
    return ftl_fit_failf(fs, "%s: %s", what, ft_last_error());
}

/* The next batch of dl into fs->x / fs->y, laid out channels-last when the learner asks for it.
 * Returns 1 for a batch, 0 at the end of the epoch, FAIL (message in fs->err) on an error.
 * need_y names the phase that needs labels ("training", "validation"), or is NULL. */
int ftl_fit_next_batch(fit_state *fs, const ftl_learner *ln, ftd_loader *dl, const char *need_y) {
    char err[512];
    int got = ftd_loader_next(dl, &fs->x, &fs->y, err, sizeof err);
    if (got < 0) return ftl_fit_failf(fs, "loader: %s", err);
    if (got == 0) return 0;
    if (need_y && !fs->y) return ftl_fit_failf(fs, "%s needs labels", need_y);
    if (ln->channels_last) {
        ft_tensor *c = NULL;
        if (ft_contiguous_channels_last(fs->x, &c) != FT_OK)
            return ftl_fit_shim_fail(fs, "channels_last");
        ft_free(fs->x);
        fs->x = c;
    }
    return 1;
}

/* ---------------------------------------------------------------- Lua calls (protected) */

void ftl_fit_set_num(lua_State *L, int t, const char *k, double v) {
    lua_pushnumber(L, v);
    lua_setfield(L, t, k);
}

/* Counters (epoch, iter, ...) are Lua integers: CSVLogger and users print them as "0", not
 * "0.0". */
void ftl_fit_set_int(lua_State *L, int t, const char *k, int64_t v) {
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, t, k);
}

/* learn.<k> = a new Lua tensor sharing h (the loop keeps its own handle). */
int ftl_fit_set_tensor(lua_State *L, int t, const char *k, const ft_tensor *h) {
    ft_tensor *c = NULL;
    if (!h || ft_shallow_copy(h, &c) != FT_OK) return -1;
    ftl_push_tensor(L, c);
    lua_setfield(L, t, k);
    return 0;
}

/* Calls cb[ev](cb, learn) for every callback that has it. A returned "cancel_batch",
 * "cancel_train", "cancel_valid", "cancel_epoch" or "cancel_fit" is obeyed (like fastai's
 * Cancel*Exception); an error stops the fit, naming the callback. */
int ftl_run_event(lua_State *L, fit_state *fs, fit_lua *fl, int ev) {
    if (!fl->has[ev]) return GO;
    int result = GO, n = (int)luaL_len(L, fl->cbs);
    for (int i = 1; i <= n && result != FAIL; i++) {
        lua_geti(L, fl->cbs, i);
        int cb = lua_gettop(L);
        if (lua_getfield(L, cb, ftl_event_names[ev]) != LUA_TFUNCTION) {
            lua_settop(L, cb - 1);
            continue;
        }
        lua_pushvalue(L, cb);
        lua_pushvalue(L, fl->learn);
        if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
            const char *msg = lua_tostring(L, -1);
            lua_getfield(L, cb, "name");
            char name[128];
            snprintf(name, sizeof name, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
            snprintf(fs->err, sizeof fs->err, "callback '%s' failed in %s: %s", name,
                     ftl_event_names[ev], msg ? msg : "(error object is not a string)");
            result = FAIL;
        } else if (lua_type(L, -1) == LUA_TSTRING) {
            const char *s = lua_tostring(L, -1);
            int r = !strcmp(s, "cancel_batch")   ? CANCEL_BATCH
                    : !strcmp(s, "cancel_train") ? CANCEL_TRAIN
                    : !strcmp(s, "cancel_valid") ? CANCEL_VALID
                    : !strcmp(s, "cancel_epoch") ? CANCEL_EPOCH
                    : !strcmp(s, "cancel_fit")   ? CANCEL_FIT
                                                 : GO;
            if (r > result) result = r;
        }
        lua_settop(L, cb - 1);
    }
    return result;
}

/* ---------------------------------------------------------- the recorder's vectors, the clock */

int ftl_dvec_push(ftl_dvec *d, double x) {
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 256;
        double *v = realloc(d->v, cap * sizeof *v);
        if (!v) return -1;
        d->v = v;
        d->cap = cap;
    }
    d->v[d->n++] = x;
    return 0;
}

void ftl_dvec_free(ftl_dvec *d) {
    free(d->v);
    memset(d, 0, sizeof *d);
}

static void recorder_reset(ftl_recorder *r) {
    r->lrs.n = r->moms.n = r->losses.n = r->iters.n = r->values.n = 0;
}

/* ---------------------------------------------------------------- schedules of a fit */

static void read_lrs(lua_State *L, int spec, ftl_learner *ln, double *lrs) {
    if (lua_getfield(L, spec, "lrs") != LUA_TTABLE) luaL_error(L, "fit: spec.lrs must be a table");
    if ((int)luaL_len(L, -1) != ln->n_groups)
        luaL_error(L, "fit: %d learning rates for %d parameter groups", (int)luaL_len(L, -1),
                   ln->n_groups);
    for (int g = 0; g < ln->n_groups; g++) {
        lua_geti(L, -1, g + 1);
        lrs[g] = luaL_checknumber(L, -1);
        if (!(lrs[g] > 0) || isinf(lrs[g]))
            luaL_error(L, "fit: the learning rate must be a positive finite number, got %f",
                       lrs[g]);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Builds fs's schedules from the spec table; may raise (nothing is owned yet but fs, which
 * is Lua's). Returns the number of epochs (sgdr computes it). */
static int build_spec(lua_State *L, int spec, fit_state *fs, fit_spec *sp, int n_epoch) {
    ftl_learner *ln = fs->ln;
    static const char *const kinds[] = {"const", "one_cycle", "flat_cos", "sgdr", "lr_find", NULL};
    sp->kind = (sched_kind)ftl_opt_enum(L, spec, "fit", "kind", kinds, SCHED_CONST);
    lua_getfield(L, spec, "no_logging");
    sp->no_logging = lua_toboolean(L, -1);
    lua_pop(L, 1);
    sp->lrs = lua_newuserdatauv(L, sizeof(double) * (size_t)ln->n_groups, 0);
    lua_setfield(L, spec, "_lrs_scratch"); /* kept alive by the spec table */
    if (sp->kind == SCHED_LR_FIND) {
        double start_lr = ftl_opt_number(L, spec, "lr_find", "start_lr", 1e-7);
        double end_lr = ftl_opt_number(L, spec, "lr_find", "end_lr", 10);
        int num_it = (int)ftl_opt_integer(L, spec, "lr_find", "num_it", 100);
        if (ftf_lr_finder_init(&sp->finder, start_lr, end_lr, num_it, 1))
            luaL_error(L, "lr_find: %s", ft_last_error());
        lua_getfield(L, spec, "stop_div");
        sp->finder.stop_div = lua_isnil(L, -1) || lua_toboolean(L, -1);
        lua_pop(L, 1);
        return n_epoch;
    }
    read_lrs(L, spec, ln, sp->lrs);
    if (sp->kind == SCHED_ONE_CYCLE) {
        ftf_one_cycle_opts o = ftf_one_cycle_defaults();
        o.div = ftl_opt_number(L, spec, "fit_one_cycle", "div", o.div);
        o.div_final = ftl_opt_number(L, spec, "fit_one_cycle", "div_final", o.div_final);
        o.pct_start = ftl_opt_number(L, spec, "fit_one_cycle", "pct_start", o.pct_start);
        if (lua_getfield(L, spec, "moms") == LUA_TTABLE)
            for (int i = 0; i < 3; i++) {
                lua_geti(L, -1, i + 1);
                o.moms[i] = luaL_checknumber(L, -1);
                lua_pop(L, 1);
            }
        lua_pop(L, 1);
        if (!(o.pct_start >= 0 && o.pct_start <= 1))
            luaL_error(L, "fit_one_cycle: pct_start must be in [0, 1], got %f", o.pct_start);
        fs->lr_s = new_ftl_one_cycle_lr(sp->lrs, ln->n_groups, &o);
        if (fs->lr_s) fs->mom_s = new_ftl_one_cycle_mom(&o);
        if (!fs->lr_s || !fs->mom_s) luaL_error(L, "fit_one_cycle: %s", ft_last_error());
    } else if (sp->kind == SCHED_FLAT_COS) {
        double div_final = ftl_opt_number(L, spec, "fit_flat_cos", "div_final", 1e5);
        double pct_start = ftl_opt_number(L, spec, "fit_flat_cos", "pct_start", 0.75);
        fs->lr_s = new_ftl_flat_cos_lr(sp->lrs, ln->n_groups, div_final, pct_start);
        if (!fs->lr_s) luaL_error(L, "fit_flat_cos: %s", ft_last_error());
    } else if (sp->kind == SCHED_SGDR) {
        int n_cycles = (int)ftl_opt_integer(L, spec, "fit_sgdr", "n_cycles", 1);
        int cycle_len = (int)ftl_opt_integer(L, spec, "fit_sgdr", "cycle_len", 1);
        int cycle_mult = (int)ftl_opt_integer(L, spec, "fit_sgdr", "cycle_mult", 2);
        fs->lr_s =
            new_ftl_sgdr_lr(sp->lrs, ln->n_groups, n_cycles, cycle_len, cycle_mult, &n_epoch);
        if (!fs->lr_s) luaL_error(L, "fit_sgdr: %s", ft_last_error());
    }
    return n_epoch;
}

/* ---------------------------------------------------------------- the table */

typedef struct {
    const char *names[FTL_MAX_METRICS + 4];
    int k;
} columns;

static void make_columns(ftl_learner *ln, columns *c) {
    c->k = 0;
    c->names[c->k++] = "epoch";
    c->names[c->k++] = "train_loss";
    c->names[c->k++] = "valid_loss";
    for (int i = 0; i < ln->n_metrics; i++) c->names[c->k++] = ln->metrics[i].name;
    c->names[c->k++] = "time";
}

/* ---------------------------------------------------------------- the recorder and the epochs */

/* Copies the recorder to learn.recorder: lrs, moms (the last group's, per batch, as fastai's
 * Recorder), hps = {lr = {{per group}...}, mom = {...}}, losses, iters, values, metric_names. */
static void push_recorder(lua_State *L, ftl_learner *ln, int learn) {
    ftl_recorder *r = &ln->rec;
    int ng = ln->n_groups;
    size_t nb = r->losses.n;
    lua_createtable(L, 0, 8);
    for (int w = 0; w < 2; w++) {
        ftl_dvec *d = w ? &r->moms : &r->lrs;
        lua_createtable(L, (int)nb, 0);
        for (size_t i = 0; i < nb && (i + 1) * ng <= d->n; i++) {
            lua_pushnumber(L, d->v[i * ng + ng - 1]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, w ? "moms" : "lrs");
    }
    lua_createtable(L, 0, 2);
    for (int w = 0; w < 2; w++) {
        ftl_dvec *d = w ? &r->moms : &r->lrs;
        lua_createtable(L, (int)nb, 0);
        for (size_t i = 0; i < nb && (i + 1) * ng <= d->n; i++) {
            lua_createtable(L, ng, 0);
            for (int g = 0; g < ng; g++) {
                lua_pushnumber(L, d->v[i * ng + g]);
                lua_rawseti(L, -2, g + 1);
            }
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, w ? "mom" : "lr");
    }
    lua_setfield(L, -2, "hps");
    lua_createtable(L, (int)nb, 0);
    for (size_t i = 0; i < nb; i++) {
        lua_pushnumber(L, r->losses.v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "losses");
    lua_createtable(L, (int)r->iters.n, 0);
    for (size_t i = 0; i < r->iters.n; i++) {
        lua_pushinteger(L, (lua_Integer)r->iters.v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "iters");
    int nv = 2 + ln->n_metrics;
    lua_createtable(L, (int)(r->values.n / nv), 0);
    for (size_t e = 0; (e + 1) * nv <= r->values.n; e++) {
        lua_createtable(L, nv, 0);
        for (int j = 0; j < nv; j++) {
            lua_pushnumber(L, r->values.v[e * nv + j]);
            lua_rawseti(L, -2, j + 1);
        }
        lua_rawseti(L, -2, (lua_Integer)e + 1);
    }
    lua_setfield(L, -2, "values");
    lua_createtable(L, nv, 0);
    lua_pushstring(L, "train_loss");
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, "valid_loss");
    lua_rawseti(L, -2, 2);
    for (int i = 0; i < ln->n_metrics; i++) {
        lua_pushstring(L, ln->metrics[i].name);
        lua_rawseti(L, -2, i + 3);
    }
    lua_setfield(L, -2, "metric_names");
    lua_setfield(L, learn, "recorder");
}

/* Which events the callbacks (the list at fl->cbs) handle: the loop skips the others. */
static void scan_callbacks(lua_State *L, fit_lua *fl) {
    for (int i = 1; i <= (int)luaL_len(L, fl->cbs); i++) {
        lua_geti(L, fl->cbs, i);
        if (!lua_istable(L, -1)) luaL_error(L, "fit: callback %d is not a table", i);
        for (int e = 0; e < NEV; e++) {
            if (lua_getfield(L, -1, ftl_event_names[e]) == LUA_TFUNCTION) fl->has[e] = 1;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
}

/* fit's own hypers: wd when given, a constant lr for plain fit. Leaves a scratch userdata on
 * the stack. */
static void set_fit_hypers(lua_State *L, int spec, ftl_learner *ln, const fit_spec *sp) {
    double *tmp = lua_newuserdatauv(L, sizeof(double) * (size_t)ln->n_groups, 0);
    if (lua_getfield(L, spec, "wd") != LUA_TNIL) {
        double wd = luaL_checknumber(L, -1);
        for (int g = 0; g < ln->n_groups; g++) tmp[g] = wd;
        ftf_adam_set_hyper(ln->opt, FTL_WD, tmp);
    }
    lua_pop(L, 1);
    if (sp->kind != SCHED_LR_FIND) ftf_adam_set_hyper(ln->opt, FTL_LR, sp->lrs);
}

/* lr_find: snapshot the weights, buffers and optimizer state in memory; may raise (fs's __gc
 * frees what was taken). */
static void snapshot_for_lr_find(lua_State *L, fit_state *fs) {
    if (ftl_model_state_tensors(fs->ln->model, &fs->state, &fs->n_state))
        luaL_error(L, "lr_find: out of memory");
    if (new_ftl_tensor_snapshot(fs->state, fs->n_state, &fs->wsnap) != FT_OK ||
        new_ftl_adam_snapshot(fs->ln->opt, &fs->osnap) != FT_OK)
        luaL_error(L, "lr_find: %s", ft_last_error());
}

/* The epoch's row: train_loss (smoothed), valid_loss, metrics, time. Recorded, printed as
 * fastai's table (rank 0 only), and shown to after_epoch callbacks. r is the epoch's outcome
 * so far; returns the new one. */
static int end_epoch(lua_State *L, fit_state *fs, fit_lua *fl, const fit_spec *sp, int epoch,
                     double t0, int r) {
    ftl_learner *ln = fs->ln;
    int nv = 2 + ln->n_metrics;
    double vals[FTL_MAX_METRICS + 2];
    ftf_smooth_value(&fs->smooth, &vals[0]);
    if (ftf_avg_value(&fs->vloss, &vals[1]) != FT_OK) vals[1] = NAN;
    for (int i = 0; i < ln->n_metrics; i++)
        if (ftf_avg_value(&fs->vmet[i], &vals[2 + i]) != FT_OK) vals[2 + i] = NAN;
    for (int j = 0; j < nv; j++)
        if (ftl_dvec_push(&ln->rec.values, vals[j]))
            return ftl_fit_failf(fs, "recorder: out of memory");
    columns cols;
    make_columns(ln, &cols);
    ftf_cell cells[FTL_MAX_METRICS + 4];
    char tbuf[32], line[4096];
    cells[0] = (ftf_cell){.kind = FTL_CELL_INT, .i = epoch};
    for (int j = 0; j < nv; j++) cells[1 + j] = (ftf_cell){.kind = FTL_CELL_FLOAT, .f = vals[j]};
    cells[1 + nv] =
        (ftf_cell){.kind = FTL_CELL_STR, .s = ftf_format_time(monotonic_seconds() - t0, tbuf)};
    if (!sp->no_logging && ftr_dist_is_main()) {
        ftf_table_row(line, sizeof line, cols.names, cells, cols.k);
        ftf_table_emit(line, cols.names, cells, cols.k);
    }
    if (fl->has[EV_AFTER_EPOCH]) {
        lua_createtable(L, nv, 0);
        for (int j = 0; j < nv; j++) {
            lua_pushnumber(L, vals[j]);
            lua_rawseti(L, -2, j + 1);
        }
        lua_setfield(L, fl->learn, "final_record");
        push_recorder(L, ln, fl->learn); /* so callbacks see recorder.values so far */
    }
    int c = ftl_run_event(L, fs, fl, EV_AFTER_EPOCH);
    if (c == FAIL || c == CANCEL_FIT) return c;
    return r == CANCEL_FIT ? r : GO;
}

/* One epoch: before_epoch, training, validation (not for lr_find), the row. Returns FAIL or
 * CANCEL_FIT to stop the fit. */
static int run_epoch(lua_State *L, fit_state *fs, fit_lua *fl, fit_spec *sp, ftd_loader *train,
                     ftd_loader *valid, int epoch, int n_epoch, int64_t *train_iter) {
    double t0 = monotonic_seconds();
    ftl_fit_set_int(L, fl->learn, "epoch", epoch);
    int r = ftl_run_event(L, fs, fl, EV_BEFORE_EPOCH);
    if (r == FAIL || r == CANCEL_FIT) return r;
    if (r != CANCEL_EPOCH) r = ftl_train_epoch(L, fs, fl, sp, train, epoch, n_epoch, train_iter);
    if (r == FAIL || r == CANCEL_FIT) return r;
    if (ftl_dvec_push(&fs->ln->rec.iters, (double)*train_iter))
        return ftl_fit_failf(fs, "recorder: out of memory");
    if (r != CANCEL_EPOCH && sp->kind != SCHED_LR_FIND && valid) {
        r = ftl_validate(L, fs, fl, valid, epoch, n_epoch);
        if (r == FAIL || r == CANCEL_FIT) return r;
        if (ftb_interrupted()) {
            snprintf(fs->err, sizeof fs->err, "interrupted!");
            r = CANCEL_FIT;
        }
    }
    if (sp->kind == SCHED_LR_FIND) return r;
    return end_epoch(L, fs, fl, sp, epoch, t0, r);
}

/* after_fit (unless the fit failed), and lr_find's after_fit: zero_grad, then put everything
 * back, bit for bit. Returns whether the fit failed. */
static int end_fit(lua_State *L, fit_state *fs, fit_lua *fl, const fit_spec *sp, int r) {
    int failed = r == FAIL || (r == CANCEL_FIT && fs->err[0]);
    if (!failed && ftl_run_event(L, fs, fl, EV_AFTER_FIT) == FAIL) failed = 1;
    if (sp->kind == SCHED_LR_FIND) {
        ftf_adam *opt = fs->ln->opt;
        ft_status st = ftf_adam_zero_grad(opt, 1);
        if (st == FT_OK) st = ftf_tensor_snapshot_restore(fs->wsnap, fs->state, fs->n_state);
        if (st == FT_OK) st = ftf_adam_restore(opt, fs->osnap);
        if (st != FT_OK && !failed) {
            snprintf(fs->err, sizeof fs->err, "lr_find: restoring the model: %s", ft_last_error());
            failed = 1;
        }
    }
    return failed;
}

/* Sets up fs for a fit (data-parallel shards, schedules, hypers, lr_find's snapshot); may raise.
 * Returns the number of epochs. */
static int prepare_fit(lua_State *L, fit_state *fs, fit_spec *sp, ftd_loader *train,
                       ftd_loader *valid, int n_epoch) {
    ftl_learner *ln = fs->ln;
    int64_t n_iter = ftd_loader_len(train);
    if (ftl_fit_dist(ln)) {
        if (ftl_fit_shard(fs, ftl_fit_dist(ln), train, valid) != GO) luaL_error(L, "%s", fs->err);
        n_iter = ftd_loader_len(train);
    }
    n_epoch = build_spec(L, 4, fs, sp, n_epoch);
    if (sp->kind == SCHED_LR_FIND)
        n_epoch =
            ftf_lr_find_n_epoch((int)ftl_opt_integer(L, 4, "lr_find", "num_it", 100), (int)n_iter);
    if (n_epoch < 1) luaL_error(L, "fit: n_epoch must be >= 1, got %d", n_epoch);
    set_fit_hypers(L, 4, ln, sp); /* its scratch stays on the stack */
    if (sp->kind == SCHED_LR_FIND) snapshot_for_lr_find(L, fs);
    return n_epoch;
}

/* core:fit(learn, n_epoch, spec, cbs, train_loader, valid_loader)
 * spec: {kind = "const"|"one_cycle"|"flat_cos"|"sgdr"|"lr_find", lrs = {per group}, wd =,
 *        div, div_final, pct_start, moms, n_cycles, cycle_len, cycle_mult,
 *        start_lr, end_lr, num_it, stop_div, no_logging}
 * Prints fastai's table, fills learn.recorder; raises after a clean stop when something failed
 * (a callback, a metric, libtorch) or on Ctrl-C ("interrupted!"). */
int ftl_core_fit(lua_State *L) {
    ftl_learner *ln = ftl_check_core(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int n_epoch = (int)luaL_checkinteger(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    luaL_checktype(L, 5, LUA_TTABLE);
    ftd_loader *train = ftl_check_loader(L, 6);
    ftd_loader *valid = lua_isnoneornil(L, 7) ? NULL : ftl_check_loader(L, 7);
    lua_settop(L, 7);
    if (ftd_loader_len(train) <= 0)
        return luaL_error(L, "fit: the training set is empty (%d items, batch size %d%s)",
                          (int)ftd_loader_items(train), ftd_loader_config_of(train)->bs,
                          ftd_loader_config_of(train)->drop_last ? ", drop_last" : "");
    fit_lua fl = {.learn = 2, .cbs = 5};
    scan_callbacks(L, &fl);
    fit_state *fs = new_ftl_fit_state(L, ln);
    fl.fs = lua_gettop(L);
    fit_spec sp;
    memset(&sp, 0, sizeof sp);
    n_epoch = prepare_fit(L, fs, &sp, train, valid, n_epoch);

    if (!sp.no_logging && ftr_dist_is_main()) { /* data parallel: only rank 0 prints */
        columns cols;
        char line[4096];
        make_columns(ln, &cols);
        ftf_table_header(line, sizeof line, cols.names, cols.k);
        ftf_table_emit(line, cols.names, NULL, cols.k);
    }
    recorder_reset(&ln->rec);
    ftf_smooth_reset(&fs->smooth, 0.98);
    ftl_fit_set_int(L, 2, "n_epoch", n_epoch);
    int64_t train_iter = 0;
    int r = ftl_run_event(L, fs, &fl, EV_BEFORE_FIT);
    for (int epoch = 0; epoch < n_epoch && r != FAIL && r != CANCEL_FIT; epoch++)
        r = run_epoch(L, fs, &fl, &sp, train, valid, epoch, n_epoch, &train_iter);
    int failed = end_fit(L, fs, &fl, &sp, r);

    char msg[sizeof fs->err];
    memcpy(msg, fs->err, sizeof msg);
    ftl_fit_state_clear(fs);
    ftm_set_training(ln->model, 0);
    if (ftb_interrupted()) ftb_interrupt_handled();
    push_recorder(L, ln, 2);
    if (failed) return luaL_error(L, "%s", msg);
    return 0;
}
