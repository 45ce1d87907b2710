-- test_model_desc.lua: m:describe() and ft.nn.from_description(desc), which learn:export and
-- load_learner use. References: torchvision's resnet18 in Python (the rebuilt tree's
-- parameter names and shapes), the original model (same printout; same outputs once the
-- weights are copied), known error messages.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"
local nn = ft.nn

T.set_num_threads(1)

local function same_outputs(a, b, x, what)
  a:eval()
  b:eval()
  b:load_state_dict(a:state_dict())
  H.close(b(x), a(x), 0, what)
end

H.test("from_description(describe()): every layer kind, same printout and outputs", function()
  T.manual_seed(3)
  local m = nn.Sequential {
    nn.Conv2d(3, 6, { 3, 5 }, { stride = { 2, 1 }, padding = { 1, 2 }, dilation = 1, groups = 3, bias = false }),
    nn.BatchNorm2d(6, { eps = 1e-3, momentum = 0.2 }), nn.ReLU { inplace = true },
    nn.MaxPool2d(3, { stride = 2, padding = 1, ceil_mode = true }),
    nn.BasicBlock(6, 6),
    nn.Sequential { { "pool", nn.AdaptiveConcatPool2d { 2, 2 } }, { "flat", nn.Flatten(2, -1) } },
    nn.BatchNorm1d(48, { momentum = 0.01 }), nn.Dropout(0.25), nn.Linear(48, 7, { bias = false }), nn.ReLU(),
    nn.Linear(7, 3),
  }
  -- train a little so that BatchNorm's running stats are not their initial values
  m:train()
  for _ = 1, 3 do m(T.randn { 4, 3, 12, 12 }) end
  local d = m:describe()
  H.eq(d.kind, "Sequential", "root kind")
  H.eq(d.children[1][2].kind, "Conv2d", "first child")
  H.close(d.children[1][2].kernel_size, { 3, 5 }, 0, "kernel_size")
  H.eq(d.children[6][1], "5", "child names are torch's")
  local r = nn.from_description(d)
  H.eq(tostring(r), tostring(m), "printout")
  same_outputs(m, r, T.randn { 2, 3, 12, 12 }, "outputs")
  local p = nn.from_description { kind = "AdaptiveAvgPool2d", output_size = { 1, 1 }, pair = false }
  H.eq(tostring(p):match("^[^\n]*"), "AdaptiveAvgPool2d(output_size=1)", "pool printout")
  local b = nn.Bottleneck(8, 2, { stride = 2, downsample = nn.Sequential { nn.Conv2d(8, 8, 1, { stride = 2, bias = false }), nn.BatchNorm2d(8) } })
  local rb = nn.from_description(b:describe())
  H.eq(tostring(rb), tostring(b), "bottleneck printout")
  same_outputs(b, rb, T.randn { 2, 8, 6, 6 }, "bottleneck outputs")
end)

H.test("from_description: resnet18's tree is torchvision's; parameter groups kept", function()
  T.manual_seed(4)
  local m = ft.models.resnet18 { num_classes = 5 }
  local r = nn.from_description(m:describe())
  H.eq(r:type(), "ResNet", "type")
  same_outputs(m, r, T.randn { 1, 3, 40, 40 }, "outputs")
  local gm, gr = select(2, m:param_groups()), select(2, r:param_groups())
  H.eq(#gr, 3, "three groups")
  for i = 1, 3 do H.eq(table.concat(gr[i], ","), table.concat(gm[i], ","), "group " .. i) end
  if not H.have_torch() then return H.skip("resnet18 names against torchvision", "no python3-torch") end
  local want = H.python [[
import torchvision
m = torchvision.models.resnet18(num_classes=5)
print(lua({k: list(v.shape) for k, v in m.state_dict().items()}))
]]
  local sd = r:state_dict()
  local n = 0
  for k, shape in pairs(want) do
    n = n + 1
    assert(sd[k], "missing " .. k)
    H.close(sd[k]:size(), shape, 0, k)
  end
  local m2 = 0
  for _ in pairs(sd) do m2 = m2 + 1 end
  H.eq(m2, n, "state_dict size")
end)

H.test("describe: a module shared by two parents stays shared", function()
  local lin = nn.Linear(3, 3)
  local m = nn.Sequential { lin, nn.ReLU(), nn.Sequential { lin } }
  local d = m:describe()
  H.eq(d.children[3][2].children[1][2].same, "0", "reference")
  local r = nn.from_description(d)
  assert(r[1] == r[3][1], "rebuilt modules are shared")
  assert(r[1] ~= r[2], "others are not")
end)

H.test("describe: a Lua forward is an error naming the module; bad descriptions name the node", function()
  local lm = nn.Module("Residual", { forward = function(self, x) return x + self.l(x) end, l = nn.Linear(2, 2) })
  H.errors(function() nn.Sequential { nn.ReLU(), nn.Sequential { lm } }:describe() end,
    "module '1.0' is a Lua-defined Residual", "forward is Lua code")
  H.errors(function() lm:describe() end, "the model is a Lua-defined Residual")
  H.errors(function() nn.from_description { kind = "Conv2d", in_channels = 3 } end,
    "node '(the model itself)'", "'out_channels' must be an integer")
  H.errors(function() nn.from_description { kind = "Sequential", children = { { "a", { kind = "Bogus" } } } } end,
    "node 'a'", "unknown kind 'Bogus'")
  H.errors(function() nn.from_description { kind = "Module" } end, "Lua-defined module")
  H.errors(function() nn.from_description { kind = "BasicBlock", children = {} } end, "needs a child 'conv1'")
  H.errors(function() nn.from_description { kind = "ReLU", inplace = false, children = { { "x", { kind = "ReLU", inplace = true } } } } end,
    "a ReLU has no children")
  H.errors(function() nn.from_description { kind = "Linear", in_features = 0, out_features = 2, bias = true } end,
    "Linear: features must be positive")
  H.errors(function() nn.from_description { kind = "Sequential", split = "nope" } end, "'split' names 'nope'")
  H.errors(function() nn.from_description { kind = "Sequential", children = { { "a", { same = "b" } } } } end,
    "'same' refers to 'b'")
  H.errors(function() nn.from_description { kind = "Sequential", children = { { "a.b", { kind = "ReLU", inplace = true } } } } end,
    "child name 'a.b'")
end)

H.done()
