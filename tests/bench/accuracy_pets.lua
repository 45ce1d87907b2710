-- accuracy_pets.lua: ftlua's side of tests/bench/accuracy.sh. pets-sample, resnet18 from
-- scratch, Resize(131) items (presizing, 64 * 460/224), aug_transforms{size = 64,
-- min_scale = 0.75}, bs 32, RandomSplitter{seed = 42}, fit_one_cycle(EPOCHS, 3e-3), one run per
-- seed argument. Writes the valid split's file names (one a line) to $BENCH_VALID_NAMES, then
-- per seed prints "ftlua SEED error_rate valid_loss seconds_per_epoch".
local V = ft.vision
local data = assert(os.getenv("BENCH_PETS"), "BENCH_PETS: the pets-sample folder")
local epochs = tonumber(os.getenv("BENCH_EPOCHS") or "10")
local images = data .. "/images"

for k, a in ipairs(arg) do
  local seed = math.tointeger(tonumber(a))
  ft.tensor.manual_seed(seed)
  local pets = V.DataBlock {
    blocks = { V.ImageBlock, V.CategoryBlock },
    get_items = V.get_image_files,
    splitter = V.RandomSplitter { seed = 42 },
    get_y = V.RegexLabeller "(.+)_%d+%.jpg$",
    item_tfms = V.Resize(131),
    batch_tfms = V.aug_transforms { size = 64, min_scale = 0.75 },
  }
  local dls = pets:dataloaders(images, { bs = 32, seed = seed, verbose = false })
  if k == 1 and os.getenv("BENCH_VALID_NAMES") then
    local f = assert(io.open(os.getenv("BENCH_VALID_NAMES"), "w"))
    for _, i in ipairs(dls.valid_items) do f:write(dls.items[i]:match("[^/]+$"), "\n") end
    f:close()
  end
  ft.tensor.manual_seed(seed)
  local learn = V.cnn_learner(dls, ft.models.resnet18, { metrics = ft.metrics.error_rate, pretrained = false })
  local t0 = ft.clock()
  learn:fit_one_cycle(epochs, 3e-3)
  local dt = (ft.clock() - t0) / epochs
  local last = learn.recorder.values[#learn.recorder.values] -- {train_loss, valid_loss, error_rate}
  print(("ftlua %d %.6f %.6f %.2f"):format(seed, last[3], last[2], dt))
  io.stdout:flush()
  learn, dls = nil, nil
  collectgarbage()
end
