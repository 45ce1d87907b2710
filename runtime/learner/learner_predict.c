/* learner_predict.c: core:predict, behind get_preds, predict and tta: the model's outputs over a
 * loader or a list of batches, in eval mode without autograd.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "learner/learner_internal.h"

typedef struct {
    ft_tensor **p, **y, **l;
    int n, cap;
    ftd_loader *running;
    int grad_off;
} pred_state;

static void pred_state_clear(pred_state *ps) {
    for (int i = 0; i < ps->n; i++) {
        ft_free(ps->p[i]);
        ft_free(ps->y[i]);
        ft_free(ps->l[i]);
    }
    free(ps->p);
    free(ps->y);
    free(ps->l);
    ps->p = ps->y = ps->l = NULL;
    ps->n = ps->cap = 0;
    if (ps->running) ftd_loader_stop(ps->running);
    ps->running = NULL;
    if (ps->grad_off) ft_set_grad_enabled(1);
    ps->grad_off = 0;
}

int ftl_pred_state_gc(lua_State *L) {
    pred_state_clear(luaL_checkudata(L, 1, PRED_MT));
    return 0;
}

/* Pushes an empty pred_state userdata; its __gc (ftl_pred_state_gc) frees what it collects. */
static pred_state *new_pred_state(lua_State *L) {
    pred_state *ps = lua_newuserdatauv(L, sizeof *ps, 0);
    memset(ps, 0, sizeof *ps);
    luaL_setmetatable(L, PRED_MT);
    return ps;
}

static int ps_push(pred_state *ps, ft_tensor *p, ft_tensor *y, ft_tensor *l) {
    if (ps->n == ps->cap) {
        int cap = ps->cap ? ps->cap * 2 : 32;
        ft_tensor **a = realloc(ps->p, sizeof *a * cap);
        if (a) ps->p = a;
        ft_tensor **b = realloc(ps->y, sizeof *b * cap);
        if (b) ps->y = b;
        ft_tensor **c = realloc(ps->l, sizeof *c * cap);
        if (c) ps->l = c;
        if (!a || !b || !c) return -1;
        ps->cap = cap;
    }
    ps->p[ps->n] = p;
    ps->y[ps->n] = y;
    ps->l[ps->n] = l;
    ps->n++;
    return 0;
}

static ft_status cat_list(ft_tensor **ts, int n, ft_tensor **out) {
    *out = NULL;
    for (int i = 0; i < n; i++)
        if (!ts[i]) return FT_OK;
    if (n == 0) return FT_OK;
    return ft_cat((const ft_tensor *const *)ts, n, 0, out);
}

/* Batch i of a Lua list of batches (the table at idx): {x, y} with 1-based targets, or x alone.
 * Fills fs->x and fs->y (0-based int64) as next_batch does. 1: a batch, 0: the end. */
static int list_batch(lua_State *L, fit_state *fs, const ftl_learner *ln, int idx, lua_Integer i) {
    int top = lua_gettop(L), r = 1;
    int t = lua_geti(L, idx, i);
    if (t == LUA_TNIL) return lua_settop(L, top), 0;
    ft_tensor *x = NULL, *y = NULL;
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)i);
    if (t == LUA_TTABLE) {
        lua_geti(L, -1, 1);
        x = ftl_to_tensor(L, -1);
        if (lua_geti(L, -2, 2) != LUA_TNIL) {
            y = ftl_to_tensor(L, -1);
            if (!y)
                r = ftl_fit_failf(fs, "batch %s: its second element (the targets) is not a tensor",
                                  num);
        }
    } else {
        x = ftl_to_tensor(L, -1);
    }
    if (r == 1 && !x) r = ftl_fit_failf(fs, "batch %s is not {x, y} (tensors) or a tensor x", num);
    if (r == 1 && ft_shallow_copy(x, &fs->x) != FT_OK) r = ftl_fit_shim_fail(fs, "batch");
    if (r == 1 && y) {
        ft_tensor *z = NULL;
        ft_status st = ft_binary_scalar(FT_SUB, y, 1, &z);
        if (st == FT_OK) st = ft_to(z, FT_INT64, ft_device(z), &fs->y);
        ft_free(z);
        if (st != FT_OK) r = ftl_fit_shim_fail(fs, "targets");
    }
    if (r == 1 && ln->channels_last) {
        ft_tensor *c = NULL;
        if (ft_contiguous_channels_last(fs->x, &c) != FT_OK)
            r = ftl_fit_shim_fail(fs, "channels_last");
        else {
            ft_free(fs->x);
            fs->x = c;
        }
    }
    lua_settop(L, top);
    return r;
}

/* One batch's predictions (in fs->x, fs->y), moved to the CPU and kept in ps: probabilities
 * (softmax unless act is off), 1-based targets, per-item losses (with_loss). */
static int predict_batch(lua_State *L, fit_state *fs, pred_state *ps, int with_loss, int act) {
    int r;
    if ((r = ftl_fit_forward(L, fs, fs->x, &fs->pred)) != GO) return r;
    ft_tensor *l = NULL, *p = NULL, *pc = NULL, *yc = NULL, *lc = NULL;
    if (with_loss && fs->y && (r = ftl_fit_loss(L, fs, fs->pred, fs->y, FT_REDUCE_NONE, &l)) != GO)
        return r;
    ft_status st = act ? ft_softmax(fs->pred, 1, &p) : ft_shallow_copy(fs->pred, &p);
    if (st == FT_OK) st = ft_to(p, FT_FLOAT32, FT_CPU, &pc);
    if (st == FT_OK && fs->y) {
        ft_tensor *y1 = NULL;
        st = ft_binary_scalar(FT_ADD, fs->y, 1, &y1);
        if (st == FT_OK) st = ft_to(y1, FT_INT64, FT_CPU, &yc);
        ft_free(y1);
    }
    if (st == FT_OK && l) st = ft_to(l, FT_FLOAT32, FT_CPU, &lc);
    ft_free(p);
    ft_free(l);
    if (st != FT_OK || ps_push(ps, pc, yc, lc)) {
        ft_free(pc);
        ft_free(yc);
        ft_free(lc);
        return st != FT_OK ? ftl_fit_shim_fail(fs, "predict")
                           : ftl_fit_failf(fs, "predict: out of memory");
    }
    return GO;
}

/* Every batch of dl, or of the list at index 2 when dl is NULL, into ps. Eval mode, no
 * autograd. Returns GO, or FAIL with fs->err. */
static int predict_all(lua_State *L, fit_state *fs, pred_state *ps, ftd_loader *dl, int with_loss,
                       int act) {
    int r = GO;
    ft_set_grad_enabled(0);
    ps->grad_off = 1;
    for (lua_Integer bi = 1;; bi++) {
        int got = dl ? ftl_fit_next_batch(fs, fs->ln, dl, NULL) : list_batch(L, fs, fs->ln, 2, bi);
        if (got == 0) break;
        if (got != 1) {
            r = got;
            break;
        }
        if ((r = predict_batch(L, fs, ps, with_loss, act)) != GO) break;
        ftl_fit_batch_free(fs);
    }
    ftl_fit_batch_free(fs);
    if (dl) ftd_loader_stop(dl);
    ps->running = NULL;
    ft_set_grad_enabled(1);
    ps->grad_off = 0;
    return r;
}

/* Pushes ps's batches concatenated: probs, targets (or nil), losses (or nil); clears ps. */
static int push_predictions(lua_State *L, pred_state *ps) {
    ft_tensor *P = NULL, *Y = NULL, *Lo = NULL;
    ft_status st = cat_list(ps->p, ps->n, &P);
    if (st == FT_OK) st = cat_list(ps->y, ps->n, &Y);
    if (st == FT_OK) st = cat_list(ps->l, ps->n, &Lo);
    pred_state_clear(ps);
    if (st != FT_OK) {
        ft_free(P);
        ft_free(Y);
        ft_free(Lo);
        return luaL_error(L, "predict: %s", ft_last_error());
    }
    ftl_push_tensor(L, P);
    if (Y)
        ftl_push_tensor(L, Y);
    else
        lua_pushnil(L);
    if (Lo)
        ftl_push_tensor(L, Lo);
    else
        lua_pushnil(L);
    return 3;
}

/* core:predict(loader or {{x, y}, ...} [, {with_loss = false, epoch = 0, act = true}]) ->
 * probs [N,C] (CPU float32, softmax of the model's output unless act = false), targets
 * (1-based int64, or nil when the loader has no labels), losses per item (or nil). Eval mode,
 * no autograd. */
int ftl_core_predict(lua_State *L) {
    ftl_learner *ln = ftl_check_core(L, 1);
    int is_list = lua_type(L, 2) == LUA_TTABLE;
    ftd_loader *dl = is_list ? NULL : ftl_check_loader(L, 2);
    int with_loss = 0, act = 1;
    int64_t epoch = 0;
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "with_loss");
        with_loss = lua_toboolean(L, -1);
        lua_getfield(L, 3, "act");
        act = lua_isnil(L, -1) || lua_toboolean(L, -1);
        lua_pop(L, 2);
        epoch = ftl_opt_integer(L, 3, "predict", "epoch", 0);
    }
    lua_settop(L, 3);
    pred_state *ps = new_pred_state(L);
    fit_state *fs = new_ftl_fit_state(L, ln); /* for forward/loss errors and batch tensors */
    char err[512];
    ftm_set_training(ln->model, 0);
    if (dl && ftd_loader_start(dl, epoch, -1, err, sizeof err))
        return luaL_error(L, "predict: %s", err);
    ps->running = dl;
    if (predict_all(L, fs, ps, dl, with_loss, act) != GO) {
        char msg[sizeof fs->err];
        memcpy(msg, fs->err, sizeof msg);
        pred_state_clear(ps);
        return luaL_error(L, "predict: %s", msg);
    }
    if (ps->n == 0) {
        pred_state_clear(ps);
        return luaL_error(L, "predict: the loader gave no batch");
    }
    return push_predictions(L, ps);
}
