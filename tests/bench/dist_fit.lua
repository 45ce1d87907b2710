-- dist_fit.lua: the script of tests/bench/dist.sh, run as one process or as ranks of
-- `ftlua --nproc N`: one epoch of Learner:fit(1, 1e-3) on the first BENCH_N_TRAIN Fashion-MNIST
-- images (28 px, global batch 64, no augmentation) after a warm-up batch; only the epoch's
-- training part is timed. Rank 0 prints "model images_per_second".
--   model: "resnet18" (11.2 M parameters, 3 channels) or "small" (a 3-conv net, 1 channel)
local N_TRAIN = tonumber(os.getenv("BENCH_N_TRAIN") or "1024")
local BS, LR = 64, 1e-3
local nn = ft.nn

local warmup = { name = "BenchWarmup" }
function warmup:after_batch() return "cancel_fit" end
local timer = { name = "BenchTimer" }
function timer:before_train() self.t0 = ft.clock() end
function timer:after_train() self.dt = ft.clock() - self.t0 end

local function small()
  local function blk(i, o) return nn.Conv2d(i, o, 3, { stride = 2, padding = 1 }), nn.ReLU() end
  local a, b = blk(1, 32)
  local c, d = blk(32, 64)
  local e, f = blk(64, 128)
  return nn.Sequential { a, b, c, d, e, f, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10) }
end

for _, name in ipairs(arg) do
  ft.tensor.manual_seed(0)
  local dls = ft.vision.FashionMNIST { n_train = N_TRAIN, n_valid = 8, bs = BS, seed = 0, verbose = false,
    channels = name == "small" and 1 or 3 }
  local model = name == "small" and small() or ft.models.resnet18 { num_classes = 10 }
  local learn = ft.Learner(dls, model, { amp = "fp32" }) -- the figures in docs/performance.md are float32
  learn:fit(1, LR, { cbs = { warmup } }) -- allocations, oneDNN primitives
  learn:fit(1, LR, { cbs = { timer } })
  if ft.dist.is_main() then print(("%s %.3f"):format(name, #dls.train * BS / timer.dt)) end
  io.stdout:flush()
  learn, dls = nil, nil
  collectgarbage()
end
