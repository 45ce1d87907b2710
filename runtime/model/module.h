/* module.h: the module tree in C (module.c, zoo.c), below the Lua module of model.h.
 *
 * A module is a refcounted C struct (ftm_module). Its parent holds one reference per child
 * slot and every Lua userdata that shows it holds one more, so a child can live on in Lua
 * after its parent is gone, and the same child can sit in two parents (fastai's body shares
 * the resnet's layers). Parameters and buffers are shim handles owned by their module.
 *
 * This layer is C only: it includes no Lua header and calls no Lua code. A lua_State passes
 * through it opaquely, to the callbacks model.c installs (ftm_lua_callbacks). Failures return
 * NULL / -1 / FT_ERR and leave their message in the shim's slot (ft_last_error), except the
 * forward, whose context carries its own (ftm_ctx).
 *
 * Names follow torch: parameters "weight"/"bias", buffers "running_mean"/"running_var"/
 * "num_batches_tracked", Sequential children "0", "1", ... (shown in Lua as m[1], m[2], ...).
 */
#ifndef FTM_MODULE_H
#define FTM_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "torch/ft_torch.h"

struct lua_State; /* opaque here: only model.c's callbacks look inside */

/* lua_ref of a module without a Lua table (LUA_NOREF; model.c checks that they agree). */
#define FTM_NOREF (-2)

typedef enum {
    FTM_SEQUENTIAL = 0,
    FTM_CONV2D,
    FTM_BATCHNORM, /* 1d or 2d: see ndim */
    FTM_RELU,
    FTM_MAXPOOL2D,
    FTM_ADAPTIVE_AVGPOOL2D,
    FTM_ADAPTIVE_MAXPOOL2D,
    FTM_ADAPTIVE_CONCATPOOL2D, /* children mp, ap: cat([mp(x), ap(x)], dim 1), fastai's order */
    FTM_FLATTEN,
    FTM_DROPOUT,
    FTM_LINEAR,
    FTM_BASICBLOCK, /* torchvision's resnet blocks; children conv1, bn1, relu, ... downsample */
    FTM_BOTTLENECK,
    FTM_LUA, /* ft.nn.Module{...}: its forward is a Lua function */
    FTM_NKINDS
} ftm_kind;

#define FTM_NAME_MAX 64
#define FTM_PATH_MAX 512

typedef struct ftm_module ftm_module;

typedef struct {
    char name[FTM_NAME_MAX];
    ftm_module *m;
} ftm_child;

typedef struct {
    const char *name; /* a string literal: "weight", "running_mean", ... */
    ft_tensor *t;     /* NULL when absent (e.g. bias=false) */
} ftm_slot;

struct ftm_module {
    int refs;
    ftm_kind kind;
    char type[FTM_NAME_MAX]; /* what the printout calls it: "Conv2d", "ResNet", ... */
    int training;
    ftm_slot params[2];  /* weight, bias */
    ftm_slot buffers[3]; /* running_mean, running_var, num_batches_tracked */
    int nchildren, cap;
    ftm_child *children;
    /* settings of the layer kinds (unused fields stay 0) */
    int64_t in, out; /* channels or features */
    int64_t kernel[2], stride[2], padding[2], dilation[2], groups;
    int64_t size[2];  /* adaptive pools' output size */
    int size_is_pair; /* printed as (h, w) rather than h */
    int ndim;         /* BatchNorm: 1 or 2 */
    double eps, momentum, p;
    int inplace, ceil_mode;
    int start_dim, end_dim; /* Flatten, 0-based (negative from end) */
    char *split;            /* parameter groups: "a,b;c,d;e" (child paths), or NULL for one group */
    int lua_ref; /* FTM_LUA: registry ref of its table {forward = fn, fields...}, else FTM_NOREF */
};

/* ---------------------------------------------------------------- module.c */

/* New modules have one reference, owned by the caller. NULL on failure (ft_last_error). */
ftm_module *ftm_new(ftm_kind kind, const char *type);
void ftm_retain(ftm_module *m);
/* Drops one reference; at zero frees the module, its tensors and its references to children.
 * L is needed to drop Lua-side references (FTM_LUA modules, cached tensors). */
void ftm_release(struct lua_State *L, ftm_module *m);

/* Appends a child (retained). 0 on success, -1 on failure (ft_last_error). */
int ftm_add_child(ftm_module *m, const char *name, ftm_module *child);
ftm_module *ftm_child_named(const ftm_module *m, const char *name);
int ftm_child_index(const ftm_module *m, const char *name); /* -1 when absent */
/* Resolves "layer1.0.conv1" below m (NULL when absent). */
ftm_module *ftm_find(ftm_module *m, const char *path);
/* Calls fn for every (group, child path) of m's parameter-group split ("a,b;c;d": groups split
 * by ';', child paths by ','); without a split, once with m itself, path "", as group 0. Returns
 * the group count, or -1 with err naming the first path that is not a submodule. */
typedef void (*ftm_group_fn)(ftm_module *sub, const char *path, int group, void *ud);
int ftm_each_group_path(ftm_module *m, ftm_group_fn fn, void *ud, char *err, size_t errlen);
/* Does sub's tree contain m (so adding sub under m would make a cycle)? */
int ftm_contains(const ftm_module *sub, const ftm_module *m);

/* Layer constructors (parameters initialised as torch.nn does). NULL on failure (ft_last_error). */
ftm_module *ftm_conv2d(int64_t in, int64_t out, const int64_t kernel[2], const int64_t stride[2],
                       const int64_t padding[2], const int64_t dilation[2], int64_t groups,
                       int bias);
ftm_module *ftm_batchnorm(int ndim, int64_t n, double eps, double momentum);
ftm_module *ftm_relu(int inplace);
ftm_module *ftm_maxpool2d(const int64_t kernel[2], const int64_t stride[2],
                          const int64_t padding[2], int ceil_mode);
ftm_module *ftm_adaptive_pool2d(ftm_kind kind, const int64_t size[2], int size_is_pair);
ftm_module *ftm_flatten(int start_dim, int end_dim);
ftm_module *ftm_dropout(double p);
ftm_module *ftm_linear(int64_t in, int64_t out, int bias);
/* torchvision's blocks; downsample may be NULL (it is retained, not stolen). */
ftm_module *ftm_basic_block(int64_t inplanes, int64_t planes, int64_t stride,
                            ftm_module *downsample);
ftm_module *ftm_bottleneck(int64_t inplanes, int64_t planes, int64_t stride,
                           ftm_module *downsample);

/* Forward. The context carries what a failure needs to report: where it happened, the
 * message, or a Lua error value waiting on top of L's stack (from a Lua-defined module). */
typedef struct {
    struct lua_State *L;
    int lua_error;
    char where[FTM_PATH_MAX];
    char msg[1024];
} ftm_ctx;
ft_status ftm_forward(ftm_ctx *c, ftm_module *m, const ft_tensor *x, ft_tensor **out);

/* What the C core needs from the Lua side, which model.c installs (luaopen_ftlua_model): forget
 * a freed parameter's cached Lua tensor, drop a Lua-defined module's registry reference, run its
 * Lua forward. module.c calls no Lua code of its own; with nothing installed, a Lua-defined
 * module refuses to run. */
typedef struct {
    void (*forget_param)(struct lua_State *L, ft_tensor *h);
    void (*unref)(struct lua_State *L, int ref);
    ft_status (*lua_forward)(ftm_ctx *c, ftm_module *m, const ft_tensor *x, ft_tensor **out);
} ftm_lua_callbacks;
void ftm_set_lua_callbacks(const ftm_lua_callbacks *cb);

/* Visits every parameter (and buffer, when buffers is set) below m in torch's order: a
 * module's own tensors first, then its children's. name is the full dotted name. A visitor
 * may raise a Lua error: the walk owns nothing. */
typedef void (*ftm_visitor)(void *ud, const char *name, ftm_slot *slot, ftm_module *owner,
                            int is_buffer);
void ftm_walk(ftm_module *m, const char *prefix, int params, int buffers, ftm_visitor fn, void *ud);
void ftm_set_training(ftm_module *m, int training);

/* ---------------------------------------------------------------- zoo.c */
/* torchvision's resnet18/34/50/101/152 (depth picks it). NULL on failure (ft_last_error). */
ftm_module *ftm_resnet(int depth, int64_t num_classes);

#endif /* FTM_MODULE_H */
