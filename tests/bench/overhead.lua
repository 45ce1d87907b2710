-- overhead.lua N: ns per call of a 1-element add from Lua (userdata, GC pacing and all).
local ft = require "ftlua"
local T = ft.tensor
local n = tonumber(arg[1]) or 200000
local a = T.ones { 1 }
local t
for rep = 1, 2 do -- the first pass warms up
  local t0 = ft.clock()
  for _ = 1, n do local c = a + a end
  t = ft.clock() - t0
end
print(("%.1f"):format(t / n * 1e9))
