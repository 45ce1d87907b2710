-- test_data_errors.lua: bad files are skipped and named (or raise with on_error="error"), and
-- bad input gives a clear error. Corrupted copies are made in a temp dir; the shared data is
-- read-only.
local H = require "harness"
local V = ft.vision

local sample = H.shared("data/pets-sample/images/Abyssinian_1.jpg")
local dir = sample and sample:gsub("/Abyssinian_1.jpg$", "")
local tmp = H.tmpdir()
local PAT = "(.+)_%d+%.jpg$"

local function sh(cmd) assert(os.execute(cmd), cmd) end

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

-- Capture what the loader writes to io.stderr (warnings) while fn runs.
local function capture_stderr(fn)
  local lines, real = {}, io.stderr
  io.stderr = { write = function(self, ...) for _, s in ipairs { ... } do lines[#lines + 1] = s end return self end }
  local ok, err = pcall(fn)
  io.stderr = real
  if not ok then error(err, 0) end
  return table.concat(lines)
end

-- Bad input that needs no photos.
H.test("a missing folder is an error naming it", function()
  H.errors(function() V.get_image_files(tmp .. "/no_such_folder") end, "no_such_folder", "cannot open folder")
end)

H.test("an empty folder is an error", function()
  sh("mkdir -p '" .. tmp .. "/empty'")
  H.errors(function() V.ImageDataLoaders.from_name_re(tmp .. "/empty", nil, PAT, { verbose = false }) end,
    "no images found", "empty")
  H.errors(function() V.ImageDataLoaders.from_folder(tmp .. "/empty", { verbose = false }) end, "no images found")
end)

H.test("valid_pct out of range is an error", function()
  H.errors(function() V.RandomSplitter { valid_pct = 1.5 } end, "valid_pct must be in [0, 1)", "1.5")
  H.errors(function() V.RandomSplitter { valid_pct = -0.1 } end, "valid_pct must be in [0, 1)")
  H.errors(function() V.RandomSplitter { valid_pct = 1 } end, "valid_pct must be in [0, 1)")
  H.errors(function() V.random_split(10, 2, 1) end, "valid_pct")
end)

H.test("a size of 0 is an error", function()
  H.errors(function() V.Resize(0) end, "Resize: size must be a positive integer", "got 0")
  H.errors(function() V.Resize { 0, 10 } end, "Resize: size must be a positive integer")
  H.errors(function() V.aug_transforms { size = 0 } end, "aug_transforms: size must be a positive integer", "got 0")
  H.errors(function() V.aug_transforms { size = -3 } end, "size must be a positive integer")
end)

H.test("bad options of the C data functions are named (base/args.h's messages)", function()
  local x = ft.tensor.zeros({ 2, 8, 8, 3 }):byte()
  H.errors(function() V.augment(x, { sizee = 4 }) end, "augment: unknown option 'sizee'", "size")
  H.errors(function() V.augment(x, { train = "yes" }) end, "augment: option 'train' must be true or false, got the string \"yes\"")
  H.errors(function() V.augment(x, { mean = { 1, 2 }, std = { 1, 1, 1 } }) end, "augment: option 'mean' must be a table of 3 numbers")
  local ds = V.new_array_dataset(ft.tensor.zeros({ 4, 8, 8 }):byte(), nil, {})
  H.errors(function() V.new_array_dataset(x, nil, { method = "stretch" }) end, "new_array_dataset: option 'method' must be one of")
  H.errors(function() ds:loader({ 1, 2 }, { bs = "2" }) end, "loader: option 'bs' must be an integer, got the string \"2\"")
  H.errors(function() ds:loader({ 1, 2 }, { on_error = "ignore" }) end, "loader: option 'on_error' must be one of \"skip\" or \"error\"")
  H.errors(function() ds:loader({ 1, 2 }, { aug = { max_rotat = 1 } }) end, "aug_transforms: unknown option 'max_rotat'")
  H.errors(function() V.write_grid(x, nil, tmp .. "/g.png", { cols = 2 }) end, "write_grid: unknown option 'cols'", "ncols")
end)

H.test("unknown options and unsupported fastai keywords are named", function()
  H.errors(function() V.aug_transforms { max_rotat = 5 } end, "unknown option 'max_rotat'", "max_rotate")
  H.errors(function() V.aug_transforms { flip_vert = true } end, "flip_vert")
  H.errors(function() V.Resize(10, { method = "stretch" }) end, "method", "stretch")
end)

H.test("read_idx: a missing file, and a file that is not IDX", function()
  H.errors(function() V.read_idx(tmp .. "/none.gz") end, "none.gz", "cannot open")
  write(tmp .. "/text.idx", "hello, this is not IDX")
  H.errors(function() V.read_idx(tmp .. "/text.idx") end, "text.idx", "not an IDX file")
  write(tmp .. "/short.idx", "\0\0\8\1\0\0\0\100abc") -- 100 bytes promised, 3 given
  H.errors(function() V.read_idx(tmp .. "/short.idx") end, "short.idx", "truncated")
end)

if not dir then
  H.skip("bad files", "../shared/data/pets-sample is absent (set FTLUA_SHARED)")
  os.execute("rm -rf '" .. tmp .. "'")
  H.done()
end

-- A small copy: 4 photos of each breed (including the GIF and the PNG named .jpg), then a
-- truncated JPEG, an empty file and a text file, all with names the pattern matches.
local bad = tmp .. "/bad"
sh("mkdir -p '" .. bad .. "'")
local keep = { "Abyssinian_1", "Abyssinian_5", "Abyssinian_34", "Abyssinian_10",
  "Bengal_1", "Bengal_10", "Bengal_100", "Bengal_101",
  "american_bulldog_2", "american_bulldog_10", "american_bulldog_100", "american_bulldog_101" }
for _, n in ipairs(keep) do sh(("cp '%s/%s.jpg' '%s/'"):format(dir, n, bad)) end
do
  local f = assert(io.open(dir .. "/Bengal_102.jpg", "rb"))
  local jpeg = f:read("a")
  f:close()
  write(bad .. "/Bengal_9001.jpg", jpeg:sub(1, 3000)) -- truncated
end
write(bad .. "/Abyssinian_9002.jpg", "")                                  -- zero bytes
write(bad .. "/american_bulldog_9003.jpg", "this is not a photo at all\n") -- text

local OPTS = { valid_pct = 0.25, seed = 7, bs = 4, item_tfms = V.Resize(64), device = "cpu", verbose = false }

H.test("corrupt, truncated, empty files are skipped with a warning naming each", function()
  local dls
  local warn = capture_stderr(function() dls = V.ImageDataLoaders.from_name_re(bad, nil, PAT, OPTS) end)
  for _, name in ipairs { "Bengal_9001.jpg", "Abyssinian_9002.jpg", "american_bulldog_9003.jpg" } do
    assert(warn:find(name, 1, true), "no warning names " .. name .. ":\n" .. warn)
  end
  assert(warn:find("skipped 3 of 15 files", 1, true), "no summary count:\n" .. warn)
  H.eq(#dls.train_items + #dls.valid_items, 12, "good items kept")
  local n = 0
  for x in dls.valid:batches() do n = n + x:size(1) end
  for x in dls.train:batches() do n = n + x:size(1) end
  assert(n >= 8, "batches made from the good files")
end)

H.test("on_error=\"error\" raises naming the file", function()
  local o = {}
  for k, v in pairs(OPTS) do o[k] = v end
  o.on_error = "error"
  H.errors(function() V.ImageDataLoaders.from_name_re(bad, nil, PAT, o) end, "cannot load", "Abyssinian_9002.jpg", "empty")
end)

H.test("a class left with no valid image is an error naming it", function()
  local only = tmp .. "/noclass"
  sh("mkdir -p '" .. only .. "'")
  sh(("cp '%s/Abyssinian_1.jpg' '%s/Abyssinian_10.jpg' '%s/american_bulldog_2.jpg' '%s/'"):format(dir, dir, dir, only))
  write(only .. "/Bengal_1.jpg", "garbage")
  write(only .. "/Bengal_2.jpg", "")
  capture_stderr(function()
    H.errors(function() V.ImageDataLoaders.from_name_re(only, nil, PAT, { valid_pct = 0, seed = 1, item_tfms = V.Resize(32), verbose = false }) end,
      "class 'Bengal'", "no valid image")
  end)
end)

H.test("a file gone after the build is left out of its batch, or raises with on_error=\"error\"", function()
  local gone = tmp .. "/gone"
  sh("mkdir -p '" .. gone .. "'")
  for _, n in ipairs(keep) do sh(("cp '%s/%s.jpg' '%s/'"):format(dir, n, gone)) end
  local function make(on_error)
    return V.ImageDataLoaders.from_name_re(gone, nil, PAT, { valid_pct = 0, seed = 2, bs = 4, item_tfms = V.Resize(32),
      device = "cpu", verbose = false, cache_mb = 0, on_error = on_error })
  end
  local skip, strict = make("skip"), make("error")
  os.remove(gone .. "/Bengal_10.jpg")
  local n = 0
  for x in skip.train:batches() do n = n + x:size(1) end
  H.eq(n, 11, "items made (12 - the one gone)")
  H.errors(function() for _ in strict.train:batches() do end end, "Bengal_10.jpg", "cannot open")
end)

H.test("a pattern that matches nothing shows three of the names", function()
  local err = H.errors(function() V.ImageDataLoaders.from_name_re(bad, nil, "(.+)-%d+%.png$", OPTS) end,
    "matched none of the 15 file names", "(.+)-%d+%.png$")
  local shown = 0
  for _ in err:gmatch("'[%w_]+%.jpg'") do shown = shown + 1 end
  H.eq(shown, 3, "file names shown")
  H.errors(function() V.ImageDataLoaders.from_name_re(bad, nil, "(Bengal)_%d+%.jpg$", OPTS) end,
    "did not match 10 of the 15 file names") -- the 5 Bengal files match
end)

H.test("images of different sizes without a Resize are an error", function()
  local o = {}
  for k, v in pairs(OPTS) do o[k] = v end
  o.item_tfms = nil
  capture_stderr(function()
    H.errors(function() V.ImageDataLoaders.from_name_re(bad, nil, PAT, o) end, "differ in size", "Resize")
  end)
end)

H.test("bs of 0 and a bad on_error are errors", function()
  H.errors(function() V.ImageDataLoaders.from_name_re(bad, nil, PAT, { bs = 0 }) end, "bs must be a positive integer")
  H.errors(function() V.ImageDataLoaders.from_name_re(bad, nil, PAT, { on_error = "ignore" }) end, "on_error")
end)

H.test("from_folder: labels from the parent folder, split by train/valid folders", function()
  local root = tmp .. "/tree"
  for _, d in ipairs { "train/cat", "train/dog", "valid/cat", "valid/dog" } do sh("mkdir -p '" .. root .. "/" .. d .. "'") end
  sh(("cp '%s/Abyssinian_1.jpg' '%s/Bengal_1.jpg' '%s/train/cat/'"):format(dir, dir, root))
  sh(("cp '%s/american_bulldog_2.jpg' '%s/american_bulldog_10.jpg' '%s/train/dog/'"):format(dir, dir, root))
  sh(("cp '%s/Bengal_10.jpg' '%s/valid/cat/'"):format(dir, root))
  sh(("cp '%s/american_bulldog_100.jpg' '%s/valid/dog/'"):format(dir, root))
  local dls = V.ImageDataLoaders.from_folder(root, { item_tfms = V.Resize(32), bs = 2, verbose = false, device = "cpu" })
  H.close(dls.vocab, { "cat", "dog" }, 0, "vocab")
  H.eq(#dls.train_items, 4, "train")
  H.eq(#dls.valid_items, 2, "valid")
  local x, y = dls.valid:one_batch()
  H.close(y:totable(), { 1, 2 }, 0, "valid labels (sorted paths: cat, dog)")
  H.close(x:size(), { 2, 3, 32, 32 }, 0, "x")
end)

os.execute("rm -rf '" .. tmp .. "'")
H.done()
