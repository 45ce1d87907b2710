-- test_save_model_nan.lua: SaveModelCallback when the monitored value is NaN (issue 14, defect
-- 2). A NaN is never the best: the epoch is skipped with a warning; when no epoch had a number,
-- the end says so, nothing is saved and nothing is loaded (not even a file of an earlier fit).
-- References: known values (which epochs are NaN is set by the test) and the weights of each
-- epoch, kept by the test.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"
local nn = ft.nn
local synth = require("synth").halves

T.set_num_threads(1)

local function tiny()
  return nn.Sequential { nn.Flatten(), nn.Linear(64, 2) }
end

local clones = H.state_clone

local function same(a, b)
  for k, t in pairs(a) do
    if not (t:isnan():any():item() and b[k]:isnan():any():item()) and not t:equal(b[k]) then return false end
  end
  return true
end

-- io.stderr replaced while fn runs: what was written to it.
local function stderr_of(fn)
  local real, got = io.stderr, {}
  io.stderr = { write = function(self, ...) for _, s in ipairs { ... } do got[#got + 1] = tostring(s) end return self end }
  local ok, err = pcall(fn)
  io.stderr = real
  if not ok then error(err, 0) end
  return table.concat(got)
end

H.test("SaveModelCallback with no validation set (valid_pct = 0): warns, saves nothing, loads nothing", function()
  local dir = H.tmpdir()
  local xt, yt = synth(64, 8, 1)
  local dls = ft.vision.ImageDataLoaders.from_tensors(xt, yt, xt:narrow(1, 1, 0), yt:narrow(1, 1, 0),
    { bs = 16, channels = 1, verbose = false, vocab = { "l", "r" } })
  T.manual_seed(3)
  local learn = ft.Learner(dls, tiny(), { path = dir })
  -- a file of an earlier fit is there: it must not be loaded at the end
  os.execute("mkdir -p '" .. dir .. "/models'")
  learn:save("model")
  local earlier = clones(learn.model)
  local last
  local keeper = { name = "Keeper", after_epoch = function(_, l) last = clones(l.model) end }
  local err = stderr_of(function()
    learn:fit(2, 1e-1, { cbs = { ft.callbacks.SaveModelCallback {}, keeper } })
  end)
  H.eq(#learn.recorder.values, 2, "epochs")
  assert(learn.recorder.values[1][2] ~= learn.recorder.values[1][2], "valid_loss is NaN")
  assert(err:find("valid_loss is NaN at epoch 0: not a better model", 1, true), "warned for epoch 0: " .. err)
  assert(err:find("valid_loss is NaN at epoch 1", 1, true), "warned for epoch 1: " .. err)
  assert(err:find("no epoch had a valid_loss that is a number", 1, true), "said so at the end: " .. err)
  assert(err:find("valid_pct = 0", 1, true), "the hint: " .. err)
  assert(same(clones(learn.model), last), "the model keeps its last epoch's weights")
  assert(not same(clones(learn.model), earlier), "the earlier file was not loaded")
  local saved = T.load(dir .. "/models/model.safetensors")
  for k, t in pairs(earlier) do assert(saved["model." .. k]:equal(t), "the earlier file is untouched: " .. k) end
  os.execute("rm -rf '" .. dir .. "'")
end)

H.test("SaveModelCallback: a NaN valid_loss in epoch 0 is never best; the best real epoch is saved and loaded", function()
  local dir = H.tmpdir()
  local xt, yt = synth(128, 8, 1)
  local xv, yv = synth(64, 8, 2)
  local dls = ft.vision.ImageDataLoaders.from_tensors(xt, yt, xv, yv,
    { bs = 32, channels = 1, verbose = false, vocab = { "l", "r" } })
  T.manual_seed(4)
  local learn = ft.Learner(dls, tiny(), { path = dir })
  -- epoch 0 validates a model whose head is NaN; epoch 1 starts from the real weights again
  local kept
  local poison = { name = "Poison",
    after_train = function(_, l)
      if l.epoch == 0 then
        kept = clones(l.model)
        local w = l.model:state_dict()["1.weight"]
        l.model:load_state_dict({ ["1.weight"] = w * (0 / 0) }, { strict = false })
      end
    end,
    before_epoch = function(_, l) if l.epoch == 1 then l.model:load_state_dict(kept) end end }
  local per_epoch = {}
  local keeper = { name = "Keeper", after_epoch = function(_, l) per_epoch[l.epoch + 1] = clones(l.model) end }
  local err = stderr_of(function()
    learn:fit(3, 1e-2, { cbs = { poison, ft.callbacks.SaveModelCallback {}, keeper } })
  end)
  local vals = learn.recorder.values
  assert(vals[1][2] ~= vals[1][2], "epoch 0's valid_loss is NaN")
  assert(err:find("valid_loss is NaN at epoch 0", 1, true), "warned: " .. err)
  assert(not err:find("no epoch had", 1, true), "no 'no epoch' warning: " .. err)
  local best = 2
  for e = 3, #vals do if vals[e][2] < vals[best][2] then best = e end end
  local saved = T.load(dir .. "/models/model.safetensors")
  for k, t in pairs(per_epoch[best]) do assert(saved["model." .. k]:equal(t), "saved the best real epoch: " .. k) end
  assert(same(clones(learn.model), per_epoch[best]), "loaded the best real epoch at the end")
  assert(not learn.model:state_dict()["1.weight"]:isnan():any():item(), "no NaN in the final model")
  os.execute("rm -rf '" .. dir .. "'")
end)

H.done()
