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

local function fm(n_train, n_valid, bs)
  return ft.vision.FashionMNIST { n_train = n_train, n_valid = n_valid, bs = bs or 64, channels = 1,
    verbose = false, normalize = { { 0.286 }, { 0.353 } }, seed = 1 }
end

-- A small resnet: torchvision's BasicBlocks (two 3x3 convs with BatchNorm and an identity or
-- 1x1 downsample shortcut), 16-32-64 channels, as resnets for 28 px images are built.
local function small_resnet(c_in, n_out)
  local function down(i, o) return nn.Sequential { nn.Conv2d(i, o, 1, { stride = 2, bias = false }), nn.BatchNorm2d(o) } end
  return nn.Sequential {
    nn.Conv2d(c_in, 16, 3, { padding = 1, bias = false }), nn.BatchNorm2d(16), nn.ReLU(),
    nn.BasicBlock(16, 16),
    nn.BasicBlock(16, 32, { stride = 2, downsample = down(16, 32) }),
    nn.BasicBlock(32, 64, { stride = 2, downsample = down(32, 64) }),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, n_out),
  }
end

H.test("Fashion-MNIST: a small resnet beats 90% valid accuracy in 3 epochs (702 steps)", function()
  T.manual_seed(5)
  local learn = ft.Learner(fm(30000, 2000, 128), small_resnet(1, 10), { metrics = ft.metrics.accuracy })
  local t = ft.clock()
  learn:fit_one_cycle(3, 1e-2)
  local acc = learn.recorder.values[3][3]
  assert(acc > 0.90, ("accuracy %.4f after 3 epochs"):format(acc))
  print(("# fashion-mnist accuracy %.4f in %.1f s"):format(acc, ft.clock() - t))
end)

H.done()
