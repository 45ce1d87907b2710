-- test_model_cnn.lua: fastai's cnn model (create_cnn_model, create_head), its parameter groups
-- and freezing. fastai cannot be imported here, so the Python reference builds the same model
-- in plain torch + torchvision following ../shared/reference/fastai-spec.md section 4:
-- Sequential(Sequential(*resnet.children()[:-2]), head), and computes _resnet_split's groups.
local ft = require "ftlua"
local T, nn = ft.tensor, ft.nn
local H = require "harness"

local ROOT = os.getenv("FTLUA_ROOT") or "."
local DIR = H.tmpdir()

local function rel(a, b)
  local d = (a:double() - b:double()):abs():max():item()
  return d / math.max(b:double():abs():max():item(), 1e-30)
end
local function below(what, r, tol)
  if not (r < tol) then error(("%s: relative error %.3g, want < %g"):format(what, r, tol), 2) end
end
local function std(t)
  local d = t:double()
  return ((d - d:mean()) ^ 2):mean():item() ^ 0.5
end

local function types(seq)
  local out = {}
  for _, m in seq:children() do out[#out + 1] = m:type() end
  return table.concat(out, " ")
end

H.test("create_head has fastai's layers and init", function()
  local head = nn.create_head(512, 37)
  H.eq(types(head), "AdaptiveConcatPool2d Flatten BatchNorm1d Dropout Linear ReLU BatchNorm1d Dropout Linear", "layers")
  H.eq(tostring(head[4]):match("^[^\n]*"), "Dropout(p=0.25, inplace=False)", "first dropout")
  H.eq(tostring(head[8]):match("^[^\n]*"), "Dropout(p=0.5, inplace=False)", "last dropout")
  H.eq(head[3].weight:size(1), 1024, "concat pool doubles nf")
  for _, i in ipairs { 3, 7 } do
    H.eq(head[i].weight:equal(T.ones { head[i].weight:size(1) }), true, "BN weight 1")
    H.eq(head[i].bias:sub(1e-3):abs():max():item() < 1e-9, true, "BN bias 1e-3")
  end
  H.eq(head[5].bias, nil, "first Linear has no bias")
  H.eq(head[9].bias, nil, "last Linear has no bias")
  -- kaiming_normal_, fan_in, a = 0: std sqrt(2 / fan_in); 512x1024 and 37x512 samples
  below("Linear(1024, 512) std", math.abs(std(head[5].weight) - math.sqrt(2 / 1024)) / math.sqrt(2 / 1024), 0.03)
  below("Linear(512, 37) std", math.abs(std(head[9].weight) - math.sqrt(2 / 512)) / math.sqrt(2 / 512), 0.05)
  H.eq(head[9].weight:size(1), 37, "n_out")
end)

H.test("create_head options follow fastai", function()
  local h = nn.create_head(64, 3, { lin_ftrs = { 32, 16 }, ps = 0.4, concat_pool = false, first_bn = false, bn_final = true })
  H.eq(types(h), "AdaptiveAvgPool2d Flatten Dropout Linear ReLU BatchNorm1d Dropout Linear ReLU "
    .. "BatchNorm1d Dropout Linear BatchNorm1d", "layers")
  H.eq(h[3].weight, nil, "dropout has no weight")
  H.close(h[4].weight:size(), { 32, 64 }, 0) -- no concat: nf stays 64
  H.eq(h[4].bias:abs():max():item(), 0, "Linear without a BN before it: bias, filled with 0")
  H.eq(tostring(h[3]):match("^[^\n]*"), "Dropout(p=0.2, inplace=False)", "hidden p = ps/2")
  H.eq(tostring(h[11]):match("^[^\n]*"), "Dropout(p=0.4, inplace=False)", "last p = ps")
  H.eq(tostring(h[13]):match("^[^\n]*"), "BatchNorm1d(3, eps=1e-05, momentum=0.01, affine=True, track_running_stats=True)  -- 6 params", "bn_final")
  H.eq(types(nn.create_head(8, 2, { ps = 0 })), "AdaptiveConcatPool2d Flatten BatchNorm1d Linear ReLU BatchNorm1d Linear", "ps = 0: no dropout")
  H.errors(function() nn.create_head(8, 2, { ps = { 0.1, 0.2, 0.3 } }) end, "3 dropout values for 2 linear layers")
  H.errors(function() nn.create_head(8, 2, { lin_ftr = {} }) end, "unknown option 'lin_ftr'")
end)

if not H.have_torch() then
  H.skip("create_cnn_model against torch", "no torch for the reference")
  H.done()
end

local REF = H.python(([[
import sys, torch
try:
    import torchvision
except ImportError:
    print("false"); sys.exit(0)
torch.set_num_threads(%d)
sys.path.insert(0, %q)
import safetensors_ref as S
DIR = %q
N = torch.nn
class AdaptiveConcatPool2d(N.Module):
    def __init__(self):
        super().__init__(); self.ap = N.AdaptiveAvgPool2d(1); self.mp = N.AdaptiveMaxPool2d(1)
    def forward(self, x): return torch.cat([self.mp(x), self.ap(x)], 1)
class Flatten(N.Module):
    def forward(self, x): return x.view(x.size(0), -1)
def bn(n):
    b = N.BatchNorm1d(n)
    with torch.no_grad(): b.weight.fill_(1.); b.bias.fill_(1e-3)
    return b
def cnn(depth, n_out):
    r = getattr(torchvision.models, "resnet%%d" %% depth)()
    body = N.Sequential(*list(r.children())[:-2])
    nf = 512 if depth < 50 else 2048
    head = N.Sequential(AdaptiveConcatPool2d(), Flatten(), bn(2 * nf), N.Dropout(0.25),
                        N.Linear(2 * nf, 512, bias=False), N.ReLU(inplace=True), bn(512),
                        N.Dropout(0.5), N.Linear(512, n_out, bias=False))
    return N.Sequential(body, head)
def save(path, d):
    items = []
    for k, v in d.items():
        v = v.detach().contiguous()
        items.append((k, {torch.float32: "F32", torch.int64: "I64"}[v.dtype], list(v.shape), S.tensor_bytes(v)))
    with open(path, "wb") as f: f.write(S.encode(items))
torch.manual_seed(0)
m = cnn(34, 37)
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, (N.BatchNorm1d, N.BatchNorm2d)):
            mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
            mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5)
x = torch.randn(2, 3, 64, 64)
m.eval()
with torch.no_grad(): y = m(x)
sd = m.state_dict()
save(DIR + "/cnn34.safetensors", sd)
save(DIR + "/cnn34_io.safetensors", {"x": x, "y": y})
def names_of(mods):
    ids = {id(p) for mm in mods for p in mm.parameters()}
    return [n for n, p in m.named_parameters() if id(p) in ids]
groups = [names_of(list(m[0].children())[:6]), names_of(list(m[0].children())[6:]), names_of(list(m.children())[1:])]
norm = [mn + "." + pn for mn, mod in m.named_modules() if isinstance(mod, (N.BatchNorm1d, N.BatchNorm2d))
        for pn, _ in mod.named_parameters()]
r18 = torchvision.models.resnet18()
save(DIR + "/r18_1000.safetensors", r18.state_dict())
m50 = cnn(50, 5)
print(lua({"names": list(sd.keys()), "shapes": [list(v.shape) for v in sd.values()], "groups": groups,
           "norm": norm, "names50": list(m50.state_dict().keys()),
           "shapes50": [list(v.shape) for v in m50.state_dict().values()]}))
]]):format(T.get_num_threads(), ROOT .. "/tests/py", DIR))

if not REF then
  H.skip("create_cnn_model against torch", "python3-torchvision is missing")
  H.done()
end

local model = ft.vision.create_cnn_model("resnet34", 37, { pretrained = false })

H.test("create_cnn_model: names and shapes as fastai's", function()
  local sd, names = model:state_dict()
  H.eq(#names, #REF.names, "count")
  for i, n in ipairs(REF.names) do
    H.eq(names[i], n, "name " .. i)
    H.close(sd[n]:size(), REF.shapes[i], 0, n)
  end
  local m50 = ft.vision.create_cnn_model(ft.models.resnet50, 5, { pretrained = false })
  local sd50, names50 = m50:state_dict()
  for i, n in ipairs(REF.names50) do
    H.eq(names50[i], n, "resnet50 name " .. i)
    H.close(sd50[n]:size(), REF.shapes50[i], 0, n)
  end
  H.eq(#names50, #REF.names50, "resnet50 count")
end)

H.test("create_cnn_model: eval output matches the torch reference", function()
  model:load_state_dict((T.load(DIR .. "/cnn34.safetensors")))
  model:eval()
  local io = T.load(DIR .. "/cnn34_io.safetensors")
  below("logits", rel(T.no_grad(function() return model(io.x) end), io.y), 1e-4)
end)

H.test("create_cnn_model: weights = FILE loads the body", function()
  local file = T.load(DIR .. "/r18_1000.safetensors")
  local m = ft.vision.create_cnn_model("resnet18", 5, { weights = DIR .. "/r18_1000.safetensors" })
  H.eq(m[1][1].weight:equal(file["conv1.weight"]), true, "conv1 -> 0.0")
  H.eq(m[1][8][2].bn2.running_var:equal(file["layer4.1.bn2.running_var"]), true, "layer4 -> 0.7")
  H.errors(function() ft.vision.create_cnn_model("resnet99", 5) end, "unknown arch")
  H.errors(function() ft.vision.create_cnn_model("resnet18", 5, { n_in = 1 }) end, "unknown option 'n_in'")
end)

H.test("param_groups are _resnet_split's three groups", function()
  local groups, names = model:param_groups()
  H.eq(#groups, 3, "groups")
  for g = 1, 3 do
    H.eq(#names[g], #REF.groups[g], "group " .. g .. " size")
    for i, n in ipairs(REF.groups[g]) do H.eq(names[g][i], n, "group " .. g .. " name " .. i) end
    H.eq(#groups[g], #names[g], "tensors per group")
  end
  H.eq(rawequal(groups[1][1], model[1][1].weight), true, "the parameter objects themselves")
end)

local function requires(m)
  local out = {}
  for name, p in m:named_parameters() do out[name] = p:needs_grad() end
  return out
end

H.test("freeze keeps BN trainable; frozen params get no gradient", function()
  local norm = {}
  for _, n in ipairs(REF.norm) do norm[n] = true end
  local head = {}
  for _, n in ipairs(REF.groups[3]) do head[n] = true end
  model:freeze()
  local req = requires(model)
  for name, r in pairs(req) do
    H.eq(r, (norm[name] or head[name]) == true, name .. " requires_grad")
  end
  model:train()
  model:zero_grad()
  local out = model(T.randn { 4, 3, 64, 64 })
  out:pow(2):mean():backward()
  for name, p in model:named_parameters() do
    H.eq(p.grad ~= nil, req[name], name .. " has a grad")
  end
  assert(tostring(model):find("[1]: Sequential(  -- 21,284,672 params, 21,267,648 frozen", 1, true), "printout counts frozen")
  model:freeze_to(1)
  req = requires(model)
  for _, n in ipairs(REF.groups[2]) do H.eq(req[n], true, n .. " unfrozen by freeze_to(1)") end
  H.eq(req["0.0.weight"], false, "group 1 still frozen")
  model:unfreeze()
  for name, r in pairs(requires(model)) do H.eq(r, true, name .. " after unfreeze") end
  local total, trainable = model:num_params()
  H.eq(total, trainable, "all trainable")
end)

H.test("freezing past the groups warns; train_bn = false freezes BN", function()
  local warnings = {}
  local saved = nn.warn
  nn.warn = function(msg) warnings[#warnings + 1] = msg end
  model:freeze_to(3)
  model:freeze_to(5)
  model:freeze_to(-1)
  nn.warn = saved
  H.eq(#warnings, 2, "two warnings")
  H.eq(warnings[1], "Freezing 3 groups; model has 3; whole model is frozen.", "fastai's text")
  H.eq(warnings[2], "Freezing 5 groups; model has 3; whole model is frozen.", "past the end")
  model:freeze_to(2, { train_bn = false })
  local req = requires(model)
  H.eq(req["0.1.weight"], false, "body BN frozen without train_bn")
  H.eq(req["1.2.weight"], true, "head BN trainable")
  model:unfreeze()
end)

H.test("set_param_groups and models without a splitter", function()
  local m = nn.Sequential { nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1) }
  local groups = m:param_groups()
  H.eq(#groups, 1, "one group by default")
  H.eq(#groups[1], 4, "all parameters")
  m:set_param_groups { { "0" }, { "1", "2" } }
  local _, names = m:param_groups()
  H.close(names, { { "0.weight", "0.bias" }, { "2.weight", "2.bias" } })
  m:freeze()
  H.eq(m[1].weight:needs_grad(), false, "group 1 frozen")
  H.eq(m[3].weight:needs_grad(), true, "last group trainable")
  H.errors(function() m:set_param_groups { { "9" } } end, "no submodule '9'")
  local r = ft.models.resnet18()
  local _, rn = r:param_groups()
  H.eq(rn[3][1], "fc.weight", "the zoo's resnets split too")
end)

H.done()
