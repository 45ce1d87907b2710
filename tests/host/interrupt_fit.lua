-- interrupt_fit.lua: run by test_interrupt.sh under ./ftlua and under a stock lua5.4 with
-- ftlua.so. SIGINT arrives in the middle of a long epoch, while only C code runs (no Lua runs
-- per batch), so the learner itself must notice it (runtime/base/hooks.h). Prints one line.
local ft = require "ftlua"
local T = ft.tensor
local nn = ft.nn
T.set_num_threads(1)
T.manual_seed(0)

local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end

local n, bs = 65536, 16
local x = (T.rand { n, 8, 8 } * 255):to("uint8")
local y = T.randint(1, 3, { n })
local dls = ft.vision.ImageDataLoaders.from_tensors(x, y, x:narrow(1, 1, 64), y:narrow(1, 1, 64),
  { bs = bs, channels = 1, verbose = false, seed = 1, vocab = { "a", "b" } })
local model = nn.Sequential { nn.Conv2d(1, 4, 3, { padding = 1 }), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
  nn.Flatten(), nn.Linear(4, 2) }
local learn = ft.Learner(dls, model, { cbs = {} })
os.execute(("(sleep 1; kill -INT %s) >/dev/null 2>&1 &"):format(my_pid()))
local ok, err = pcall(learn.fit, learn, 1, 1e-3)
local batches = #(learn.recorder.losses or {})
if ok then
  print(("FAIL %s: the epoch (%d batches) ended before SIGINT came"):format(arg[1], n // bs))
elseif not tostring(err):find("interrupted!", 1, true) then
  print(("FAIL %s: unexpected error: %s"):format(arg[1], tostring(err)))
elseif batches >= n // bs then
  print(("FAIL %s: stopped only after the whole epoch (%d batches)"):format(arg[1], batches))
else
  print(("ok %s (stopped after %d of %d batches)"):format(arg[1], batches, n // bs))
end
