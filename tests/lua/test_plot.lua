-- test_plot.lua: ft.plot over gnuplot (files complete, dumb text, errors, no leaked processes).
local H = require "harness"
local self_exe = H.self_exe
local P = ft.plot

H.need_gnuplot("plot")

local dir = H.tmpdir()
local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end

local function mypid()
  local s = slurp("/proc/self/stat")
  return s:match("^(%d+)")
end
local PID = mypid()
local function children()
  local f = io.open("/proc/" .. PID .. "/task/" .. PID .. "/children")
  local s = f and f:read("a") or ""
  if f then f:close() end
  local n = 0
  for _ in s:gmatch("%d+") do n = n + 1 end
  return n
end

H.test("png file complete, size as requested", function()
  local fig <close> = P.figure{term = "png", output = dir .. "/a.png", width = 320, height = 200}
  fig:plot{ {x = {1, 2, 3}, y = {1, 4, 9}, title = "sq"}, {y = ft.tensor.tensor{3, 2, 1}, style = "points"},
            title = "t", xlabel = "x", ylabel = "y" }
  local s = slurp(dir .. "/a.png")
  H.eq(s:sub(1, 8), "\137PNG\r\n\26\n", "magic")
  H.eq(s:sub(13, 16), "IHDR", "IHDR")
  local w, h = string.unpack(">I4I4", s, 17)
  H.eq(w, 320, "width"); H.eq(h, 200, "height")
  H.eq(s:sub(-8, -5), "IEND", "IEND chunk at the end")
end)

H.test("svg and pdf files complete", function()
  P.plot{ {y = {1, 0 / 0, 3, math.huge, 5}}, output = dir .. "/b.svg" }
  assert(slurp(dir .. "/b.svg"):find("</svg>%s*$"), "svg ends with </svg>")
  P.plot{ {y = {1, 2, 3}}, output = dir .. "/c.pdf" }
  local s = slurp(dir .. "/c.pdf")
  H.eq(s:sub(1, 5), "%PDF-", "pdf header")
  assert(s:find("%%%%EOF%s*$"), "pdf ends with %%EOF")
  P.close()
end)

H.test("dumb plot to a file has title and tick labels", function()
  local fig <close> = P.figure{term = "dumb", output = dir .. "/d.txt", width = 60, height = 20}
  fig:plot{ {x = {0, 10, 20}, y = {100, 200, 300}}, title = "MyTitle" }
  local s = slurp(dir .. "/d.txt")
  assert(s:find("MyTitle", 1, true), "title in:\n" .. s)
  assert(s:find("300", 1, true) and s:find("20", 1, true), "tick labels in:\n" .. s)
end)

H.test("log axes accepted, non-positive points skipped", function()
  local fig <close> = P.figure{term = "dumb", output = dir .. "/e.txt"}
  fig:plot{ {x = {1e-5, 1e-3, 1e-1, 0}, y = {3, 2, 5, -1}}, logx = true, logy = true }
  assert(#slurp(dir .. "/e.txt") > 100)
end)

H.test("hist and imagesc write PNGs", function()
  local fig <close> = P.figure{term = "png", output = dir .. "/h.png"}
  local v = {}
  for i = 1, 200 do v[i] = math.sin(i) end
  fig:hist(v, {bins = 10, title = "hist"})
  H.eq(slurp(dir .. "/h.png"):sub(2, 4), "PNG", "hist png")
  fig:imagesc({{5, 1, 0}, {2, 7, 1}, {0, 0 / 0, 9}}, {title = "confusion", xlabels = {"a", "b", "c"},
              ylabels = {"a", "b", "c"}, output = dir .. "/i.png"})
  local s = slurp(dir .. "/i.png")
  H.eq(s:sub(2, 4), "PNG", "imagesc png")
  H.eq(s:sub(-8, -5), "IEND", "complete")
end)

H.test("gnuplot errors become Lua errors naming the command", function()
  local fig <close> = P.figure{term = "png", output = dir .. "/ok.png"}
  H.errors(function() fig:plot{ {y = {1, 2}}, output = dir .. "/missing/x.png" } end,
           "cannot write '" .. dir .. "/missing/x.png'", "does not exist")
  H.errors(function() fig:send("set foo") end, "unrecognized option", "set foo")
  H.errors(function() fig:plot{ {y = {1, 2}, style = "bogus"} } end, "with bogus")
  fig:plot{ {y = {1, 2}} } -- the figure still works after errors
  H.eq(slurp(dir .. "/ok.png"):sub(2, 4), "PNG", "png after errors")
  H.errors(function() P.figure{term = "gif"} end, "unknown terminal")
end)

H.test("bad options are named with what was received (base/args.h's messages)", function()
  H.errors(function() P.figure{titel = "x"} end, "ft.plot.figure: unknown option 'titel'", "title")
  H.errors(function() P.figure{width = 0} end, "ft.plot.figure: option 'width' must be an integer in [1, 100000], got 0")
  H.errors(function() P.figure{title = ("x"):rep(300)} end, "option 'title' must be a string of at most 255 bytes", "300")
  local fig <close> = P.figure{term = "dumb", output = dir .. "/opts.txt"}
  H.errors(function() fig:plot{ {y = {1, 2}}, logx = 1 } end, "ft.plot: option 'logx' must be true or false, got 1")
  H.errors(function() fig:plot{ {y = {1, 2}, titel = "a"} } end, "ft.plot: unknown option 'titel'")
  H.errors(function() fig:plot{ {y = {1, 2}}, xlable = "a" } end, "ft.plot: unknown option 'xlable'")
  H.errors(function() fig:hist({1, 2, 3}, {bins = 0}) end, "ft.plot.hist: option 'bins' must be an integer in [1, 100000], got 0")
  H.errors(function() fig:imagesc({{1}}, {cell_text = "yes", output = dir .. "/c.png"}) end, "ft.plot.imagesc: option 'cell_text' must be true or false")
  fig:plot{ {1, 4, 9}, {y = {1, 2}, title = "t"}, logy = true } -- array parts are series, not options
end)

H.test("missing gnuplot names the package", function()
  local p = io.popen("FTLUA_GNUPLOT=/nonexistent/gnuplot ./ftlua -e 'ft.plot.figure{term=\"dumb\"}' 2>&1")
  local out = p:read("a"); p:close()
  assert(out:find("apt-get install gnuplot-nox", 1, true), out)
end)

H.test("200 figures do not leak processes; close is idempotent", function()
  P.close(); collectgarbage()
  local before = children()
  for i = 1, 200 do
    local fig = P.figure{term = "dumb", output = dir .. "/l.txt"}
    if i % 50 == 0 then fig:plot{ {y = {1, 2, 3}} } end
    if i % 2 == 0 then fig:close(); fig:close() end -- the others: ft.plot.close() / __gc
    if i % 3 == 0 then P.close() end
  end
  P.close(); P.close()
  collectgarbage(); collectgarbage()
  H.eq(children(), before, "child processes")
  local fig = P.figure{term = "dumb", output = dir .. "/l.txt"}
  assert(fig:pid())
  fig:close(); fig:close()
  H.eq(fig:pid(), nil, "pid after close")
  H.errors(function() fig:plot{ {y = {1}} } end, "closed")
end)

local NAMES = require("synth_pets").BREEDS -- the 37 real breed names

-- The luaL_Buffer bug: tick names were added with the names' table pushed above the buffer's
-- box, so once the commands outgrew the buffer (about 30 long names) it broke with "attempt to
-- index a _UBOX* value". 37 and 150 long names, PNG and text.
H.test("imagesc with many long names (37, 150 rows): PNG and text table", function()
  for _, n in ipairs { 37, 150 } do
    local m, names = {}, {}
    for i = 1, n do
      names[i] = NAMES[(i - 1) % 37 + 1] .. (n > 37 and ("_" .. i) or "")
      m[i] = {}
      for j = 1, n do m[i][j] = (i == j) and 10 + i % 5 or ((i + 2 * j) % 11 == 0 and 1 or 0) end
    end
    local out = ("%s/m%d"):format(dir, n)
    P.imagesc(m, { title = "cm", xlabels = names, ylabels = names, xlabel = "Predicted", ylabel = "Actual",
      output = out .. ".png", width = 1400, height = 1300 })
    local s = slurp(out .. ".png")
    H.eq(s:sub(-8, -5), "IEND", "png complete")
    P.imagesc(m, { title = "cm", xlabels = names, ylabels = names, xlabel = "Predicted", ylabel = "Actual", output = out .. ".txt" })
    local t = slurp(out .. ".txt")
    assert(t:find("rows: Actual, columns: Predicted (numbered as the rows)", 1, true), t:sub(1, 300))
    local got = {}
    for i, name, counts in t:gmatch("\n%s*(%d+) (%S+)%s+([%d. ]+)") do
      H.eq(name, names[tonumber(i)], "row name")
      local row = {}
      for v in counts:gmatch("%S+") do row[#row + 1] = v == "." and 0 or tonumber(v) end
      got[tonumber(i)] = row
    end
    H.close(got, m, 0, "table " .. n)
  end
  P.close()
end)

H.test("60 series in one plot (each kept on the Lua stack: checked, not overflowed)", function()
  local t = { output = dir .. "/many.png" }
  for i = 1, 60 do t[i] = { y = { i, i + 1 }, title = "s" .. i } end
  P.plot(t)
  H.eq(slurp(dir .. "/many.png"):sub(-8, -5), "IEND", "png complete")
  P.close()
end)

H.test("imagesc without names: integer ticks; other columns than rows get a legend", function()
  P.imagesc({ { 1.5, 2 }, { 0, 0.25 }, { 3, 1 } }, { xlabels = { "x1", "x2" }, output = dir .. "/leg.txt" })
  local t = slurp(dir .. "/leg.txt")
  assert(t:find("column 1: x1", 1, true) and t:find("column 2: x2", 1, true), t)
  assert(t:find("0.25", 1, true) and t:find(" 0 ", 1, true), "non-integers shown as numbers:\n" .. t)
end)

-- A child ftlua in a fresh folder, with env; returns its output and the folder's files.
local function child(code, env)
  local cwd = H.tmpdir()
  local p = io.popen(("cd '%s' && env -u DISPLAY -u FTLUA_PLOT_DIR -u FTLUA_PLOT %s '%s' -e '%s' 2>&1"):format(
    cwd, env or "", self_exe(), code))
  local out = p:read("a")
  p:close()
  local files = {}
  local l = io.popen("ls -A '" .. cwd .. "'")
  for f in l:read("a"):gmatch("[^\n]+") do files[#files + 1] = f end
  l:close()
  os.execute("rm -rf '" .. cwd .. "'")
  return out, table.concat(files, " ")
end

H.test("where figures go: no output -> the terminal; never a file nobody named", function()
  local out, files = child([[ft.plot.plot{ {y = {1, 4, 9}}, title = "OnTheTerminal" }]])
  assert(out:find("OnTheTerminal", 1, true), out)
  H.eq(files, "", "files written")
  out, files = child([[local f = ft.plot.figure{term = "png"}; print(pcall(f.plot, f, { {y = {1, 2}} }))]])
  assert(out:find("give output = 'name.png'", 1, true), out)
  H.eq(files, "", "files written")
  out, files = child([[print(pcall(ft.plot.plot, { {y = {1, 2}} }))]], "FTLUA_PLOT=svg")
  assert(out:find("give output = 'name.svg'", 1, true), out)
  H.eq(files, "", "files written")
end)

H.test("where figures go: FTLUA_PLOT_DIR -> a fresh PNG there per plot", function()
  local pd = H.tmpdir()
  local out, files = child([[ft.plot.plot{ {y = {1, 4, 9}} }; ft.plot.hist({1, 2, 2, 3}); print(ft.plot.gcf():term())]],
    "FTLUA_PLOT_DIR='" .. pd .. "'")
  H.eq(files, "", "files in the current folder")
  local l = io.popen("ls '" .. pd .. "'")
  local got = l:read("a")
  l:close()
  H.eq(got, "ftlua-fig1-1.png\nftlua-fig1-2.png\n", "files in FTLUA_PLOT_DIR")
  assert(out:find("png\t" .. pd .. "/ftlua-fig1-2.png", 1, true), out)
  os.execute("rm -rf '" .. pd .. "'")
end)

H.test("a file is replaced whole: the old one stays when the new plot fails", function()
  local p = dir .. "/keep.png"
  P.plot{ {y = {1, 2, 3}}, output = p }
  local old = slurp(p)
  H.errors(function() P.plot{ {y = {1, 2}, style = "bogus"}, output = p } end, "cannot write '" .. p .. "'", "bogus")
  H.eq(slurp(p), old, "the old file")
  H.errors(function() P.plot{ {y = {1, 2}, style = "Bad!"}, output = p } end, "bad style") -- after the temp was made
  H.eq(slurp(p), old, "the old file")
  P.close()
  local l = io.popen("ls -A '" .. dir .. "' | grep -c ftlua-tmp")
  H.eq(l:read("a"), "0\n", "temp files left")
  l:close()
end)

os.execute("rm -rf " .. dir)
H.done()
