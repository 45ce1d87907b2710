/* model.h: the module tree behind ft.nn and ft.models, shared by the files of runtime/model.
 *
 * A module is a refcounted C struct (ftm_module). Its parent holds one reference per child
 * slot and every Lua userdata that shows it holds one more, so a child can live on in Lua
 * after its parent is gone, and the same child can sit in two parents (fastai's body shares
 * the resnet's layers). Parameters and buffers are shim handles owned by their module.
 *
 *   module.c        lifetime, children, parameters, the forward of every layer kind (C only)
 *   model.c         the Lua module: userdata, methods, ft.nn constructors (entry file)
 *   model_state.c   state_dict / load_state_dict, to(), parameter groups and freezing
 *   model_print.c   the printed tree with parameter counts
 *   model_desc.c    m:describe() / ft.nn.from_description: the tree as data (for export)
 *   zoo.c           torchvision's resnets, built in C
 *   ../../lua/ftlua/model_zoo.lua   weights and pretrained files, fastai's head and cnn model
 *
 * Names follow torch: parameters "weight"/"bias", buffers "running_mean"/"running_var"/
 * "num_batches_tracked", Sequential children "0", "1", ... (shown in Lua as m[1], m[2], ...).
 */
#ifndef FTM_MODEL_H
#define FTM_MODEL_H

#include "ftlua.h"

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
    int64_t in, out;                                  /* channels or features */
    int64_t kernel[2], stride[2], padding[2], dilation[2], groups;
    int64_t size[2];                                  /* adaptive pools' output size */
    int size_is_pair;                                 /* printed as (h, w) rather than h */
    int ndim;                                         /* BatchNorm: 1 or 2 */
    double eps, momentum, p;
    int inplace, ceil_mode;
    int start_dim, end_dim;                           /* Flatten, 0-based (negative from end) */
    char *split;     /* parameter groups: "a,b;c,d;e" (child paths), or NULL for one group */
    int lua_ref;     /* FTM_LUA: registry ref of its table {forward = fn, fields...} */
};

/* ---------------------------------------------------------------- module.c */

/* The last error of a constructor that returned NULL (thread-local). */
const char *ftm_error(void);
void ftm_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* New modules have one reference, owned by the caller. NULL on failure (see ftm_error). */
ftm_module *ftm_new(ftm_kind kind, const char *type);
void ftm_retain(ftm_module *m);
/* Drops one reference; at zero frees the module, its tensors and its references to children.
 * L is needed to drop Lua-side references (FTM_LUA modules, cached tensors). */
void ftm_release(lua_State *L, ftm_module *m);

/* Appends a child (retained). 0 on success, -1 on failure (see ftm_error). */
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

/* Layer constructors (parameters initialised as torch.nn does). NULL on failure. */
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
    lua_State *L;
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
    void (*forget_param)(lua_State *L, ft_tensor *h);
    void (*unref)(lua_State *L, int ref);
    ft_status (*lua_forward)(ftm_ctx *c, ftm_module *m, const ft_tensor *x, ft_tensor **out);
} ftm_lua_callbacks;
void ftm_set_lua_callbacks(const ftm_lua_callbacks *cb);

/* Visits every parameter (and buffer, when buffers is set) below m in torch's order: a
 * module's own tensors first, then its children's. name is the full dotted name. A visitor
 * may raise a Lua error: the walk owns nothing. */
typedef void (*ftm_visitor)(void *ud, const char *name, ftm_slot *slot, ftm_module *owner,
                            int is_buffer);
void ftm_walk(ftm_module *m, const char *prefix, int params, int buffers, ftm_visitor fn,
              void *ud);
void ftm_set_training(ftm_module *m, int training);

/* ---------------------------------------------------------------- model.c */

/* Lua-defined modules: runs m's Lua forward on x (protected; see ftm_ctx). */
ft_status ftl_model_lua_forward(ftm_ctx *c, ftm_module *m, const ft_tensor *x, ft_tensor **out);
/* Pushes the userdata of m (one per module while it lives, so identity holds in Lua). */
void ftl_push_module(lua_State *L, ftm_module *m);
ftm_module *ftl_check_module(lua_State *L, int idx);
ftm_module *ftl_to_module(lua_State *L, int idx); /* NULL when not a module */
/* Pushes the Lua tensor of a parameter or buffer handle: the same userdata every time while
 * it lives, so optimizers can key state by it. */
void ftl_push_param(lua_State *L, ft_tensor *h);
/* Forgets the cached Lua tensor of h (called when a module frees h). */
void ftl_forget_param(lua_State *L, ft_tensor *h);
/* Pushes two lists, names and tensors (the cached ones of ftl_push_param), of m's parameters
 * and/or buffers in torch's order; dedup shows a tensor shared by two modules once. Returns
 * the count. Names start with prefix (NULL for none). */
int ftl_collect(lua_State *L, ftm_module *m, const char *prefix, int params, int buffers,
                int dedup);
/* Calls ft.nn.warn(msg) (default: a line on stderr). */
void ftl_model_warn(lua_State *L, const char *msg);

/* A closed module userdata on top of the stack (returned), then ftl_adopt_module gives it a
 * freshly built module (NULL: raises ftm_error()), so an error never leaves one unowned. */
void *ftl_push_closed_module(lua_State *L);
void ftl_adopt_module(lua_State *L, void *ud, ftm_module *m);

/* ---------------------------------------------------------------- model_desc.c */
int ftl_m_describe(lua_State *L);          /* desc = m:describe() */
int ftl_nn_from_description(lua_State *L); /* m = ft.nn.from_description(desc) */

/* ---------------------------------------------------------------- model_state.c */
void ftl_register_state_methods(lua_State *L); /* into the methods table on top */

/* ---------------------------------------------------------------- model_print.c */
int ftl_module_tostring(lua_State *L, ftm_module *m);
/* Parameter counts of m's tree: all and trainable (requires_grad) ones. */
void ftm_count_params(ftm_module *m, int64_t *total, int64_t *trainable);

/* ---------------------------------------------------------------- zoo.c */
/* torchvision's resnet18/34/50/101/152 (depth picks it). NULL on failure (ftm_error). */
ftm_module *ftm_resnet(int depth, int64_t num_classes);

#endif /* FTM_MODEL_H */
