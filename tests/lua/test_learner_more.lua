-- test_learner_more.lua: Learner features not covered by test_learner.lua: fine_tune's two
-- stages, cnn_learner (scratch and weights = FILE), predict, to_bf16, channels-last,
-- fit_flat_cos / fit_sgdr schedules, SaveModelCallback, EarlyStoppingCallback, CSVLogger.
-- Tiny synthetic data (ImageDataLoaders.from_tensors) so that the file runs in about a minute.
-- References: tests/py/learner_ref.py (schedules), Python's repr (CSV), PIL-written files
-- (predict), known values (callbacks), the fp32 run (bf16, channels-last).
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"
local nn = ft.nn

T.set_num_threads(1)

-- Two classes of px x px grey images (tests/lua/synth.lua): class 1 bright on the left half,
-- class 2 on the right, plus noise: uint8 [n, px, px] and labels [n] (1-based).
local synth = require("synth").halves

local function dls_synth(opts)
  opts = opts or {}
  local px = opts.px or 16
  local xt, yt = synth(opts.n_train or 256, px, 1)
  local xv, yv = synth(opts.n_valid or 64, px, 2)
  return ft.vision.ImageDataLoaders.from_tensors(xt, yt, xv, yv, { bs = opts.bs or 32, channels = opts.channels or 1,
    verbose = false, seed = 1, vocab = { "left", "right" }, normalize = opts.normalize, path = opts.path })
end

local function cnn(c_in, n_out)
  local m = nn.Sequential {
    nn.Conv2d(c_in, 8, 3, { stride = 2, padding = 1, bias = false }), nn.BatchNorm2d(8), nn.ReLU(),
    nn.Conv2d(8, 16, 3, { stride = 2, padding = 1, bias = false }), nn.BatchNorm2d(16), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, n_out),
  }
  return m
end

local clones = H.state_clone

local function copy_hps(rec)
  local out = {}
  for i, g in ipairs(rec.hps.lr) do
    out[i] = {}
    for j, v in ipairs(g) do out[i][j] = v end
  end
  return out
end

local PY = [==[
import os, sys, numpy as np
sys.path.insert(0, os.path.join(os.environ.get('FTLUA_ROOT', '.'), 'tests', 'py'))
import learner_ref as R
def lrs_of(c):
    lr_f, mom_f, n = R.case_scheds(c, True)
    return [[float(v) for v in np.atleast_1d(lr_f(pos))] for pos in R.train_positions(n, c["n_iter"])]
]==]

local function check_lrs(got, want, what)
  H.eq(#got, #want, what .. " batches")
  for i = 1, #want do H.close(got[i], want[i], 1e-9, what .. " batch " .. i) end
end

H.test("fine_tune: frozen stage [2e-4,2e-4,2e-3], then unfrozen [1e-5,1e-4,1e-3] div 5 pct .3", function()
  if not H.have_torch() then return H.skip("fine_tune reference", "no python3-torch") end
  T.manual_seed(0)
  local dls = dls_synth { channels = 3, n_train = 128, bs = 32 }
  local learn = ft.vision.cnn_learner(dls, "resnet18", { pretrained = false })
  H.eq(learn:n_groups(), 3, "groups")
  local stages, snaps = {}, {}
  local run = learn._run
  learn._run = function(self, ...)
    snaps[#snaps + 1] = clones(self.model)
    run(self, ...)
    stages[#stages + 1] = copy_hps(self.recorder)
    return self
  end
  learn:fine_tune(2)
  snaps[#snaps + 1] = clones(learn.model)
  H.eq(#stages, 2, "stages")
  local n_iter = #dls.train
  local ref = H.python(PY .. ([==[
a = lrs_of(dict(kind="one_cycle", n_groups=3, lr=[2e-4, 2e-4, 2e-3], n_epoch=1, n_iter=%d, pct_start=0.99))
b = lrs_of(dict(kind="one_cycle", n_groups=3, lr=[1e-5, 1e-4, 1e-3], n_epoch=2, n_iter=%d, pct_start=0.3, div=5.0))
print(lua([a, b]))
]==]):format(n_iter, n_iter))
  check_lrs(stages[1], ref[1], "stage 1")
  check_lrs(stages[2], ref[2], "stage 2")
  -- stage 1 is frozen: the body's conv weights do not move; stage 2 trains them
  assert(snaps[1]["0.0.weight"]:equal(snaps[2]["0.0.weight"]), "frozen stage changed the stem conv")
  assert(not snaps[1]["1.8.weight"]:equal(snaps[2]["1.8.weight"]), "frozen stage did not train the head")
  assert(not snaps[2]["0.0.weight"]:equal(snaps[3]["0.0.weight"]), "unfrozen stage did not train the stem")
end)

H.test("cnn_learner: pretrained=false trains everything, no normalisation added", function()
  local dls = dls_synth { channels = 3, n_train = 64 }
  local learn = ft.vision.cnn_learner(dls, "resnet18", { pretrained = false })
  local total, trainable = learn.model:num_params()
  H.eq(trainable, total, "trainable params")
  H.eq(dls.train:info().mean, nil, "normalisation")
end)

H.test("cnn_learner: weights = FILE loads the body, freezes it, adds ImageNet stats", function()
  local dir = H.tmpdir()
  T.manual_seed(7)
  local src = ft.models.resnet18()
  local file = dir .. "/r18.safetensors"
  T.save(file, (src:state_dict()))
  local dls = dls_synth { channels = 3, n_train = 64 }
  local learn = ft.vision.cnn_learner(dls, "resnet18", { weights = file, metrics = ft.metrics.accuracy })
  local sd = learn.model:state_dict()
  local want = src:state_dict()
  assert(sd["0.0.weight"]:equal(want["conv1.weight"]), "stem weights")
  assert(sd["0.7.1.conv2.weight"]:equal(want["layer4.1.conv2.weight"]), "layer4 weights")
  local total, trainable = learn.model:num_params()
  assert(trainable < total, "a pretrained body is frozen")
  H.close(dls.train:info().mean, { 0.485, 0.456, 0.406 }, 1e-6, "mean")
  H.close(dls.valid:info().std, { 0.229, 0.224, 0.225 }, 1e-6, "std")
  os.execute("rm -rf '" .. dir .. "'")
end)

H.test("predict: label, index, probs summing to 1, agreeing with get_preds", function()
  if not H.have_torch() then return H.skip("predict", "no python3 (PIL) to write images") end
  local dir = H.tmpdir()
  -- PNG files written by PIL: names "left_N.png" / "right_N.png"
  H.python(([==[
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for i in range(48):
    lab = "left" if i %% 2 == 0 else "right"
    a = rng.integers(0, 60, (20, 20, 3)).astype(np.uint8)
    if lab == "left": a[:, :10] += 150
    else: a[:, 10:] += 150
    Image.fromarray(a).save("%s/%%s_%%d.png" %% (lab, i))
print(1)
]==]):format(dir))
  T.manual_seed(3)
  local dls = ft.vision.ImageDataLoaders.from_name_re(dir, nil, "^(%a+)_%d+%.png$",
    { item_tfms = ft.vision.Resize(16), bs = 8, seed = 42, verbose = false, valid_pct = 0.25 })
  local learn = ft.Learner(dls, cnn(3, dls.c), { metrics = ft.metrics.accuracy })
  learn:fit_one_cycle(2, 1e-2)
  local files = ft.vision.get_image_files(dir)
  table.sort(files)
  local probs = learn:get_preds { dl = dls:test_dl(files) }
  for i = 1, 4 do
    local label, idx, p = learn:predict(files[i])
    H.close(p:sum():item(), 1, 1e-6, "probs sum")
    H.close(p, probs[i], 1e-6, "probs vs get_preds")
    local _, want = probs[i]:max(1)
    H.eq(idx, want:item(), "index")
    H.eq(label, dls.vocab[idx], "label")
  end
  os.execute("rm -rf '" .. dir .. "'")
end)

H.test("to_bf16: trains (finite, decreasing loss) to fp32's accuracy", function()
  local acc = {}
  for _, mode in ipairs { "fp32", "bf16" } do
    T.manual_seed(11)
    local learn = ft.Learner(dls_synth {}, cnn(1, 2), { metrics = ft.metrics.accuracy })
    if mode == "bf16" then learn:to_bf16() end
    learn:fit_one_cycle(3, 1e-2)
    local l = learn.recorder.losses
    for i = 1, #l do assert(l[i] == l[i] and math.abs(l[i]) < math.huge, mode .. " loss not finite at " .. i) end
    assert(l[#l] < l[1], ("%s loss did not decrease: %g -> %g"):format(mode, l[1], l[#l]))
    acc[mode] = learn.recorder.values[3][3]
  end
  assert(acc.fp32 > 0.9, "fp32 accuracy " .. acc.fp32)
  assert(math.abs(acc.bf16 - acc.fp32) <= 0.05, ("bf16 accuracy %.3f vs fp32 %.3f"):format(acc.bf16, acc.fp32))
end)

H.test("channels-last: same eval outputs as the default layout (1e-5), trains", function()
  T.manual_seed(12)
  local learn = ft.Learner(dls_synth { channels = 3 }, cnn(3, 2))
  learn:fit(1, 1e-3)
  local p1 = learn:get_preds { act = false }
  learn:to_channels_last()
  local p2 = learn:get_preds { act = false }
  H.close(p2, p1, 1e-5, "logits")
  learn:fit(1, 1e-3)
  local l = learn.recorder.losses
  assert(l[#l] == l[#l], "loss NaN after channels-last training")
end)

H.test("fit_flat_cos and fit_sgdr: recorded lrs equal learner_ref.py", function()
  if not H.have_torch() then return H.skip("schedules", "no python3-torch") end
  T.manual_seed(13)
  local dls = dls_synth { n_train = 96, bs = 32 } -- 3 batches per epoch
  local m = cnn(1, 2)
  m:set_param_groups { { "0", "1" }, { "3", "4" }, { "8" } }
  local learn = ft.Learner(dls, m)
  learn:fit_flat_cos(2, ft.slice(1e-4, 1e-2), { pct_start = 0.5 })
  local flat = copy_hps(learn.recorder)
  learn:fit_sgdr(2, 1, 3e-3)
  local sgdr = copy_hps(learn.recorder)
  local ref = H.python(PY .. [==[
a = lrs_of(dict(kind="flat_cos", n_groups=3, lr=dict(slice=[1e-4, 1e-2]), n_epoch=2, n_iter=3, pct_start=0.5))
b = lrs_of(dict(kind="sgdr", n_groups=3, lr=3e-3, n_cycles=2, cycle_len=1, n_iter=3))
print(lua([a, b]))
]==])
  check_lrs(flat, ref[1], "flat_cos")
  check_lrs(sgdr, ref[2], "sgdr")
end)

-- A callback that spoils the head after training from epoch `from` on, harder each epoch, so
-- that valid_loss is worst-ever from there: the best epoch is known.
local function spoiler(from)
  return { name = "Spoiler", after_train = function(_, learn)
    if learn.epoch >= from then
      local w = learn.model:state_dict()["8.weight"]
      T.manual_seed(100 + learn.epoch)
      learn.model:load_state_dict({ ["8.weight"] = w + T.randn(w:size()) * (5 * (learn.epoch + 1)) }, { strict = false })
    end
  end }
end

H.test("SaveModelCallback{monitor='valid_loss'} saves and reloads the best epoch", function()
  local dir = H.tmpdir()
  T.manual_seed(14)
  local learn = ft.Learner(dls_synth {}, cnn(1, 2), { path = dir })
  local per_epoch = {}
  local keeper = { name = "Keeper", after_epoch = function(_, l) per_epoch[l.epoch + 1] = clones(l.model) end }
  learn:fit(4, 1e-2, { cbs = { spoiler(2), ft.callbacks.SaveModelCallback { monitor = "valid_loss" }, keeper } })
  local vals = learn.recorder.values
  local best = 1
  for e = 2, #vals do if vals[e][2] < vals[best][2] then best = e end end
  H.eq(best, 2, "best epoch (1-based) by valid_loss")
  local file = dir .. "/models/model.safetensors"
  local saved = T.load(file)
  for k, t in pairs(per_epoch[best]) do assert(saved["model." .. k]:equal(t), "saved " .. k) end
  local p_after = learn:get_preds()
  learn.model:load_state_dict(per_epoch[best])
  local p_best = learn:get_preds()
  assert(p_after:equal(p_best), "the model after fit does not predict as the best epoch")
  os.execute("rm -rf '" .. dir .. "'")
end)

H.test("EarlyStoppingCallback stops after patience epochs without improvement", function()
  for _, patience in ipairs { 1, 2 } do
    T.manual_seed(15)
    local learn = ft.Learner(dls_synth {}, cnn(1, 2))
    learn:fit(6, 1e-2, { cbs = { spoiler(1), ft.callbacks.EarlyStoppingCallback { patience = patience } } })
    H.eq(#learn.recorder.values, 1 + patience, "epochs run with patience " .. patience)
  end
end)

H.test("CSVLogger writes the header and one row per epoch, floats as Python repr", function()
  if not H.have_torch() then return H.skip("CSVLogger", "no python3") end
  local dir = H.tmpdir()
  T.manual_seed(16)
  local learn = ft.Learner(dls_synth {}, cnn(1, 2), { path = dir, metrics = { ft.metrics.accuracy, ft.metrics.error_rate } })
  learn:fit(2, 1e-3, { cbs = { ft.callbacks.CSVLogger { fname = "log.csv" } } })
  local f = assert(io.open(dir .. "/log.csv"))
  local lines = {}
  for l in f:lines() do lines[#lines + 1] = l end
  f:close()
  H.eq(#lines, 3, "lines")
  H.eq(lines[1], "epoch,train_loss,valid_loss,accuracy,error_rate,time", "header")
  local hex = {}
  for e, row in ipairs(learn.recorder.values) do
    for _, v in ipairs(row) do hex[#hex + 1] = ("%q"):format(("%a"):format(v)) end
  end
  local reprs = H.python("print(lua([repr(float.fromhex(s)) for s in [" .. table.concat(hex, ",") .. "]]))")
  local k = 0
  for e = 1, 2 do
    local cells = {}
    for c in lines[e + 1]:gmatch("[^,]+") do cells[#cells + 1] = c end
    H.eq(#cells, 6, "cells in row " .. e)
    H.eq(cells[1], tostring(e - 1), "epoch")
    for j = 2, 5 do
      k = k + 1
      H.eq(cells[j], reprs[k], ("row %d col %d"):format(e, j))
    end
    assert(cells[6]:match("^%d%d:%d%d$"), "time " .. cells[6])
  end
  os.execute("rm -rf '" .. dir .. "'")
end)

H.done()
