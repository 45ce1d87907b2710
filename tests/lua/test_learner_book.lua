-- test_learner_book.lua: the learner as the book uses it (issue 11): an export predicts as the
-- exporting learner under its precision policy (bf16 autocast included); learn.path is the
-- current folder, so nothing lands in the dataset's; get_preds over a list of {x, y} batches;
-- most_confused prints as fastai's list of tuples; methods called for their effect return
-- nothing; the learner prints its current lr; messages say what they got.
local ft = require "ftlua"
local T, nn = ft.tensor, ft.nn
local H = require "harness"
local S = require "synth"

T.set_num_threads(1)

local function conv_model()
  local m = nn.Sequential { nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2) }
  m:set_param_groups { { "0" }, { "4" } }
  return m
end

local function tiny_dls()
  local x, y = S.halves(32, 8, 3)
  return ft.vision.ImageDataLoaders.from_tensors(x, y, x, y, { bs = 8, verbose = false })
end

local function max_diff(a, b) return (a - b):abs():max():item() end

---------------------------------------------------------------- 1. the precision policy

-- Train, export and load_learner under amp; the loaded learner's predictions equal the
-- exporting learner's to 1e-6 (docs/learner.md's promise).
local function amp_roundtrip(amp, dir)
  T.manual_seed(5)
  local dls = tiny_dls()
  local learn = ft.Learner(dls, conv_model(), { amp = amp, path = dir })
  learn:fit(1, 1e-2)
  learn:export("e.safetensors")
  local loaded = ft.load_learner(dir .. "/e.safetensors")
  local p1 = learn:get_preds { dl = dls.valid }
  local p2 = loaded:get_preds { dl = dls.valid }
  return learn, loaded, max_diff(p1, p2), p1, dls
end

H.test("export keeps the precision policy: fp32 comes back fp32", function() S.in_tmpdir(H, function(dir)
  local learn, loaded, d = amp_roundtrip("fp32", dir)
  H.eq(learn.amp, nil, "fp32 learner")
  H.eq(loaded.amp, nil, "loaded fp32")
  assert(d <= 1e-6, "fp32 round trip differs by " .. d)
end) end)

if not ft.learner._cpu_has_bf16() then
  H.skip("export keeps the precision policy: bf16", "this CPU has no avx512_bf16/amx_bf16 (bf16 autocast is emulated, the default policy is fp32)")
else
  H.test("export keeps the precision policy: bf16 autocast comes back bf16, predictions to 1e-6", function()
    S.in_tmpdir(H, function(dir)
      local learn, loaded, d, p1, dls = amp_roundtrip("bf16", dir)
      H.eq(learn.amp, "bf16", "bf16 learner")
      H.eq(loaded.amp, "bf16", "the loaded learner predicts under bf16 autocast too")
      assert(d <= 1e-6, "bf16 round trip differs by " .. d)
      -- the policy matters: the same weights in float32 predict differently
      local f32 = ft.load_learner(dir .. "/e.safetensors", { amp = "fp32" })
      H.eq(f32.amp, nil, "opts.amp = fp32 overrides")
      assert(max_diff(f32:get_preds { dl = dls.valid }, p1) > 1e-6, "bf16 and fp32 give different probabilities")
    end)
  end)
end

H.test("the default policy (no FTLUA_AMP): export and load_learner agree to 1e-6", function() S.in_tmpdir(H, function(dir)
  local script = dir .. "/amp.lua"
  local f = assert(io.open(script, "w"))
  f:write(([[
local T, nn = ft.tensor, ft.nn
T.set_num_threads(1)
T.manual_seed(5)
local x = (T.rand { 32, 8, 8, 3 } * 255):to("uint8")
local y = T.randint(1, 3, { 32 }):long()
local dls = ft.vision.ImageDataLoaders.from_tensors(x, y, x, y, { bs = 8, verbose = false })
local m = nn.Sequential { nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2) }
local learn = ft.Learner(dls, m, { path = %q })
learn:fit(1, 1e-2)
learn:export("d.safetensors")
local loaded = ft.load_learner(%q)
local d = (learn:get_preds { dl = dls.valid } - loaded:get_preds { dl = dls.valid }):abs():max():item()
print(("policy %%s %%s diff %%.3g"):format(tostring(learn.amp or "fp32"), tostring(loaded.amp or "fp32"), d))
]]):format(dir, dir .. "/d.safetensors"))
  f:close()
  local p = io.popen("env -u FTLUA_AMP ./ftlua '" .. script .. "' 2>&1")
  local out = p:read("a")
  p:close()
  local a, b, d = out:match("policy (%S+) (%S+) diff (%S+)")
  assert(a, "no result:\n" .. out)
  H.eq(a, ft.learner._cpu_has_bf16() and "bf16" or "fp32", "the default policy on this CPU")
  H.eq(b, a, "the loaded learner's policy")
  assert(tonumber(d) <= 1e-6, "predictions differ by " .. d)
end) end)

---------------------------------------------------------------- 2. learn.path

H.test("learn.path is the current folder: export and save land there, not in the dataset's folder", function()
  S.in_tmpdir(H, function(dir)
    local data, work = dir .. "/data", dir .. "/work"
    os.execute(("mkdir -p '%s' '%s'"):format(data, work))
    local P = require "synth_pets"
    local saved = P.BREEDS
    P.BREEDS = { "Bengal", "Birman", "pug" }
    P.make(data, { per_class = 4, w = 24, h = 20 })
    P.BREEDS = saved
    os.execute("chmod -R a-w '" .. data .. "'")
    local script = dir .. "/path.lua"
    local f = assert(io.open(script, "w"))
    f:write(([[
local V = ft.vision
local block = V.DataBlock { blocks = { V.ImageBlock, V.CategoryBlock }, get_y = V.RegexLabeller "(.+)_%%d+%%.jpg$",
  splitter = V.RandomSplitter { seed = 1 }, item_tfms = V.Resize(16) }
local dls = block:dataloaders(%q, { bs = 4, verbose = false })
local m = ft.nn.Sequential { ft.nn.Flatten(), ft.nn.Linear(768, 3) }
local learn = ft.Learner(dls, m, { amp = "fp32" })
print("dls.path " .. dls.path .. " learn.path " .. learn.path)
learn:export("export.safetensors")
learn:save("stage1")
local l2 = ft.load_learner("export.safetensors")
print("loaded " .. #l2.dls.vocab)
]]):format(data))
    f:close()
    local p = io.popen(("cd '%s' && '%s/ftlua' '%s' 2>&1"):format(work, os.getenv("FTLUA_ROOT") or ".", script))
    local out = p:read("a")
    local ok = p:close()
    os.execute("chmod -R u+w '" .. data .. "'")
    assert(ok, out)
    assert(out:find("dls.path . learn.path .", 1, true), out)
    assert(out:find("loaded 3", 1, true), out)
    assert(io.open(work .. "/export.safetensors"), "export.safetensors in the current folder")
    assert(io.open(work .. "/models/stage1.safetensors"), "models/stage1.safetensors in the current folder")
    local l = io.popen("ls -A '" .. data .. "' | grep -vc '_[0-9]*\\.jpg$'")
    H.eq(l:read("l"), "0", "nothing written into the data folder")
    l:close()
  end)
end)

---------------------------------------------------------------- 5. get_preds

H.test("get_preds{dl = {{x, y}, ...}}: a list of batches, as the book's dl=[(x,y)]", function()
  T.manual_seed(2)
  local dls = tiny_dls()
  local learn = ft.Learner(dls, conv_model(), { amp = "fp32" })
  local x, y = dls.valid:one_batch()
  local p_all, t_all, l_all = learn:get_preds { dl = dls.valid, with_loss = true }
  local p, t, l = learn:get_preds { dl = { { x, y } }, with_loss = true }
  H.eq(p:size(1), x:size(1), "one batch of predictions")
  assert(max_diff(p, p_all:narrow(1, 1, x:size(1))) <= 1e-6, "same probabilities as the loader's first batch")
  H.eq(max_diff(t, y), 0, "targets are the batch's (1-based)")
  assert(max_diff(l, l_all:narrow(1, 1, x:size(1))) <= 1e-6, "same losses")
  local p2 = learn:get_preds { dl = { { x, y }, { x, y } } }
  H.eq(p2:size(1), 2 * x:size(1), "two batches")
  local p3, t3 = learn:get_preds { dl = { x } }
  H.eq(t3, nil, "x alone: no targets")
  assert(max_diff(p3, p) <= 1e-6, "x alone: same probabilities")
  local raw = learn:get_preds { dl = { { x, y } }, act = false }
  assert(max_diff(raw:softmax(2), p) <= 1e-5, "act = false gives the logits")
end)

H.test("get_preds' bad arguments name get_preds, not predict", function()
  local dls = tiny_dls()
  local learn = ft.Learner(dls, conv_model(), { amp = "fp32" })
  local x, y = dls.valid:one_batch()
  local e = H.errors(function() learn:get_preds { dl = 3 } end, "get_preds: dl must be", "got a number")
  assert(not e:find("predict'", 1, true), e)
  H.errors(function() learn:get_preds { dl = { x, y } } end, "get_preds", "dl = {{x, y}}")
  H.errors(function() learn:get_preds { dl = { { x, "y" } } } end, "get_preds", "batch 1", "targets")
  H.errors(function() learn:get_preds { dl = {} } end, "get_preds", "empty")
  H.errors(function() learn:get_preds { dl = dls } end, "get_preds: dl is a DataLoaders", "dl = dls.valid")
  H.errors(function() learn:get_preds { ds_idx = 2 } end, "get_preds: ds_idx must be 1 (valid) or 0 (train), got 2")
end)

---------------------------------------------------------------- 6. most_confused

H.test("most_confused prints as fastai's list of tuples", function()
  local dls = tiny_dls()
  local learn = ft.Learner(dls, conv_model(), { amp = "fp32" })
  local interp = ft.ClassificationInterpretation.from_learner(learn)
  interp.vocab = { "american_pit_bull_terrier", "staffordshire_bull_terrier", "Egyptian_Mau" }
  interp.targs = T.tensor { 1, 1, 1, 1, 1, 2, 2, 3, 3, 3 }:long()
  interp.decoded = T.tensor { 2, 2, 2, 2, 2, 1, 2, 3, 1, 3 }:long()
  local mc = interp:most_confused()
  H.eq(getmetatable(mc).__name, "most_confused", "__name")
  H.eq(#mc, 3, "three pairs")
  H.eq(mc[1][1], "american_pit_bull_terrier", "still a list of {actual, predicted, count}")
  H.eq(mc[1][3], 5, "count")
  H.eq(tostring(mc), "[('american_pit_bull_terrier', 'staffordshire_bull_terrier', 5),\n"
    .. " ('staffordshire_bull_terrier', 'american_pit_bull_terrier', 1),\n"
    .. " ('Egyptian_Mau', 'american_pit_bull_terrier', 1)]", "long: one tuple a line")
  H.eq(tostring(interp:most_confused { min_val = 5 }), "[('american_pit_bull_terrier', 'staffordshire_bull_terrier', 5)]",
    "short: one line")
  H.eq(tostring(interp:most_confused { min_val = 6 }), "[]", "empty")
end)

---------------------------------------------------------------- 7. return values, __tostring

H.test("methods called for their effect return nothing; the learner shows its current lr", function()
  S.in_tmpdir(H, function(dir)
    T.manual_seed(4)
    local dls = tiny_dls()
    local learn = ft.Learner(dls, conv_model(), { amp = "fp32", path = dir })
    assert(tostring(learn):find("lr 0.001 (default)", 1, true), tostring(learn))
    local function none(what, ...) H.eq(select("#", ...), 0, what .. " returns nothing") end
    none("fit", learn:fit(1, 1e-3))
    none("fit_one_cycle", learn:fit_one_cycle(1, 3e-3))
    assert(tostring(learn):find("lr 0.003 (last fit_one_cycle)", 1, true), tostring(learn))
    none("freeze", learn:freeze())
    assert(tostring(learn):find("groups 1-1 frozen", 1, true), tostring(learn))
    none("unfreeze", learn:unfreeze())
    none("freeze_to", learn:freeze_to(1))
    none("fit_flat_cos", learn:fit_flat_cos(1, 1e-3))
    none("fit_sgdr", learn:fit_sgdr(1, 1, 1e-3))
    none("fine_tune", learn:fine_tune(1, { freeze_epochs = 1 }))
    assert(tostring(learn):find("lr 1e-05..0.001 (last fit_one_cycle)", 1, true), tostring(learn))
    none("export", learn:export("x.safetensors"))
    H.eq(learn:save("s"), dir .. "/models/s.safetensors", "save returns the file, as fastai's")
    H.eq(learn:load("s"), learn, "load returns the learner, as fastai's")
  end)
end)

---------------------------------------------------------------- 9. messages

H.test("messages say what they got", function()
  local learn = ft.Learner(tiny_dls(), conv_model(), { amp = "fp32" })
  H.errors(function() learn:fit_one_cycle("3", 1e-3) end, "fit_one_cycle: the number of epochs must be a positive integer",
    'got the string "3"')
  H.errors(function() learn:fit(2.5) end, "got 2.5")
  H.errors(function() learn:fine_tune(nil) end, "got a nil")
  H.errors(function() ft.vision.Resize("96") end, 'got the string "96"', "Resize(96)")
  local e = H.errors(function() ft.load_learner("/nonexistent/export.safetensors") end,
    "/nonexistent/export.safetensors does not exist")
  assert(not e:find("damaged", 1, true), e)
end)

H.done()
