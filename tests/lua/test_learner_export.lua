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
  H.eq(learn:export("export.safetensors"), nil, "export returns nothing (fastai's None)")
  local file = dir .. "/export.safetensors"
  assert(io.open(file, "rb"), "export path: under learn.path")
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

local S = require "synth"
local synth = S.halves

local function tensor_dls(opts)
  opts = opts or {}
  local xt, yt = synth(64, opts.px or 16, 1)
  local xv, yv = synth(24, opts.px or 16, 2)
  return ft.vision.ImageDataLoaders.from_tensors(xt, yt, xv, yv, { bs = 16, channels = opts.channels or 1,
    verbose = false, seed = 1, vocab = { "left", "right" }, normalize = opts.normalize })
end

-- The header of a safetensors file read by Python's own json: the metadata and the learner
-- description's outline.
local function python_outline(file)
  return H.python(([==[
import json, struct
with open(%q, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    head = json.loads(f.read(n))
meta = head["__metadata__"]
d = json.loads(meta["learner"])
tree = d["model"].get("tree") or {}
print(lua({"format": meta["format"], "version": d.get("version", 1), "kind": d["model"]["kind"],
           "root": tree.get("kind", ""), "children": [c[0] for c in tree.get("children", [])],
           "vocab": d["data"]["vocab"], "tensors": len(head) - 1}))
]==]):format(file))
end

-- Export, load, and compare the valid predictions (bit for bit: same weights, same batches).
local function same_preds(learn, what, load_opts)
  learn:export("export.safetensors")
  local file = learn.path .. "/export.safetensors"
  local loaded = ft.load_learner(file, load_opts)
  local p1, t1 = learn:get_preds()
  local p2, t2 = loaded:get_preds { dl = learn.dls.valid }
  assert(t2:equal(t1), what .. ": targets")
  H.close(p2, p1, 0, what .. " preds")
  H.eq(loaded.model:type(), learn.model:type(), what .. " model type")
  H.eq(tostring(loaded.model), tostring(learn.model), what .. " printout")
  return file, loaded
end

H.test("export/load_learner: a plain Sequential round trip, identical predictions", function() S.in_tmpdir(H, function(dir)
  T.manual_seed(5)
  local dls = tensor_dls { normalize = { { 0.3 }, { 0.2 } } }
  local model = nn.Sequential { nn.Conv2d(1, 4, 3, { padding = 1 }), nn.BatchNorm2d(4), nn.ReLU(),
    nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * 8 * 8, 2) }
  local learn = ft.Learner(dls, model, { path = dir })
  learn:fit(1, 1e-2)
  local file, loaded = same_preds(learn, "sequential")
  H.eq(loaded.dls.vocab[2], "right", "vocab")
  if H.have_torch() then
    local o = python_outline(file)
    H.eq(o.format, "ftlua.learner.export/2", "format")
    H.eq(o.version, 2, "version")
    H.eq(o.kind, "tree", "model kind")
    H.eq(o.root, "Sequential", "root")
    H.eq(table.concat(o.children, ","), "0,1,2,3,4,5,6", "children")
    H.eq(table.concat(o.vocab, ","), "left,right", "vocab in the file")
    local n = 0
    for _ in pairs(model:state_dict()) do n = n + 1 end
    H.eq(o.tensors, n, "tensors in the file")
  else
    H.skip("export outline in Python", "no python3")
  end
end) end)

H.test("export/load_learner: a small resnet of nn.BasicBlock, identical predictions", function() S.in_tmpdir(H, function(dir)
  T.manual_seed(6)
  local dls = tensor_dls()
  local down = nn.Sequential { nn.Conv2d(8, 16, 1, { stride = 2, bias = false }), nn.BatchNorm2d(16) }
  local model = nn.Sequential {
    { "stem", nn.Sequential { nn.Conv2d(1, 8, 3, { padding = 1, bias = false }), nn.BatchNorm2d(8), nn.ReLU { inplace = true } } },
    { "block1", nn.BasicBlock(8, 8) },
    { "block2", nn.BasicBlock(8, 16, { stride = 2, downsample = down }) },
    { "pool", nn.AdaptiveConcatPool2d() }, { "flat", nn.Flatten() }, { "fc", nn.Linear(32, 2) },
  }
  local learn = ft.Learner(dls, model, { path = dir, splitter = { { "stem", "block1", "block2" }, { "fc" } } })
  learn:fit(1, 1e-2)
  local _, loaded = same_preds(learn, "resnet")
  local g = select(2, loaded.model:param_groups())
  H.eq(#g, 2, "parameter groups")
  H.eq(g[2][1], "fc.weight", "second group")
end) end)

H.test("export/load_learner: cnn_learner over a custom arch function", function() S.in_tmpdir(H, function(dir)
  T.manual_seed(7)
  local dls = tensor_dls { channels = 3, px = 24 }
  local arch = function(o) return ft.models.resnet18 { num_classes = 5, weights = o.weights } end
  local learn = ft.vision.cnn_learner(dls, arch, { pretrained = false, lin_ftrs = { 16 }, path = dir })
  learn:fit(1, 1e-3)
  local _, loaded = same_preds(learn, "custom arch")
  H.eq(#select(2, loaded.model:param_groups()), 3, "fastai's three groups")
  -- a zoo arch records its name too (informational), and the loaded learner exports again
  local zoo = ft.vision.cnn_learner(dls, ft.models.resnet18, { pretrained = false, lin_ftrs = { 16 }, path = dir })
  local _, l2 = same_preds(zoo, "zoo arch")
  H.eq(l2._cnn.arch, "resnet18", "arch name kept")
  l2:export(dir .. "/again.safetensors")
  local again = dir .. "/again.safetensors"
  local l3 = ft.load_learner(again)
  H.close(l3:get_preds { dl = dls.valid }, (zoo:get_preds()), 0, "export of a loaded learner")
end) end)

H.test("load_learner: version 1 exports (cnn_learner by arch name) still load", function() S.in_tmpdir(H, function(dir)
  T.manual_seed(8)
  local dls = tensor_dls { channels = 3, px = 24 }
  local learn = ft.vision.cnn_learner(dls, "resnet18", { pretrained = false, lin_ftrs = { 16 }, path = dir })
  -- what ftlua wrote before version 2, by hand
  local v1 = [[{"data":{"array":true,"channels":3,"val_bs":16,"vocab":["left","right"]},]]
    .. [["format":"ftlua.learner.export/1","model":{"arch":"resnet18","kind":"cnn","lin_ftrs":[16],"n_out":2}}]]
  local file = dir .. "/v1.safetensors"
  T.save(file, learn.model:state_dict(), { format = "ftlua.learner.export/1", learner = v1 })
  local loaded = ft.load_learner(file)
  H.close(loaded:get_preds { dl = dls.valid }, (learn:get_preds()), 0, "v1 preds")
  H.eq(loaded.dls.vocab[1], "left", "v1 vocab")
end) end)

H.test("export: a Lua-forward model is a clear error; describe_model = false + {model = m} works", function() S.in_tmpdir(H, function(dir)
  T.manual_seed(9)
  local dls = tensor_dls()
  local function make()
    return nn.Module("Residual", { forward = function(self, x) return self.head(self.body(x)) end,
      body = nn.Sequential { nn.Conv2d(1, 4, 3), nn.ReLU() },
      head = nn.Sequential { nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2) } })
  end
  local learn = ft.Learner(dls, nn.Sequential { make() }, { path = dir })
  H.errors(function() learn:export("x.safetensors") end, "export: cannot describe this model",
    "module '0' is a Lua-defined Residual", "describe_model = false", "ft.load_learner(file, {model = m})")
  learn = ft.Learner(dls, make(), { path = dir })
  learn:fit(1, 1e-2)
  learn:export("lua.safetensors", { describe_model = false })
  local file = learn.path .. "/lua.safetensors"
  H.errors(function() ft.load_learner(file) end, "holds the weights of a Residual but not its structure",
    "{model = m}")
  H.errors(function() ft.load_learner(file, { model = 3 }) end, "option 'model' must be a module")
  H.errors(function() ft.load_learner(file, { model = nn.Linear(2, 2) }) end, "the exported weights do not fit the model")
  local loaded = ft.load_learner(file, { model = make() })
  H.close(loaded:get_preds { dl = dls.valid }, (learn:get_preds()), 0, "lua model preds")
end) end)

H.test("load_learner: truncated, damaged and mismatched exports are clear errors", function() S.in_tmpdir(H, function(dir)
  T.manual_seed(10)
  local dls = tensor_dls()
  local learn = ft.Learner(dls, nn.Sequential { nn.Flatten(), nn.Linear(256, 2) }, { path = dir })
  learn:export("good.safetensors")
  local file = learn.path .. "/good.safetensors"
  local f = assert(io.open(file, "rb"))
  local bytes = f:read("a")
  f:close()
  local function write(name, data)
    local p = dir .. "/" .. name
    local o = assert(io.open(p, "wb"))
    o:write(data)
    o:close()
    return p
  end
  local cut = write("cut.safetensors", bytes:sub(1, #bytes - 100))
  H.errors(function() ft.load_learner(cut) end, "load_learner: cannot read " .. cut, "export it again")
  local head = write("head.safetensors", bytes:sub(1, 40))
  H.errors(function() ft.load_learner(head) end, "load_learner: cannot read " .. head)
  local err = H.errors(function() ft.load_learner(dir .. "/none.safetensors") end, dir .. "/none.safetensors does not exist")
  assert(not err:find("truncated or damaged", 1, true), "a missing file is not called damaged: " .. err)
  local sd = learn.model:state_dict()
  local meta = T.load(file) and select(2, T.load(file))
  local bad = dir .. "/bad.safetensors"
  T.save(bad, sd, { format = meta.format, learner = meta.learner:sub(1, #meta.learner // 2) })
  H.errors(function() ft.load_learner(bad) end, bad, "the learner description is damaged")
  local wrong = meta.learner:gsub('"out_features":2', '"out_features":3')
  assert(wrong ~= meta.learner, "the test edits the description")
  T.save(bad, sd, { format = meta.format, learner = wrong })
  H.errors(function() ft.load_learner(bad) end, "the exported weights do not fit the model", "1.weight")
  T.save(bad, sd, { format = meta.format, learner = (meta.learner:gsub('"kind":"Linear"', '"kind":"Linaer"')) })
  H.errors(function() ft.load_learner(bad) end, "cannot rebuild the model", "node '1'", "unknown kind 'Linaer'")
  T.save(bad, sd, { format = "ftlua.learner.export/9", learner = meta.learner })
  H.errors(function() ft.load_learner(bad) end, "not a file written by learn:export")
  local plain = dir .. "/plain.safetensors"
  T.save(plain, { a = T.zeros { 2 } })
  H.errors(function() ft.load_learner(plain) end, "not a file written by learn:export")
end) end)

-- The optimizer travels with the files: learn:save records its kind (learn:load refuses another
-- kind's state, by name), and export records kind and settings, so load_learner's learner
-- trains as the original (fastai's export pickles opt_func). Hypers are compared with the
-- exporting learner's, read from the C core.
H.test("save/export record the optimizer: SGD state round-trips, a kind mismatch is refused", function()
  T.manual_seed(5)
  local dir = H.tmpdir()
  local xt = T.randint(0, 256, { 48, 8, 8 }):to("uint8")
  local yt = T.randint(1, 4, { 48 })
  local dls = ft.vision.ImageDataLoaders.from_tensors(xt, yt, xt:narrow(1, 1, 16), yt:narrow(1, 1, 16),
    { bs = 16, channels = 1, seed = 1, verbose = false, num_workers = 0, vocab = { "a", "b", "c" } })
  local function learner(opt_func)
    return ft.Learner(dls, nn.Sequential { nn.Flatten(), nn.Linear(64, 3) }, { path = dir, opt_func = opt_func })
  end
  local sgd = learner { ft.learner.SGD, mom = 0.8, wd = 0.01 }
  sgd:fit(1, 1e-2)
  sgd:save("sgd")
  -- the same kind: the momentum buffers come back as saved
  local again = learner { ft.learner.SGD, mom = 0.8, wd = 0.01 }
  again:load("sgd")
  local want, got, n = sgd._core:opt_state(), again._core:opt_state(), 0
  for k, t in pairs(want) do
    n = n + 1
    assert(got[k], "state " .. k .. " loaded")
    H.close(got[k], t, 0, "SGD state " .. k)
  end
  assert(n > 0, "an SGD with momentum has state after a fit")
  -- another kind: refused, naming the file, both kinds and the two ways out
  local adam = learner()
  H.errors(function() adam:load("sgd") end, dir .. "/models/sgd.safetensors", "holds SGD optimizer state",
    "this Learner's optimizer is Adam", "opt_func = ft.learner.SGD", "with_opt = false")
  adam:load("sgd", { with_opt = false }) -- the weights alone
  H.close(adam.model:state_dict()["1.weight"], sgd.model:state_dict()["1.weight"], 0, "weights without the state")
  -- export: kind and settings come back in load_learner's core
  sgd:export("sgd_export.safetensors")
  local loaded = ft.load_learner(dir .. "/sgd_export.safetensors")
  H.eq(loaded._core:opt_kind(), "SGD", "load_learner's optimizer kind")
  local h1, h2 = sgd._core:hypers()[1], loaded._core:hypers()[1]
  for _, k in ipairs { "mom", "wd" } do H.close(h2[k], h1[k], 0, "load_learner's " .. k) end
  H.close(h2.mom, 0.8, 1e-12, "mom as given to opt_func")
  -- an export from before the optimizer was recorded makes an Adam, as it did
  local tensors, meta = T.load(dir .. "/sgd_export.safetensors")
  local desc = ft.json.decode(meta.learner)
  desc.opt = nil
  T.save(dir .. "/old.safetensors", tensors, { format = meta.format, learner = ft.json.encode(desc) })
  H.eq(ft.load_learner(dir .. "/old.safetensors")._core:opt_kind(), "Adam", "an old export's optimizer")
  desc.opt = { kind = "Lamb" }
  T.save(dir .. "/new.safetensors", tensors, { format = meta.format, learner = ft.json.encode(desc) })
  H.errors(function() ft.load_learner(dir .. "/new.safetensors") end, "unknown optimizer 'Lamb'")
  os.execute("rm -rf '" .. dir .. "'")
end)

H.done()
