-- test_model_layers.lua: ft.nn layers, custom models, init, bf16 autocast, channels-last and
-- conversions. Layers and models are compared with torch.nn given the same weights (ftlua
-- writes them, tests/py/safetensors_ref.py reads them for torch); init against its formulas.
local ft = require "ftlua"
local T, nn = ft.tensor, ft.nn
local H = require "harness"

local ROOT = os.getenv("FTLUA_ROOT") or "."
local DIR = H.tmpdir()

local function rel(a, b) -- max |a - b| / max |b|
  local d = (a:double() - b:double()):abs():max():item()
  return d / math.max(b:double():abs():max():item(), 1e-30)
end
local function below(what, r, tol)
  if not (r < tol) then error(("%s: relative error %.3g, want < %g"):format(what, r, tol), 2) end
end

T.manual_seed(1)

-- ---------------------------------------------------------------- the cases, built in ftlua

local layers = {
  conv = { nn.Conv2d(4, 6, { 3, 5 }, { stride = { 2, 1 }, padding = { 1, 2 }, dilation = { 1, 2 }, groups = 2 }), { 2, 4, 9, 11 } },
  conv_nobias = { nn.Conv2d(3, 4, 1, { bias = false }), { 2, 3, 5, 5 } },
  linear = { nn.Linear(7, 3), { 6, 7 } },
  bn1d = { nn.BatchNorm1d(5), { 6, 5 } },
  bn2d = { nn.BatchNorm2d(4, { eps = 1e-3, momentum = 0.2 }), { 3, 4, 5, 6 } },
  maxpool = { nn.MaxPool2d(3, { stride = 2, padding = 1, ceil_mode = true }), { 2, 3, 10, 9 } },
  amax = { nn.AdaptiveMaxPool2d { 2, 3 }, { 2, 3, 7, 8 } },
  aavg = { nn.AdaptiveAvgPool2d(3), { 2, 3, 7, 8 } },
  concat = { nn.AdaptiveConcatPool2d(), { 2, 3, 7, 8 } },
  flatten = { nn.Flatten(2, 3), { 2, 3, 4, 5 } },
  relu = { nn.ReLU(), { 3, 4 } },
}

-- The custom model of docs/models.md, and a Lua-defined module with its own forward.
local seq = nn.Sequential {
  nn.Conv2d(1, 8, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 14 * 14, 10),
}
local Net = nn.Module("Net", {
  stem = nn.Sequential { nn.Conv2d(3, 8, 3, { padding = 1 }), nn.BatchNorm2d(8), nn.ReLU() },
  block = nn.BasicBlock(8, 8),
  head = nn.Sequential { nn.AdaptiveConcatPool2d(), nn.Flatten(), nn.Linear(16, 5) },
  scale = 0.5,
  forward = function(self, x)
    local h = self.stem(x)
    h = h + self.block(h) * self.scale
    return self.head(h)
  end,
})
local r18 = ft.models.resnet18 { num_classes = 7 }

local saved = {}
local function put(prefix, m)
  local sd, names = m:state_dict()
  for _, n in ipairs(names) do saved[prefix .. n] = sd[n] end
end
for name, case in pairs(layers) do
  put(name .. ".", case[1])
  case.x = T.randn(case[2])
  saved["in." .. name] = case.x
end
put("seq.", seq)
put("net.", Net)
put("r18.", r18)
local x_seq, x_net, x_r18 = T.randn { 4, 1, 28, 28 }, T.randn { 2, 3, 12, 12 }, T.randn { 2, 3, 64, 64 }
saved["in.seq"], saved["in.net"], saved["in.r18"] = x_seq, x_net, x_r18
T.save(DIR .. "/in.safetensors", saved)

local have_tv = false
if not H.have_torch() then
  H.skip("layers against torch", "no torch for the reference")
else
  have_tv = H.python(([[
import sys, torch
try:
    import torchvision
except ImportError:
    print("false"); sys.exit(0)
torch.set_num_threads(%d)
sys.path.insert(0, %q)
import safetensors_ref as S
DIR = %q
entries, _ = S.read(DIR + "/in.safetensors")
sd = {k: S.bytes_tensor(raw, dt, shape).clone() for k, dt, shape, raw in entries}
def sub(prefix): return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
class ConcatPool(torch.nn.Module):  # fastai's AdaptiveConcatPool2d
    def __init__(self):
        super().__init__(); self.ap = torch.nn.AdaptiveAvgPool2d(1); self.mp = torch.nn.AdaptiveMaxPool2d(1)
    def forward(self, x): return torch.cat([self.mp(x), self.ap(x)], 1)
N = torch.nn
mods = {
  "conv": N.Conv2d(4, 6, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
  "conv_nobias": N.Conv2d(3, 4, 1, bias=False), "linear": N.Linear(7, 3), "bn1d": N.BatchNorm1d(5),
  "bn2d": N.BatchNorm2d(4, eps=1e-3, momentum=0.2), "maxpool": N.MaxPool2d(3, 2, 1, ceil_mode=True),
  "amax": N.AdaptiveMaxPool2d((2, 3)), "aavg": N.AdaptiveAvgPool2d(3), "concat": ConcatPool(),
  "flatten": N.Flatten(1, 2), "relu": N.ReLU(),
}
out = {}
for name, m in mods.items():
    m.load_state_dict(sub(name + "."), strict=True)
    x = sd["in." + name].clone().requires_grad_(True)
    y = m(x)
    (y * y).sum().backward()
    out["out." + name] = y; out["gin." + name] = x.grad
    if name.startswith("bn"):
        out["rm." + name] = m.running_mean; out["rv." + name] = m.running_var
        m.eval(); out["eval." + name] = m(sd["in." + name])
seq = N.Sequential(N.Conv2d(1, 8, 3, padding=1), N.ReLU(), N.MaxPool2d(2), N.Flatten(), N.Linear(8 * 14 * 14, 10))
seq.load_state_dict(sub("seq."), strict=True)
y = seq(sd["in.seq"]); (y * y).mean().backward()
out["out.seq"] = y; out["g.seq.0.weight"] = seq[0].weight.grad
class Net(N.Module):
    def __init__(self):
        super().__init__()
        self.block = torchvision.models.resnet.BasicBlock(8, 8)
        self.head = N.Sequential(ConcatPool(), N.Flatten(), N.Linear(16, 5))
        self.stem = N.Sequential(N.Conv2d(3, 8, 3, padding=1), N.BatchNorm2d(8), N.ReLU())
    def forward(self, x):
        h = self.stem(x); h = h + self.block(h) * 0.5; return self.head(h)
net = Net(); net.load_state_dict(sub("net."), strict=True)
y = net(sd["in.net"]); (y * y).mean().backward()
out["out.net"] = y; out["g.net.stem.0.weight"] = net.stem[0].weight.grad
out["g.net.block.conv2.weight"] = net.block.conv2.weight.grad
r18 = torchvision.models.resnet18(num_classes=7); r18.load_state_dict(sub("r18."), strict=True); r18.eval()
with torch.autocast("cpu", dtype=torch.bfloat16):
    y = r18(sd["in.r18"])
y.float().pow(2).mean().backward()
out["out.r18bf16"] = y.float(); out["g.r18bf16.fc.weight"] = r18.fc.weight.grad
out["g.r18bf16.conv1.weight"] = r18.conv1.weight.grad
items = []
for k, v in out.items():
    v = v.detach().float().contiguous()
    items.append((k, "F32", list(v.shape), S.tensor_bytes(v)))
with open(DIR + "/out.safetensors", "wb") as f: f.write(S.encode(items))
print("true")
]]):format(T.get_num_threads(), ROOT .. "/tests/py", DIR))
end
if H.have_torch() and not have_tv then H.skip("layers against torch", "python3-torchvision is missing") end
if have_tv then
  local ref = T.load(DIR .. "/out.safetensors")

  for name, case in pairs(layers) do
    H.test("layer " .. name .. " matches torch.nn", function()
      local m = case[1]:train()
      local x = case.x:clone():requires_grad()
      local y = m(x)
      ; (y * y):sum():backward()
      below("output", rel(y, ref["out." .. name]), 1e-5)
      below("input grad", rel(x.grad, ref["gin." .. name]), 1e-5)
      if name:sub(1, 2) == "bn" then
        below("running_mean", rel(m.running_mean, ref["rm." .. name]), 1e-5)
        below("running_var", rel(m.running_var, ref["rv." .. name]), 1e-5)
        m:eval()
        below("eval output", rel(T.no_grad(function() return m(case.x) end), ref["eval." .. name]), 1e-5)
      end
    end)
  end

  H.test("custom Sequential model matches torch", function()
    local y = seq(x_seq)
    ; (y * y):mean():backward()
    below("output", rel(y, ref["out.seq"]), 1e-5)
    below("0.weight grad", rel(seq[1].weight.grad, ref["g.seq.0.weight"]), 1e-4)
  end)

  H.test("Lua-defined module matches torch (train mode, autograd)", function()
    local y = Net(x_net)
    ; (y * y):mean():backward()
    below("output", rel(y, ref["out.net"]), 1e-5)
    below("stem.0.weight grad", rel(Net.stem[1].weight.grad, ref["g.net.stem.0.weight"]), 1e-4)
    below("block.conv2.weight grad", rel(Net.block.conv2.weight.grad, ref["g.net.block.conv2.weight"]), 1e-4)
  end)

  H.test("bf16 autocast matches torch.autocast", function()
    r18:eval()
    local y = nn.autocast("bfloat16", function() return r18(x_r18) end)
    H.eq(y:dtype(), "bfloat16", "logits dtype")
    H.eq(nn.autocast_enabled(), false, "off after the call")
    y:float():pow(2):mean():backward()
    below("logits", rel(y:float(), ref["out.r18bf16"]), 1e-2)
    below("fc.weight grad", rel(r18.fc.weight.grad, ref["g.r18bf16.fc.weight"]), 2e-2)
    below("conv1.weight grad", rel(r18.conv1.weight.grad, ref["g.r18bf16.conv1.weight"]), 2e-2)
    H.eq(r18.fc.weight.grad:dtype(), "float32", "grads stay float32")
  end)
end

H.test("Lua-defined modules: children, fields, errors", function()
  local _, names = Net:state_dict()
  H.eq(names[1], "stem.0.weight", "children in definition order: stem, block, head")
  H.eq(names[#names], "head.2.bias", "last")
  local order = {}
  for name in Net:children() do order[#order + 1] = name end
  H.eq(table.concat(order, " "), "stem block head", "children()")
  H.eq(Net.scale, 0.5, "plain field")
  H.eq(Net:type(), "Net", "type")
  H.eq(#Net:parameters(), 12, "parameters come from the children")
  local seen
  local probe = nn.Module { forward = function(self, x) seen = self; return x * 2 end }
  local wrapped = nn.Sequential { nn.ReLU(), probe, nn.Flatten() } -- C calls Lua calls C
  local y = wrapped(T.ones { 2, 3 })
  H.close(y, { { 2, 2, 2 }, { 2, 2, 2 } })
  H.eq(rawequal(seen, probe), true, "self is the module the user holds")
  probe.forward = function() error("boom in forward") end
  H.errors(function() wrapped(T.ones { 2, 3 }) end, "boom in forward")
  probe.forward = function() return 42 end
  H.errors(function() wrapped(T.ones { 2, 3 }) end, "forward of Module returned a number, expected a tensor")
  probe.forward = function(self, a, b) return a + b end -- at the top, any arguments
  H.close(probe(1, 2), 3)
  H.errors(function() nn.Module { x = 1 } end, "forward = function")
  H.errors(function() probe.train = 1 end, "'train' is a module method")
  H.errors(function() wrapped[1] = wrapped end, "inside itself")
  H.errors(function() wrapped.x = 1 end, "cannot set 'x' on a Sequential")
end)

H.test("children by name and position, replacement, identity", function()
  local m = ft.models.resnet18()
  H.eq(rawequal(m.layer1, m.layer1), true, "same userdata")
  H.eq(rawequal(m[1], m.conv1), true, "m[1] is the first child")
  H.eq(rawequal(m[-1], m.fc), true, "m[-1] is the last")
  H.eq(#m, 11, "children (with flatten)")
  H.eq(rawequal(m:parameters()[1], m.conv1.weight), true, "parameters are the same objects")
  local fc = m.fc
  m.fc = nn.Linear(512, 3)
  H.eq(m(T.randn { 2, 3, 32, 32 }):size(2), 3, "replaced head")
  H.eq(fc.weight:size(1), 1000, "the old child lives on while held")
  local names = {}
  for name, child in m:children() do names[#names + 1] = name .. ":" .. child:type() end
  H.eq(table.concat(names, " "), "conv1:Conv2d bn1:BatchNorm2d relu:ReLU maxpool:MaxPool2d "
    .. "layer1:Sequential layer2:Sequential layer3:Sequential layer4:Sequential "
    .. "avgpool:AdaptiveAvgPool2d flatten:Flatten fc:Linear", "children")
  local n = 0
  for path, mod in m:named_modules() do
    n = n + 1
    if n == 1 then H.eq(path, "", "root first") end
  end
  H.eq(n, 69, "named_modules of resnet18 (torchvision's 68 and flatten)")
  m:eval()
  H.eq(m.layer1[1].bn1.training, false, "eval is recursive")
  m:train()
  H.eq(m.layer1[1].bn1.training, true, "train is recursive")
end)

H.test("default init follows torch.nn's formulas", function()
  local function stats(t)
    local d = t:double()
    local mean = d:mean():item()
    return mean, ((d - mean) ^ 2):mean():item() ^ 0.5, d:abs():max():item()
  end
  local conv = nn.Conv2d(64, 128, 3)
  local bound = 1 / math.sqrt(64 * 9)
  local _, sd, mx = stats(conv.weight)
  assert(mx <= bound, "conv weight within 1/sqrt(fan_in)")
  below("conv weight std", math.abs(sd - bound / math.sqrt(3)) / (bound / math.sqrt(3)), 0.03)
  local _, _, bmx = stats(conv.bias)
  assert(bmx <= bound, "conv bias within 1/sqrt(fan_in)")
  local r50 = ft.models.resnet50()
  local w = r50.layer3[1].conv2.weight -- kaiming_normal_, fan_out, relu: std sqrt(2 / (256*9))
  local mean, std = stats(w)
  below("resnet conv std", math.abs(std - math.sqrt(2 / 2304)) / math.sqrt(2 / 2304), 0.03)
  assert(math.abs(mean) < 1e-3, "resnet conv mean")
  local _, _, fmx = stats(r50.fc.weight)
  assert(fmx <= 1 / math.sqrt(2048), "fc uniform bound")
  H.eq(r50.bn1.weight:equal(T.ones { 64 }), true, "BN weight 1")
  H.eq(r50.bn1.running_var:equal(T.ones { 64 }), true, "BN running_var 1")
  H.eq(r50.bn1.num_batches_tracked:item(), 0, "num_batches_tracked 0")
  local t = T.empty { 300, 400 }
  nn.init.kaiming_normal_(t, { mode = "fan_out", nonlinearity = "relu" })
  local _, s = stats(t)
  below("init.kaiming_normal_ std", math.abs(s - math.sqrt(2 / 300)) / math.sqrt(2 / 300), 0.03)
end)

H.test("Dropout: train drops p and rescales, eval is the identity", function()
  local d = nn.Dropout(0.3)
  local y = d(T.ones { 20000 })
  local zeros = y:eq(0):double():mean():item()
  assert(math.abs(zeros - 0.3) < 0.02, "fraction dropped " .. zeros)
  H.close(y:max():item(), 1 / 0.7, 1e-6)
  d:eval()
  H.eq(d(T.ones { 5 }):equal(T.ones { 5 }), true, "eval identity")
end)

H.test("channels-last and dtype conversion keep the outputs", function()
  local m = ft.models.resnet18 { num_classes = 4 }:eval()
  local x = T.randn { 2, 3, 64, 64 }
  local want = T.no_grad(function() return m(x) end)
  local w = m.conv1.weight
  m:to_channels_last()
  H.eq(w:is_contiguous(), false, "conv weight now channels-last (same tensor object)")
  H.eq(w:stride()[2], 1, "channel stride 1")
  below("channels-last logits", rel(T.no_grad(function() return m(x) end), want), 1e-4)
  m:to { memory_format = "contiguous" }
  H.eq(w:is_contiguous(), true, "back to contiguous")
  m:to("float64")
  H.eq(w:dtype(), "float64", "parameter objects follow the module")
  H.eq(m.bn1.num_batches_tracked:dtype(), "int64", "integer buffers keep their dtype")
  below("float64 logits", rel(T.no_grad(function() return m(x:double()) end), want), 1e-4)
  m:float()
  H.eq(m.fc.bias:dtype(), "float32", "float()")
  H.errors(function() m:to { memory_format = "sideways" } end, "memory_format")
  if T.cuda_available() then
    m:to("cuda")
    H.eq(w:device(), "cuda:0", "to cuda")
  end
end)

H.test("autocast guard, nesting and errors restore the state", function()
  H.eq(nn.autocast_enabled(), false, "off")
  do
    local g <close> = nn.autocast("bfloat16")
    H.eq(nn.autocast_enabled(), true, "on in the scope")
    nn.autocast("bfloat16", function() end)
    H.eq(nn.autocast_enabled(), true, "still on after a nested region")
  end
  H.eq(nn.autocast_enabled(), false, "off after the scope")
  H.errors(function() nn.autocast("bfloat16", function() error("inside") end) end, "inside")
  H.eq(nn.autocast_enabled(), false, "off after an error")
  H.errors(function() nn.autocast("float32", function() end) end, "bfloat16 or float16")
  local lin = nn.Linear(4, 2)
  H.eq(nn.autocast({ dtype = "bfloat16", device = "cpu" }, lin, T.ones { 3, 4 }):dtype(), "bfloat16", "fn with args")
end)

H.test("zero_grad, num_params, constructor errors", function()
  local m = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
  m(T.ones { 1, 3 }):sum():backward()
  assert(m[1].weight.grad, "grad")
  m:zero_grad()
  H.eq(m[1].weight.grad, nil, "grad cleared")
  local total, trainable = m:num_params()
  H.eq(total, 8, "total")
  H.eq(trainable, 8, "trainable")
  H.errors(function() nn.Conv2d(3, 4, 3, { groups = 2 }) end, "divisible by groups")
  H.errors(function() nn.Conv2d(3, 4, { 3 }) end, "kernel_size must be an integer or {h, w}")
  -- options: base/args.h's one message form, the function named, unknown keys refused
  H.errors(function() nn.Conv2d(3, 4, 3, { strid = 2 }) end,
    "Conv2d: unknown option 'strid' (known: bias, dilation, groups, padding, stride)")
  H.errors(function() nn.Conv2d(3, 4, 3, { stride = "2" }) end,
    "Conv2d: option 'stride' must be an integer or {h, w}, got the string \"2\"")
  H.errors(function() nn.Linear(3, 2, { bias = 1 }) end, "Linear: option 'bias' must be true or false, got 1")
  H.errors(function() nn.BasicBlock(4, 4, { downsample = 3 }) end, "BasicBlock: option 'downsample' must be a module, got 3")
  H.errors(function() nn.init.kaiming_normal_(T.ones { 2, 2 }, { mode = "fan" }) end,
    "kaiming_normal_: option 'mode' must be one of \"fan_in\" or \"fan_out\", got the string \"fan\"")
  H.errors(function() m:freeze_to(1, { train = false }) end, "freeze_to: unknown option 'train' (known: train_bn)")
  H.errors(function() m:load_state_dict({}, { strict = 1 }) end, "load_state_dict: option 'strict' must be true or false, got 1")
  H.errors(function() nn.Sequential { 1 } end, "element 1 is a number")
  H.errors(function() nn.Dropout(2) end, "p must be in [0, 1]")
  H.errors(function() nn.BatchNorm2d(4)(T.ones { 2, 4 }) end, "expected 4D input (got 2D input)")
end)

H.done()
