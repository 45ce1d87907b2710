-- test_plot.lua: ft.plot over gnuplot (files complete, dumb text, errors, no leaked processes).
local H = require "harness"
local P = ft.plot

if os.execute("command -v gnuplot >/dev/null 2>&1") ~= true then
  H.skip("plot", "gnuplot is missing (apt-get install gnuplot-nox)")
  H.done()
end

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
           "cannot open file", "set output")
  H.errors(function() fig:send("set foo") end, "unrecognized option", "set foo")
  H.errors(function() fig:plot{ {y = {1, 2}, style = "bogus"} } end, "with bogus")
  fig:plot{ {y = {1, 2}} } -- the figure still works after errors
  H.eq(slurp(dir .. "/ok.png"):sub(2, 4), "PNG", "png after errors")
  H.errors(function() P.figure{term = "gif"} end, "unknown terminal")
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

os.execute("rm -rf " .. dir)
H.done()
