-- test_figures.lua: the image grids' destinations (lua/ftlua/figures.lua) without gnuplot:
-- show_batch with no path prints the labels as text (wrapped, never cut) and writes no file;
-- with FTLUA_PLOT_DIR it writes a fresh PNG there; FTLUA_TERM_IMAGES=1 draws thumbnails whose
-- colours are the images' own (24-bit half blocks). Each case runs in a child ftlua.
local H = require "harness"
local self_exe = H.self_exe

local root = os.getenv("FTLUA_ROOT") or "."
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Four 16x16 grey images of known values, labels with long breed names.
local SETUP = [[
local T = ft.tensor
local x = T.zeros{4, 16, 16}
for i = 1, 4 do x[i] = 50 * i end
x = x:to("uint8")
local y = T.tensor({1, 2, 3, 1}, "int64")
dls = ft.vision.ImageDataLoaders.from_tensors(x, y, x, y, {bs = 4, channels = 1, verbose = false,
  vocab = {"staffordshire_bull_terrier", "american_pit_bull_terrier", "a_name_of_exactly_fifty_characters_for_the_wrap_ok"}})
]]

local function child(code, env)
  local cwd = H.tmpdir()
  local script = cwd .. "/.s.lua"
  local f = assert(io.open(script, "w"))
  f:write(SETUP, code)
  f:close()
  local p = io.popen(("cd %s && env -u FTLUA_PLOT_DIR -u FTLUA_TERM_IMAGES COLUMNS=100 %s %s %s 2>&1"):format(
    q(cwd), env or "", q(self_exe()), q(script)))
  local out = p:read("a")
  p:close()
  os.remove(script)
  local l = io.popen("ls -A " .. q(cwd))
  local files = l:read("a")
  l:close()
  os.execute("rm -rf " .. q(cwd))
  return out, files
end

H.test("show_batch with no path: the labels as text, whole; no file", function()
  local out, files = child([[print(select("#", dls:show_batch{nrows = 2, ncols = 2, split = "valid"}))]])
  H.eq(files, "", "files written")
  assert(out:find("show_batch: 4 images (2 x 2)", 1, true), out)
  for i, name in ipairs { "staffordshire_bull_terrier", "american_pit_bull_terrier" } do
    assert(out:find(i .. " " .. name, 1, true), name .. " not whole in:\n" .. out)
  end
  -- 50 characters wrap (at "_") onto two lines within the cell, nothing lost
  local joined = out:gsub("\n%s+", "")
  assert(joined:find("a_name_of_exactly_fifty_characters_for_the_wrap_ok", 1, true) or
    out:find("a_name_of_exactly_fifty_characters_for_the_", 1, true), out)
  assert(out:find("wrap_ok", 1, true), out)
  assert(not out:find("..", 1, true), "cut:\n" .. out)
  assert(out:find('give path = "show_batch.png"', 1, true), out)
  assert(out:match("\n0\n$"), "returns nothing:\n" .. out)
end)

H.test("show_batch with FTLUA_PLOT_DIR: a fresh PNG there each time", function()
  local pd = H.tmpdir()
  local out, files = child([[dls:show_batch{split = "valid"} dls:show_batch{split = "valid"}]], "FTLUA_PLOT_DIR=" .. q(pd))
  H.eq(files, "", "files in the current folder")
  H.eq(out, "", "printed")
  local l = io.popen("ls " .. q(pd))
  H.eq(l:read("a"), "show_batch-1.png\nshow_batch-2.png\n", "files in FTLUA_PLOT_DIR")
  l:close()
  os.execute("rm -rf " .. q(pd))
end)

H.test("FTLUA_TERM_IMAGES=1: thumbnails in the images' colours, 20 x 10 half blocks each", function()
  local out = child([[dls:show_batch{nrows = 2, ncols = 2, split = "valid"}]], "FTLUA_TERM_IMAGES=1")
  for i = 1, 4 do
    local v = 50 * i
    local cell = ("\27[38;2;%d;%d;%dm\27[48;2;%d;%d;%dm\u{2580}"):format(v, v, v, v, v, v)
    local n = select(2, out:gsub(cell:gsub("%p", "%%%0"), ""))
    H.eq(n, 20 * 10, "half blocks of image " .. i .. " (value " .. v .. ")")
  end
  local plain = child([[dls:show_batch{nrows = 2, ncols = 2, split = "valid"}]], "FTLUA_TERM_IMAGES=0")
  assert(not plain:find("\27", 1, true), "no escape codes when off (or not a terminal)")
end)

H.test("dls.vocab of a folder dataset prints every name (37 of them)", function()
  local names = {}
  for i = 1, 37 do names[i] = ("breed_number_%02d_with_a_long_name"):format(i) end
  local out
  local d = H.tmpdir()
  local code = ([[
local d = %q
local x = ft.tensor.zeros{1, 8, 8, 3}:to("uint8")
for i = 1, 37 do for k = 1, 6 do
  ft.vision.write_grid(x, nil, ("%%s/breed_number_%%02d_with_a_long_name_%%d.png"):format(d, i, k))
end end
local files = ft.vision.get_image_files(d)
local dls = ft.vision.ImageDataLoaders.from_name_re(d, files, "^(.+)_%%d+%%.png$", {item_tfms = ft.vision.Resize(8),
  bs = 4, valid_pct = 0.2, seed = 1, verbose = false, num_workers = 1})
print(dls.vocab)
]]):format(d)
  out = child(code, "")
  os.execute("rm -rf " .. q(d))
  assert(out:match("^%(#37%) {"), out)
  local got = {}
  for name in out:gmatch('"([^"]+)"') do got[#got + 1] = name end
  H.close(got, names, 0, "names printed")
end)

H.done()
