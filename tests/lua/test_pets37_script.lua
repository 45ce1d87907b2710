-- test_pets37_script.lua: the whole chapter script, scripts/pets.lua, at the dataset's real
-- size in classes: 37 breeds with their real names (synth_pets.lua, generated here into a temp
-- folder), tiny settings (32 px, 1 epoch per phase, resnet18 from scratch, one thread). Checks
-- the exit status, the printed tables, the files in --out, that the export holds the 37 breeds,
-- and the script's --help and usage errors.
local ft = require "ftlua"
local H = require "harness"
local P = require "synth_pets"

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local s = p:read("a")
  local ok, how, rc = p:close()
  return s, rc, ok
end

H.test("pets.lua --help lists every option and exits 0", function()
  local s, rc = run("./ftlua scripts/pets.lua --help")
  H.eq(rc, 0, "exit status")
  for _, o in ipairs { "data", "arch", "epochs", "bs", "size", "weights", "pretrained", "num_it", "out", "help" } do
    assert(s:find("%-%-" .. o .. "%s+%S"), "--" .. o .. " is described:\n" .. s)
  end
end)

H.test("pets.lua usage errors: one line, no traceback, status 2", function()
  for _, args in ipairs { "--bogus 3", "--bs x", "--bs", "stray", "--epochs 3", "--pretrained maybe", "--arch vgg", "--data /nonexistent" } do
    local s, rc = run("./ftlua scripts/pets.lua " .. args)
    H.eq(rc, 2, args .. ": exit status")
    local _, lines = s:gsub("\n", "")
    H.eq(lines, 1, args .. ": one line: " .. s)
    assert(s:find("^pets%.lua: ") and not s:find("traceback"), args .. ": " .. s)
  end
end)

H.test("main.lua --help and a usage error", function()
  local s, rc = run("./ftlua scripts/main.lua --help")
  H.eq(rc, 0, "exit status")
  for _, o in ipairs { "out", "cache", "shots", "pre_epochs", "epochs", "source_n", "data", "retrain" } do
    assert(s:find("%-%-" .. o .. "%s+%S"), "--" .. o .. " is described:\n" .. s)
  end
  s, rc = run("./ftlua scripts/main.lua --shots many")
  H.eq(rc, 2, "exit status")
  assert(s == 'main.lua: --shots needs a positive integer, got "many" (see --help)\n', s)
end)

if os.execute("command -v gnuplot >/dev/null 2>&1") ~= true then
  H.skip("pets.lua at 37 classes", "gnuplot is missing (apt-get install gnuplot-nox)")
  H.done()
end

H.test("pets.lua runs the chapter at 37 classes with the real breed names", function()
  local root = H.tmpdir()
  local data, out = root .. "/pets/images", root .. "/out"
  os.execute("mkdir -p '" .. data .. "'")
  P.make(data, { per_class = 6, w = 72, h = 64 })
  os.execute("chmod -R a-w '" .. root .. "/pets'") -- the data stays read-only: nothing is written next to it
  local cmd = ("FTLUA_NUM_THREADS=1 ./ftlua scripts/pets.lua --data '%s' --arch resnet18 --pretrained false "
    .. "--size 32 --bs 16 --epochs 1,1 --num_it 10 --out '%s'"):format(root .. "/pets", out)
  local s, rc = run(cmd)
  os.execute("chmod -R u+w '" .. root .. "'")
  local ok, err = pcall(function()
    H.eq(rc, 0, "exit status:\n" .. s)
    assert(s:find("37 classes: Abyssinian, Bengal, Birman", 1, true), "37 classes line:\n" .. s)
    local _, n_tables = s:gsub("epoch%s+train_loss%s+valid_loss%s+error_rate%s+time", "")
    H.eq(n_tables, 2, "two fit tables")
    local _, n_min = s:gsub("Minimum/10: %d%.%d%de[-+]%d+, steepest point: %d%.%d%de[-+]%d+", "")
    H.eq(n_min, 2, "the book's lr_find lines")
    assert(s:find("actual%s+predicted%s+count"), "most_confused table:\n" .. s)
    for _, f in ipairs { "batch.png", "lr_find.png", "lr_find2.png", "loss.png", "confusion.png", "top_losses.png",
      "export.safetensors" } do
      local fh = io.open(out .. "/" .. f, "rb")
      assert(fh, f .. " missing in --out:\n" .. s)
      fh:close()
    end
    local learn = ft.load_learner(out .. "/export.safetensors")
    local want = {}
    for i, b in ipairs(P.BREEDS) do want[i] = b end
    table.sort(want)
    H.eq(#learn.dls.vocab, 37, "37 classes exported")
    for i = 1, 37 do H.eq(learn.dls.vocab[i], want[i], "vocab " .. i) end
    local p = io.popen("ls '" .. root .. "/pets/images' | grep -vc '_[0-9]*\\.jpg$'")
    H.eq(p:read("l"), "0", "nothing written into the dataset's folder")
    p:close()
  end)
  os.execute("rm -rf '" .. root .. "'")
  if not ok then error(err, 0) end
end)

H.done()
