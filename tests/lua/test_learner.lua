-- test_learner.lua: the Learner's C loop (runtime/learner/learner_fit.c, learner_step.c) end to end: schedules
-- recorded by a real fit against tests/py/learner_ref.py, lr_find's exact restore, frozen
-- training, bad input, callbacks, save/load, and real accuracy on Fashion-MNIST and pets.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"
local nn = ft.nn

-- One intra-op thread: on the shared 2-core CI machine more threads are slower, not faster.
T.set_num_threads(1)

local FM = "/usr/share/datasets/fashion-mnist"
local have_fm = io.open(FM .. "/train-images-idx3-ubyte.gz", "rb") or io.open(FM .. "/train-images-idx3-ubyte", "rb")
if not have_fm then
  H.skip("learner", "Fashion-MNIST not installed at " .. FM)
  H.done()
end
have_fm:close()

local function cnn(c_in, n_out)
  local function blk(i, o) return nn.Conv2d(i, o, 3, { stride = 2, padding = 1, bias = false }), nn.BatchNorm2d(o), nn.ReLU() end
  local l = {}
  for _, io_ in ipairs { { c_in, 32 }, { 32, 64 }, { 64, 128 } } do
    local a, b, c = blk(io_[1], io_[2])
    l[#l + 1], l[#l + 2], l[#l + 3] = a, b, c
  end
  l[#l + 1], l[#l + 2], l[#l + 3] = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, n_out)
  local m = nn.Sequential(l)
  m:set_param_groups { { "0", "1" }, { "3", "4", "6", "7" }, { "11" } } -- 3 groups, BN in each body group
  return m
end

local function fm(n_train, n_valid, bs)
  return ft.vision.FashionMNIST { n_train = n_train, n_valid = n_valid, bs = bs or 64, channels = 1,
    verbose = false, normalize = { { 0.286 }, { 0.353 } }, seed = 1 }
end

local clones = H.state_clone

local function same(a, b, keys)
  for k, t in pairs(a) do
    if not keys or keys(k) then
      if not t:equal(b[k]) then return false, k end
    end
  end
  return true
end

local PY = [==[
import os, sys, numpy as np
sys.path.insert(0, os.path.join(os.environ.get('FTLUA_ROOT', '.'), 'tests', 'py'))
import learner_ref as R
]==]

H.test("fit_one_cycle: per-batch lr and mom of 3 groups equal the reference (1e-9)", function()
  if not H.have_torch() then return H.skip("one_cycle reference", "no python3-torch") end
  T.manual_seed(0)
  local learn = ft.Learner(fm(320, 64, 64), cnn(1, 10))
  H.eq(learn:n_groups(), 3, "groups")
  learn:fit_one_cycle(3, ft.slice(1e-4, 1e-2), { pct_start = 0.3 })
  local hps = learn.recorder.hps
  H.eq(#hps.lr, 15, "batches (3 epochs x 5)")
  local ref = H.python(PY .. [==[
c = dict(kind="one_cycle", n_groups=3, lr=dict(slice=[1e-4, 1e-2]), n_epoch=3, n_iter=5, pct_start=0.3)
lr_f, mom_f, n = R.case_scheds(c, True)
lrs, moms = [], []
for pos in R.train_positions(n, 5):
    lrs.append([float(v) for v in np.atleast_1d(lr_f(pos))]); moms.append(float(mom_f(pos)))
print(lua(dict(lr=lrs, mom=moms)))
]==])
  for i = 1, 15 do
    H.close(hps.lr[i], ref.lr[i], 1e-9, "lr batch " .. i)
    for g = 1, 3 do H.close(hps.mom[i][g], ref.mom[i], 1e-9, "mom batch " .. i) end
  end
  -- discriminative lrs reach each group as given: slice(1e-4, 1e-2) peaks at 1e-4, 1e-3, 1e-2
  local peak = 1
  for i = 2, 15 do if hps.lr[i][3] > hps.lr[peak][3] then peak = i end end
  local ratio = { hps.lr[peak][1] / hps.lr[peak][3], hps.lr[peak][2] / hps.lr[peak][3] }
  H.close(ratio, { 1e-2, 1e-1 }, 1e-9, "group ratios")
end)

H.test("lr_find restores weights, BN stats and optimizer state bit for bit", function()
  T.manual_seed(1)
  local learn = ft.Learner(fm(640, 64, 64), cnn(1, 10))
  learn:fit(1, 1e-3) -- so the optimizer has state
  local before, opt_before = clones(learn.model), learn._core:opt_state()
  local lr_min, lr_steep, sg = learn:lr_find { num_it = 12 }
  H.eq(#learn.recorder.lrs <= 12, true, "at most num_it batches")
  assert(type(lr_min) == "number" and type(lr_steep) == "number", "two suggestions")
  assert(sg.valley and sg.minimum, "all suggestions")
  local ok, k = same(before, clones(learn.model))
  assert(ok, "weight/buffer changed: " .. tostring(k))
  local opt_after = learn._core:opt_state()
  for key, t in pairs(opt_before) do assert(t:equal(opt_after[key]), "optimizer state changed: " .. key) end
end)

H.test("SGD: fit_one_cycle trains, its mom follows the schedule, lr_find restores its state", function()
  T.manual_seed(3)
  local learn = ft.Learner(fm(640, 128, 64), cnn(1, 10), { opt_func = { ft.learner.SGD, mom = 0.9 } })
  H.eq(learn._core:opt_kind(), "SGD", "optimizer kind")
  local function valid_loss() local _, _, l = learn:get_preds { with_loss = true } return l:mean():item() end
  local before = valid_loss()
  learn:fit_one_cycle(2, 0.1)
  local after = valid_loss()
  assert(after < 0.8 * before, ("valid loss %.4f -> %.4f: SGD did not train"):format(before, after))
  local l = learn.recorder.losses
  assert(l[#l] < l[1], ("train loss %.4f -> %.4f did not decrease"):format(l[1], l[#l]))
  -- the optimizer's own mom, read back from it every batch, is fit_one_cycle's (0.95 -> 0.85 -> 0.95)
  local want = ft.learner_core.one_cycle(0.1, { n_groups = 3 }):values(2, 10).moms
  local hps, n = learn.recorder.hps, #learn.recorder.hps.mom
  H.eq(n, 20, "batches (2 epochs x 10)")
  for i = 1, n do
    for g = 1, 3 do H.close(hps.mom[i][g], want[i], 1e-12, "mom batch " .. i) end
  end
  assert(hps.mom[1][1] > 0.94 and hps.mom[n // 4 + 1][1] < 0.86, "mom went down to 0.85")
  -- lr_find snapshots and restores SGD's grad_avg
  local opt_before = learn._core:opt_state()
  assert(opt_before["1.grad_avg"] and not opt_before["1.sqr_avg"], "SGD with momentum keeps grad_avg only")
  learn:lr_find { num_it = 8 }
  local opt_after = learn._core:opt_state()
  for key, t in pairs(opt_before) do assert(t:equal(opt_after[key]), "optimizer state changed: " .. key) end
  -- plain SGD (fastai's default mom=0) keeps no state, and the Learner's default wd is SGD's 0
  local plain = ft.Learner(fm(128, 64, 64), cnn(1, 10), { opt_func = ft.learner.SGD })
  plain:fit(1, 1e-2)
  H.eq(plain._core:opt_state()["1.grad_avg"], nil, "no grad_avg without momentum")
  H.eq(plain._core:hypers()[1].wd, 0, "SGD's default wd")
end)

H.test("lr_find stops at 4x the best smoothed loss", function()
  T.manual_seed(2)
  local learn = ft.Learner(fm(6400, 64, 64), cnn(1, 10))
  learn:lr_find { start_lr = 1e-3, end_lr = 1e4, num_it = 100 }
  local l = learn.recorder.losses
  assert(#l < 100, "the sweep should diverge and stop early, ran " .. #l)
  local best = math.huge
  for i = 1, #l - 1 do best = math.min(best, l[i]) end
  assert(l[#l] > 4 * best or l[#l] ~= l[#l], "last loss is not above 4x best")
end)

H.test("a frozen epoch leaves the body's non-BN weights identical", function()
  T.manual_seed(3)
  local learn = ft.Learner(fm(256, 64, 64), cnn(1, 10))
  learn:freeze()
  local before = clones(learn.model)
  learn:fit_one_cycle(1, 1e-2)
  local after = clones(learn.model)
  for _, k in ipairs { "0.weight", "3.weight", "6.weight" } do assert(before[k]:equal(after[k]), k .. " changed") end
  for _, k in ipairs { "1.weight", "4.bias", "11.weight", "1.running_mean" } do assert(not before[k]:equal(after[k]), k .. " did not train") end
  learn:unfreeze()
  learn:fit(1, 1e-3)
  assert(not after["0.weight"]:equal(learn.model:state_dict()["0.weight"]), "unfreeze did not unfreeze")
end)

H.test("bad input gives clear errors", function()
  local learn = ft.Learner(fm(256, 64, 64), cnn(1, 10))
  H.errors(function() learn:fit(1, 0) end, "positive")
  H.errors(function() learn:fit(1, -1e-3) end, "positive")
  H.errors(function() learn:fit_one_cycle(1, 0 / 0) end, "positive")
  H.errors(function() learn:fit_one_cycle(1, ft.slice(1e-2, 1e-4)) end)
  H.errors(function() learn:fit_one_cycle(1, { 1e-3, 1e-3 }) end)
  H.errors(function() ft.Learner(fm(256, 64, 64), cnn(1, 10), { lr = 0 }) end, "positive")
  H.errors(function() ft.Learner(fm(256, 64, 64), cnn(1, 10), { opt_func = "RMSProp" }) end, "'RMSProp'",
    "ft.learner.Adam or ft.learner.SGD")
  H.errors(function() ft.Learner(fm(256, 64, 64), cnn(1, 10), { opt_func = { ft.learner.SGD, sqr_mom = 0.9 } }) end,
    "SGD has no setting 'sqr_mom'", "decouple_wd, mom, wd")
  H.errors(function() ft.Learner(fm(256, 64, 64), cnn(1, 10), { opt_func = { ft.learner.SGD, mom = "0.9" } }) end,
    "mom must be a finite number")
  assert(ft.Learner(fm(256, 64, 64), cnn(1, 10), { opt_func = ft.learner.Adam }), "the name the error gives works")
  local empty = ft.Learner(fm(32, 64, 64), cnn(1, 10))
  H.errors(function() empty:fit(1, 1e-3) end, "training set is empty")
  local bad = ft.Learner(fm(128, 64, 64), cnn(1, 10), { metrics = ft.metrics.Metric("boom", function() error("kaput") end) })
  H.errors(function() bad:fit(1, 1e-3) end, "metric 'boom'", "kaput")
  local calls = 0
  local cb = { name = "Exploder", after_batch = function() calls = calls + 1 if calls == 1 then error("bang") end end }
  H.errors(function() learn:fit(2, 1e-3, { cbs = { cb } }) end, "callback 'Exploder'", "after_batch", "bang")
  H.eq(calls, 1, "fit stopped at the failing callback")
  H.eq(#learn.recorder.losses, 1, "recorded batches")
  learn:fit(1, 1e-3) -- still usable
end)

H.test("callbacks: events in order, cancel_fit, smooth loss", function()
  local learn = ft.Learner(fm(256, 64, 64), cnn(1, 10))
  local seen = {}
  local cb = { name = "Spy" }
  for _, e in ipairs { "before_fit", "before_epoch", "after_epoch", "after_fit" } do
    cb[e] = function() seen[#seen + 1] = e end
  end
  cb.after_batch = function(_, l) if l.train_iter >= 5 then return "cancel_fit" end end
  learn:fit(3, 1e-3, { cbs = { cb } })
  H.eq(table.concat(seen, ","), "before_fit,before_epoch,after_epoch,before_epoch,after_fit", "events")
  H.eq(#learn.recorder.losses, 6, "batches before cancel")
end)

H.test("save/load keeps predictions and optimizer state; interpretation adds up", function()
  T.manual_seed(4)
  local dir = H.tmpdir()
  local learn = ft.Learner(fm(512, 128, 64), cnn(1, 10), { path = dir })
  learn:fit(1, 1e-3)
  local p1 = learn:get_preds()
  local file = learn:save("stage1")
  assert(io.open(file, "rb"), "no file " .. file)
  local opt1 = learn._core:opt_state()
  learn:fit(1, 1e-2)
  learn:load("stage1")
  local p2, targs = learn:get_preds()
  assert(p1:equal(p2), "predictions differ after load")
  for k, t in pairs(opt1) do assert(t:equal(learn._core:opt_state()[k]), "opt " .. k) end
  local interp = ft.ClassificationInterpretation.from_learner(learn)
  local cm = interp:confusion_matrix()
  H.eq(cm:sum():item(), 128, "confusion matrix total")
  local _, pred = p2:max(2)
  local correct = pred:eq(targs):sum():item()
  local diag = 0
  for i = 1, 10 do diag = diag + cm[i][i] end
  H.eq(diag, correct, "diagonal")
  local mc = interp:most_confused { min_val = 1 }
  for i = 2, #mc do assert(mc[i - 1][3] >= mc[i][3], "most_confused order") end
  local l, idx = interp:top_losses(3)
  H.eq(l:size(1), 3, "top_losses")
  os.execute("rm -rf '" .. dir .. "'")
end)

local pets = H.shared("data/pets-sample/SOURCE.md") and (os.getenv("FTLUA_SHARED") or "../shared") .. "/data/pets-sample/images"
if pets then
  H.test("pets-sample: from scratch at 64 px, well above chance (33%)", function()
    T.manual_seed(6)
    local dls = ft.vision.ImageDataLoaders.from_name_re(pets, nil, "^(.+)_%d+%.jpg$",
      { item_tfms = ft.vision.Resize(64), bs = 32, seed = 42, verbose = false })
    local learn = ft.Learner(dls, cnn(3, dls.c), { metrics = ft.metrics.error_rate })
    learn:fit_one_cycle(6, 3e-3)
    local err = learn.recorder.values[6][3]
    assert(err < 0.5, ("error_rate %.3f (chance 0.667)"):format(err))
  end)
else
  H.skip("pets-sample", "../shared/data/pets-sample not found")
end

H.done()
