-- test_learner_losses.lua: losses as callables (issue 11): ft.nn.CrossEntropyLoss(),
-- CrossEntropyLossFlat, LabelSmoothingCrossEntropy, ft.nn.functional.cross_entropy / nll_loss
-- with each reduction, and learn.loss_func, against PyTorch on the same logits; the book's
-- cross-entropy by hand (softmax, log, pick the target) agrees with them.
local ft = require "ftlua"
local T, nn = ft.tensor, ft.nn
local F = nn.functional
local H = require "harness"

local logits_t = { { 0.5, -1.25, 2.0, 0.1 }, { -0.3, 0.8, 0.0, 1.5 }, { 3.0, -2.0, 0.25, -0.75 },
  { 0.0, 0.0, 0.0, 0.0 }, { 1.0, 2.0, 3.0, 4.0 } }
local targ_t = { 3, 4, 1, 2, 4 } -- 1-based
local logits, targ = T.tensor(logits_t), T.tensor(targ_t):long()

local function close_list(a, b, tol, what)
  a = T.is_tensor(a) and a:totable() or a
  if type(a) == "number" then a = { a } end
  if type(b) == "number" then b = { b } end
  H.eq(#a, #b, what .. " length")
  for i = 1, #a do H.close(a[i], b[i], tol, what .. "[" .. i .. "]") end
end

H.test("the names exist and are callables", function()
  for _, name in ipairs { "CrossEntropyLoss", "CrossEntropyLossFlat", "LabelSmoothingCrossEntropy",
    "LabelSmoothingCrossEntropyFlat" } do
    assert(type(nn[name]) == "function", "ft.nn." .. name)
    H.eq(nn[name], ft.losses[name], "ft.losses." .. name .. " is ft.nn's")
    local l = nn[name]()
    assert(getmetatable(l).__call, name .. "() is callable")
  end
  H.eq(tostring(nn.CrossEntropyLossFlat()), "CrossEntropyLossFlat()", "tostring")
  H.eq(tostring(nn.CrossEntropyLoss { reduction = "sum" }), "CrossEntropyLoss(reduction='sum')", "tostring with reduction")
  assert(type(F.cross_entropy) == "function" and type(F.nll_loss) == "function", "ft.nn.functional")
end)

if not H.have_torch() then
  H.skip("losses against PyTorch", "/usr/bin/python3 has no torch")
else
  local ref = H.python(([[
import torch
import torch.nn.functional as F
x = torch.tensor(%s)
t = torch.tensor(%s) - 1
out = {}
for r in ["mean", "sum", "none"]:
    out["ce_" + r] = F.cross_entropy(x, t, reduction=r)
    out["nll_" + r] = F.nll_loss(F.log_softmax(x, 1), t, reduction=r)
    out["ls_" + r] = F.cross_entropy(x, t, reduction=r, label_smoothing=0.1)
out["module"] = torch.nn.CrossEntropyLoss()(x, t)
x4 = x.reshape(5, 4, 1, 1).expand(5, 4, 2, 3).contiguous()
t4 = t.reshape(5, 1, 1).expand(5, 2, 3).contiguous()
out["flat4d"] = torch.nn.CrossEntropyLoss()(x4, t4)
print(lua(out))
]]):format(
    "[" .. table.concat((function() local r = {} for i, row in ipairs(logits_t) do r[i] = "[" .. table.concat(row, ",") .. "]" end return r end)(), ",") .. "]",
    "[" .. table.concat(targ_t, ",") .. "]"))

  H.test("cross_entropy and nll_loss equal PyTorch's, each reduction", function()
    for _, r in ipairs { "mean", "sum", "none" } do
      close_list(F.cross_entropy(logits, targ, { reduction = r }), ref["ce_" .. r], 1e-6, "cross_entropy " .. r)
      close_list(F.nll_loss(logits:log_softmax(2), targ, r), ref["nll_" .. r], 1e-6, "nll_loss " .. r)
      close_list(F.cross_entropy(logits, targ, { reduction = r, label_smoothing = 0.1 }), ref["ls_" .. r], 1e-6,
        "cross_entropy label_smoothing " .. r)
      close_list(nn.CrossEntropyLoss { reduction = r }(logits, targ), ref["ce_" .. r], 1e-6, "CrossEntropyLoss " .. r)
      close_list(nn.LabelSmoothingCrossEntropy { eps = 0.1, reduction = r }(logits, targ), ref["ls_" .. r], 1e-5,
        "LabelSmoothingCrossEntropy " .. r)
    end
    close_list(nn.CrossEntropyLoss()(logits, targ), ref.module, 1e-6, "nn.CrossEntropyLoss()(x, t)")
    H.eq(F.cross_entropy(logits, targ):dim(), 0, "mean gives a 0-dim tensor")
  end)

  H.test("CrossEntropyLossFlat flattens [N, C, H, W] as PyTorch's class axis 1", function()
    local x4 = logits:reshape { 5, 4, 1, 1 }:expand { 5, 4, 2, 3 }:contiguous()
    local t4 = targ:reshape { 5, 1, 1 }:expand { 5, 2, 3 }:contiguous()
    close_list(nn.CrossEntropyLossFlat()(x4, t4), ref.flat4d, 1e-6, "flat 4d")
  end)

  H.test("the book's cross-entropy by hand equals the library's", function()
    local sm = logits:softmax(2)
    local picked = sm:gather(2, targ:view(-1, 1)):view(-1)
    local by_hand = (-picked:log()):mean():item()
    H.close(by_hand, ref.ce_mean, 1e-6, "by hand vs torch")
    H.close(nn.CrossEntropyLossFlat()(logits, targ):item(), by_hand, 1e-6, "by hand vs CrossEntropyLossFlat")
  end)

  H.test("learn.loss_func is callable on (pred, targ) and is what the learner trains with", function()
    local x = T.randint(0, 256, { 8, 4, 4 }):byte()
    local y = T.tensor { 1, 2, 1, 2, 1, 2, 1, 2 }:long()
    local dls = ft.vision.ImageDataLoaders.from_tensors(x, y, x, y, { bs = 4, channels = 1, verbose = false })
    local model = nn.Sequential { nn.Flatten(), nn.Linear(16, 4) }
    local learn = ft.Learner(dls, model, { amp = "fp32" })
    H.eq(tostring(learn.loss_func), "CrossEntropyLossFlat()", "the default loss")
    close_list(learn.loss_func(logits, targ), ref.ce_mean, 1e-6, "default learn.loss_func")
    -- the C loop's loss equals the callable's on the valid set
    local probs, targs, losses = learn:get_preds { with_loss = true, act = false }
    H.close(losses:mean():item(), learn.loss_func(probs, targs):item(), 1e-5, "get_preds losses vs loss_func")
    local ls = ft.Learner(dls, model, { amp = "fp32", loss_func = ft.losses.LabelSmoothingCrossEntropy { eps = 0.1 } })
    close_list(ls.loss_func(logits, targ), ref.ls_mean, 1e-5, "label smoothing learner")
    local dir = H.tmpdir()
    ls.path = dir
    ls:export("ls.safetensors")
    local loaded = ft.load_learner(dir .. "/ls.safetensors")
    os.execute("rm -rf '" .. dir .. "'")
    H.eq(tostring(loaded.loss_func), "LabelSmoothingCrossEntropy(eps=0.1)", "the export keeps the loss")
    close_list(loaded.loss_func(logits, targ), ref.ls_mean, 1e-5, "the loaded learner's loss")
    -- reduction = "sum" trains on the sum (fastai uses the loss as given); per-item losses stay per item
    local sum = ft.Learner(dls, model, { amp = "fp32", loss_func = nn.CrossEntropyLoss { reduction = "sum" } })
    local _, _, l_sum = sum:get_preds { with_loss = true, act = false }
    assert((l_sum - losses):abs():max():item() <= 1e-6, "with_loss gives per-item losses under a sum loss")
    local seen
    local probe = { name = "probe", after_loss = function(_, l) seen = l.loss:item() end }
    sum:fit(1, 1e-9, { cbs = { probe } })
    local x1, y1 = dls.train:one_batch()
    assert(seen and seen > 1.5 * learn.loss_func(model(x1:float()), y1):item(), "the training loss is a sum over the batch")
    local plain = function(p, t, r) return F.cross_entropy(p, t, r) end
    local lf = ft.Learner(dls, model, { amp = "fp32", loss_func = plain })
    H.eq(lf.loss_func, plain, "a function stays the function")
  end)
end

H.test("bad input to a loss says what it got", function()
  H.errors(function() F.cross_entropy(logits, T.tensor { 0, 1, 2, 3, 4 }:long()) end, "1-based", "1..4", "0..4")
  H.errors(function() nn.CrossEntropyLoss()(logits, "3") end, "targ must be a tensor", "string")
  H.errors(function() F.nll_loss(logits, targ, { reduction = "avg" }) end, "reduction must be", "avg")
  H.errors(function() nn.CrossEntropyLoss { weight = 1 } end, "unknown option 'weight'")
  H.errors(function() ft.Learner({ train = {} }, nn.Linear(2, 2), { loss_func = 3 }) end, "loss_func", "number")
end)

H.done()
