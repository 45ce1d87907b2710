-- test_plots_37.lua: every plot and image grid at the Pets dataset's real size (37 classes, the
-- real breed names, up to 26 characters), in the three places a figure can go (docs/plot.md,
-- "Where figures go"). tests/lua/plots37.lua runs the session in a child process:
--   terminal: no output given, no FTLUA_PLOT_DIR: text on stdout, and no file anywhere;
--   files: an explicit output for each: complete PNGs, what gnuplot was sent logged
--          (tests/lua/gnuplot_log.sh) and compared with the references;
--   FTLUA_PLOT_DIR set: a fresh PNG per figure in that folder, nothing on stdout.
-- The references (confusion counts, top losses, predictions of the first valid batch, the
-- lr_find curve) are computed in the child from get_preds and the recorder, not by the code
-- under test. Also: a write that fails (a file size limit, as a full disk) is an error naming
-- the file, and leaves neither the file nor a temp file.
local H = require "harness"
local self_exe = H.self_exe
local G = require "gplog"

H.need_gnuplot("plots at 37 classes")

local root = os.getenv("FTLUA_ROOT") or "."
local FTLUA = self_exe()
local SESSION = root .. "/tests/lua/plots37.lua"
local dir = H.tmpdir()

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local function ls(d)
  local out = {}
  for name in sh("ls -A " .. q(d)):gmatch("[^\n]+") do out[#out + 1] = name end
  table.sort(out)
  return out
end
local function png_size(p)
  local s = slurp(p)
  H.eq(s:sub(1, 8), "\137PNG\r\n\26\n", p .. " magic")
  H.eq(s:sub(-8, -5), "IEND", p .. " IEND at the end")
  return string.unpack(">I4I4", s, 17)
end

-- Run the session; returns its stdout split into sections by "==== name", and the references.
local function session(mode, env, cwd)
  local out, ok = sh(("cd %s && env -u DISPLAY -u FTLUA_PLOT_DIR COLUMNS=100 %s %s %s %s %s"):format(
    q(cwd), env or "", q(FTLUA), q(SESSION), q(cwd), mode))
  if not ok then error("the session failed:\n" .. out, 2) end
  local ref = { cm = {}, top = {}, result = {}, batch = {}, lrfind = {} }
  local sections, cur = {}, nil
  for line in out:gmatch("([^\n]*)\n") do
    local kind, rest = line:match("^REF (%a+) (.*)$")
    if kind == "cm" then
      local i, counts = rest:match("^(%d+) (.*)$")
      local row = {}
      for v in counts:gmatch("%d+") do row[#row + 1] = tonumber(v) end
      ref.cm[tonumber(i)] = row
    elseif kind == "top" then
      local r, pred, actual, loss, prob = rest:match("^(%d+) (%S+) (%S+) (%S+) (%S+)$")
      ref.top[tonumber(r)] = { pred = pred, actual = actual, loss = loss, prob = prob }
    elseif kind == "result" then
      local i, actual, pred = rest:match("^(%d+) (%S+) (%S+)$")
      ref.result[tonumber(i)] = { actual = actual, pred = pred }
    elseif kind == "batch" then
      local i, name = rest:match("^(%d+) (%S+)$")
      ref.batch[tonumber(i)] = name
    elseif kind == "lrfind" then
      local lr, loss = rest:match("^(%S+) (%S+)$")
      ref.lrfind[#ref.lrfind + 1] = { tonumber(lr), tonumber(loss) }
    elseif line:match("^==== ") then
      cur = line:sub(6)
      sections[cur] = {}
    elseif cur then
      table.insert(sections[cur], line)
    end
  end
  return sections, ref, out
end

local NAMES -- the vocab, read back from the session's own printing below

H.test("terminal: every figure as text on stdout, no file written, nothing returned", function()
  local cwd = dir .. "/term"
  os.execute("mkdir -p " .. q(cwd))
  local s, ref = session("terminal", "", cwd)
  H.eq(#ls(cwd), 0, "files written in the current folder (" .. table.concat(ls(cwd), " ") .. ")")
  for _, name in ipairs { "plot_lr_find", "plot_loss", "plot_sched", "plot_metrics", "plot_confusion_matrix",
    "plot_top_losses", "show_batch", "show_results" } do
    local sec = assert(s[name], "no output for " .. name)
    H.eq(sec[#sec], "RET " .. name .. " 0", name .. " returns nothing")
    assert(#sec > 3, name .. " drew nothing on the terminal")
  end
  -- dls.vocab prints every name
  local vocab = table.concat(s.vocab, "\n")
  assert(vocab:match("^%(#37%) {"), vocab)
  NAMES = {}
  for name in vocab:gmatch('"([^"]+)"') do NAMES[#NAMES + 1] = name end
  H.eq(#NAMES, 37, "names printed by dls.vocab")
  H.eq(NAMES[35], "staffordshire_bull_terrier", "a long name whole")

  -- The confusion matrix as a table: rows "i name counts", "." for 0; equal to the reference.
  local got = {}
  for _, line in ipairs(s.plot_confusion_matrix) do
    local i, name, counts = line:match("^%s*(%d+) (%S+)%s+(.*)$")
    if i then
      H.eq(name, NAMES[tonumber(i)], "row name " .. i)
      local row = {}
      for v in counts:gmatch("%S+") do row[#row + 1] = v == "." and 0 or tonumber(v) end
      got[tonumber(i)] = row
    end
  end
  H.close(got, ref.cm, 0, "terminal confusion matrix")
  assert(table.concat(s.plot_confusion_matrix, "\n"):find("rows: Actual, columns: Predicted", 1, true))

  -- Top losses: every title whole (prediction/actual, loss / probability), nothing cut.
  local top = table.concat(s.plot_top_losses, "\n")
  assert(not top:find("..", 1, true), "a label was cut:\n" .. top)
  for r, t in ipairs(ref.top) do
    local want = ("%s/%s"):format(t.pred, t.actual)
    local pos = top:find("%f[%w]" .. r .. " " .. want:gsub("%p", "%%%0"))
    assert(pos, ("top loss %d '%s' not in:\n%s"):format(r, want, top))
    assert(top:find(t.loss .. " / " .. t.prob, pos, true), ("loss / prob %s / %s of %d not in:\n%s"):format(t.loss, t.prob, r, top))
  end
  H.eq(#ref.top, 9, "9 reference rows")

  -- show_batch: the labels of the first train batch, numbered.
  local batch = table.concat(s.show_batch, "\n")
  for i, name in ipairs(ref.batch) do
    assert(batch:find("%f[%w]" .. i .. " " .. name:gsub("%p", "%%%0") .. "%f[%s\0]"), ("batch %d %s not in:\n%s"):format(i, name, batch))
  end

  -- show_results: actual, then "-> predicted", "(wrong)" exactly on the wrong ones.
  local res = s.show_results
  local cells = {}
  for _, line in ipairs(res) do
    for i, text in line:gmatch("(%d+) (%S+)") do cells[tonumber(i)] = text end
  end
  local text = table.concat(res, "\n")
  local wrong = select(2, text:gsub("%(wrong%)", ""))
  local want_wrong = 0
  for i, r in ipairs(ref.result) do
    H.eq(cells[i], r.actual, "show_results actual " .. i)
    assert(text:find("-> " .. r.pred, 1, true), "prediction " .. r.pred .. " not in:\n" .. text)
    if r.actual ~= r.pred then want_wrong = want_wrong + 1 end
  end
  H.eq(wrong, want_wrong, "items marked (wrong)")
end)

H.test("terminal with thumbnails (FTLUA_TERM_IMAGES=1): every grid draws its images, labels whole", function()
  local cwd = dir .. "/thumbs"
  os.execute("mkdir -p " .. q(cwd))
  local s, ref = session("terminal", "FTLUA_TERM_IMAGES=1", cwd)
  H.eq(#ls(cwd), 0, "files written")
  for _, name in ipairs { "plot_top_losses", "show_batch", "show_results" } do
    local text = table.concat(s[name], "\n")
    local blocks = select(2, text:gsub("\u{2580}", ""))
    H.eq(blocks, 9 * 20 * 10, name .. ": half blocks of 9 thumbnails, 20 x 10 each")
  end
  local top = table.concat(s.plot_top_losses, "\n"):gsub("\27%[[%d;]*m", "")
  for r, t in ipairs(ref.top) do
    assert(top:find(("%s/%s"):format(t.pred, t.actual), 1, true) and top:find(t.loss .. " / " .. t.prob, 1, true),
      "top loss " .. r .. " not whole")
  end
end)

H.test("files: complete PNGs at the paths given, the data sent equal the references", function()
  local cwd = dir .. "/files"
  os.execute("mkdir -p " .. q(cwd))
  local log = dir .. "/gnuplot.log"
  local s, ref = session("files", ("FTLUA_GNUPLOT=%s FTLUA_TEST_GP_LOG=%s"):format(q(root .. "/tests/lua/gnuplot_log.sh"), q(log)), cwd)
  H.eq(table.concat(ls(cwd), " "), "batch.png cm.png loss.png lr_find.png metrics.png results.png sched.png top_losses.png",
    "the files (and no temp file)")
  for _, f in ipairs(ls(cwd)) do png_size(cwd .. "/" .. f) end
  for name, sec in pairs(s) do
    if name ~= "vocab" and name ~= "end" then H.eq(table.concat(sec, "\n"), "RET " .. name .. " 0", name .. ": no text, no value") end
  end
  local plots = G.plots(log)
  local function plot_for(file)
    for _, p in ipairs(plots) do if p.output and p.output:find("/." .. file .. ".", 1, true) then return p end end
    error("no plot written to " .. file)
  end
  -- The confusion matrix: 37 names on both axes, each count in its cell, axes named.
  local cm = plot_for("cm.png")
  local names = {}
  for i, row in ipairs(ref.cm) do names[i] = NAMES and NAMES[i] end
  H.eq(#cm.xtics, 37, "x tick names")
  H.eq(#cm.ytics, 37, "y tick names")
  if NAMES then H.close(cm.xtics, NAMES, 0, "x ticks") H.close(cm.ytics, NAMES, 0, "y ticks") end
  local counts = {}
  for i = 1, 37 do
    counts[i] = {}
    for j = 1, 37 do counts[i][j] = tonumber(cm.labels[i] and cm.labels[i][j]) end
  end
  H.close(counts, ref.cm, 0, "counts drawn in the cells")
  H.close(cm.matrix, ref.cm, 0, "the matrix sent")
  local set = G.settings(cm)
  assert(set:find("'Predicted'", 1, true) and set:find("'Actual'", 1, true), "axis names:\n" .. set)
  local w, h = png_size(cwd .. "/cm.png")
  assert(w >= 37 * 24 and h >= 37 * 24, ("the figure grows with the classes: %dx%d"):format(w, h))
  -- lr_find: the recorder's curve without its last 5 points (skip_end), then the suggestions.
  local lr = plot_for("lr_find.png")
  local want = {}
  for i = 1, #ref.lrfind - 5 do want[i] = ref.lrfind[i] end
  H.close(lr.series[1], want, 1e-12, "lr_find curve")
  assert(#lr.series >= 3, "suggestions drawn as points")
  -- Grids: cells wider than the images when the labels need it.
  local tw = png_size(cwd .. "/top_losses.png")
  assert(tw > 3 * (128 + 6) + 6, "top losses' cells grow with their titles: " .. tw)
  -- show_results: red text iff a prediction is wrong, green iff one is right (PIL counts them).
  local any_wrong, any_right = false, false
  for _, r in ipairs(ref.result) do if r.actual ~= r.pred then any_wrong = true else any_right = true end end
  local py, ok = sh(("/usr/bin/python3 -c %s %s"):format(q([[
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
px = list(im.getdata())
print(sum(1 for p in px if p == (200, 0, 0)), sum(1 for p in px if p == (0, 130, 0)))]]), q(cwd .. "/results.png")))
  if not ok then return H.skip("show_results colours", "no /usr/bin/python3 with PIL: " .. py) end
  local red, green = py:match("(%d+) (%d+)")
  H.eq(tonumber(red) > 0, any_wrong, "red text present")
  H.eq(tonumber(green) > 0, any_right, "green text present")
end)

H.test("FTLUA_PLOT_DIR: a fresh PNG per figure there, nothing in the current folder or on stdout", function()
  local cwd, pd = dir .. "/pd", dir .. "/plotdir"
  os.execute("mkdir -p " .. q(cwd) .. " " .. q(pd))
  local s = session("terminal", "FTLUA_PLOT_DIR=" .. q(pd), cwd)
  H.eq(#ls(cwd), 0, "files in the current folder")
  local files = ls(pd)
  local grids, figs = {}, 0
  for _, f in ipairs(files) do
    png_size(pd .. "/" .. f)
    if f:match("^ftlua%-fig%d+%-%d+%.png$") then figs = figs + 1 else grids[#grids + 1] = f end
  end
  H.eq(figs, 5, "gnuplot figures (lr_find, loss, sched, metrics, confusion matrix) in " .. table.concat(files, " "))
  H.eq(table.concat(grids, " "), "show_batch-1.png show_results-1.png top_losses-1.png", "grids")
  for name, sec in pairs(s) do
    if name ~= "vocab" and name ~= "end" then H.eq(table.concat(sec, "\n"), "RET " .. name .. " 0", name .. " printed") end
  end
end)

H.test("a failed write (file size limit, as a full disk) is an error naming the file; nothing left", function()
  local d = dir .. "/full"
  os.execute("mkdir -p " .. q(d))
  local script = dir .. "/full.lua"
  local f = assert(io.open(script, "w"))
  f:write([[
local d = arg[1]
local m = {}
for i = 1, 40 do m[i] = {} for j = 1, 40 do m[i][j] = i * j end end
for _, c in ipairs {
  { "a.png", function() ft.plot.plot{ {y = {1, 2, 3}}, output = d .. "/a.png" } end },
  { "a.svg", function() ft.plot.plot{ {y = {1, 2, 3}}, output = d .. "/a.svg" } end },
  { "g.png", function() ft.vision.write_grid(ft.tensor.rand{4, 3, 64, 64}, {"a", "b", "c", "d"}, d .. "/g.png") end },
  { "t.txt", function() ft.plot.imagesc(m, {output = d .. "/t.txt"}) end },
} do
  local ok, err = pcall(c[2])
  print(c[1], ok, err)
end
]])
  f:close()
  local out = sh(("sh -c %s"):format(q(("trap '' XFSZ; ulimit -f 2; exec %s %s %s"):format(q(FTLUA), q(script), q(d)))))
  for _, name in ipairs { "a.png", "a.svg", "g.png", "t.txt" } do
    local line = out:match(name:gsub("%p", "%%%0") .. "\t[^\n]*")
    assert(line and line:find("false", 1, true), name .. " did not fail:\n" .. out)
    assert(line:find("cannot write '" .. d .. "/" .. name .. "'", 1, true), "the message names the file: " .. line)
  end
  H.eq(table.concat(ls(d), " "), "", "files left (none, not even a temp)")
end)

os.execute("rm -rf " .. q(dir))
H.done()
