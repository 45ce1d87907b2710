-- test_data_summary.lua: DataBlock:summary(source), the book's tool for debugging a DataBlock
-- (each step on one item, and where it fails), and the DataBlock's messages (issue 11, issue 14
-- defect 7): Lua patterns vs Python regexes, a pattern with no capture, a single class,
-- valid_pct with the block's own splitter.
local ft = require "ftlua"
local H = require "harness"
local P = require "synth_pets"
local V = ft.vision

local root = H.tmpdir()
local data = root .. "/images"
os.execute("mkdir -p '" .. data .. "'")
local all = P.BREEDS
P.BREEDS = { "Bengal", "Egyptian_Mau", "staffordshire_bull_terrier" }
P.make(data, { per_class = 5, w = 40, h = 30 })
P.BREEDS = all

-- Runs fn with print captured; returns the printed lines, and the error (or nil).
local function captured(fn)
  local lines, old = {}, print
  print = function(...)
    local t = {}
    for i = 1, select("#", ...) do t[i] = tostring(select(i, ...)) end
    lines[#lines + 1] = table.concat(t, "\t")
  end
  local ok, err = pcall(fn)
  print = old
  return lines, (not ok) and tostring(err) or nil
end

local function block(t)
  local spec = { blocks = { V.ImageBlock, V.CategoryBlock }, get_items = V.get_image_files,
    splitter = V.RandomSplitter { seed = 42 }, get_y = V.RegexLabeller "(.+)_%d+%.jpg$",
    item_tfms = V.Resize(24), batch_tfms = V.aug_transforms { size = 16, min_scale = 0.75 } }
  for k, v in pairs(t or {}) do spec[k] = v end
  return V.DataBlock(spec)
end

H.test("summary shows each step on one item: items, get_y, split, label, sizes, shapes", function()
  local lines, err = captured(function() block():summary(data, { bs = 4 }) end)
  assert(not err, err)
  local s = table.concat(lines, "\n")
  local files = V.get_image_files(data)
  local first = files[1]:match("([^/]*)$")
  local label = first:match("(.+)_%d+%.jpg$")
  H.eq(#lines, 8, "a title and seven steps:\n" .. s)
  assert(lines[2]:find("^1%. get_items %(get_image_files%): 15 items found"), lines[2])
  assert(lines[3]:find(("^2%%. get_y %%(RegexLabeller \"%%(%%.%%+%%)_%%%%d%%+%%%%%%.jpg%%$\"%%): '%s' for %s"):format(label, first:gsub("%p", "%%%0"))), lines[3])
  assert(lines[4]:find("^3%. splitter: 12 train / 3 valid items; item 1 is in the (%a+) split"), lines[4])
  local vocab = { "Bengal", "Egyptian_Mau", "staffordshire_bull_terrier" }
  local idx
  for i, v in ipairs(vocab) do if v == label then idx = i end end
  assert(lines[5]:find(("^4%%. Categorize: 3 classes %%(Bengal, Egyptian_Mau, staffordshire_bull_terrier%%); '%s' is class %d"):format(label, idx)), lines[5])
  H.eq(lines[6], "5. item_tfms (Resize(24, 24, crop)): decoded 40x30 (w x h) -> 24x24", "item transform sizes")
  H.eq(lines[7], "6. batch_tfms (aug_transforms, size 16): this item -> float32 [3, 16, 16]", "batch transform")
  H.eq(lines[8], "7. collate: one train batch: x float32 [4, 3, 16, 16], y int64 [4]", "collated shapes")
end)

H.test("summary stops at the failing step with its error: a Python regex", function()
  local b = block { get_y = V.RegexLabeller "(.+)_\\d+.jpg$" }
  local lines, err = captured(function() b:summary(data) end)
  assert(err, "summary raises after printing")
  H.eq(#lines, 4, "title, step 1, the failure, the stop:\n" .. table.concat(lines, "\n"))
  assert(lines[3]:find("^2%. get_y: FAILED: pattern '%(%.%+%)_\\d%+%.jpg%$' matched none of the 15 file names"), lines[3])
  assert(lines[3]:find("Lua pattern, not a Python regex: \\d is %d", 1, true), lines[3])
  H.eq(lines[4], "The summary stops at step 2 (get_y).", "the stop")
  assert(err:find("DataBlock:summary: get_y failed", 1, true), err)
end)

H.test("summary stops at the failing step: a get_y that raises, a non-square item without a size", function()
  local lines, err = captured(function() block { get_y = function(p) error("no label for " .. p, 0) end }:summary(data) end)
  assert(err and lines[3]:find("^2%. get_y: FAILED: no label for "), lines[3])
  lines, err = captured(function()
    block { item_tfms = V.Resize { 24, 32 }, batch_tfms = false }:summary(data, { bs = 4 })
  end)
  assert(err, "fails")
  assert(lines[#lines - 1]:find("^6%. batch_tfms: FAILED: the item is 32x24, not square"), table.concat(lines, "\n"))
  lines, err = captured(function() block():summary(data, { bs = 64 }) end)
  assert(err and lines[#lines - 1]:find("^7%. collate: FAILED: no full train batch: 12 train items, bs = 64"),
    table.concat(lines, "\n"))
  lines, err = captured(function() block():summary(root .. "/nowhere") end)
  assert(err and lines[2]:find("^1%. get_items: FAILED: .*cannot open folder"), table.concat(lines, "\n"))
end)

H.test("Python regex habits in a pattern are named in the dataloaders error too", function()
  H.errors(function() block { get_y = V.RegexLabeller "(.+)_\\d+\\.jpg$" }:dataloaders(data, { verbose = false }) end,
    "matched none of the 15 file names", "Lua pattern", "\\d is %d", "\\. is %.")
  H.errors(function() block { get_y = V.RegexLabeller "(.+)_\\w+" }:dataloaders(data, { verbose = false }) end,
    "\\w is %w")
end)

H.test("a pattern with no capture is refused, as fastai's RegexLabeller", function()
  H.errors(function() V.RegexLabeller "%.jpg$" end, 'pattern "%.jpg$" has no capture', "parentheses")
  H.errors(function() V.RegexLabeller "[(]x()" end, "has no capture") -- a set and a position capture
  H.errors(function() V.RegexLabeller "%(x%)" end, "has no capture")
  H.errors(function() V.RegexLabeller "(.+" end, "not a valid Lua pattern")
  H.errors(function() V.RegexLabeller(3) end, "got 3")
  assert(V.RegexLabeller "^([^_]+)", "a capture after a set")
end)

H.test("a single class is warned about", function()
  local tmp = os.tmpname()
  local p = io.popen(("./ftlua -e 'local V = ft.vision; V.DataBlock{get_y = function() return \"cat\" end, "
    .. "splitter = V.RandomSplitter{seed = 1}, item_tfms = V.Resize(16)}:dataloaders(%q, {bs = 2, verbose = false})' 2>%s")
    :format(data, tmp))
  p:read("a")
  p:close()
  local f = io.open(tmp)
  local err = f:read("a")
  f:close()
  os.remove(tmp)
  assert(err:find("warning: dataloaders: every item has the same label 'cat': a single class", 1, true), err)
end)

H.test("valid_pct: applied without a splitter of the block's own, an error with one", function()
  H.errors(function() block():dataloaders(data, { valid_pct = 0.4, verbose = false }) end,
    "valid_pct = 0.4 would be ignored", "its own splitter", "RandomSplitter{valid_pct = 0.4")
  local b = V.DataBlock { blocks = { V.ImageBlock, V.CategoryBlock }, get_y = V.RegexLabeller "(.+)_%d+%.jpg$",
    item_tfms = V.Resize(16) }
  local dls = b:dataloaders(data, { valid_pct = 0.4, seed = 1, bs = 2, verbose = false })
  H.eq(#dls.valid_items, 6, "40% of 15 in valid")
  H.eq(dls.path, ".", "dls.path is the current folder")
end)

os.execute("rm -rf '" .. root .. "'")
H.done()
