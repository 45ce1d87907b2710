-- test_pets_script.lua: scripts/pets.lua (the chapter) on ../shared/data/pets-sample with a tiny
-- setting: exit status 0, the printed tables, the "Minimum/10:" line, and the files in --out.
local H = require "harness"

local sample = H.shared("data/pets-sample/SOURCE.md")
if not sample then H.skip("pets script", "../shared/data/pets-sample is absent") H.done() end
if os.execute("command -v gnuplot >/dev/null 2>&1") ~= true then
  H.skip("pets script", "gnuplot is missing (apt-get install gnuplot-nox)")
  H.done()
end
local data = sample:gsub("/SOURCE%.md$", "")
local out = H.tmpdir()

H.test("scripts/pets.lua runs the chapter on pets-sample", function()
  local cmd = ("FTLUA_NUM_THREADS=1 ./ftlua scripts/pets.lua --data '%s' --arch resnet18 --pretrained false "
    .. "--size 32 --bs 16 --epochs 1,1 --num_it 10 --out '%s' 2>&1"):format(data, out)
  local p = io.popen(cmd)
  local s = p:read("a")
  local ok, how, rc = p:close()
  assert(ok and rc == 0, ("exit %s %s:\n%s"):format(how, rc, s))
  local _, n_tables = s:gsub("epoch%s+train_loss%s+valid_loss%s+error_rate%s+time", "")
  H.eq(n_tables, 2, "two fit tables (frozen, unfrozen)")
  local _, n_min = s:gsub("Minimum/10: %d%.%d%de[-+]%d+, steepest point: %d%.%d%de[-+]%d+", "")
  H.eq(n_min, 2, "the book's lr_find lines")
  assert(s:find("most_confused", 1, true) and s:find("actual%s+predicted%s+count"), "most_confused table:\n" .. s)
  for _, f in ipairs { "batch.png", "lr_find.png", "loss.png", "confusion.png", "export.safetensors" } do
    local fh = io.open(out .. "/" .. f, "rb")
    assert(fh, f .. " missing in --out:\n" .. s)
    local head = fh:read(8)
    fh:close()
    if f:match("%.png$") then H.eq(head, "\137PNG\r\n\26\n", f .. " magic") end
  end
end)

os.execute("rm -rf '" .. out .. "'")
H.done()
