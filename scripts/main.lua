-- scripts/main.lua: the offline main job (`make run`), on Fashion-MNIST from Debian's
-- dataset-fashion-mnist package.
--
-- Today it trains a two-layer network with the tensor module alone: autograd, no_grad for
-- validation, SGD with momentum written out in Lua. As the model, data and learner modules land,
-- this job grows into the chapter's recipe (see the README's status).
--
--   ftlua scripts/main.lua [--data DIR] [--epochs N] [--bs N] [--hidden N] [--lr X]
local ft = require "ftlua"
local T = ft.tensor

local opts = { data = "/usr/share/datasets/fashion-mnist", epochs = 3, bs = 128, hidden = 256, lr = 0.1 }
local i = 1
while i <= #arg do
  local key = arg[i]:match("^%-%-(.+)$")
  if not key or opts[key] == nil or arg[i + 1] == nil then
    error(("usage: ftlua scripts/main.lua [--data DIR] [--epochs N] [--bs N] [--hidden N] [--lr X] (bad argument %q)"):format(arg[i]), 0)
  end
  opts[key] = type(opts[key]) == "number" and assert(tonumber(arg[i + 1]), "--" .. key .. " needs a number") or arg[i + 1]
  i = i + 2
end

-- IDX files (big-endian header: magic, dims; then uint8 data), gzip'd as Debian ships them.
local function read_idx(path)
  local f = io.open(path, "rb")
  if not f then
    error(("cannot open %s: install Debian's dataset-fashion-mnist (make deps) or pass --data DIR"):format(path), 0)
  end
  f:close()
  local p = assert(io.popen("gzip -dc '" .. path .. "'", "r"))
  local bytes = p:read("a")
  p:close()
  local magic = string.unpack(">I4", bytes)
  local ndim = magic & 0xff
  assert(magic >> 8 == 0x08, path .. ": not an IDX file of unsigned bytes")
  local shape, off = {}, 5
  for d = 1, ndim do shape[d], off = string.unpack(">I4", bytes, off) end
  return T.frombytes(bytes:sub(off), shape)
end

local t0 = ft.clock()
local function load(split)
  local x = read_idx(("%s/%s-images-idx3-ubyte.gz"):format(opts.data, split))
  local y = read_idx(("%s/%s-labels-idx1-ubyte.gz"):format(opts.data, split))
  x = x:float():view(x:size(1), -1) / 255
  return (x - 0.2860) / 0.3530, y:long() -- Fashion-MNIST's mean and std
end
local xtrain, ytrain = load("train")
local xvalid, yvalid = load("t10k")
print(("Fashion-MNIST: %d train, %d valid images of %d pixels (%.1fs to load)"):format(
  xtrain:size(1), xvalid:size(1), xtrain:size(2), ft.clock() - t0))

T.manual_seed(42)
local function param(rows, cols) -- Kaiming-uniform like torch.nn.Linear
  local bound = 1 / math.sqrt(rows)
  return (T.rand { rows, cols } * 2 - 1):mul_(bound):requires_grad()
end
local w1, b1 = param(784, opts.hidden), T.zeros { opts.hidden }:requires_grad()
local w2, b2 = param(opts.hidden, 10), T.zeros { 10 }:requires_grad()
local params = { w1, b1, w2, b2 }
local velocity = {}
for k, p in ipairs(params) do velocity[k] = T.zeros(p:size()) end

local function forward(x) return (x:matmul(w1) + b1):relu():matmul(w2) + b2 end
local function nll(logits, y) -- y holds classes 0..9; gather takes 1-based indices
  return -(logits:log_softmax(2):gather(2, (y + 1):view(-1, 1))):mean()
end

print(("%-6s %-11s %-11s %-9s %s"):format("epoch", "train_loss", "valid_loss", "accuracy", "time"))
local n = xtrain:size(1)
for epoch = 0, opts.epochs - 1 do
  local e0, smooth, count = ft.clock(), 0, 0
  local perm = T.randperm(n)
  for b = 1, n - opts.bs + 1, opts.bs do
    local idx = perm:narrow(1, b, opts.bs)
    local x, y = xtrain:index_select(1, idx), ytrain:index_select(1, idx)
    local loss = nll(forward(x), y)
    loss:backward()
    T.no_grad(function()
      for k, p in ipairs(params) do
        velocity[k]:mul_(0.9):add_(p.grad)
        p:sub_(velocity[k], opts.lr)
        p.grad = nil
      end
    end)
    count = count + 1
    smooth = smooth * 0.98 + loss:item() * 0.02 -- fastai's smoothed train loss
  end
  local vloss, acc = T.no_grad(function()
    local logits = forward(xvalid)
    return nll(logits, yvalid):item(), (logits:argmax(2) - 1):eq(yvalid):float():mean():item()
  end)
  print(("%-6d %-11.6f %-11.6f %-9.6f %s"):format(epoch, smooth / (1 - 0.98 ^ count), vloss, acc,
    ("%02d:%02d"):format((ft.clock() - e0) // 60, math.floor(ft.clock() - e0) % 60)))
end
print(("done in %.1fs"):format(ft.clock() - t0))
