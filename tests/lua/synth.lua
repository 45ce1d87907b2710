-- synth.lua: tiny synthetic image data for learner tests (require "synth"; not a test itself).
local T = require("ftlua").tensor
local S = {}

-- Two classes of px x px grey images: class 1 bright (+150) on the left half, class 2 on the
-- right half, over uniform noise in [0, 60). Returns uint8 [n, px, px] and 1-based labels [n]
-- (int64). Deterministic for a seed.
function S.halves(n, px, seed)
  T.manual_seed(seed)
  local y = T.randint(1, 3, { n })
  local x = T.rand { n, px, px } * 60
  local half = px // 2
  local yt = y:totable()
  for i = 1, n do
    local lo = yt[i] == 1 and 1 or half + 1
    x[i][{ {}, { lo, lo + half - 1 } }] = x[i][{ {}, { lo, lo + half - 1 } }] + 150
  end
  return x:to("uint8"), y:long()
end

-- Runs fn(dir) in a fresh temporary directory and removes it afterwards (also on error).
function S.in_tmpdir(H, fn)
  local dir = H.tmpdir()
  local ok, err = xpcall(fn, debug.traceback, dir)
  os.execute("rm -rf '" .. dir .. "'")
  if not ok then error(err, 0) end
end

return S
