/* module.c: the module tree in C: lifetime, children, parameters, and the forward of every
 * layer kind, all over the shim. C only (module.h): no Lua header, no Lua code. What touches Lua (a
 * Lua-defined module's forward, which model.c runs protected so a Lua error never longjmps over the
 * handles this file owns) goes through the callbacks model.c installs (ftm_lua_callbacks).
 *
 * Initialisation follows torch.nn: Conv2d and Linear weights and biases uniform in
 * [-1/sqrt(fan_in), 1/sqrt(fan_in)] (kaiming_uniform_ with a = sqrt(5)); BatchNorm weight 1,
 * bias 0, running mean 0, running var 1, num_batches_tracked 0 (int64).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/module.h"

/* ---------------------------------------------------------------- errors */

/* Leaves the message in the shim's slot (ft_last_error) and returns NULL. */
__attribute__((format(printf, 1, 2))) static void *fail(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ft_set_last_error("%s", msg);
    return NULL;
}

/* ---------------------------------------------------------------- lifetime and children */

ftm_module *ftm_new(ftm_kind kind, const char *type) {
    ftm_module *m = calloc(1, sizeof *m);
    if (!m) return fail("%s: out of memory", type);
    m->refs = 1;
    m->kind = kind;
    snprintf(m->type, sizeof m->type, "%s", type);
    m->training = 1;
    m->lua_ref = FTM_NOREF;
    return m;
}

static ftm_lua_callbacks lua_side; /* model.c's; all NULL until it installs them */

void ftm_set_lua_callbacks(const ftm_lua_callbacks *cb) { lua_side = *cb; }

void ftm_retain(ftm_module *m) {
    if (m) m->refs++;
}

static void free_slot(struct lua_State *L, ftm_slot *s) {
    if (!s->t) return;
    if (L && lua_side.forget_param) lua_side.forget_param(L, s->t);
    ft_free(s->t);
    s->t = NULL;
}

void ftm_release(struct lua_State *L, ftm_module *m) {
    if (!m || --m->refs > 0) return;
    for (int i = 0; i < 2; i++) free_slot(L, &m->params[i]);
    for (int i = 0; i < 3; i++) free_slot(L, &m->buffers[i]);
    for (int i = 0; i < m->nchildren; i++) ftm_release(L, m->children[i].m);
    free(m->children);
    free(m->split);
    if (m->lua_ref != FTM_NOREF && L && lua_side.unref) lua_side.unref(L, m->lua_ref);
    free(m);
}

int ftm_add_child(ftm_module *m, const char *name, ftm_module *child) {
    if (strlen(name) >= FTM_NAME_MAX) {
        fail("child name too long: %s", name);
        return -1;
    }
    if (ftm_child_index(m, name) >= 0) {
        fail("duplicate child name '%s'", name);
        return -1;
    }
    if (m->nchildren == m->cap) {
        int cap = m->cap ? 2 * m->cap : 4;
        ftm_child *c = realloc(m->children, (size_t)cap * sizeof *c);
        if (!c) {
            fail("%s: out of memory", m->type);
            return -1;
        }
        m->children = c;
        m->cap = cap;
    }
    ftm_child *c = &m->children[m->nchildren++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->m = child;
    ftm_retain(child);
    return 0;
}

int ftm_child_index(const ftm_module *m, const char *name) {
    for (int i = 0; i < m->nchildren; i++)
        if (strcmp(m->children[i].name, name) == 0) return i;
    return -1;
}

ftm_module *ftm_child_named(const ftm_module *m, const char *name) {
    int i = ftm_child_index(m, name);
    return i < 0 ? NULL : m->children[i].m;
}

ftm_module *ftm_find(ftm_module *m, const char *path) {
    char part[FTM_NAME_MAX];
    while (m && *path) {
        size_t n = strcspn(path, ".");
        if (n == 0 || n >= sizeof part) return NULL;
        memcpy(part, path, n);
        part[n] = '\0';
        m = ftm_child_named(m, part);
        path += n;
        if (*path == '.') path++;
    }
    return m;
}

int ftm_each_group_path(ftm_module *m, ftm_group_fn fn, void *ud, char *err, size_t errlen) {
    if (!m->split) {
        if (fn) fn(m, "", 0, ud);
        return 1;
    }
    const char *s = m->split;
    int g = 0;
    for (;;) {
        char path[FTM_PATH_MAX];
        size_t n = strcspn(s, ",;");
        if (n >= sizeof path) n = sizeof path - 1;
        memcpy(path, s, n);
        path[n] = '\0';
        ftm_module *sub = ftm_find(m, path);
        if (!sub) {
            /* %.200s: the message fits any err buffer (the path is at most FTM_PATH_MAX) */
            snprintf(err, errlen, "parameter groups: %s has no submodule '%.200s'", m->type, path);
            return -1;
        }
        if (fn) fn(sub, path, g, ud);
        s += strcspn(s, ",;");
        if (*s == '\0') break;
        if (*s == ';') g++;
        s++;
    }
    return g + 1;
}

int ftm_contains(const ftm_module *sub, const ftm_module *m) {
    if (sub == m) return 1;
    for (int i = 0; i < sub->nchildren; i++)
        if (ftm_contains(sub->children[i].m, m)) return 1;
    return 0;
}

void ftm_set_training(ftm_module *m, int training) {
    m->training = training;
    for (int i = 0; i < m->nchildren; i++) ftm_set_training(m->children[i].m, training);
}

/* ---------------------------------------------------------------- walking the tree */

static void walk(ftm_module *m, char *path, size_t len, int params, int buffers, ftm_visitor fn,
                 void *ud) {
    for (int pass = 0; pass < 2; pass++) {
        if ((pass == 0 && !params) || (pass == 1 && !buffers)) continue;
        ftm_slot *slots = pass == 0 ? m->params : m->buffers;
        int n = pass == 0 ? 2 : 3;
        for (int i = 0; i < n; i++) {
            if (!slots[i].t) continue;
            snprintf(path + len, FTM_PATH_MAX - len, "%s%s", len ? "." : "", slots[i].name);
            fn(ud, path, &slots[i], m, pass);
        }
    }
    for (int i = 0; i < m->nchildren; i++) {
        snprintf(path + len, FTM_PATH_MAX - len, "%s%s", len ? "." : "", m->children[i].name);
        size_t sub = strlen(path);
        walk(m->children[i].m, path, sub, params, buffers, fn, ud);
    }
    path[len] = '\0';
}

void ftm_walk(ftm_module *m, const char *prefix, int params, int buffers, ftm_visitor fn,
              void *ud) {
    char path[FTM_PATH_MAX];
    snprintf(path, sizeof path, "%s", prefix ? prefix : "");
    walk(m, path, strlen(path), params, buffers, fn, ud);
}

/* ---------------------------------------------------------------- layers */

/* A float32 CPU tensor of the shape, uniform in [-bound, bound] (bound > 0) or filled with
 * value (bound == 0). Parameters get requires_grad after they are filled. */
static ft_tensor *new_tensor(const int64_t *shape, int nd, double bound, double value,
                             ft_dtype dtype, int requires_grad) {
    ft_tensor *t = NULL;
    ft_status st = bound > 0 ? ft_empty(shape, nd, dtype, FT_CPU, &t)
                             : ft_full(shape, nd, value, dtype, FT_CPU, &t);
    if (st == FT_OK && bound > 0) st = ft_uniform_(t, -bound, bound);
    if (st == FT_OK && requires_grad) st = ft_set_requires_grad(t, 1);
    if (st != FT_OK) {
        ft_free(t);
        return fail("parameter init: %s", ft_last_error());
    }
    return t;
}

static int set_slot(ftm_slot *s, const char *name, ft_tensor *t) {
    s->name = name;
    s->t = t;
    return t != NULL;
}

/* Gives m its weight (wshape, nd dims) and, when n_bias > 0, a bias of n_bias, both uniform in
 * [-bound, bound] as PyTorch's reset_parameters does for Linear and Conv2d. Returns m, or NULL
 * with m released (ft_last_error says why). */
static ftm_module *with_weight_bias(ftm_module *m, const int64_t *wshape, int nd, int64_t n_bias,
                                    double bound) {
    int ok = set_slot(&m->params[0], "weight", new_tensor(wshape, nd, bound, 0, FT_FLOAT32, 1));
    if (ok && n_bias > 0)
        ok = set_slot(&m->params[1], "bias", new_tensor(&n_bias, 1, bound, 0, FT_FLOAT32, 1));
    if (!ok) {
        ftm_release(NULL, m);
        return NULL;
    }
    return m;
}

ftm_module *ftm_conv2d(int64_t in, int64_t out, const int64_t kernel[2], const int64_t stride[2],
                       const int64_t padding[2], const int64_t dilation[2], int64_t groups,
                       int bias) {
    if (in < 1 || out < 1 || groups < 1 || in % groups || out % groups)
        return fail("%s: channels must be positive and divisible by groups", "Conv2d");
    for (int i = 0; i < 2; i++)
        if (kernel[i] < 1 || stride[i] < 1 || padding[i] < 0 || dilation[i] < 1)
            return fail("%s: kernel, stride and dilation must be positive, padding >= 0", "Conv2d");
    ftm_module *m = ftm_new(FTM_CONV2D, "Conv2d");
    if (!m) return NULL;
    m->in = in;
    m->out = out;
    m->groups = groups;
    memcpy(m->kernel, kernel, sizeof m->kernel);
    memcpy(m->stride, stride, sizeof m->stride);
    memcpy(m->padding, padding, sizeof m->padding);
    memcpy(m->dilation, dilation, sizeof m->dilation);
    int64_t wshape[4] = {out, in / groups, kernel[0], kernel[1]};
    double bound = 1.0 / sqrt((double)(in / groups * kernel[0] * kernel[1]));
    return with_weight_bias(m, wshape, 4, bias ? out : 0, bound);
}

ftm_module *ftm_batchnorm(int ndim, int64_t n, double eps, double momentum) {
    if (n < 1) return fail("%s: num_features must be positive", "BatchNorm");
    ftm_module *m = ftm_new(FTM_BATCHNORM, ndim == 1 ? "BatchNorm1d" : "BatchNorm2d");
    if (!m) return NULL;
    m->ndim = ndim;
    m->in = m->out = n;
    m->eps = eps;
    m->momentum = momentum;
    int ok =
        set_slot(&m->params[0], "weight", new_tensor(&n, 1, 0, 1, FT_FLOAT32, 1)) &&
        set_slot(&m->params[1], "bias", new_tensor(&n, 1, 0, 0, FT_FLOAT32, 1)) &&
        set_slot(&m->buffers[0], "running_mean", new_tensor(&n, 1, 0, 0, FT_FLOAT32, 0)) &&
        set_slot(&m->buffers[1], "running_var", new_tensor(&n, 1, 0, 1, FT_FLOAT32, 0)) &&
        set_slot(&m->buffers[2], "num_batches_tracked", new_tensor(NULL, 0, 0, 0, FT_INT64, 0));
    if (!ok) {
        ftm_release(NULL, m);
        return NULL;
    }
    return m;
}

ftm_module *ftm_relu(int inplace) {
    ftm_module *m = ftm_new(FTM_RELU, "ReLU");
    if (m) m->inplace = inplace;
    return m;
}

ftm_module *ftm_maxpool2d(const int64_t kernel[2], const int64_t stride[2],
                          const int64_t padding[2], int ceil_mode) {
    for (int i = 0; i < 2; i++)
        if (kernel[i] < 1 || stride[i] < 1 || padding[i] < 0 || 2 * padding[i] > kernel[i])
            return fail("%s: kernel and stride must be positive, padding at most half the kernel",
                        "MaxPool2d");
    ftm_module *m = ftm_new(FTM_MAXPOOL2D, "MaxPool2d");
    if (!m) return NULL;
    memcpy(m->kernel, kernel, sizeof m->kernel);
    memcpy(m->stride, stride, sizeof m->stride);
    memcpy(m->padding, padding, sizeof m->padding);
    m->dilation[0] = m->dilation[1] = 1;
    m->ceil_mode = ceil_mode;
    return m;
}

ftm_module *ftm_adaptive_pool2d(ftm_kind kind, const int64_t size[2], int size_is_pair) {
    if (size[0] < 1 || size[1] < 1)
        return fail("%s: output size must be positive", "adaptive pool");
    const char *type = kind == FTM_ADAPTIVE_AVGPOOL2D   ? "AdaptiveAvgPool2d"
                       : kind == FTM_ADAPTIVE_MAXPOOL2D ? "AdaptiveMaxPool2d"
                                                        : "AdaptiveConcatPool2d";
    ftm_module *m = ftm_new(kind, type);
    if (!m) return NULL;
    memcpy(m->size, size, sizeof m->size);
    m->size_is_pair = size_is_pair;
    if (kind == FTM_ADAPTIVE_CONCATPOOL2D) {
        /* fastai's AdaptiveConcatPool2d: children ap then mp, output cat([mp, ap]). */
        ftm_module *ap = ftm_adaptive_pool2d(FTM_ADAPTIVE_AVGPOOL2D, size, size_is_pair);
        ftm_module *mp =
            ap ? ftm_adaptive_pool2d(FTM_ADAPTIVE_MAXPOOL2D, size, size_is_pair) : NULL;
        int ok = mp && ftm_add_child(m, "ap", ap) == 0 && ftm_add_child(m, "mp", mp) == 0;
        ftm_release(NULL, ap);
        ftm_release(NULL, mp);
        if (!ok) {
            ftm_release(NULL, m);
            return NULL;
        }
    }
    return m;
}

ftm_module *ftm_flatten(int start_dim, int end_dim) {
    ftm_module *m = ftm_new(FTM_FLATTEN, "Flatten");
    if (!m) return NULL;
    m->start_dim = start_dim;
    m->end_dim = end_dim;
    return m;
}

ftm_module *ftm_dropout(double p) {
    if (!(p >= 0 && p <= 1)) return fail("%s: p must be in [0, 1]", "Dropout");
    ftm_module *m = ftm_new(FTM_DROPOUT, "Dropout");
    if (m) m->p = p;
    return m;
}

ftm_module *ftm_linear(int64_t in, int64_t out, int bias) {
    if (in < 1 || out < 1) return fail("%s: features must be positive", "Linear");
    ftm_module *m = ftm_new(FTM_LINEAR, "Linear");
    if (!m) return NULL;
    m->in = in;
    m->out = out;
    int64_t wshape[2] = {out, in};
    double bound = 1.0 / sqrt((double)in);
    return with_weight_bias(m, wshape, 2, bias ? out : 0, bound);
}

/* ---------------------------------------------------------------- forward */

/* A failed shim call in module m: keep libtorch's message, prefixed by the layer type. */
static ft_status shim(ftm_ctx *c, const ftm_module *m, ft_status st) {
    if (st != FT_OK) {
        snprintf(c->msg, sizeof c->msg, "%s: %s", m->type, ft_last_error());
        c->where[0] = '\0';
    }
    return st;
}

static ft_status refuse(ftm_ctx *c, const ftm_module *m, const char *msg) {
    snprintf(c->msg, sizeof c->msg, "%s: %s", m->type, msg);
    c->where[0] = '\0';
    return FT_ERR;
}

/* Runs child i of m; on failure the child's name goes in front of the failure's path. The
 * child is retained while it runs: a Lua forward could replace it in its parent. */
static ft_status run_child(ftm_ctx *c, ftm_module *m, int i, const ft_tensor *x, ft_tensor **out) {
    char name[FTM_NAME_MAX];
    ftm_module *child = m->children[i].m;
    memcpy(name, m->children[i].name, sizeof name);
    ftm_retain(child);
    ft_status st = ftm_forward(c, child, x, out);
    ftm_release(c->L, child);
    if (st != FT_OK && !c->lua_error) {
        char path[FTM_PATH_MAX];
        snprintf(path, sizeof path, c->where[0] ? "%s.%s" : "%s", name, c->where);
        memcpy(c->where, path, sizeof path);
    }
    return st;
}

static ft_status run_named(ftm_ctx *c, ftm_module *m, const char *name, const ft_tensor *x,
                           ft_tensor **out) {
    int i = ftm_child_index(m, name);
    if (i < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "missing child '%s'", name);
        return refuse(c, m, msg);
    }
    return run_child(c, m, i, x, out);
}

static ft_status sequential(ftm_ctx *c, ftm_module *m, const ft_tensor *x, ft_tensor **out) {
    if (m->nchildren == 0) return shim(c, m, ft_shallow_copy(x, out));
    ft_tensor *cur = NULL;
    for (int i = 0; i < m->nchildren; i++) {
        ft_tensor *next = NULL;
        ft_status st = run_child(c, m, i, cur ? cur : x, &next);
        ft_free(cur); /* autograd keeps what it needs */
        if (st != FT_OK) return st;
        cur = next;
    }
    *out = cur;
    return FT_OK;
}

static ft_status batchnorm(ftm_ctx *c, ftm_module *m, const ft_tensor *x, ft_tensor **out) {
    int nd = ft_dim(x);
    char msg[96];
    if (m->ndim == 2 && nd != 4) {
        snprintf(msg, sizeof msg, "expected 4D input (got %dD input)", nd);
        return refuse(c, m, msg);
    }
    if (m->ndim == 1 && nd != 2 && nd != 3) {
        snprintf(msg, sizeof msg, "expected 2D or 3D input (got %dD input)", nd);
        return refuse(c, m, msg);
    }
    if (m->training) {
        /* torch refuses this too: the batch variance of one value is 0. */
        int64_t per_channel = ft_size(x, 0);
        for (int d = 2; d < nd; d++) per_channel *= ft_size(x, d);
        if (per_channel == 1)
            return refuse(c, m, "expected more than 1 value per channel when training");
    }
    ft_status st = ft_batch_norm(x, m->params[0].t, m->params[1].t, m->buffers[0].t,
                                 m->buffers[1].t, m->training, m->momentum, m->eps, out);
    if (st == FT_OK && m->training && m->buffers[2].t) {
        st = ft_binary_scalar_(FT_ADD, m->buffers[2].t, 1);
        if (st != FT_OK) {
            ft_free(*out);
            *out = NULL;
        }
    }
    return shim(c, m, st);
}

/* out = relu(bn2(conv2(relu(bn1(conv1(x)))))) [+ conv3/bn3 for Bottleneck], then
 * relu(out + identity), identity = downsample(x) or x. In place where torchvision is. */
static ft_status block(ftm_ctx *c, ftm_module *m, const ft_tensor *x, ft_tensor **out) {
    static const char *const basic[] = {"conv1", "bn1", "relu", "conv2", "bn2", NULL};
    static const char *const bottle[] = {"conv1", "bn1",   "relu", "conv2", "bn2",
                                         "relu",  "conv3", "bn3",  NULL};
    const char *const *steps = m->kind == FTM_BASICBLOCK ? basic : bottle;
    ft_tensor *cur = NULL, *idn = NULL;
    ft_status st = FT_OK;
    for (int i = 0; steps[i] && st == FT_OK; i++) {
        ft_tensor *next = NULL;
        st = run_named(c, m, steps[i], cur ? cur : x, &next);
        ft_free(cur);
        cur = st == FT_OK ? next : NULL;
    }
    if (st == FT_OK && ftm_child_index(m, "downsample") >= 0)
        st = run_named(c, m, "downsample", x, &idn);
    if (st == FT_OK) st = shim(c, m, ft_binary_(FT_ADD, cur, idn ? idn : x));
    ft_free(idn);
    if (st == FT_OK) st = run_named(c, m, "relu", cur, out);
    ft_free(cur);
    return st;
}

static ft_status concat_pool(ftm_ctx *c, ftm_module *m, const ft_tensor *x, ft_tensor **out) {
    ft_tensor *mp = NULL, *ap = NULL;
    ft_status st = run_named(c, m, "mp", x, &mp);
    if (st == FT_OK) st = run_named(c, m, "ap", x, &ap);
    if (st == FT_OK) {
        const ft_tensor *parts[2] = {mp, ap};
        st = shim(c, m, ft_cat(parts, 2, 1, out));
    }
    ft_free(mp);
    ft_free(ap);
    return st;
}

ft_status ftm_forward(ftm_ctx *c, ftm_module *m, const ft_tensor *x, ft_tensor **out) {
    ft_tensor *r = NULL;
    ft_status st;
    switch (m->kind) {
    case FTM_SEQUENTIAL: st = sequential(c, m, x, &r); break;
    case FTM_CONV2D:
        st = shim(c, m,
                  ft_conv2d(x, m->params[0].t, m->params[1].t, m->stride, m->padding, m->dilation,
                            m->groups, &r));
        break;
    case FTM_BATCHNORM: st = batchnorm(c, m, x, &r); break;
    case FTM_RELU:
        /* inplace (torchvision's ReLU(inplace=True)) overwrites x, as torch does. */
        st = m->inplace ? ft_unary_(FT_RELU, (ft_tensor *)x) : ft_unary(FT_RELU, x, &r);
        if (st == FT_OK && m->inplace) st = ft_shallow_copy(x, &r);
        st = shim(c, m, st);
        break;
    case FTM_MAXPOOL2D:
        st = shim(c, m, ft_max_pool2d(x, m->kernel, m->stride, m->padding, m->ceil_mode, &r));
        break;
    case FTM_ADAPTIVE_AVGPOOL2D: st = shim(c, m, ft_adaptive_avg_pool2d(x, m->size, &r)); break;
    case FTM_ADAPTIVE_MAXPOOL2D: st = shim(c, m, ft_adaptive_max_pool2d(x, m->size, &r)); break;
    case FTM_ADAPTIVE_CONCATPOOL2D: st = concat_pool(c, m, x, &r); break;
    case FTM_FLATTEN: st = shim(c, m, ft_flatten(x, m->start_dim, m->end_dim, &r)); break;
    case FTM_DROPOUT: st = shim(c, m, ft_dropout(x, m->p, m->training, &r)); break;
    case FTM_LINEAR: st = shim(c, m, ft_linear(x, m->params[0].t, m->params[1].t, &r)); break;
    case FTM_BASICBLOCK:
    case FTM_BOTTLENECK: st = block(c, m, x, &r); break;
    case FTM_LUA:
        if (!c->L || !lua_side.lua_forward)
            return refuse(c, m, "a Lua-defined module needs a Lua state to run");
        st = lua_side.lua_forward(c, m, x, &r);
        break;
    default: return refuse(c, m, "unknown module kind");
    }
    if (st == FT_OK) *out = r;
    return st;
}
