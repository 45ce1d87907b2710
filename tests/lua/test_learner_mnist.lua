-- test_learner_mnist.lua: the Learner reaches real accuracy on Fashion-MNIST in bounded steps.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"
local nn = ft.nn

-- One intra-op thread: on the shared 2-core CI machine more threads are slower, not faster.
T.set_num_threads(1)

local FM = "/usr/share/datasets/fashion-mnist"
local have_fm = io.open(FM .. "/train-images-idx3-ubyte.gz", "rb") or io.open(FM .. "/train-images-idx3-ubyte", "rb")
if not have_fm then
  H.skip("learner", "Fashion-MNIST not installed at " .. FM)
  H.done()
end
have_fm:close()

local function cnn(c_in, n_out, stem)
  local function blk(i, o) return nn.Conv2d(i, o, 3, { stride = 2, padding = 1, bias = false }), nn.BatchNorm2d(o), nn.ReLU() end
  local l = {}
  if stem then -- a stride-1 stem keeps 28 px detail
    l[1], l[2], l[3] = nn.Conv2d(c_in, 16, 3, { padding = 1, bias = false }), nn.BatchNorm2d(16), nn.ReLU()
    c_in = 16
  end
  for _, io_ in ipairs { { c_in, 32 }, { 32, 64 }, { 64, 128 } } do
    local a, b, c = blk(io_[1], io_[2])
    l[#l + 1], l[#l + 2], l[#l + 3] = a, b, c
  end
  l[#l + 1], l[#l + 2], l[#l + 3] = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, n_out)
  local m = nn.Sequential(l)
  if stem then return m end
  m:set_param_groups { { "0", "1" }, { "3", "4", "6", "7" }, { "11" } } -- 3 groups, BN in each body group
  return m
end

local function fm(n_train, n_valid, bs)
  return ft.vision.FashionMNIST { n_train = n_train, n_valid = n_valid, bs = bs or 64, channels = 1,
    verbose = false, normalize = { { 0.286 }, { 0.353 } }, seed = 1 }
end

local function clones(model)
  local out = {}
  for k, t in pairs(model:state_dict()) do out[k] = t:clone() end
  return out
end

local function same(a, b, keys)
  for k, t in pairs(a) do
    if not keys or keys(k) then
      if not t:equal(b[k]) then return false, k end
    end
  end
  return true
end

H.test("Fashion-MNIST: a small CNN beats 90% valid accuracy in 3 epochs (702 steps)", function()
  T.manual_seed(5)
  local learn = ft.Learner(fm(30000, 2000, 128), cnn(1, 10, true), { metrics = ft.metrics.accuracy })
  local t = ft.clock()
  learn:fit_one_cycle(3, 1e-2)
  local acc = learn.recorder.values[3][3]
  assert(acc > 0.90, ("accuracy %.4f after 3 epochs"):format(acc))
  print(("# fashion-mnist accuracy %.4f in %.1f s"):format(acc, ft.clock() - t))
end)

H.done()
