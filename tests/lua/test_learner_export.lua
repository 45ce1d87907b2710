-- test_learner_export.lua: learn:export(file) and ft.load_learner(file): after a round trip,
-- predict gives the same label and probs (1e-6); the vocab and transforms come back; models
-- that cannot be described raise a clear error.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"
local nn = ft.nn

T.set_num_threads(1)

local function roundtrip(dls, files, what)
  T.manual_seed(21)
  local dir = H.tmpdir()
  local learn = ft.vision.cnn_learner(dls, ft.models.resnet18, { pretrained = false, lin_ftrs = { 32 }, path = dir })
  learn:fit(1, 1e-3)
  local file = learn:export("export.safetensors")
  H.eq(file, dir .. "/export.safetensors", "export path")
  local loaded = ft.load_learner(file)
  H.eq(#loaded.dls.vocab, #dls.vocab, "vocab size")
  for i, v in ipairs(dls.vocab) do H.eq(loaded.dls.vocab[i], tostring(v), "vocab " .. i) end
  for i = 1, math.min(#files, 6) do
    local l1, i1, p1 = learn:predict(files[i])
    local l2, i2, p2 = loaded:predict(files[i])
    H.eq(l2, l1, what .. " label " .. i)
    H.eq(i2, i1, what .. " index " .. i)
    H.close(p2, p1, 1e-6, what .. " probs " .. i)
  end
  os.execute("rm -rf '" .. dir .. "'")
end

H.test("export/load_learner: predict agrees on synthetic PNGs (normalised, 3 classes)", function()
  if not H.have_torch() then return H.skip("export synthetic", "no python3 (PIL) to write images") end
  local dir = H.tmpdir()
  H.python(([==[
import numpy as np
from PIL import Image
rng = np.random.default_rng(1)
for i in range(36):
    lab = ["red", "green", "blue"][i %% 3]
    a = rng.integers(0, 80, (24, 20, 3)).astype(np.uint8)
    a[:, :, i %% 3] += 150
    Image.fromarray(a).save("%s/%%s_%%d.png" %% (lab, i))
print(1)
]==]):format(dir))
  local dls = ft.vision.ImageDataLoaders.from_name_re(dir, nil, "^(%a+)_%d+%.png$",
    { item_tfms = ft.vision.Resize(16), bs = 8, seed = 42, verbose = false, valid_pct = 0.25,
      batch_tfms = ft.vision.Normalize(0.4, 0.25) })
  local files = ft.vision.get_image_files(dir)
  table.sort(files)
  roundtrip(dls, files, "synthetic")
  -- tta on the same files, with augmentation: lerp of the mean augmented pass and the plain one
  local adls = ft.vision.ImageDataLoaders.from_name_re(dir, nil, "^(%a+)_%d+%.png$",
    { item_tfms = ft.vision.Resize(20), bs = 8, seed = 42, verbose = false, valid_pct = 0.25,
      batch_tfms = ft.vision.aug_transforms { size = 16, max_rotate = 30, min_scale = 0.5 } })
  local learn = ft.Learner(adls, nn.Sequential { nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    nn.Linear(4, 3) })
  local plain, t0 = learn:get_preds()
  local p, t = learn:tta()
  assert(t:equal(t0), "tta targets")
  H.close(p:sum(2), T.ones { p:size(1) }, 1e-5, "tta rows sum to 1")
  assert(not p:equal(plain), "tta equals the plain pass: no augmentation")
  H.close(learn:tta { beta = 1 }, plain, 1e-6, "beta = 1 is the plain pass")
  H.close(learn:tta(), p, 0, "tta is deterministic")
  local a1 = learn:tta { n = 1, beta = 0 }
  local a2 = learn:tta { n = 2, beta = 0 }
  local m = learn:tta { n = 2, use_max = true }
  H.close(m, plain:maximum(a1):maximum(a2 * 2 - a1), 1e-5, "use_max")
  os.execute("rm -rf '" .. dir .. "'")
end)

local pets = H.shared("data/pets-sample/SOURCE.md") and (os.getenv("FTLUA_SHARED") or "../shared") .. "/data/pets-sample/images"
if pets then
  H.test("export/load_learner: predict agrees on pets-sample (Resize 32)", function()
    local dls = ft.vision.ImageDataLoaders.from_name_re(pets, nil, "^(.+)_%d+%.jpg$",
      { item_tfms = ft.vision.Resize(32), bs = 64, seed = 42, verbose = false })
    local files = ft.vision.get_image_files(pets)
    table.sort(files)
    roundtrip(dls, files, "pets")
  end)
else
  H.skip("export on pets-sample", "../shared/data/pets-sample not found")
end

H.test("export: a model it cannot describe is a clear error; load_learner rejects other files", function()
  local x = T.zeros({ 8, 4, 4 }):to("uint8")
  local y = T.tensor({ 1, 2, 1, 2, 1, 2, 1, 2 }):long()
  local dls = ft.vision.ImageDataLoaders.from_tensors(x, y, x, y, { bs = 4, channels = 1, verbose = false })
  local dir = H.tmpdir()
  local learn = ft.Learner(dls, nn.Sequential { nn.Flatten(), nn.Linear(16, 2) }, { path = dir })
  H.errors(function() learn:export("x.safetensors") end, "export: cannot describe this model", "learn:save")
  local f = dir .. "/plain.safetensors"
  T.save(f, { a = T.zeros { 2 } })
  H.errors(function() ft.load_learner(f) end, "not a file written by learn:export")
  os.execute("rm -rf '" .. dir .. "'")
end)

H.done()
