/* model.h: the `model` Lua module behind ft.nn and ft.models, shared by the files of
 * runtime/model. The C core it stands on (the module tree, C only) is module.h.
 *
 *   module.c        lifetime, children, parameters, the forward of every layer kind (C only)
 *   zoo.c           torchvision's resnets, built in C (C only)
 *   model.c         the Lua module: userdata, caches, methods that read the tree (entry file)
 *   model_nn.c      the ft.nn constructors, nn.init, autocast
 *   model_state.c   state_dict / load_state_dict, to(), parameter groups and freezing
 *   model_print.c   the printed tree with parameter counts
 *   model_desc.c    m:describe() / ft.nn.from_description: the tree as data (for export)
 *   ../../lua/ftlua/model_zoo.lua   weights and pretrained files, fastai's head and cnn model
 */
#ifndef FTM_MODEL_H
#define FTM_MODEL_H

#include "ftlua.h"
#include "model/module.h"

#define FTL_MODULE_MT "ftlua.Module" /* the metatable of module userdata */

/* ---------------------------------------------------------------- model.c */

/* Pushes the userdata of m (one per module while it lives, so identity holds in Lua). */
void ftl_push_module(lua_State *L, ftm_module *m);
ftm_module *ftl_check_module(lua_State *L, int idx);
ftm_module *ftl_to_module(lua_State *L, int idx); /* NULL when not a module */
/* Pushes the Lua tensor of a parameter or buffer handle: the same userdata every time while
 * it lives, so optimizers can key state by it. */
void ftl_push_param(lua_State *L, ft_tensor *h);
/* 1 when key is already in the set (a table) at index seen; otherwise adds it and returns 0.
 * A tensor shared by two modules of a tree is walked twice, and counted once. */
int ftl_seen_before(lua_State *L, int seen, const void *key);
/* Pushes two lists, names and tensors (the cached ones of ftl_push_param), of m's parameters
 * and/or buffers in torch's order; dedup shows a tensor shared by two modules once. Returns
 * the count. Names start with prefix (NULL for none). */
int ftl_collect(lua_State *L, ftm_module *m, const char *prefix, int params, int buffers,
                int dedup);
/* Calls ft.nn.warn(msg) (default: a line on stderr). */
void ftl_model_warn(lua_State *L, const char *msg);

/* A closed module userdata on top of the stack (returned), then ftl_adopt_module gives it a
 * freshly built module (NULL: raises ft_last_error()), so an error never leaves one unowned. */
void *ftl_push_closed_module(lua_State *L);
void ftl_adopt_module(lua_State *L, void *ud, ftm_module *m);

/* ---------------------------------------------------------------- model_nn.c */
/* Pushes the ft.nn table (the layer constructors, Module, nn.init, autocast, warn). */
void ftl_push_nn(lua_State *L);
int ftl_zoo_resnet(lua_State *L); /* priv.resnet(depth, num_classes), for model_zoo.lua */

/* ---------------------------------------------------------------- model_desc.c */
int ftl_m_describe(lua_State *L);          /* desc = m:describe() */
int ftl_nn_from_description(lua_State *L); /* m = ft.nn.from_description(desc) */

/* ---------------------------------------------------------------- model_state.c */
void ftl_register_state_methods(lua_State *L); /* into the methods table on top */

/* ---------------------------------------------------------------- model_print.c */
int ftl_module_tostring(lua_State *L, ftm_module *m);
/* Parameter counts of m's tree: all and trainable (requires_grad) ones. */
void ftm_count_params(ftm_module *m, int64_t *total, int64_t *trainable);

#endif /* FTM_MODEL_H */
