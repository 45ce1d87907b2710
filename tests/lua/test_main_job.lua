-- test_main_job.lua: scripts/main.lua (`make run`'s job) under `ftlua --report`, with a small
-- setting: it pretrains and caches a backbone, transfers it, trains from scratch, prints the
-- comparison, writes its plots, the export and the report; a second run reuses the cache.
local H = require "harness"

local FM = "/usr/share/datasets/fashion-mnist"
local f = io.open(FM .. "/train-images-idx3-ubyte.gz", "rb")
if not f then H.skip("main job", "Fashion-MNIST not installed at " .. FM .. " (apt-get install dataset-fashion-mnist)") H.done() end
f:close()
if os.execute("command -v gnuplot >/dev/null 2>&1") ~= true then
  H.skip("main job", "gnuplot is missing (apt-get install gnuplot-nox)")
  H.done()
end

local out = H.tmpdir()
local function run(extra)
  local cmd = ("FTLUA_NUM_THREADS=1 ./ftlua --report '%s/report.html' scripts/main.lua --out '%s' --cache '%s/cache' "
    .. "--source_n 300 --pre_epochs 1 --epochs 1,1 --shots 4 %s 2>&1"):format(out, out, out, extra or "")
  local p = io.popen(cmd)
  local s = p:read("a")
  local ok, how, rc = p:close()
  assert(ok and rc == 0, ("exit %s %s:\n%s"):format(how, rc, s))
  return s
end
local function read(path)
  local fh = io.open(path, "rb")
  if not fh then return nil end
  local s = fh:read("a")
  fh:close()
  return s
end
local function count(s, pat) return select(2, s:gsub(pat, "")) end

local first
H.test("the main job pretrains, transfers, trains from scratch and compares", function()
  first = run()
  assert(first:find("pretrained backbone saved: " .. out .. "/cache/resnet_fm_source01278_300.safetensors", 1, true),
    "backbone saved:\n" .. first)
  H.eq(count(first, "epoch%s+train_loss%s+valid_loss%s+accuracy%s+time"), 1, "the pretraining table")
  H.eq(count(first, "epoch%s+train_loss%s+valid_loss%s+error_rate%s+time"), 3, "frozen, unfrozen, scratch tables")
  H.eq(count(first, "Minimum/10: %d%.%d%de[-+]%d+, steepest point: %d%.%d%de[-+]%d+"), 2, "the book's lr_find lines")
  -- The comparison prints the last epoch's error_rate of each learner's table.
  local scratch = tonumber(first:match("\nfrom scratch%s+(%d%.%d+)"))
  local transfer = tonumber(first:match("\ntransfer %(freeze, unfreeze, slice%)%s+(%d%.%d+)"))
  assert(scratch and transfer, "the comparison table:\n" .. first)
  assert(first:find("on 20 images of 5 new classes", 1, true), "the target set's size:\n" .. first)
  assert(first:find("actual%s+predicted%s+count"), "most_confused:\n" .. first)
end)

H.test("the main job writes its plots, the export and one report with the plots inline", function()
  assert(first, "the first run failed")
  for _, name in ipairs { "batch.png", "lr_find.png", "lr_find2.png", "loss.png", "confusion.png", "top_losses.png" } do
    H.eq((read(out .. "/" .. name) or ""):sub(1, 8), "\137PNG\r\n\26\n", name)
  end
  local exp = read(out .. "/export.safetensors")
  assert(exp and #exp > 1000, "export.safetensors")
  local learn = ft.load_learner(out .. "/export.safetensors")
  H.eq(#learn.dls.vocab, 5, "the exported vocab")
  H.eq(learn.dls.vocab[1], "Dress", "the target's first class")
  local html = read(out .. "/report.html")
  assert(html, "report.html missing")
  assert(count(html, "data:image/png;base64,") >= 6, "the six figures inline in the report")
  assert(html:find("transfer beats scratch", 1, true) or html:find("transfer did not beat scratch", 1, true),
    "the comparison in the report")
end)

H.test("a second run starts from the cached backbone", function()
  assert(first, "the first run failed")
  local s = run()
  assert(s:find("pretrained backbone: cached at", 1, true), "cache used:\n" .. s)
  H.eq(count(s, "accuracy%s+time"), 0, "no pretraining table")
end)

H.test("bad arguments name the option", function()
  local p = io.popen("./ftlua scripts/main.lua --shots zero 2>&1")
  local s = p:read("a")
  local ok = p:close()
  assert(not ok and s:find("--shots needs a positive integer", 1, true), s)
  local fresh = out .. "/fresh"
  p = io.popen(("./ftlua scripts/main.lua --data /nonexistent --out '%s/out' --cache '%s/cache' 2>&1"):format(fresh, fresh))
  s = p:read("a")
  ok = p:close()
  assert(not ok and s:find("/nonexistent/train-images-idx3-ubyte.gz not found", 1, true), s)
  H.eq(os.execute("test -e '" .. fresh .. "'"), nil, "a failed run creates no folder")
end)

os.execute("rm -rf '" .. out .. "'")
H.done()
