-- accuracy_fm.lua: ftlua's side of tests/bench/accuracy.sh for the main job's transfer recipe
-- (scripts/main.lua, steps 4-6, with its fixed learning rates instead of lr_find): the cached
-- Fashion-MNIST backbone (pretrained on the five source classes; made here with main.lua's
-- recipe when $BENCH_BACKBONE is absent), cnn_learner on SHOTS images per target class, valid
-- on the 5000 test images of those classes; fit_one_cycle(3, 1e-2), unfreeze,
-- fit_one_cycle(12, slice(3e-4, 3e-3)). Per seed argument prints
-- "ftlua SEED error_rate valid_loss seconds_per_epoch".
local V, T, nn = ft.vision, ft.tensor, ft.nn
local dir = os.getenv("BENCH_FM") or "/usr/share/datasets/fashion-mnist"
local backbone = assert(os.getenv("BENCH_BACKBONE"), "BENCH_BACKBONE: the cached backbone's file")
local shots = tonumber(os.getenv("BENCH_SHOTS") or "10")
local e1, e2 = (os.getenv("BENCH_FM_EPOCHS") or "3,12"):match("^(%d+),(%d+)$")
e1, e2 = math.tointeger(tonumber(e1)), math.tointeger(tonumber(e2))
local source_n = tonumber(os.getenv("BENCH_SOURCE_N") or "6000") -- main.lua's default

local x_train, y_train = V.read_idx(dir .. "/train-images-idx3-ubyte.gz"), V.read_idx(dir .. "/train-labels-idx1-ubyte.gz")
local x_test, y_test = V.read_idx(dir .. "/t10k-images-idx3-ubyte.gz"), V.read_idx(dir .. "/t10k-labels-idx1-ubyte.gz")
local names = V.fashion_mnist_classes
local source_classes, target_classes = { 0, 1, 2, 7, 8 }, { 3, 4, 5, 6, 9 }

local function dataloaders(xt, yt, xv, yv, vocab, bs)
  return V.ImageDataLoaders.from_tensors(xt, yt, xv, yv, { vocab = vocab, bs = bs, val_bs = 256, channels = 1, seed = 42,
    normalize = { { 0.286 }, { 0.353 } }, item_tfms = V.Resize(32), verbose = false,
    batch_tfms = V.aug_transforms { size = 28, min_scale = 0.75, max_warp = 0 } })
end
-- main.lua's own subset and resnet_fm, read from scripts/main.lua (one copy): the text of its
-- top-level `local function NAME`, loaded with the names it uses from main.lua's scope.
local main_lua = (arg[0]:match("^(.*/)") or "./") .. "../../scripts/main.lua"
local function from_main(name, scope)
  local f = assert(io.open(main_lua, "rb"))
  local src = f:read("a")
  f:close()
  local at, text = src:match("\n()(local function " .. name .. "%(.-\nend)\n")
  if not text then error(main_lua .. " has no top-level `local function " .. name .. "`", 2) end
  local _, lines_before = src:sub(1, at - 1):gsub("\n", "") -- so that messages give main.lua's lines
  text = ("\n"):rep(lines_before) .. text .. "\nreturn " .. name
  return assert(load(text, "@" .. main_lua, "t", setmetatable(scope, { __index = _G })))()
end
local subset = from_main("subset", { T = T, names = names })
local resnet_fm = from_main("resnet_fm", { nn = nn, source_classes = source_classes })

local f = io.open(backbone, "rb")
if f then f:close() else
  local xs, ys, vocab_s = subset(x_train, y_train, source_classes, source_n)
  local xsv, ysv = subset(x_test, y_test, source_classes)
  T.manual_seed(1)
  local pre = ft.Learner(dataloaders(xs, ys, xsv, ysv, vocab_s, 128), resnet_fm(), { metrics = ft.metrics.accuracy })
  pre:fit_one_cycle(3, 1e-2)
  T.save(backbone, (pre.model:state_dict()))
  print("backbone: pretrained and saved to " .. backbone)
end

local xt, yt, vocab = subset(x_train, y_train, target_classes, shots)
local xv, yv = subset(x_test, y_test, target_classes)
for _, a in ipairs(arg) do
  local seed = math.tointeger(tonumber(a))
  T.manual_seed(seed)
  local dls = dataloaders(xt, yt, xv, yv, vocab, 16)
  local learn = V.cnn_learner(dls, resnet_fm, { weights = backbone, metrics = ft.metrics.error_rate, normalize = false })
  local t0 = ft.clock()
  learn:fit_one_cycle(e1, 1e-2)
  learn:unfreeze()
  learn:fit_one_cycle(e2, ft.slice(3e-4, 3e-3))
  local dt = (ft.clock() - t0) / (e1 + e2)
  local last = learn.recorder.values[#learn.recorder.values]
  print(("ftlua %d %.6f %.6f %.2f"):format(seed, last[3], last[2], dt))
  io.stdout:flush()
  learn, dls = nil, nil
  collectgarbage()
end
