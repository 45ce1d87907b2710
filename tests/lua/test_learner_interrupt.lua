-- test_learner_interrupt.lua: Ctrl-C (SIGINT) during fit finishes the batch, stops cleanly with
-- "interrupted!", and leaves the model usable: its weights are finite and it still predicts.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"
local nn = ft.nn

T.set_num_threads(1)

-- A shell that starts us in the background ignores SIGINT for us, and so do we (like lua.c).
local function sigint_ignored()
  local f = io.open("/proc/self/status")
  if not f then return false end
  local mask = f:read("a"):match("SigIgn:%s*(%x+)")
  f:close()
  return mask and (tonumber(mask:sub(-1), 16) & 2) ~= 0
end
if sigint_ignored() then
  H.skip("Ctrl-C during fit", "SIGINT is ignored in this process (started in the background)")
  H.done()
end

local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end

H.test("Ctrl-C during fit stops cleanly and keeps the model usable", function()
  T.manual_seed(0)
  local n = 2048
  local x = (T.rand { n, 16, 16 } * 255):to("uint8")
  local y = T.randint(1, 3, { n })
  local dls = ft.vision.ImageDataLoaders.from_tensors(x, y, x:narrow(1, 1, 64), y:narrow(1, 1, 64),
    { bs = 16, channels = 1, verbose = false, seed = 1, vocab = { "a", "b" } })
  local model = nn.Sequential {
    nn.Conv2d(1, 8, 3, { padding = 1 }), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
  }
  local learn = ft.Learner(dls, model, { metrics = ft.metrics.accuracy })
  -- Another process sends SIGINT while the C training loop runs (no Lua runs per batch).
  os.execute(("(sleep 1.5; kill -INT %s) >/dev/null 2>&1 &"):format(my_pid()))
  local t0 = ft.clock()
  local ok, err = pcall(learn.fit, learn, 1000, 1e-3)
  local took = ft.clock() - t0
  assert(not ok, "fit was not interrupted")
  assert(tostring(err):find("interrupted!", 1, true), "unexpected error: " .. tostring(err))
  assert(took < 60, ("stopped after %.1f s"):format(took))
  for _, p in ipairs(model:parameters()) do
    assert(p:isfinite():all():item(), "a weight is not finite")
  end
  local preds = learn:get_preds { ds_idx = 1 }
  H.eq(preds:size(1), 64, "predictions after the interrupt")
  H.close(preds:sum(2), T.ones { 64 }, 1e-5, "probabilities")
end)

H.done()
