-- test_learner_tta.lua: learn:tta on tensor-backed data (ImageDataLoaders.from_tensors,
-- FashionMNIST). The reference is computed here without tta's code: the model run by hand
-- over loaders made from the kept datasets with the train transforms (the same seed and the
-- epochs 1001..1000+n that tta draws), the mean of those passes, then fastai's blend
-- lerp(aug_mean, plain, beta) = (1-beta)*aug_mean + beta*plain, or max(plain, max(aug)).
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"
local nn = ft.nn

T.set_num_threads(1)

local synth = require("synth").halves

local function range(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

-- Softmax outputs of model over every batch of dl in epoch `epoch`, in order (eval, no grad).
local function run(model, dl, epoch)
  model:eval()
  local out = {}
  T.no_grad(function()
    for x in dl:batches(epoch) do out[#out + 1] = model(x):softmax(2) end
  end)
  return T.cat(out, 1)
end

-- The loader tta should use: the split's dataset, in order, with the train transforms.
local function aug_loader(ds, dls, aug)
  local info = dls.valid:info()
  return ds:loader(range(#ds), { bs = info.bs, shuffle = false, drop_last = false, train = true, seed = 1,
    aug = aug, size = aug and aug.size, mean = info.mean, std = info.std, channels = info.channels, num_workers = 1 })
end

local function reference(model, dls, ds, aug, plain_dl, n, beta, use_max)
  local plain = run(model, plain_dl, 0)
  local dl = aug_loader(ds, dls, aug)
  local acc
  for i = 1, n do
    local p = run(model, dl, 1000 + i)
    if not acc then acc = p elseif use_max then acc = acc:maximum(p) else acc = acc + p end
  end
  if use_max then return plain:maximum(acc), plain end
  return (acc / n) * (1 - beta) + plain * beta, plain
end

local function small_cnn(c)
  return nn.Sequential { nn.Conv2d(c, 6, 3, { padding = 1 }), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(6, 8, 3, { padding = 1 }), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2) }
end

H.test("tta on from_tensors data: the augmented passes' mean blended with the plain pass", function()
  local xt, yt = synth(64, 16, 1)
  local xv, yv = synth(20, 16, 2)
  local aug = ft.vision.aug_transforms { size = 16, max_rotate = 30, min_scale = 0.6, max_lighting = 0.4 }
  local dls = ft.vision.ImageDataLoaders.from_tensors(xt, yt, xv, yv, { bs = 8, channels = 1, verbose = false,
    seed = 1, num_workers = 1, batch_tfms = { aug, ft.vision.Normalize(0.3, 0.2) } })
  T.manual_seed(11)
  local learn = ft.Learner(dls, small_cnn(1))
  learn:fit(1, 1e-2)
  local p, t = learn:tta()
  local want, plain = reference(learn.model, dls, dls.valid_ds, aug, dls.valid, 4, 0.25)
  H.close(plain, (learn:get_preds()), 1e-6, "plain pass")
  assert(t:equal(yv), "tta targets are the valid labels")
  H.close(p, want, 1e-6, "tta = lerp(mean of 4 augmented passes, plain, 0.25)")
  local diff = (p - plain):abs():max():item()
  assert(diff > 1e-3, ("tta equals the plain predictions (max diff %g): no augmentation"):format(diff))
  H.close(learn:tta(), p, 0, "deterministic")
  H.close(learn:tta { beta = 1 }, plain, 1e-6, "beta = 1 is the plain pass")
  H.close(learn:tta { n = 2, beta = 0.5 }, (reference(learn.model, dls, dls.valid_ds, aug, dls.valid, 2, 0.5)), 1e-6, "n = 2, beta = 0.5")
  H.close(learn:tta { n = 3, use_max = true }, (reference(learn.model, dls, dls.valid_ds, aug, dls.valid, 3, 0, true)), 1e-6, "use_max")
  -- the train split (ds_idx = 0): its items in order, not the shuffled train loader
  local p0, t0 = learn:tta { ds_idx = 0, n = 2 }
  assert(t0:equal(yt), "ds_idx = 0 targets are the train labels in order")
  local plain0_dl = dls.train_ds:loader(range(64), { bs = 8, shuffle = false, drop_last = false, train = false,
    mean = dls.valid:info().mean, std = dls.valid:info().std, channels = 1, num_workers = 1 })
  H.close(p0, (reference(learn.model, dls, dls.train_ds, aug, plain0_dl, 2, 0.25)), 1e-6, "ds_idx = 0")
end)

H.test("tta on from_tensors data without augmentation is the plain pass", function()
  local xt, yt = synth(32, 12, 3)
  local xv, yv = synth(12, 12, 4)
  local dls = ft.vision.ImageDataLoaders.from_tensors(xt, yt, xv, yv, { bs = 8, channels = 1, verbose = false,
    seed = 1, num_workers = 1 })
  T.manual_seed(12)
  local learn = ft.Learner(dls, small_cnn(1))
  H.close(learn:tta(), (learn:get_preds()), 1e-6, "no aug_transforms: every pass is the plain one")
  H.errors(function() learn:tta { n = 0 } end, "tta: n must be a positive integer, got 0")
  H.errors(function() learn:tta { beta = 2 } end, "tta: beta must be a number in [0, 1], got 2")
  H.errors(function() learn:tta { ds_idx = 2 } end, "tta: ds_idx must be 1 (valid) or 0 (train)")
  H.errors(function() learn:tta { n_aug = 2 } end, "tta: unknown option 'n_aug'")
end)

local DIR = "/usr/share/datasets/fashion-mnist"
local f = io.open(DIR .. "/t10k-labels-idx1-ubyte.gz", "rb")
if f then
  f:close()
  H.test("tta on FashionMNIST with aug_transforms", function()
    local aug = ft.vision.aug_transforms { size = 28, max_rotate = 20, min_scale = 0.7 }
    local dls = ft.vision.FashionMNIST { n_train = 64, n_valid = 40, bs = 16, seed = 1, channels = 1,
      verbose = false, num_workers = 1, batch_tfms = aug }
    T.manual_seed(13)
    local model = nn.Sequential { nn.Conv2d(1, 4, 3, { stride = 2 }), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
      nn.Flatten(), nn.Linear(4, 10) }
    local learn = ft.Learner(dls, model)
    local p = learn:tta { n = 2 }
    local want, plain = reference(model, dls, dls.valid_ds, aug, dls.valid, 2, 0.25)
    H.close(p, want, 1e-6, "tta")
    assert((p - plain):abs():max():item() > 1e-4, "tta equals the plain predictions: no augmentation")
  end)
else
  H.skip("tta on FashionMNIST", DIR .. " is absent (apt install dataset-fashion-mnist)")
end

H.done()
