-- data_vision.lua: fastai's vision data API (fastai/data, fastai/vision/data.py, augment.py) in
-- Lua, over the C data module. luaopen_ftlua_data runs this file with that module's table, which
-- it extends; ftlua merges the result into ft.vision (and keeps it as ft.data).
--
-- Class indices are 1-based in Lua: dls.vocab[y[i]] is the name of item i's class.
local D = ...
assert(type(D) == "table", "ftlua.data_vision is loaded by ftlua.data")

-- Its errors carry a position (ftlua.args' fail), which ./ftlua's message handler maps to the
-- user's line; DataBlock:summary strips it when it shows an error in its steps.
local A = require "ftlua.args"
local fail, set = A.fail, A.set

local function is_int(v) return math.type(v) == "integer" end

-- The keywords a constructor accepts; anything else is a typo we should report.
local function check_keys(what, opts, allowed) return A.check_keys(what, opts, allowed, 0) end

-- A value as a message shows it: a string quoted and named ("the string \"96\""), a number as
-- itself, anything else by its type.
D._describe = A.describe

local function basename(path) return path:match("([^/]*)/*$") end
local function parent_name(path) return path:match("([^/]*)/[^/]*$") end

-- A file name printed on one line: control bytes (a newline in a hostile name could fake a
-- line of output) are written as \ddd escapes.
local function printable(path) return (path:gsub("%c", function(c) return ("\\%03d"):format(c:byte()) end)) end

-- The files a dataset could not decode: an error (on_error = "error") or a warning each.
-- Returns the set of their 1-based indices.
local function skip_bad_files(bad, on_error)
  local is_bad = {}
  for _, b in ipairs(bad) do
    if on_error == "error" then fail("cannot load %s", printable(b[2])) end
    io.stderr:write("warning: skipping ", printable(b[2]), "\n")
    is_bad[b[1]] = true
  end
  return is_bad
end

---------------------------------------------------------------- stats and transforms

D.imagenet_stats = { { 0.485, 0.456, 0.406 }, { 0.229, 0.224, 0.225 } }

-- Normalize(mean, std) or Normalize.from_stats(stats): fastai's Normalize batch transform.
D.Normalize = setmetatable({
  from_stats = function(mean, std)
    if std == nil and type(mean) == "table" and type(mean[1]) == "table" then mean, std = mean[1], mean[2] end
    return D.Normalize(mean, std)
  end,
}, {
  __call = function(_, mean, std)
    local function three(v, name)
      if type(v) == "number" then return { v, v, v } end
      if type(v) ~= "table" or #v ~= 3 and #v ~= 1 then fail("Normalize: %s must be a number or 3 numbers", name) end
      if #v == 1 then return { v[1], v[1], v[1] } end
      return { v[1], v[2], v[3] }
    end
    local m, s = three(mean, "mean"), three(std, "std")
    for c = 1, 3 do if s[c] == 0 then fail("Normalize: std must not be 0") end end
    return { kind = "Normalize", mean = m, std = s }
  end,
})

-- Resize(size [, {method = "crop"|"squish"|"pad", pad_mode = "reflection"|"zeros"}]).
-- size is a number (square) or {h, w}, as in fastai.
function D.Resize(size, opts)
  opts = opts or {}
  if type(opts) == "string" then opts = { method = opts } end
  check_keys("Resize", opts, set { "method", "pad_mode" })
  local h, w
  if type(size) == "table" then h, w = size[1], size[2] else h, w = size, size end
  if not (is_int(h) and is_int(w) and h > 0 and w > 0) then
    local got = type(size) == "table" and ("{" .. D._describe(h) .. ", " .. D._describe(w) .. "}") or D._describe(size)
    fail("Resize: size must be a positive integer or {h, w}, got %s%s", got,
      type(size) == "string" and tonumber(size) and (" (write Resize(%s), without quotes)"):format(size) or "")
  end
  local method = opts.method or "crop"
  if method ~= "crop" and method ~= "squish" and method ~= "pad" then
    fail("Resize: method must be \"crop\", \"squish\" or \"pad\", got '%s'", tostring(method))
  end
  local pad_mode = opts.pad_mode or "reflection"
  if pad_mode ~= "reflection" and pad_mode ~= "zeros" then
    fail("Resize: pad_mode must be \"reflection\" or \"zeros\", got '%s'", tostring(pad_mode))
  end
  if method == "pad" and pad_mode == "zeros" then method = "pad_zeros" end
  return { kind = "Resize", h = h, w = w, method = method }
end

-- aug_transforms{...}: fastai's keywords and defaults, except that min_scale defaults to 1 as in
-- fastai (the chapter passes 0.75). mult scales rotate, lighting and warp, as in fastai.
local AUG_KEYS = set { "mult", "do_flip", "flip_vert", "max_rotate", "min_zoom", "max_zoom",
  "max_lighting", "max_warp", "p_affine", "p_lighting", "xtra_tfms", "size", "mode", "pad_mode",
  "align_corners", "batch", "min_scale", "max_scale", "ratio", "crop_per_image" }

function D.aug_transforms(opts)
  opts = opts or {}
  check_keys("aug_transforms", opts, AUG_KEYS)
  local mult = opts.mult or 1
  local a = {
    kind = "aug",
    do_flip = opts.do_flip ~= false,
    max_rotate = (opts.max_rotate or 10) * mult,
    min_zoom = opts.min_zoom or 1,
    max_zoom = opts.max_zoom or 1.1,
    max_lighting = (opts.max_lighting or 0.2) * mult,
    max_warp = (opts.max_warp or 0.2) * mult,
    p_affine = opts.p_affine or 0.75,
    p_lighting = opts.p_lighting or 0.75,
    min_scale = opts.min_scale or 1,
    max_scale = opts.max_scale or 1,
    ratio_lo = opts.ratio and opts.ratio[1] or 1,
    ratio_hi = opts.ratio and opts.ratio[2] or 1,
    crop_per_image = opts.crop_per_image or false,
    size = opts.size,
  }
  if type(a.size) == "table" then
    if a.size[1] ~= a.size[2] then fail("aug_transforms: only square sizes are supported, got {%s, %s}", tostring(a.size[1]), tostring(a.size[2])) end
    a.size = a.size[1]
  end
  if a.size ~= nil and not (is_int(a.size) and a.size > 0) then
    fail("aug_transforms: size must be a positive integer, got %s", tostring(a.size))
  end
  if opts.flip_vert then fail("aug_transforms: flip_vert is not supported (dihedral flips are not in the fused kernel)") end
  if opts.xtra_tfms then fail("aug_transforms: xtra_tfms is not supported") end
  if opts.batch then fail("aug_transforms: batch=true (one draw for the whole batch) is not supported") end
  if opts.mode and opts.mode ~= "bilinear" then fail("aug_transforms: only mode \"bilinear\" is supported") end
  if opts.pad_mode and opts.pad_mode ~= "reflection" then fail("aug_transforms: only pad_mode \"reflection\" is supported") end
  if opts.align_corners == false then fail("aug_transforms: only align_corners=true is supported") end
  if not (a.min_scale > 0 and a.min_scale <= a.max_scale) then fail("aug_transforms: need 0 < min_scale <= max_scale") end
  if not (a.max_lighting >= 0 and a.max_lighting < 1) then fail("aug_transforms: max_lighting must be in [0, 1)") end
  return a
end

---------------------------------------------------------------- labellers and splitters

-- RegexLabeller(pattern): a Lua pattern applied to the file NAME (fastai applies its regex to
-- path.name through using_attr); capture 1 is the label. The chapter's r'(.+)_\d+.jpg$' is
-- "(.+)_%d+%.jpg$" in Lua.
-- Whether a Lua pattern has a capture: an unescaped "(" that is not a position capture "()".
local function has_capture(pattern)
  local i = 1
  while i <= #pattern do
    local c = pattern:sub(i, i)
    if c == "%" then i = i + 2
    elseif c == "[" then -- a set: skip to its closing bracket ("]" first in the set is literal)
      i = i + 1
      if pattern:sub(i, i) == "^" then i = i + 1 end
      if pattern:sub(i, i) == "]" then i = i + 1 end
      while i <= #pattern and pattern:sub(i, i) ~= "]" do i = i + (pattern:sub(i, i) == "%" and 2 or 1) end
      i = i + 1
    elseif c == "(" and pattern:sub(i + 1, i + 1) ~= ")" then return true
    else i = i + 1 end
  end
  return false
end

-- What a regex habit in a Lua pattern probably meant, for the error when it matches nothing.
local function pattern_hint(pattern)
  local classes = {}
  local seen = {}
  for cls in pattern:gmatch("\\([dDwWsS])") do
    if not seen[cls] then classes[#classes + 1] = "\\" .. cls .. " is %" .. cls end
    seen[cls] = true
  end
  local hint = " (RegexLabeller takes a Lua pattern, not a Python regex"
  if #classes > 0 then
    hint = hint .. ": " .. table.concat(classes, ", ") .. ", and \\. is %."
  elseif pattern:find("\\", 1, true) then
    hint = hint .. ": the escape character is %, not \\"
  end
  return hint .. "; e.g. \"(.+)_%d+%.jpg$\")"
end

function D.RegexLabeller(pattern)
  if type(pattern) ~= "string" then fail("RegexLabeller: pattern must be a string, got %s", D._describe(pattern)) end
  if not has_capture(pattern) then
    fail("RegexLabeller: pattern %q has no capture: put the label in parentheses, e.g. \"(.+)_%%d+%%.jpg$\" "
      .. "(the label is capture 1, as fastai's RegexLabeller takes group 1)", pattern)
  end
  local ok, err = pcall(function() return string.match("", pattern), string.match("a_1.jpg", pattern) end)
  if not ok then fail("RegexLabeller: %q is not a valid Lua pattern: %s", pattern, tostring(err):gsub("^[^:]*:%d+: ", "")) end
  return setmetatable({ kind = "RegexLabeller", pattern = pattern }, {
    __call = function(self, path) return (basename(path):match(self.pattern)) end,
  })
end

-- The name of the folder holding the file (fastai's parent_label).
function D.parent_label(path) return parent_name(path) end

-- RandomSplitter{valid_pct = 0.2, seed = nil}: fastai's, with libtorch's randperm, so a seed
-- gives PyTorch's split of the same list.
function D.RandomSplitter(opts)
  opts = opts or {}
  if type(opts) == "number" then opts = { valid_pct = opts } end
  check_keys("RandomSplitter", opts, set { "valid_pct", "seed" })
  local pct = opts.valid_pct or 0.2
  if type(pct) ~= "number" or not (pct >= 0 and pct < 1) then
    fail("RandomSplitter: valid_pct must be in [0, 1), got %s", tostring(pct))
  end
  if opts.seed ~= nil and not is_int(opts.seed) then fail("RandomSplitter: seed must be an integer, got %s", D._describe(opts.seed)) end
  return function(items) return D.random_split(#items, pct, opts.seed) end
end

-- GrandparentSplitter{train_name = "train", valid_name = "valid"}: by the folder two levels up.
function D.GrandparentSplitter(opts)
  opts = opts or {}
  check_keys("GrandparentSplitter", opts, set { "train_name", "valid_name" })
  local tn, vn = opts.train_name or "train", opts.valid_name or "valid"
  return function(items)
    local train, valid = {}, {}
    for i, p in ipairs(items) do
      local g = p:match("([^/]*)/[^/]*/[^/]*$")
      if g == tn then train[#train + 1] = i elseif g == vn then valid[#valid + 1] = i end
    end
    return train, valid
  end
end

-- Sorted unique labels, like fastai's CategoryMap: numbers numerically, strings by bytes.
local function make_vocab(labels)
  local seen, vocab, all_num = {}, {}, true
  for _, v in ipairs(labels) do
    if not seen[v] then
      seen[v] = true
      vocab[#vocab + 1] = v
      if type(v) ~= "number" then all_num = false end
    end
  end
  if not all_num then for i, v in ipairs(vocab) do vocab[i] = tostring(v) end end
  table.sort(vocab)
  return vocab
end

---------------------------------------------------------------- DataLoaders

local DataLoaders = {}
DataLoaders.__index = DataLoaders

-- dls.vocab prints every name, as fastai's does: (#37) {"abyssinian", ...}, wrapped at 100
-- columns (a plain table would be cut at 20 names by the REPL).
local Vocab = { __tostring = function(v)
  local lines, line = {}, ("(#%d) {"):format(#v)
  for i, name in ipairs(v) do
    local item = ("%q"):format(tostring(name)) .. (i < #v and "," or "}")
    if #line + #item + 1 > 100 then lines[#lines + 1], line = line, " " .. item
    else line = line .. ((line:sub(-1) == "{") and "" or " ") .. item end
  end
  if #v == 0 then line = line .. "}" end
  lines[#lines + 1] = line
  return table.concat(lines, "\n")
end }
local function as_vocab(v) return setmetatable(table.move(v, 1, #v, 1, {}), Vocab) end
D.DataLoaders = DataLoaders

-- What every constructor accepts (fastai's keywords plus ours).
local DLS_KEYS = set { "bs", "val_bs", "valid_pct", "seed", "item_tfms", "batch_tfms", "normalize",
  "device", "num_workers", "on_error", "cache_mb", "verbose", "channels", "prefetch", "vocab",
  "train", "valid", "n_train", "n_valid", "path", "_source" }

-- Sort batch_tfms (one transform or a list) into the augmentation and the normalisation.
local function read_tfms(opts)
  local it = opts.item_tfms
  if it and it.kind == nil and #it > 0 then
    if #it > 1 then fail("item_tfms: only one Resize is supported") end
    it = it[1]
  end
  if it ~= nil and it.kind ~= "Resize" then fail("item_tfms: expected Resize(...)") end
  local aug, norm
  local bt = opts.batch_tfms
  if bt and bt.kind then bt = { bt } end
  for _, t in ipairs(bt or {}) do
    if t.kind == "aug" then aug = t
    elseif t.kind == "Normalize" then norm = t
    else fail("batch_tfms: expected aug_transforms{...} and/or Normalize(...)") end
  end
  local n = opts.normalize
  if n ~= nil and n ~= false then
    if n.kind ~= "Normalize" then n = D.Normalize.from_stats(n) end
    norm = n
  end
  return it, aug, norm
end

local function check_common(opts)
  local bs = opts.bs or 64
  if not (is_int(bs) and bs >= 1) then fail("bs must be a positive integer, got %s", tostring(bs)) end
  if opts.val_bs ~= nil and not (is_int(opts.val_bs) and opts.val_bs >= 1) then fail("val_bs must be a positive integer, got %s", D._describe(opts.val_bs)) end
  if opts.on_error ~= nil and opts.on_error ~= "skip" and opts.on_error ~= "error" then
    fail("on_error must be \"skip\" or \"error\", got '%s'", tostring(opts.on_error))
  end
  local ch = opts.channels or 3
  if ch ~= 1 and ch ~= 3 then fail("channels must be 1 or 3") end
  return bs
end

-- Loader options shared by train and valid (and test_dl).
local function loader_opts(cfg, train, bs)
  return {
    bs = bs, shuffle = train, drop_last = train, train = train, seed = cfg.seed,
    aug = cfg.aug, size = cfg.aug and cfg.aug.size or nil,
    mean = cfg.norm and cfg.norm.mean, std = cfg.norm and cfg.norm.std,
    channels = cfg.channels, device = cfg.device, num_workers = cfg.num_workers,
    prefetch = cfg.prefetch, on_error = cfg.on_error,
  }
end

local function summary(dls, found, skipped, source)
  local info_t, info_v = dls.train:info(), dls.valid:info()
  local cached = dls.dataset and dls.dataset:info().cached_bytes or 0
  print(("dataloaders: %d items found%s, %d classes, %d train / %d valid, %d skipped; %d + %d batches of %d%s")
    :format(found, source and (" in " .. source) or "", dls.c, info_t.n, info_v.n, skipped,
      #dls.train, #dls.valid, info_t.bs, cached > 0 and (", %.0f MiB cached"):format(cached / 2 ^ 20) or ""))
end

-- The error when get_y gives no label for some file names (missed: their base names).
function D._missed_labels(get_y, missed, n)
  local pat = type(get_y) == "table" and get_y.pattern
  local shown = {}
  for k = 1, math.min(3, #missed) do shown[k] = "'" .. missed[k] .. "'" end
  local what = pat and ("pattern '" .. pat .. "'") or "get_y"
  local hint = pat and pattern_hint(pat) or " (it returned nil)"
  if #missed == n then
    return ("%s matched none of the %d file names, e.g. %s%s"):format(what, n, table.concat(shown, ", "), hint)
  end
  return ("%s did not match %d of the %d file names, e.g. %s%s"):format(what, #missed, n, table.concat(shown, ", "), hint)
end

-- The common builder for file items: label, split, decode (skipping bad files), make loaders.
-- spec: items, get_y, splitter, item_tfms/batch_tfms in opts, source (for messages).
local function build_from_files(spec, opts)
  opts = opts or {}
  check_keys("dataloaders", opts, DLS_KEYS)
  local bs = check_common(opts)
  local items, source = spec.items, spec.source
  if #items == 0 then fail("no images found in '%s'", tostring(source)) end
  local resize, aug, norm = read_tfms(opts)

  -- labels (fastai asserts that the labeller matches every item)
  local raw, missed = {}, {}
  for i, p in ipairs(items) do
    local v = spec.get_y(p)
    if v == nil then missed[#missed + 1] = basename(p) else raw[i] = v end
  end
  if #missed > 0 then
    local pat = type(spec.get_y) == "table" and spec.get_y.pattern
    local shown = {}
    for k = 1, math.min(3, #missed) do shown[k] = "'" .. missed[k] .. "'" end
    fail("%s", D._missed_labels(spec.get_y, missed, #items))
  end

  -- split, then the vocab from the train split (fastai sets Categorize up on train)
  local train_idx, valid_idx = spec.splitter(items)
  if #train_idx == 0 then fail("the train split is empty (%d items)", #items) end
  local train_labels = {}
  for k, i in ipairs(train_idx) do train_labels[k] = raw[i] end
  local vocab = opts.vocab or make_vocab(train_labels)
  if #vocab == 1 then
    io.stderr:write(("warning: dataloaders: every item has the same label '%s': a single class (check get_y / the pattern)\n")
      :format(tostring(vocab[1])))
  end
  local class_of = {}
  for c, name in ipairs(vocab) do class_of[name] = c end
  local labels, is_train = {}, {}
  for _, i in ipairs(train_idx) do is_train[i] = true end
  for _, list in ipairs { train_idx, valid_idx } do
    for _, i in ipairs(list) do
      local c = class_of[raw[i]] or class_of[tostring(raw[i])]
      if not c then fail("label '%s' of %s is not in the vocab (made from the train split)", tostring(raw[i]), items[i]) end
      labels[i] = c
    end
  end

  -- decode everything once (threads): bad files are skipped and named, or raise
  local cfg = {
    seed = opts.seed, aug = aug, norm = norm, channels = opts.channels or 3,
    device = opts.device, num_workers = opts.num_workers or D.num_cores(), prefetch = opts.prefetch,
    on_error = opts.on_error or "skip", resize = resize, cache_mb = opts.cache_mb, bs = bs,
    val_bs = opts.val_bs or bs,
  }
  local train_flags = {}
  for i = 1, #items do train_flags[i] = is_train[i] or false end
  local ds, bad = D.new_file_dataset(items, labels, train_flags, {
    resize_w = resize and resize.w, resize_h = resize and resize.h, method = resize and resize.method,
    num_workers = cfg.num_workers, cache_mb = opts.cache_mb,
  })
  local is_bad = skip_bad_files(bad, cfg.on_error)
  if #bad > 0 then io.stderr:write(("warning: skipped %d of %d files that could not be loaded\n"):format(#bad, #items)) end
  local count = {}
  local function keep(list)
    local out = {}
    for _, i in ipairs(list) do
      if not is_bad[i] then
        out[#out + 1] = i
        count[labels[i]] = (count[labels[i]] or 0) + 1
      end
    end
    return out
  end
  train_idx, valid_idx = keep(train_idx), keep(valid_idx)
  for c, name in ipairs(vocab) do
    if not count[c] then fail("class '%s' has no valid image left (all its files were skipped)", tostring(name)) end
  end

  local dls = setmetatable({
    vocab = vocab, c = #vocab, dataset = ds, path = opts.path or ".", _cfg = cfg,
    train_items = train_idx, valid_items = valid_idx, items = items,
  }, DataLoaders)
  dls.train = ds:loader(train_idx, loader_opts(cfg, true, bs))
  dls.valid = ds:loader(valid_idx, loader_opts(cfg, false, cfg.val_bs))
  dls.device = dls.train:info().device
  dls.vocab = as_vocab(vocab) -- prints every name
  if opts.verbose ~= false then summary(dls, #items, #bad, source and ("'" .. source .. "'")) end
  if #dls.train == 0 then
    io.stderr:write(("warning: the train split has %d items, fewer than bs = %d: no train batch (drop_last)\n"):format(#train_idx, bs))
  end
  return dls
end

function DataLoaders:one_batch() return self.train:one_batch() end

-- dls:show_batch{nrows = 3, ncols = 3, path =, split = "train"}: the first nrows*ncols images
-- of a batch with their labels, de-normalised: a PNG at path, else where figures with no output
-- go (lua/ftlua/figures.lua: FTLUA_PLOT_DIR, or the labels as text on the terminal).
function DataLoaders:show_batch(opts)
  opts = opts or {}
  check_keys("show_batch", opts, set { "nrows", "ncols", "max_n", "path", "split", "batch" })
  local nrows, ncols = opts.nrows or 3, opts.ncols or 3
  local dl = opts.split == "valid" and self.valid or self.train
  local x, y
  if opts.batch then x, y = opts.batch[1], opts.batch[2] else x, y = dl:one_batch() end
  local n = math.min(opts.max_n or nrows * ncols, nrows * ncols, x:size(1))
  x = x:narrow(1, 1, n)
  local labels
  if y then
    labels = {}
    local yt = y:cpu():totable()
    for i = 1, n do labels[i] = tostring(self.vocab[yt[i]]) end
  end
  local info = dl:info()
  require("ftlua.figures").grid(x, labels, { path = opts.path, name = "show_batch", ncols = ncols,
    mean = info.mean, std = info.std })
end

-- D.test_dataset(files, resize, {on_error=, num_workers=, cache_mb=}) -> dataset, indices:
-- the files (or a folder's images) decoded and presized once, without labels; bad ones skipped
-- with a warning, or an error with on_error = "error". test_dl here and load_learner's dls use it.
function D.test_dataset(files, resize, opts)
  if type(files) == "string" then files = D.get_image_files(files) end
  if #files == 0 then fail("test_dl: no files") end
  local r = resize
  local ds, bad = D.new_file_dataset(files, nil, nil, {
    resize_w = r and r.w, resize_h = r and r.h, method = r and r.method,
    num_workers = opts.num_workers, cache_mb = opts.cache_mb,
  })
  local is_bad = skip_bad_files(bad, opts.on_error)
  local idx = {}
  for i = 1, #files do if not is_bad[i] then idx[#idx + 1] = i end end
  if #idx == 0 then fail("test_dl: none of the %d files could be loaded", #files) end
  return ds, idx
end

-- dls:test_dl(files [, {bs=, on_error=}]): a loader over new files with the valid split's
-- transforms (centre crop, no augmentation draws) and no labels: one_batch() gives x, nil.
function DataLoaders:test_dl(files, opts)
  opts = opts or {}
  check_keys("test_dl", opts, set { "bs", "on_error", "num_workers" })
  local cfg = self._cfg
  if cfg.array then fail("test_dl: only for file datasets") end
  local ds, idx = D.test_dataset(files, cfg.resize, { on_error = opts.on_error or cfg.on_error,
    num_workers = opts.num_workers or cfg.num_workers, cache_mb = cfg.cache_mb })
  local lo = loader_opts(cfg, false, opts.bs or cfg.val_bs)
  local info = self.valid:info() -- the learner may have set the normalisation since
  lo.mean, lo.std = info.mean, info.std
  return ds:loader(idx, lo)
end

-- Normalisation after the fact (vision_learner adds ImageNet stats for pretrained models when
-- the data has none). Returns true when it set the stats.
function DataLoaders:add_normalize(stats)
  stats = stats or D.imagenet_stats
  if self.train:info().mean then return false end
  local n = stats.kind and stats or D.Normalize.from_stats(stats)
  self.train:set_normalize(n.mean, n.std)
  self.valid:set_normalize(n.mean, n.std)
  self._cfg.norm = n
  return true
end

function DataLoaders:__tostring()
  return ("DataLoaders: %d classes, %d train / %d valid items, bs %d, %s")
    :format(self.c, self.train:info().n, self.valid:info().n, self.train:info().bs, self.device)
end

-- A notebook shows DataLoaders as HTML (docs/jupyter.md): the summary and the class names.
function DataLoaders:__html()
  local function esc(v) return (tostring(v):gsub("[<>&]", { ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;" })) end
  local names = {}
  for i = 1, math.min(#self.vocab, 40) do names[i] = esc(self.vocab[i]) end
  return ("<p>%s</p><p>classes: %s%s</p>"):format(esc(self), table.concat(names, ", "), #self.vocab > 40 and ", ..." or "")
end

---------------------------------------------------------------- constructors

D.ImageDataLoaders = {}

local function files_or_dir(path, fnames)
  if fnames == nil then return D.get_image_files(path) end
  if type(fnames) ~= "table" then fail("fnames must be a list of paths") end
  return fnames
end

local function splitter_from(opts)
  return D.RandomSplitter { valid_pct = opts.valid_pct or 0.2, seed = opts.seed }
end

-- from_name_re(path, fnames, pattern, opts): labels from the file names with a Lua pattern.
function D.ImageDataLoaders.from_name_re(path, fnames, pattern, opts)
  opts = opts or {}
  local items = files_or_dir(path, fnames)
  local splitter = splitter_from(opts)
  return build_from_files({ items = items, get_y = D.RegexLabeller(pattern), splitter = splitter, source = path }, opts)
end

-- from_name_func(path, fnames, label_func, opts): labels from a Lua function of the path.
function D.ImageDataLoaders.from_name_func(path, fnames, label_func, opts)
  opts = opts or {}
  local items = files_or_dir(path, fnames)
  return build_from_files({ items = items, get_y = label_func, splitter = splitter_from(opts), source = path }, opts)
end

-- from_folder(path, opts): an ImageNet-style tree, the label is the parent folder. By default
-- the split is by the grandparent folder (opts.train = "train", opts.valid = "valid"); with
-- opts.valid_pct, a RandomSplitter over every image instead.
function D.ImageDataLoaders.from_folder(path, opts)
  opts = opts or {}
  local items = D.get_image_files(path)
  local splitter
  if opts.valid_pct then splitter = splitter_from(opts)
  else
    splitter = D.GrandparentSplitter { train_name = opts.train or "train", valid_name = opts.valid or "valid" }
    if #items > 0 and #splitter(items) == 0 then
      fail("from_folder: no images under '%s/%s' (give valid_pct to split at random instead)", path, opts.train or "train")
    end
  end
  return build_from_files({ items = items, get_y = D.parent_label, splitter = splitter, source = path }, opts)
end

-- DataBlock{blocks=, get_items=, get_y=, splitter=, item_tfms=, batch_tfms=}:dataloaders(source, opts)
local DataBlock = {}
DataBlock.__index = DataBlock
D.ImageBlock, D.CategoryBlock = { kind = "ImageBlock" }, { kind = "CategoryBlock" }

function D.DataBlock(spec)
  check_keys("DataBlock", spec, set { "blocks", "get_items", "get_y", "get_x", "splitter", "item_tfms", "batch_tfms", "n_inp" })
  for _, b in ipairs(spec.blocks or {}) do
    if b ~= D.ImageBlock and b ~= D.CategoryBlock then fail("DataBlock: only ImageBlock and CategoryBlock are supported") end
  end
  if spec.get_x then fail("DataBlock: get_x is not supported (items are image paths)") end
  if spec.get_y == nil then fail("DataBlock: get_y is required") end
  return setmetatable({
    get_items = spec.get_items or D.get_image_files,
    get_y = spec.get_y,
    splitter = spec.splitter or D.RandomSplitter(),
    _own_splitter = spec.splitter ~= nil,
    item_tfms = spec.item_tfms, batch_tfms = spec.batch_tfms,
  }, DataBlock)
end

-- The options of dataloaders with the block's transforms, and the splitter to use: valid_pct
-- (and seed) make the split when the block has no splitter of its own (fastai's default
-- RandomSplitter); with one, valid_pct is an error rather than silently ignored.
function DataBlock:_options(opts, what)
  if opts ~= nil and type(opts) ~= "table" then fail("%s: options must be a table, got %s", what, D._describe(opts)) end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.item_tfms == nil then o.item_tfms = self.item_tfms end
  if o.batch_tfms == nil then o.batch_tfms = self.batch_tfms end
  local splitter = self.splitter
  if o.valid_pct ~= nil then
    if self._own_splitter then
      fail("%s: valid_pct = %s would be ignored: this DataBlock splits with its own splitter. Give the "
        .. "percentage to it, DataBlock{splitter = RandomSplitter{valid_pct = %s, seed = 42}, ...}, or leave "
        .. "the splitter out", what, tostring(o.valid_pct), tostring(o.valid_pct))
    end
    splitter = D.RandomSplitter { valid_pct = o.valid_pct, seed = o.seed }
  end
  return o, splitter
end

function DataBlock:dataloaders(source, opts)
  local o, splitter = self:_options(opts, "dataloaders")
  local items = self.get_items(source)
  return build_from_files({ items = items, get_y = self.get_y, splitter = splitter, source = source }, o)
end

local function shape_of(t)
  local dims = {}
  for d = 1, t:dim() do dims[d] = tostring(t:size(d)) end
  return ("%s [%s]"):format(t:dtype(), table.concat(dims, ", "))
end

local function name_of(f, fallback)
  if type(f) == "table" and f.kind == "RegexLabeller" then return ("RegexLabeller %q"):format(f.pattern) end
  if f == D.parent_label then return "parent_label" end
  if f == D.get_image_files then return "get_image_files" end
  return fallback
end

-- DataBlock:summary(source [, opts]): fastai's tool for debugging a block. Prints what happens to
-- one item at each step: the items found, get_y and the label, the split, the item transform
-- (sizes before and after), the batch transform on that item, and the collated batch's shapes.
-- A step that fails prints its error and the summary stops there, raising the error (as fastai
-- does). opts are dataloaders' (bs, valid_pct, seed, ...).
function DataBlock:summary(source, opts)
  local o, splitter = self:_options(opts, "summary")
  local step = 0
  local function say(fmt, ...) print(fmt:format(...)) end
  local function run(name, fn)
    step = step + 1
    local ok, a, b, c = pcall(fn)
    if not ok then
      local msg = tostring(a):gsub("^[^:]*%.lua:%d+: ", "")
      say("%d. %s: FAILED: %s", step, name, msg)
      say("The summary stops at step %d (%s).", step, name)
      error(("DataBlock:summary: %s failed: %s"):format(name, msg), 0)
    end
    return a, b, c
  end
  say("DataBlock summary of %s", type(source) == "string" and ("'" .. source .. "'") or tostring(source))
  -- 1. items
  local items = run("get_items", function()
    local items = self.get_items(source)
    if type(items) ~= "table" then error(("get_items returned %s, expected a list of file paths"):format(D._describe(items)), 0) end
    if #items == 0 then error(("no images found in '%s'"):format(tostring(source)), 0) end
    return items
  end)
  say("%d. get_items (%s): %d items found; the first: %s", step, name_of(self.get_items, "a function"), #items, items[1])
  -- 2. get_y over every item (dataloaders needs a label for each)
  local raw = run("get_y", function()
    local raw, missed = {}, {}
    for i, p in ipairs(items) do
      local v = self.get_y(p)
      if v == nil then missed[#missed + 1] = basename(p) else raw[i] = v end
    end
    if #missed > 0 then error(D._missed_labels(self.get_y, missed, #items), 0) end
    return raw
  end)
  say("%d. get_y (%s): '%s' for %s (every item has a label)", step, name_of(self.get_y, "a function"), tostring(raw[1]), basename(items[1]))
  -- 3. split
  local train_idx, valid_idx = run("splitter", function()
    local t, v = splitter(items)
    if type(t) ~= "table" or type(v) ~= "table" then error("the splitter must return two lists of item indices", 0) end
    if #t == 0 then error(("the train split is empty (%d items)"):format(#items), 0) end
    return t, v
  end)
  local where = "neither split"
  for _, i in ipairs(train_idx) do if i == 1 then where = "the train split" end end
  for _, i in ipairs(valid_idx) do if i == 1 then where = "the valid split" end end
  say("%d. splitter: %d train / %d valid items; item 1 is in %s", step, #train_idx, #valid_idx, where)
  -- 4. the label: the vocab from the train split, item 1's class index
  local vocab, class = run("Categorize", function()
    local labels = {}
    for k, i in ipairs(train_idx) do labels[k] = raw[i] end
    local vocab = o.vocab or make_vocab(labels)
    for c, name in ipairs(vocab) do
      if name == raw[1] or name == tostring(raw[1]) then return vocab, c end
    end
    error(("label '%s' of item 1 is not in the vocab made from the train split"):format(tostring(raw[1])), 0)
  end)
  local shown = {}
  for k = 1, math.min(#vocab, 5) do shown[k] = tostring(vocab[k]) end
  say("%d. Categorize: %d classes (%s%s); '%s' is class %d", step, #vocab, table.concat(shown, ", "),
    #vocab > 5 and ", ..." or "", tostring(raw[1]), class)
  if #vocab == 1 then say("   warning: a single class: every item has the same label") end
  -- 5. item transform: decode, presize
  local item = run("item_tfms", function()
    local resize, aug, norm = read_tfms(o)
    local img = D.load_image(items[1])
    local ds, bad = D.new_file_dataset({ items[1] }, { class }, { true }, {
      resize_w = resize and resize.w, resize_h = resize and resize.h, method = resize and resize.method, num_workers = 1 })
    if #bad > 0 then error(("cannot load %s"):format(items[1]), 0) end
    return { img = img, out = ds:item(1), resize = resize, aug = aug, norm = norm }
  end)
  local resize, aug, norm = item.resize, item.aug, item.norm
  say("%d. item_tfms (%s): decoded %dx%d (w x h) -> %dx%d", step,
    resize and ("Resize(%d, %d, %s)"):format(resize.h, resize.w, resize.method) or "none",
    item.img:size(2), item.img:size(1), item.out:size(2), item.out:size(1))
  -- 6. batch transforms on this item
  local x1 = run("batch_tfms", function()
    local a = {}
    for k, v in pairs(aug or {}) do a[k] = v end
    a.size = aug and aug.size or nil
    if not a.size and item.out:size(1) ~= item.out:size(2) then
      error(("the item is %dx%d, not square: give Resize a square size or aug_transforms{size = ...}"):format(
        item.out:size(2), item.out:size(1)), 0)
    end
    a.train, a.seed = aug ~= nil, o.seed or 0
    if norm then a.mean, a.std = norm.mean, norm.std end
    return D.augment(item.out:unsqueeze(1), a)
  end)
  local parts = {}
  if aug then parts[#parts + 1] = ("aug_transforms, size %s"):format(tostring(aug.size or item.out:size(1))) end
  if norm then parts[#parts + 1] = "Normalize" end
  say("%d. batch_tfms (%s): this item -> %s", step, #parts > 0 and table.concat(parts, "; ") or "to float, /255",
    shape_of(x1:squeeze(1)))
  -- 7. collate: a real train batch
  local x, y = run("collate", function()
    local q = {}
    for k, v in pairs(o) do q[k] = v end
    q.verbose, q.valid_pct = false, nil
    local dls = build_from_files({ items = items, get_y = self.get_y, splitter = splitter, source = source }, q)
    if #dls.train == 0 then
      error(("no full train batch: %d train items, bs = %d (drop_last): lower bs"):format(#dls.train_items, dls._cfg.bs), 0)
    end
    return dls:one_batch()
  end)
  say("%d. collate: one train batch: x %s, y %s", step, shape_of(x), shape_of(y))
end

---------------------------------------------------------------- images in memory: Fashion-MNIST

-- from_tensors(x_train, y_train, x_valid, y_valid, opts): uint8 images [N,H,W] or [N,H,W,C]
-- and 1-based class indices [N]. opts.vocab names the classes (default "1", "2", ...).
function D.ImageDataLoaders.from_tensors(x_train, y_train, x_valid, y_valid, opts)
  opts = opts or {}
  check_keys("from_tensors", opts, DLS_KEYS)
  local bs = check_common(opts)
  local resize, aug, norm = read_tfms(opts)
  local vocab = opts.vocab
  if not vocab then
    vocab = {}
    for k = 1, math.max(y_train:max():item(), y_valid:max():item()) do vocab[k] = tostring(k) end
  end
  local dopts = { resize_w = resize and resize.w, resize_h = resize and resize.h, method = resize and resize.method }
  local dtrain = D.new_array_dataset(x_train, y_train, dopts)
  local dvalid = D.new_array_dataset(x_valid, y_valid, dopts)
  local cfg = {
    seed = opts.seed, aug = aug, norm = norm, channels = opts.channels or 3, device = opts.device,
    num_workers = opts.num_workers or D.num_cores(), prefetch = opts.prefetch, on_error = "error",
    resize = resize, bs = bs, val_bs = opts.val_bs or bs, array = true,
  }
  local function range(n) local t = {} for i = 1, n do t[i] = i end return t end
  -- The datasets stay reachable (learn:tta runs the valid items through the train transforms).
  local dls = setmetatable({ vocab = as_vocab(vocab), c = #vocab, _cfg = cfg, path = opts.path,
    train_ds = dtrain, valid_ds = dvalid }, DataLoaders)
  dls.train = dtrain:loader(range(#dtrain), loader_opts(cfg, true, bs))
  dls.valid = dvalid:loader(range(#dvalid), loader_opts(cfg, false, cfg.val_bs))
  dls.device = dls.train:info().device
  if opts.verbose ~= false then summary(dls, #dtrain + #dvalid, 0, (opts._source or opts.path) and ("'" .. (opts._source or opts.path) .. "'")) end
  return dls
end

D.fashion_mnist_classes = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
  "Sneaker", "Bag", "Ankle boot" }

-- FashionMNIST(opts): Debian's dataset-fashion-mnist (opts.path, default
-- /usr/share/datasets/fashion-mnist): 60000 train / 10000 test images, 28x28 grey, as
-- DataLoaders. opts.channels = 3 (default, for resnets) or 1; opts.n_train / opts.n_valid take
-- the first items only; the rest as for every constructor.
function D.FashionMNIST(opts)
  opts = opts or {}
  local dir = opts.path or "/usr/share/datasets/fashion-mnist"
  local function read(name)
    local p = dir .. "/" .. name
    local f = io.open(p, "rb")
    if not f then
      local plain = p:gsub("%.gz$", "")
      f = io.open(plain, "rb")
      if not f then fail("FashionMNIST: %s not found (apt install dataset-fashion-mnist, or give path=)", p) end
      p = plain
    end
    f:close()
    return D.read_idx(p)
  end
  local xt, yt = read("train-images-idx3-ubyte.gz"), read("train-labels-idx1-ubyte.gz")
  local xv, yv = read("t10k-images-idx3-ubyte.gz"), read("t10k-labels-idx1-ubyte.gz")
  if opts.n_train then xt, yt = xt:narrow(1, 1, opts.n_train), yt:narrow(1, 1, opts.n_train) end
  if opts.n_valid then xv, yv = xv:narrow(1, 1, opts.n_valid), yv:narrow(1, 1, opts.n_valid) end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.n_train, o.n_valid = nil, nil
  o.vocab = o.vocab or D.fashion_mnist_classes
  o._source = dir -- for the summary line; dls.path (where a learner writes) stays the current folder
  return D.ImageDataLoaders.from_tensors(xt, yt:long() + 1, xv, yv:long() + 1, o)
end

return D
