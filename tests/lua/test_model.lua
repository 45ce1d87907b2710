-- test_model.lua: the resnet zoo against torchvision (Debian's python3-torchvision).
-- Python makes seeded torchvision models, writes their state_dicts and its results (eval
-- logits, train-mode loss and gradients) with the independent safetensors writer of
-- tests/py/safetensors_ref.py; ftlua loads the same weights and must agree.
local ft = require "ftlua"
local T, nn = ft.tensor, ft.nn
local H = require "harness"

local ROOT = os.getenv("FTLUA_ROOT") or "."
local DIR = H.tmpdir()

if not H.have_torch() then
  H.skip("resnet parity", "no torch for " .. (os.getenv("FTLUA_PYTHON") or "/usr/bin/python3"))
  H.done()
end

-- Shared Python helpers: save a dict of tensors as safetensors with the reference writer.
local PY_SAVE = ([[
import sys, torch, torch.nn.functional as F
torch.set_num_threads(%d)  # as ftlua: train-mode BN over 2x2 maps magnifies reduction-order noise
sys.path.insert(0, %q)
import safetensors_ref as S
DIR = %q
def save(path, d):
    items = []
    for k, v in d.items():
        v = v.detach().contiguous()
        dt = {torch.float32: "F32", torch.int64: "I64"}[v.dtype]
        items.append((k, dt, list(v.shape), S.tensor_bytes(v)))
    with open(path, "wb") as f: f.write(S.encode(items))
def load(path):
    entries, _ = S.read(path)
    return {k: S.bytes_tensor(raw, dt, shape).clone() for k, dt, shape, raw in entries}
]]):format(T.get_num_threads(), ROOT .. "/tests/py", DIR)

local REF = H.python(PY_SAVE .. [[
try:
    import torchvision
except ImportError:
    print("false"); sys.exit(0)
torch.manual_seed(0)
res = {}
for depth in (18, 34, 50):
    m = getattr(torchvision.models, "resnet%d" % depth)(num_classes=10)
    with torch.no_grad():  # BN stats away from 0/1 so that eval mode tests them
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
                mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 64, 64); y = torch.tensor([3, 7])
    sd = m.state_dict()
    save(f"{DIR}/r{depth}.safetensors", sd)
    if depth == 18:  # PyTorch's own formats, for weights = FILE through ft.weights
        torch.save(sd, f"{DIR}/r18.pth")
        torch.save(sd, f"{DIR}/r18_legacy.pth", _use_new_zipfile_serialization=False)
    m.eval()
    with torch.no_grad(): ev = m(x)
    m.train()
    logits = m(x); loss = F.cross_entropy(logits, y); loss.backward()
    save(f"{DIR}/ref{depth}.safetensors", {"input": x, "target": y, "eval": ev, "loss": loss.reshape(1),
         "g_conv1": m.conv1.weight.grad, "g_bn": m.layer4[1].bn2.weight.grad, "g_fc": m.fc.weight.grad,
         "bn1_running_mean": m.bn1.running_mean})
    res[depth] = {"names": list(sd.keys()), "shapes": [list(v.shape) for v in sd.values()]}
res["repr18"] = repr(torchvision.models.resnet18())
res["nparams18"] = sum(p.numel() for p in torchvision.models.resnet18().parameters())
print(lua(res))
]])
if not REF then
  H.skip("resnet parity", "python3-torchvision is missing")
  H.done()
end

-- max |a - b| / max |b|
local function rel(a, b)
  local d = (a:double() - b:double()):abs():max():item()
  return d / math.max(b:double():abs():max():item(), 1e-30)
end

local function below(what, r, tol)
  if not (r < tol) then error(("%s: relative error %.3g, want < %g"):format(what, r, tol), 2) end
end

local function cross_entropy(logits, y) -- y: 0-based class numbers, as PyTorch's
  local n = logits:size(1)
  return -(logits:log_softmax(2):gather(2, (y + 1):view(n, 1))):mean()
end

local function load_model(depth)
  local m = ft.models["resnet" .. depth] { num_classes = 10 }
  m:load_state_dict((T.load(DIR .. "/r" .. depth .. ".safetensors")))
  return m, (T.load(DIR .. "/ref" .. depth .. ".safetensors"))
end

for _, depth in ipairs { 18, 34, 50 } do
  local m, ref = load_model(depth)
  H.test("resnet" .. depth .. " state_dict names and shapes", function()
    local sd, names = m:state_dict()
    H.eq(#names, #REF[depth].names, "count")
    for i, name in ipairs(REF[depth].names) do
      H.eq(names[i], name, "name " .. i)
      H.close(sd[name]:size(), REF[depth].shapes[i], 0, name)
    end
    H.eq(sd["layer1.0.bn1.num_batches_tracked"]:dtype(), "int64", "num_batches_tracked dtype")
  end)
  H.test("resnet" .. depth .. " eval logits match torchvision", function()
    m:eval()
    local out = T.no_grad(function() return m(ref.input) end)
    below("logits", rel(out, ref.eval), 1e-4)
  end)
  H.test("resnet" .. depth .. " train loss and gradients match torchvision", function()
    m:train()
    local loss = cross_entropy(m(ref.input), ref.target)
    loss:backward()
    below("loss", rel(loss:view(1), ref.loss), 1e-3)
    below("conv1.weight grad", rel(m.conv1.weight.grad, ref.g_conv1), 1e-3)
    below("layer4.1.bn2.weight grad", rel(m.layer4[2].bn2.weight.grad, ref.g_bn), 1e-3)
    below("fc.weight grad", rel(m.fc.weight.grad, ref.g_fc), 1e-3)
    below("bn1.running_mean", rel(m.bn1.running_mean, ref.bn1_running_mean), 1e-4)
    H.eq(m.bn1.num_batches_tracked:item(), 1, "num_batches_tracked after one step")
  end)
end

H.test("printout is torchvision's, plus counts", function()
  local text = tostring(ft.models.resnet18())
  local lines = {}
  for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
  H.eq(lines[#lines], "11,689,512 params: 11,689,512 trainable, 0 frozen", "footer")
  H.eq(REF.nparams18, 11689512, "torchvision's count")
  H.eq(lines[2], "  (conv1): Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)  -- 9,408 params", "conv1 line")
  local mine = {}
  for i = 1, #lines - 1 do
    local l = lines[i]:gsub("  %-%- [%d,]+ params.*$", "")
    if not l:find("(flatten)", 1, true) then mine[#mine + 1] = l end
  end
  local want = {}
  for line in REF.repr18:gmatch("[^\n]+") do
    -- a Sequential's children are printed as a user reaches them, [1] for torch's (0)
    want[#want + 1] = line:gsub("^(%s*)%((%d+)%): ", function(sp, n) return sp .. "[" .. (n + 1) .. "]: " end)
  end
  for i = 1, math.max(#mine, #want) do H.eq(mine[i], want[i], "line " .. i) end
end)

H.test("round trip: state_dict, T.save, T.load, load_state_dict", function()
  local m, ref = load_model(18)
  m:eval()
  local path = DIR .. "/rt.safetensors"
  T.save(path, (m:state_dict()))
  local fresh = ft.models.resnet18 { num_classes = 10 }
  fresh:load_state_dict((T.load(path)))
  fresh:eval()
  local a = T.no_grad(function() return m(ref.input) end)
  local b = T.no_grad(function() return fresh(ref.input) end)
  H.eq(a:equal(b), true, "identical outputs")
  local c = ft.models.resnet18 { num_classes = 10, weights = path } -- the zoo's weights option
  c:eval()
  H.eq(T.no_grad(function() return c(ref.input) end):equal(a), true, "weights = FILE")
end)

if ft.weights and ft.weights.load then
  H.test("weights = torch.save file (zip and legacy) gives torchvision's logits", function()
    local ref = T.load(DIR .. "/ref18.safetensors")
    for _, f in ipairs { "r18.pth", "r18_legacy.pth" } do
      local m = ft.models.resnet18 { num_classes = 10, weights = DIR .. "/" .. f }
      m:eval()
      below(f .. " logits", rel(T.no_grad(function() return m(ref.input) end), ref.eval), 1e-4)
    end
  end)
else
  H.skip("weights = torch.save file", "this build has no ft.weights")
end

H.test("a file ftlua saves is torchvision's model", function()
  local m, ref = load_model(18)
  m:train() -- change the weights and the BN statistics, then save
  local loss = cross_entropy(m(ref.input), ref.target)
  loss:backward()
  T.no_grad(function()
    for _, p in ipairs(m:parameters()) do p:add_(p.grad * -0.1) end
  end)
  m:eval()
  local out = T.no_grad(function() return m(ref.input) end)
  local sd = m:state_dict()
  sd.input = ref.input
  T.save(DIR .. "/ftlua_made.safetensors", sd)
  local theirs = H.python(PY_SAVE .. [[
import torchvision
sd = load(DIR + "/ftlua_made.safetensors")
x = sd.pop("input")
m = torchvision.models.resnet18(num_classes=10)
m.load_state_dict(sd, strict=True)
m.eval()
with torch.no_grad(): print(lua(m(x)))
]])
  below("torchvision on ftlua's file", rel(out, T.tensor(theirs)), 1e-4)
end)

H.test("strict loading names missing, unexpected and mismatched keys", function()
  local m = ft.models.resnet18 { num_classes = 10 }
  local before = m.conv1.weight:clone()
  local sd = T.load(DIR .. "/r18.safetensors")
  local good = sd["conv1.weight"]
  sd["fc.bias"] = nil
  sd["layer1.0.bn1.num_batches_tracked"] = nil -- optional, as in torch's old files
  sd["head.extra"] = T.zeros { 2 }
  sd["fc.weight"] = T.zeros { 5, 512 }
  local err = H.errors(function() m:load_state_dict(sd) end,
    "1 missing key: fc.bias", "1 unexpected key: head.extra",
    "1 shape mismatch: fc.weight (checkpoint {5, 512}, model {10, 512})")
  H.eq(err:find("num_batches_tracked", 1, true), nil, "num_batches_tracked is optional")
  H.eq(m.conv1.weight:equal(before), true, "nothing copied on a strict failure")
  local missing, unexpected, mismatched = m:load_state_dict(sd, { strict = false })
  H.close(missing, { "fc.bias" })
  H.close(unexpected, { "head.extra" })
  H.eq(#mismatched, 1, "mismatched count")
  H.eq(m.conv1.weight:equal(good), true, "matching keys loaded")
  H.errors(function() m:load_state_dict { ["conv1.weight"] = 3 } end, "conv1.weight", "expected a tensor")
end)

H.test("forward errors name the layer", function()
  local m = ft.models.resnet18()
  H.errors(function() m(T.randn { 1, 4, 32, 32 }) end, "forward (conv1): Conv2d:", "4 channels")
  H.errors(function() m:train()(T.randn { 1, 3, 32, 32 }) end, -- layer4 sees 1x1 maps: BN refuses
    "forward (layer4.0.bn1): BatchNorm2d: expected more than 1 value per channel when training")
end)

H.test("pretrained without ft.weights is a clear error", function()
  local saved = ft.weights
  ft.weights = nil
  local loaded = package.loaded["ftlua.weights"]
  package.loaded["ftlua.weights"] = nil
  local ok, err = pcall(ft.models.resnet34, { pretrained = true })
  ft.weights, package.loaded["ftlua.weights"] = saved, loaded
  H.eq(ok, false, "pcall")
  assert(tostring(err):find("needs ft.weights", 1, true), err)
  H.errors(function() ft.models.resnet18 { num_class = 10 } end, "unknown option 'num_class'")
end)

H.done()
