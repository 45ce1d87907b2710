/* ftlua.h: what the Lua modules share. Every Lua-facing C file includes this.
 * The tensor userdata (base/lua_tensor.h) and the option readers (base/args.h) come with it;
 * the boundary rules are in base/lua_tensor.h and docs/design.md.
 */
#ifndef FTLUA_H
#define FTLUA_H

#include <lauxlib.h>
#include <lua.h>

#include "base/args.h"
#include "base/lua_class.h"
#include "base/lua_tensor.h"
#include "torch/ft_torch.h"

#define FTLUA_VERSION "0.1.0"

/* The module library entry: `require "ftlua"` from a stock lua5.4 lands here. */
int luaopen_ftlua(lua_State *L);
/* Submodule entries, each returning its table (the ft table holds them as fields). */
int luaopen_ftlua_tensor(lua_State *L);
int luaopen_ftlua_model(lua_State *L);
int luaopen_ftlua_weights(lua_State *L);
int luaopen_ftlua_data(lua_State *L);         /* ft.data; ftlua.c also merges it into ft.vision */
int luaopen_ftlua_learner_core(lua_State *L); /* ft.learner_core: schedules, Adam, lr_find, ... */
int luaopen_ftlua_learner(lua_State *L);      /* ft.Learner, ft.metrics, ft.slice, ... */
int luaopen_ftlua_plot(lua_State *L);
int luaopen_ftlua_untar(lua_State *L); /* ft.untar_data, ft.URLs (weights/untar.c) */
int luaopen_ftlua_dist(lua_State *L);  /* ft.dist: process groups over c10d (dist/dist.c) */
int luaopen_ftlua_io(lua_State *L);    /* ft.io: atomic writes (tensor/atomic_lua.c) */

/* T.save / T.load: safetensors files (tensor/tensor_io.c). */
int ftl_tensor_save(lua_State *L);
int ftl_tensor_load(lua_State *L);

#endif /* FTLUA_H */
