-- learner_fit.lua: ftlua's side of tests/bench/learner.sh. For each dtype argument ("fp32",
-- "bf16"): resnet18{num_classes=10} on the first BENCH_N_TRAIN Fashion-MNIST training images
-- (3 channels, 28 px, bs 64, no augmentation), Learner:fit(1, 1e-3) (fastai's Adam, constant
-- lr), after a warm-up of one training batch (a fit cancelled after its first batch). Only
-- the epoch's training part is timed (before_train .. after_train); the valid set is 8 images.
-- Prints the epoch table, then "dtype images_per_second" (learner.sh keeps that line).
local N_TRAIN = tonumber(os.getenv("BENCH_N_TRAIN") or "2048")
local BS, LR = 64, 1e-3

local warmup = { name = "BenchWarmup" }
function warmup:after_batch() return "cancel_fit" end
local timer = { name = "BenchTimer" }
function timer:before_train() self.t0 = ft.clock() end
function timer:after_train() self.dt = ft.clock() - self.t0 end

for _, dtype in ipairs(arg) do
  ft.tensor.manual_seed(0)
  local dls = ft.vision.FashionMNIST { n_train = N_TRAIN, n_valid = 8, bs = BS, seed = 0, verbose = false }
  local learn = ft.Learner(dls, ft.models.resnet18 { num_classes = 10 })
  if dtype == "bf16" then learn:to_bf16() else learn:to_fp32() end
  learn:fit(1, LR, { cbs = { warmup } }) -- allocations, oneDNN primitives
  learn:fit(1, LR, { cbs = { timer } })
  print(("%s %.3f"):format(dtype, #dls.train * BS / timer.dt))
  io.stdout:flush()
  learn, dls = nil, nil
  collectgarbage()
end
