-- scripts/main.lua: the offline main job (`make run`). The chapter's recipe (fastai book,
-- chapter 5) on data a Debian package provides, Fashion-MNIST (dataset-fashion-mnist), with no
-- network:
--
--   1. pretrain a small resnet on five of the ten classes (the "ImageNet" of this job), and cache
--      it: the next run starts from the cached backbone;
--   2. transfer it to the five other classes, seen through a small train set (--shots images per
--      class): cnn_learner with the cached weights, lr_find, fit_one_cycle frozen, unfreeze,
--      lr_find, fit_one_cycle with discriminative learning rates (ft.slice);
--   3. train the same model from scratch on the same small set for as many epochs, and compare;
--   4. plot_loss, the confusion matrix, most_confused, top losses, export.
--
--   ftlua scripts/main.lua [--out DIR] [--cache DIR] [--shots 10] [--pre_epochs 3] [--epochs 3,12]
--       [--source_n N] [--data DIR] [--retrain true]
--
-- --out: plots, export.safetensors (default out/main). --cache: where the pretrained backbone is
-- kept (default ~/.ftlua/models, or $FTLUA_HOME/models). --shots: target train images per class.
-- --source_n: pretrain on at most N images per source class (default all 6000; the tests use a
-- few hundred). --retrain true: pretrain again even when the cache has the backbone.
--
-- `make run` runs it through `ftlua --report out/main/report.html`, so its tables and plots also
-- land in one HTML page.
local V, T, nn = ft.vision, ft.tensor, ft.nn

local home = os.getenv("FTLUA_HOME") or ((os.getenv("HOME") or ".") .. "/.ftlua")
-- name, default, what it does (the --help text)
local OPTIONS = {
  { "out", "out/main", "where the plots, the tables and export.safetensors go" },
  { "cache", home .. "/models", "where the pretrained backbone is kept ($FTLUA_HOME/models, else ~/.ftlua/models)" },
  { "shots", "10", "target train images per class (the small transfer set)" },
  { "pre_epochs", "3", "epochs of pretraining the backbone on the source classes" },
  { "epochs", "3,12", "epochs frozen,unfrozen of the transfer (fit_one_cycle, then with discriminative lrs)" },
  { "source_n", "6000", "pretrain on at most N images per source class (the tests use a few hundred)" },
  { "data", "/usr/share/datasets/fashion-mnist", "the folder of Fashion-MNIST's IDX files (dataset-fashion-mnist)" },
  { "retrain", "false", "true: pretrain again even when the cache has the backbone" },
}

local opts, usage_error = ft.script.parse_args(arg, OPTIONS, {
  name = "main.lua",
  help = "usage: ftlua scripts/main.lua [--option value ...]\n"
    .. "The offline main job: the chapter's transfer-learning recipe on Fashion-MNIST (pretrain a resnet on\n"
    .. "five classes, transfer it to the five others with few images, compare with training from scratch).\n\n"
    .. "options:",
})
local function int(name)
  local v = math.tointeger(tonumber(opts[name]))
  if not v or v < 1 then usage_error(("--%s needs a positive integer, got %q"):format(name, opts[name])) end
  return v
end
local shots, pre_epochs, source_n = int("shots"), int("pre_epochs"), int("source_n")
local e1, e2 = opts.epochs:match("^(%d+),(%d+)$")
e1, e2 = math.tointeger(tonumber(e1)), math.tointeger(tonumber(e2))
if not e1 then usage_error(("--epochs needs two counts, frozen,unfrozen (e.g. 3,12), got %q"):format(opts.epochs)) end
local function sh(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local out = opts.out
local t_start = ft.clock()

-- Under `ftlua --report`, every figure written to `out` also lands in the page, in the cell that
-- made it.
local function show(what, file) print(what .. ": " .. out .. "/" .. file) end

-- 1. The data: Fashion-MNIST's IDX files, split by class into a source task (the five classes
-- the backbone is pretrained on) and a target task (the five others), each with its own vocab.
local function read(name)
  local p = opts.data .. "/" .. name
  local f = io.open(p, "rb")
  if not f then usage_error(("%s not found: install Debian's dataset-fashion-mnist (make deps) or pass --data DIR"):format(p)) end
  f:close()
  return V.read_idx(p)
end
local x_train, y_train = read("train-images-idx3-ubyte.gz"), read("train-labels-idx1-ubyte.gz")
local x_test, y_test = read("t10k-images-idx3-ubyte.gz"), read("t10k-labels-idx1-ubyte.gz")
local names = V.fashion_mnist_classes
-- Source: T-shirt/top, Trouser, Pullover, Sneaker, Bag. Target: Dress, Coat, Sandal, Shirt,
-- Ankle boot: new classes, with relatives in the source, as pets have relatives in ImageNet.
local source_classes, target_classes = { 0, 1, 2, 7, 8 }, { 3, 4, 5, 6, 9 } -- the files' 0-based labels

-- The images of `classes` (at most `per_class` of each, in file order), labels renumbered 1..n.
local function subset(x, y, classes, per_class)
  local new_label, taken, idx, labels = {}, {}, {}, {}
  for k, c in ipairs(classes) do new_label[c], taken[c] = k, 0 end
  for n, c in ipairs(y:totable()) do
    if new_label[c] and (not per_class or taken[c] < per_class) then
      taken[c] = taken[c] + 1
      idx[#idx + 1], labels[#labels + 1] = n, new_label[c]
    end
  end
  local vocab = {}
  for k, c in ipairs(classes) do vocab[k] = names[c + 1] end
  return x:index_select(1, T.tensor(idx):long()), T.tensor(labels):long(), vocab
end
local stats = { { 0.286 }, { 0.353 } } -- Fashion-MNIST's mean and std: a grey image, one channel
-- Presizing, as the chapter: a larger item size (32), then a random crop back to 28 with
-- fastai's batch augmentation.
local function dataloaders(xt, yt, xv, yv, vocab, bs)
  return V.ImageDataLoaders.from_tensors(xt, yt, xv, yv, { vocab = vocab, bs = bs, val_bs = 256, channels = 1, seed = 42,
    normalize = stats, item_tfms = V.Resize(32),
    batch_tfms = V.aug_transforms { size = 28, min_scale = 0.75, max_warp = 0 } })
end
-- The folders, once the data is known to be there: a failed run leaves nothing behind.
if not os.execute("mkdir -p " .. sh(out) .. " " .. sh(opts.cache) .. " 2>/dev/null") then
  usage_error(("cannot create %s or %s: pass --out DIR and --cache DIR where you can write"):format(out, opts.cache))
end
print(("Fashion-MNIST from %s: %d train, %d test images (%.1fs)"):format(opts.data, x_train:size(1),
  x_test:size(1), ft.clock() - t_start))

-- 2. The architecture: a resnet with torchvision's layout (conv1, bn1, relu, maxpool,
-- layer1..4, avgpool, fc), narrowed to 16..128 channels for 28-pixel images. cnn_learner takes
-- any such function, as fastai takes any arch: it cuts the body at avgpool, adds fastai's head
-- and splits the parameters into fastai's three resnet groups.
local function resnet_fm(o)
  local function down(cin, cout) return nn.Sequential { nn.Conv2d(cin, cout, 1, { stride = 2, bias = false }), nn.BatchNorm2d(cout) } end
  local function layer(cin, cout, stride)
    return nn.Sequential { nn.BasicBlock(cin, cout, stride > 1 and { stride = stride, downsample = down(cin, cout) } or nil) }
  end
  local m = nn.Sequential {
    { "conv1", nn.Conv2d(1, 16, 3, { padding = 1, bias = false }) }, { "bn1", nn.BatchNorm2d(16) }, { "relu", nn.ReLU() },
    { "maxpool", nn.MaxPool2d(3, { stride = 2, padding = 1 }) }, -- 28 -> 14
    { "layer1", layer(16, 16, 1) }, { "layer2", layer(16, 32, 2) }, { "layer3", layer(32, 64, 2) },
    { "layer4", layer(64, 128, 2) }, -- 14 -> 7 -> 4 -> 2
    { "avgpool", nn.AdaptiveAvgPool2d(1) }, { "flatten", nn.Flatten() }, { "fc", nn.Linear(128, #source_classes) },
  }
  if o and o.weights then m:load_state_dict(ft.weights.load(o.weights)) end
  return m
end

-- 3. Pretraining: the backbone, on the 30000 train images of the source classes; cached under a
-- name that says which classes and how many images, so a smaller test run never reuses it.
local backbone = ("%s/resnet_fm_source%s_%d.safetensors"):format(opts.cache, table.concat(source_classes), source_n)
local cached = io.open(backbone, "rb")
if cached and opts.retrain ~= "true" then
  cached:close()
  print("pretrained backbone: cached at " .. backbone .. " (--retrain true to train it again)")
else
  if cached then cached:close() end
  local xs, ys, vocab_s = subset(x_train, y_train, source_classes, source_n)
  local xsv, ysv = subset(x_test, y_test, source_classes)
  local src = dataloaders(xs, ys, xsv, ysv, vocab_s, 128)
  T.manual_seed(1)
  local pre = ft.Learner(src, resnet_fm(), { metrics = ft.metrics.accuracy })
  pre:fit_one_cycle(pre_epochs, 1e-2)
  T.save(backbone, (pre.model:state_dict())) -- written atomically
  print("pretrained backbone saved: " .. backbone)
end

-- 4. The target task: `shots` train images per class, validated on all 5000 test images.
local xt, yt, vocab = subset(x_train, y_train, target_classes, shots)
local xv, yv = subset(x_test, y_test, target_classes)
local dls = dataloaders(xt, yt, xv, yv, vocab, 16)
dls:show_batch { nrows = 3, ncols = 3, path = out .. "/batch.png" }
show("show_batch", "batch.png")

-- 5. Transfer: cnn_learner from the cached backbone (its body frozen), lr_find, fit_one_cycle.
-- As the book reads 3e-3 off its plot, this job reads 1e-2 off its own (Minimum/10 is 7e-3 to 1.2e-2
-- here); after unfreeze, the body's groups get 10x less than the head, as slice(lo, hi) spreads.
T.manual_seed(42)
local learn = V.cnn_learner(dls, resnet_fm, { weights = backbone, metrics = ft.metrics.error_rate,
  normalize = false, path = out })
local lr_min, lr_steep = learn:lr_find()
print(("Minimum/10: %.2e, steepest point: %.2e"):format(lr_min, lr_steep))
learn:plot_lr_find { output = out .. "/lr_find.png" }
show("lr_find", "lr_find.png")
learn:fit_one_cycle(e1, 1e-2)

-- 6. unfreeze, lr_find again, and discriminative learning rates over the three groups.
learn:unfreeze()
lr_min, lr_steep = learn:lr_find()
print(("Minimum/10: %.2e, steepest point: %.2e"):format(lr_min, lr_steep))
learn:plot_lr_find { output = out .. "/lr_find2.png" }
show("lr_find after unfreeze", "lr_find2.png")
learn:fit_one_cycle(e2, ft.slice(3e-4, 3e-3))

-- 7. The same model from scratch, on the same small set, for as many epochs, at the learning
-- rate its own lr_find suggests (fastai's default suggestion, Minimum/10).
T.manual_seed(42)
local scratch = V.cnn_learner(dls, resnet_fm, { pretrained = false, metrics = ft.metrics.error_rate, path = out })
local lr_s = scratch:lr_find()
print(("scratch: Minimum/10: %.2e"):format(lr_s))
scratch:fit_one_cycle(e1 + e2, lr_s)

local function last_error(l) local v = l.recorder.values; return v[#v][3] end
local err_transfer, err_scratch = last_error(learn), last_error(scratch)
print(("\n%-34s %s"):format("on " .. yt:size(1) .. " images of 5 new classes", "error_rate"))
print(("%-34s %.4f"):format("from scratch", err_scratch))
print(("%-34s %.4f"):format("transfer (freeze, unfreeze, slice)", err_transfer))
print(err_transfer < err_scratch and ("transfer beats scratch: %.1f%% fewer errors"):format(100 * (1 - err_transfer / err_scratch))
  or "transfer did not beat scratch on this run")

-- 8. plot_loss, the confusion matrix, most_confused, top losses.
learn.recorder:plot_loss { output = out .. "/loss.png" }
show("plot_loss", "loss.png")
local interp = ft.ClassificationInterpretation.from_learner(learn)
interp:plot_confusion_matrix { output = out .. "/confusion.png" }
show("confusion matrix", "confusion.png")
interp:plot_top_losses(9, { output = out .. "/top_losses.png" })
show("top losses", "top_losses.png")
print("most_confused(min_val=5):")
print(("%-14s %-14s %s"):format("actual", "predicted", "count"))
for _, c in ipairs(interp:most_confused { min_val = 5 }) do print(("%-14s %-14s %d"):format(c[1], c[2], c[3])) end

-- 9. export, and the time the whole job took.
learn:export("export.safetensors") -- under learn.path, the --out folder
print("exported: " .. out .. "/export.safetensors")
print(("done in %.1fs"):format(ft.clock() - t_start))
