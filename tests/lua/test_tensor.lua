-- test_tensor.lua: the tensor module against PyTorch (Debian python3-torch), known values and
-- finite differences.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"

local A = { { 1, 2 }, { 3, 4 } }
local X = { { 0.5, -1.25, 2.0 }, { 3.5, 0.25, -0.75 } }

H.test("issue example", function()
  local a = T.tensor(A)
  H.eq(a:dtype(), "float32", "dtype")
  H.eq(a:matmul(a):sum():item(), 54, "sum of a@a")
  H.eq(tostring(a:size()), "{2, 2}", "size")
  H.eq(a:dim(), 2, "dim")
  H.eq(a:device(), "cpu", "device")
  local z = T.zeros { 2, 3 }; local r = T.randn { 2, 3 }; local o = T.ones { 3 }; local i = T.arange(10)
  H.eq(tostring(z:size()), "{2, 3}"); H.eq(tostring(r:size()), "{2, 3}")
  H.eq(o:sum():item(), 3.0); H.eq(i:dtype(), "int64"); H.eq(i:sum():item(), 45)
  local x = T.randn { 5 }:requires_grad()
  local y = (x * x):sum(); y:backward()
  H.close(x.grad, (x * 2):detach())
  H.eq(type(T.cuda_available()), "boolean")
end)

H.test("size, shape, numel, stride", function()
  local t = T.zeros { 2, 3, 4 }
  H.eq(t:size(2), 3); H.eq(t:size(-1), 4); H.eq(#t, 2); H.eq(t:numel(), 24)
  H.eq(t.shape, t:size(), "shape == size()")
  H.close(t:stride(), { 12, 4, 1 })
  H.eq(T.zeros(2, 3):size(2), 3, "sizes as numbers")
  H.eq(T.zeros({ 2 }, "int32"):dtype(), "int32")
  H.eq(T.ones({ 2 }, { dtype = "float64" }):dtype(), "float64")
end)

if not H.have_torch() then
  H.skip("pytorch references", "/usr/bin/python3 has no torch (apt-get install python3-torch)")
else
  local ref = H.python([==[
import torch
A = torch.tensor([[1., 2.], [3., 4.]]); X = torch.tensor([[0.5, -1.25, 2.0], [3.5, 0.25, -0.75]])
P = X.abs() + 0.5
r = {}
torch.manual_seed(42); r['randn'] = torch.randn(2, 3)
torch.manual_seed(7); r['rand'] = torch.rand(4)
torch.manual_seed(3); r['randint'] = torch.randint(0, 10, (6,))
torch.manual_seed(5); r['randperm'] = torch.randperm(8) + 1
r['arange_f'] = torch.arange(1, 2, 0.25)
r['linspace'] = torch.linspace(0, 1, 5)
r['eye'] = torch.eye(3)
r['matmul'] = A @ A
for name in ['add', 'sub', 'mul', 'div', 'pow', 'remainder', 'maximum', 'minimum', 'atan2']:
    r['bin_' + name] = getattr(torch, name)(X, P)
for name in ['eq', 'ne', 'lt', 'le', 'gt', 'ge']:
    r['cmp_' + name] = getattr(torch, name)(X, 0.25).long()
for name in ['neg', 'abs', 'exp', 'sin', 'cos', 'tan', 'tanh', 'sigmoid', 'relu', 'floor', 'ceil',
             'round', 'trunc', 'sign', 'reciprocal', 'square', 'erf', 'expm1', 'log1p']:
    r['un_' + name] = getattr(torch, name)(X)
for name in ['log', 'log2', 'sqrt', 'rsqrt']:
    r['un_' + name] = getattr(torch, name)(P)
r['gelu'] = torch.nn.functional.gelu(X); r['silu'] = torch.nn.functional.silu(X)
r['sum'] = X.sum(); r['mean'] = X.mean(); r['prod'] = X.prod(); r['std'] = X.std(); r['var'] = X.var()
r['norm'] = X.norm(); r['logsumexp'] = torch.logsumexp(X.flatten(), 0); r['max'] = X.max(); r['min'] = X.min()
r['argmax'] = X.argmax() + 1
r['sum1'] = X.sum(0); r['sum2k'] = X.sum(1, keepdim=True); r['mean2'] = X.mean(1)
v, i = X.max(1); r['max2v'] = v; r['max2i'] = i + 1
r['cumsum2'] = X.cumsum(1); r['std1'] = X.std(0)
v, i = X.flatten().topk(2); r['topkv'] = v; r['topki'] = i + 1
v, i = X.sort(1, descending=True); r['sortv'] = v; r['sorti'] = i + 1
r['softmax'] = X.softmax(1); r['log_softmax'] = X.log_softmax(0)
r['clamp'] = X.clamp(-1, 1); r['clamp_lo'] = X.clamp(min=0)
r['scalar_sub'] = 2 - X; r['scalar_div'] = 2 / P; r['scalar_pow'] = 2 ** X
r['half'] = X.half().double(); r['bf16'] = X.bfloat16().double()
r['long'] = X.long()
r['repr'] = repr(A); r['repr_x'] = repr(X.double()); r['repr_i'] = repr(torch.arange(10).view(2, 5))
print(lua(r))
]==])

  H.test("seeded random numbers equal PyTorch's", function()
    T.manual_seed(42); H.close(T.randn { 2, 3 }, ref.randn, 1e-6)
    T.manual_seed(7); H.close(T.rand { 4 }, ref.rand, 1e-6)
    T.manual_seed(3); H.close(T.randint(0, 10, { 6 }), ref.randint, 0)
    T.manual_seed(5); H.close(T.randperm(8), ref.randperm, 0, "randperm (1-based)")
  end)

  H.test("creation", function()
    H.close(T.tensor(A), A, 0)
    H.close(T.arange(1, 2, 0.25), ref.arange_f, 1e-7)
    H.eq(T.arange(1, 2, 0.25):dtype(), "float32")
    H.close(T.linspace(0, 1, 5), ref.linspace, 1e-7)
    H.close(T.eye(3), ref.eye, 0)
    H.close(T.full({ 2, 2 }, 7), { { 7, 7 }, { 7, 7 } }, 0)
    H.eq(T.tensor { true, false }:dtype(), "bool")
    H.eq(T.tensor(3.5):dim(), 0); H.eq(T.tensor(3.5):item(), 3.5)
    H.close(T.tensor({ 1, 2 }, "int64"), { 1, 2 }, 0)
    local c = T.tensor(A); local d = T.tensor(c); d[1][1] = 9; H.eq(c[1][1], 1.0, "T.tensor(t) copies")
  end)

  H.test("elementwise maths", function()
    local x, p = T.tensor(X), T.tensor(X):abs() + 0.5
    for _, name in ipairs { "add", "sub", "mul", "div", "pow", "remainder", "maximum", "minimum", "atan2" } do
      H.close(x[name](x, p), ref["bin_" .. name], 1e-6, name)
    end
    for _, name in ipairs { "eq", "ne", "lt", "le", "gt", "ge" } do
      H.close(x[name](x, 0.25):long(), ref["cmp_" .. name], 0, name)
    end
    for _, name in ipairs { "neg", "abs", "exp", "sin", "cos", "tan", "tanh", "sigmoid", "relu", "floor",
      "ceil", "round", "trunc", "sign", "reciprocal", "square", "erf", "expm1", "log1p" } do
      H.close(x[name](x), ref["un_" .. name], 1e-6, name)
    end
    for _, name in ipairs { "log", "log2", "sqrt", "rsqrt" } do H.close(p[name](p), ref["un_" .. name], 1e-6, name) end
    H.close(x:gelu(), ref.gelu, 1e-6); H.close(x:silu(), ref.silu, 1e-6)
    H.close(x:clamp(-1, 1), ref.clamp, 0); H.close(x:clamp(0), ref.clamp_lo, 0)
  end)

  H.test("operators", function()
    local x, p = T.tensor(X), T.tensor(X):abs() + 0.5
    H.close(x + p, ref.bin_add, 1e-6); H.close(x - p, ref.bin_sub, 1e-6)
    H.close(x * p, ref.bin_mul, 1e-6); H.close(x / p, ref.bin_div, 1e-6)
    H.close(x ^ p, ref.bin_pow, 1e-6); H.close(x % p, ref.bin_remainder, 1e-6)
    H.close(-x, ref.un_neg, 0)
    H.close(2 - x, ref.scalar_sub, 1e-6); H.close(2 / p, ref.scalar_div, 1e-6); H.close(2 ^ x, ref.scalar_pow, 1e-6)
    H.eq(x == T.tensor(X), true, "=="); H.eq(x == p, false, "~=")
    local y = T.tensor(X); y:add_(1); H.close(y, (x + 1), 0, "add_")
    y:mul_(x); H.close(y, (x + 1) * x, 1e-6, "mul_")
    y:add_(x, 2); H.close(y, (x + 1) * x + x * 2, 1e-6, "add_ alpha")
  end)

  H.test("reductions", function()
    local x = T.tensor(X)
    for _, name in ipairs { "sum", "mean", "prod", "std", "var", "norm", "max", "min" } do
      H.close(x[name](x), ref[name], 1e-6, name)
    end
    H.close(x:flatten():logsumexp(1), ref.logsumexp, 1e-6)
    H.close(x:argmax(), ref.argmax, 0, "argmax is 1-based")
    H.close(x:sum(1), ref.sum1, 1e-6); H.close(x:sum(2, true), ref.sum2k, 1e-6); H.close(x:mean(-1), ref.mean2, 1e-6)
    local v, i = x:max(2); H.close(v, ref.max2v, 0); H.close(i, ref.max2i, 0)
    H.close(x:cumsum(2), ref.cumsum2, 1e-6); H.close(x:std(1), ref.std1, 1e-6)
    v, i = x:flatten():topk(2); H.close(v, ref.topkv, 0); H.close(i, ref.topki, 0)
    v, i = x:sort(2, true); H.close(v, ref.sortv, 0); H.close(i, ref.sorti, 0)
    H.close(x:softmax(2), ref.softmax, 1e-6); H.close(x:log_softmax(1), ref.log_softmax, 1e-6)
    H.eq(T.tensor { true, false }:any():item(), true); H.eq(T.tensor { true, false }:all():item(), false)
  end)

  H.test("conversions", function()
    local x = T.tensor(X)
    H.close(x:half():double(), ref.half, 0); H.close(x:bfloat16():double(), ref.bf16, 0)
    H.close(x:long(), ref.long, 0)
    H.eq(x:to("float64"):dtype(), "float64"); H.eq(x:to { dtype = "int32" }:dtype(), "int32")
    H.eq(x:to("cpu"):device(), "cpu"); H.eq(x:to(T.zeros({ 1 }, "float16")):dtype(), "float16")
    local big = T.frombytes(string.pack("<i8", 9007199254740993), { 1 }, "int64") -- 2^53 + 1
    H.eq(big[1], 9007199254740993, "int64 item exact")
    H.eq(math.type(T.arange(3)[2]), "integer"); H.eq(T.tensor { true }[1], true)
  end)

  H.test("printing matches PyTorch's", function()
    local function body(t) return (tostring(t):match("^(.-)\n%[")) end
    H.eq(body(T.tensor(A)), ref.repr, "2x2 float32")
    H.eq(body(T.tensor(X, "float64")), ref.repr_x, "float64")
    H.eq(body(T.arange(10):view(2, 5)), ref.repr_i, "int64")
    H.eq(tostring(T.tensor(A)):match("\n(%[.*%])$"), "[float32 tensor of size 2x2 on cpu]", "footer")
  end)
end

H.test("indexing and slicing", function()
  local x = T.arange(12):view(3, 4)
  H.eq(x[2][3], 6); H.eq(x[-1][-1], 11); H.eq(x[{ 2, 3 }], 6)
  H.close(x[2], { 4, 5, 6, 7 }, 0)
  H.close(x[{ 1, { 2, 3 } }], { 1, 2 }, 0)
  H.close(x[{ {}, 2 }], { 1, 5, 9 }, 0)
  H.close(x[{ { 2, -1 }, { 4 } }], { { 7 }, { 11 } }, 0)
  H.close(x[x:gt(9)], { 10, 11 }, 0)
  x[1][1] = 100; H.eq(x[1][1], 100)
  x[{ 2, { 1, 2 } }] = T.tensor({ -1, -2 }, "int64"); H.close(x[2], { -1, -2, 6, 7 }, 0)
  x[{ {}, 4 }] = 0; H.close(x[{ {}, 4 }], { 0, 0, 0 }, 0)
  x[x:lt(0)] = 5; H.close(x[2], { 5, 5, 6, 0 }, 0)
end)

H.test("views share storage", function()
  local x = T.zeros { 2, 3 }
  local v = x:view { 3, 2 }; v[1][1] = 1
  local t = x:t(); t[3][2] = 2
  local n = x:narrow(2, 2, 2); n:fill(3)
  H.close(x, { { 1, 3, 3 }, { 0, 3, 3 } }, 0)
  H.close(x:permute { 2, 1 }:size(), { 3, 2 }, 0)
  H.eq(x:t():is_contiguous(), false); H.eq(x:t():contiguous():is_contiguous(), true)
  H.close(x:view(-1):size(), { 6 }, 0)
  H.close(x:unsqueeze(1):size(), { 1, 2, 3 }, 0); H.close(x:unsqueeze(1):squeeze():size(), { 2, 3 }, 0)
  H.close(T.cat({ x, x }, 2):size(), { 2, 6 }, 0); H.close(T.stack({ x, x }):size(), { 2, 2, 3 }, 0)
  H.close(x:index_select(2, T.tensor({ 3, 1 }, "int64")), { { 3, 1 }, { 3, 0 } }, 0)
  H.close(x:select(1, 2), { 0, 3, 3 }, 0)
end)

H.test("autograd against finite differences", function()
  -- f(x) = sum(sigmoid(x) * x^2 + exp(-x) / (1 + x^2)), in float64
  local function f(x) return ((x:sigmoid() * x * x) + (-x):exp() / (x * x + 1)):sum() end
  local x0 = { 0.3, -1.2, 2.0, 0.05 }
  local x = T.tensor(x0, "float64"):requires_grad()
  f(x):backward()
  local g = x.grad:totable()
  local h = 1e-6
  for i = 1, #x0 do
    local xp, xm = T.tensor(x0, "float64"), T.tensor(x0, "float64")
    xp[i] = x0[i] + h; xm[i] = x0[i] - h
    local fd = (f(xp):item() - f(xm):item()) / (2 * h)
    H.close(g[i], fd, 1e-6, "d/dx" .. i)
  end
  x.grad = nil; H.eq(x.grad, nil, "grad cleared")
end)

H.test("no_grad scopes", function()
  local x = T.ones { 2 }:requires_grad()
  local y = T.no_grad(function() return x * 2 end)
  H.eq(y:needs_grad(), false, "function form")
  H.eq(T.is_grad_enabled(), true, "restored")
  do
    local g <close> = T.no_grad()
    H.eq((x * 2):needs_grad(), false, "close form")
  end
  H.eq(T.is_grad_enabled(), true, "restored after <close>")
  pcall(T.no_grad, function() error("boom") end)
  H.eq(T.is_grad_enabled(), true, "restored after error")
  H.eq((x * 2):needs_grad(), true)
end)

H.test("threads default to every core", function()
  local p = io.popen("nproc"); local n = tonumber(p:read("l")); p:close()
  if os.getenv("FTLUA_NUM_THREADS") or os.getenv("OMP_NUM_THREADS") then return end
  H.eq(T.get_num_threads(), n, "threads")
  T.set_num_threads(1); H.eq(T.get_num_threads(), 1); T.set_num_threads(n)
end)

H.test("close and free", function()
  local x = T.ones { 4 }
  x:free()
  H.errors(function() return x + 1 end, "freed tensor")
  H.eq(tostring(x), "tensor (freed)")
  do local y <close> = T.ones { 1000 } end
end)

H.test("bad input gives clear errors", function()
  H.errors(function() return T.zeros("x") end, "shape")
  H.errors(function() return T.zeros({ 2 }, "float99") end, "unknown dtype 'float99'")
  H.errors(function() return T.zeros({ 2 }, { device = "tpu" }) end, "unknown device 'tpu'")
  H.errors(function() return T.tensor { { 1, 2 }, { 3 } } end, "ragged", "[2]")
  H.errors(function() return T.tensor { 1, "a" } end, "[2]", "string")
  H.errors(function() return T.ones { 2, 3 }:matmul(T.ones { 2, 3 }) end, "matmul", "2x3")
  H.errors(function() return T.ones { 2, 3 } + T.ones { 4 } end, "size of tensor")
  H.errors(function() return T.ones { 3 }[4] end, "index 4 out of range for dim 1 of size 3")
  H.errors(function() return T.ones { 3 }[{ 1, 2 }] end, "2 indices for a 1-dim tensor")
  H.errors(function() return T.ones { 6 }:view(4, 2) end, "view")
  H.errors(function() return T.ones { 2 }:sum(3) end, "dim 3 out of range")
  H.errors(function() return T.ones { 2 }:item() end, "exactly one")
  H.errors(function() return T.ones(2):add("x") end, "number expected")
  local err = H.errors(function() return T.ones { 2, 3 }:matmul(T.ones { 2, 3 }) end, "matmul")
  assert(not err:find("Exception raised from", 1, true), "backtrace not trimmed: " .. err)
end)

H.done()
