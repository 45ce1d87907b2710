/* memory.c: let Lua's GC see libtorch's memory.
 *
 * Lua only sees the small userdata that holds a tensor handle, never the megabytes behind it,
 * so a loop that makes big temporaries would grow without bound until Lua's own heap happened
 * to trigger a cycle: Torch7's worst problem (torch7#229). Like Torch7's heap tracking, we count
 * the bytes held by live tensor handles and run a full collection when they pass a threshold;
 * after it the threshold becomes twice what survived (the same pacing as Lua's own `pause` of
 * 200%), never below FTL_GC_MIN_BYTES. Views are counted with their whole storage, so the
 * count can exceed the truth; that only makes collection a little more eager.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "base/lua_tensor.h"

#define FTL_GC_MIN_BYTES ((size_t)64 << 20)

static _Atomic size_t live_bytes;
static size_t threshold = FTL_GC_MIN_BYTES;
static size_t peak_bytes;
static size_t collections;
static int collecting; /* a collection frees tensors; don't start another from inside it */

void ftl_mem_add(lua_State *L, size_t nbytes) {
    size_t live = atomic_fetch_add(&live_bytes, nbytes) + nbytes;
    if (live > peak_bytes) peak_bytes = live;
    if (live <= threshold || collecting) return;
    collecting = 1;
    lua_gc(L, LUA_GCCOLLECT);
    collecting = 0;
    collections++;
    size_t after = atomic_load(&live_bytes);
    threshold = after * 2 > FTL_GC_MIN_BYTES ? after * 2 : FTL_GC_MIN_BYTES;
}

void ftl_mem_sub(size_t nbytes) { atomic_fetch_sub(&live_bytes, nbytes); }

size_t ftl_mem_live(void) { return atomic_load(&live_bytes); }

/* T.memory() -> {live_bytes=, peak_bytes=, threshold_bytes=, collections=} */
int ftl_mem_stats(lua_State *L) {
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)atomic_load(&live_bytes));
    lua_setfield(L, -2, "live_bytes");
    lua_pushinteger(L, (lua_Integer)peak_bytes);
    lua_setfield(L, -2, "peak_bytes");
    lua_pushinteger(L, (lua_Integer)threshold);
    lua_setfield(L, -2, "threshold_bytes");
    lua_pushinteger(L, (lua_Integer)collections);
    lua_setfield(L, -2, "collections");
    if (lua_toboolean(L, 1))
        peak_bytes = atomic_load(&live_bytes); /* T.memory(true) resets the peak */
    return 1;
}
