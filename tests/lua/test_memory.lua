-- test_memory.lua: a loop of 100000 temporaries holds its memory flat without collectgarbage().
-- Lua's GC can't see libtorch's bytes (Torch7's worst problem); tensor/memory.c tracks them.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"

local function rss_mb()
  local f = io.open("/proc/self/statm"); if not f then return nil end
  local _, res = f:read("n", "n"); f:close()
  return res * 4096 / 2 ^ 20
end

H.test("100000 temporaries hold memory flat", function()
  collectgarbage("collect")
  local before = rss_mb()
  T.memory(true) -- reset the peak
  local threads = T.get_num_threads()
  T.set_num_threads(1) -- tiny ops; spare the other core
  -- 1 MiB temporaries: Lua's own GC sees ~50 bytes of userdata for each and would let
  -- thousands pile up; 100000 of them are 100 GiB.
  local x = T.ones { 256, 1024 }
  local acc = 0
  for i = 1, 100000 do
    local y = (i % 100 == 0) and x * 2 or T.empty { 256, 1024 } -- never freed by hand
    if i % 10000 == 0 then acc = acc + y[1][1] end
  end
  T.set_num_threads(threads)
  H.eq(acc, 20, "work done")
  local stats = T.memory()
  local after = rss_mb()
  -- The tracked peak stays within the GC threshold's reach (64 MiB floor, 2x live after a cycle).
  assert(stats.peak_bytes < 200 * 2 ^ 20, ("peak tracked bytes %.0f MiB"):format(stats.peak_bytes / 2 ^ 20))
  assert(stats.collections > 0, "the tracker never stepped the GC")
  if before and after then
    assert(after - before < 400, ("RSS grew by %.0f MiB"):format(after - before))
  end
end)

H.test("live bytes go back down after collection", function()
  collectgarbage("collect")
  local base = T.memory().live_bytes
  do local t = T.zeros { 1024, 1024 } ; H.eq(T.memory().live_bytes - base, 4 * 2 ^ 20, "counted") end
  collectgarbage("collect")
  H.eq(T.memory().live_bytes, base, "released")
end)

H.done()
