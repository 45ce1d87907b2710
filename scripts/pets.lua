-- scripts/pets.lua: fastai's chapter 5 ("Pet breeds") end to end, with its printed tables.
--
--   ./ftlua scripts/pets.lua [--data DIR] [--arch resnet18|resnet34|resnet50] [--epochs 3,12]
--       [--bs 64] [--size 224] [--weights FILE] [--pretrained true|false] [--num_it 100] [--out DIR]
--
-- `--help` lists the options and what they do (OPTIONS below). A usage error prints one line
-- and exits with status 2.
local V = ft.vision

-- name, default, what it does (the --help text)
local OPTIONS = {
  { "data", nil, "the dataset folder (its images/ subfolder is used when there is one); default: "
    .. "untar_data(URLs.PETS) when available, else ../shared/data/pets-sample" },
  { "arch", "resnet34", "the model: resnet18, resnet34 or resnet50" },
  { "epochs", "3,12", "epochs frozen,unfrozen: fit_one_cycle with the body frozen, then unfrozen" },
  { "bs", "64", "the batch size" },
  { "size", "224", "the training image size (items are presized to size*460/224 first, as the book's 460/224)" },
  { "weights", nil, "a local torchvision checkpoint for the pretrained body (offline use)" },
  { "pretrained", "true", "true: start from ImageNet weights and freeze the body; false: from scratch" },
  { "num_it", "100", "lr_find's iterations (the book's 100)" },
  { "out", "pets-out", "where batch.png, lr_find.png, lr_find2.png, loss.png, confusion.png, "
    .. "top_losses.png and export.safetensors go" },
}

local opts, usage_error = ft.script.parse_args(arg, OPTIONS, {
  name = "pets.lua",
  help = "usage: ftlua scripts/pets.lua [--option value ...]\n"
    .. "Runs chapter 5 of the fastai book (Pet breeds): DataBlock with presizing, show_batch, cnn_learner,\n"
    .. "lr_find, fit_one_cycle, unfreeze, discriminative learning rates, plot_loss, the confusion matrix,\n"
    .. "most_confused, top losses and export.\n\noptions:",
})

local function int(name)
  local v = math.tointeger(tonumber(opts[name]))
  if not v or v < 1 then usage_error(("--%s needs a positive integer, got %q"):format(name, tostring(opts[name]))) end
  return v
end
local bs, size, num_it = int("bs"), int("size"), int("num_it")
local presize = math.floor(size * 460 / 224 + 0.5)
local e1, e2 = opts.epochs:match("^(%d+),(%d+)$")
e1, e2 = math.tointeger(tonumber(e1)), math.tointeger(tonumber(e2))
if not e1 then usage_error(("--epochs needs two counts, frozen,unfrozen (e.g. 3,12), got %q"):format(opts.epochs)) end
if opts.pretrained ~= "true" and opts.pretrained ~= "false" then
  usage_error(("--pretrained is true or false, got %q"):format(opts.pretrained))
end
local pretrained = opts.pretrained == "true"
local arch = opts.arch
if not ft.models[arch] then usage_error(("--arch: unknown model %q (resnet18, resnet34, resnet50)"):format(arch)) end
local out = opts.out
local function isdir(p) return os.execute("test -d '" .. p:gsub("'", "'\\''") .. "'") == true end
if opts.data and not isdir(opts.data) then usage_error(("--data: no folder %q"):format(opts.data)) end
if not os.execute("mkdir -p '" .. out:gsub("'", "'\\''") .. "' 2>/dev/null") then usage_error(("--out: cannot create %q"):format(out)) end

-- 1. The data: untar_data(URLs.PETS), or a folder with the dataset's layout.
local path = opts.data
if not path then
  if ft.untar_data and ft.URLs and ft.URLs.PETS then path = ft.untar_data(ft.URLs.PETS)
  else path = (os.getenv("FTLUA_SHARED") or "../shared") .. "/data/pets-sample" end
end
local images = isdir(path .. "/images") and path .. "/images" or path
print(("== data: %s"):format(images))

-- 2. Presizing: Resize(460) on the items, aug_transforms(size = 224, min_scale = 0.75) per batch.
local pets = V.DataBlock {
  blocks = { V.ImageBlock, V.CategoryBlock },
  get_items = V.get_image_files,
  splitter = V.RandomSplitter { seed = 42 },
  get_y = V.RegexLabeller "(.+)_%d+%.jpg$",
  item_tfms = V.Resize(presize),
  batch_tfms = V.aug_transforms { size = size, min_scale = 0.75 },
}
local dls = pets:dataloaders(images, { bs = bs })
print(("%d classes: %s%s"):format(#dls.vocab, table.concat(dls.vocab, ", ", 1, math.min(#dls.vocab, 8)),
  #dls.vocab > 8 and ", ..." or ""))

-- 3. show_batch
dls:show_batch { nrows = 3, ncols = 3, path = out .. "/batch.png" }
print("show_batch: " .. out .. "/batch.png")

-- 4. cnn_learner(dls, resnet34, metrics = error_rate), pretrained (the body frozen).
local learn = V.cnn_learner(dls, ft.models[arch], { metrics = ft.metrics.error_rate, pretrained = pretrained,
  weights = opts.weights, path = out })

-- 5. lr_find, printed as the book prints it, and its plot.
local lr_min, lr_steep = learn:lr_find { num_it = num_it }
print(("Minimum/10: %.2e, steepest point: %.2e"):format(lr_min, lr_steep))
learn:plot_lr_find { output = out .. "/lr_find.png" }

-- 6. fit_one_cycle(3, 3e-3)
learn:fit_one_cycle(e1, 3e-3)

-- 7. unfreeze, lr_find again
learn:unfreeze()
lr_min, lr_steep = learn:lr_find { num_it = num_it }
print(("Minimum/10: %.2e, steepest point: %.2e"):format(lr_min, lr_steep))
learn:plot_lr_find { output = out .. "/lr_find2.png" }

-- 8. fit_one_cycle(12, slice(1e-6, 1e-4)): discriminative learning rates
learn:fit_one_cycle(e2, ft.slice(1e-6, 1e-4))

-- 9. plot_loss
learn.recorder:plot_loss { output = out .. "/loss.png" }
print("plot_loss: " .. out .. "/loss.png")

-- 10. The confusion matrix and most_confused
local interp = ft.ClassificationInterpretation.from_learner(learn)
interp:plot_confusion_matrix { output = out .. "/confusion.png" }
print("confusion matrix: " .. out .. "/confusion.png")
interp:plot_top_losses(9, { output = out .. "/top_losses.png" })
local min_val = #dls.vocab > 10 and 5 or 1
print(("most_confused(min_val=%d):"):format(min_val))
print(("%-28s %-28s %s"):format("actual", "predicted", "count"))
for _, c in ipairs(interp:most_confused { min_val = min_val }) do
  print(("%-28s %-28s %d"):format(c[1], c[2], c[3]))
end

-- 11. export
-- 11. export: a relative name goes under learn.path (here --out)
learn:export("export.safetensors")
print("exported: " .. out .. "/export.safetensors")
