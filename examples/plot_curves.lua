-- examples/plot_curves.lua: plot your own curves with ft.plot (gnuplot).
-- Run: ./ftlua examples/plot_curves.lua [out_dir]   (writes curves.png, hist.png, heat.txt;
-- out_dir is made when it does not exist yet)
local T, plot = ft.tensor, ft.plot
local out = arg[1] or os.getenv("TMPDIR") or "/tmp"
if os.execute("mkdir -p '" .. out:gsub("'", "'\\''") .. "'") ~= true then
  error(("cannot make the folder '%s'"):format(out), 0)
end

local xs, sin, cos = {}, {}, {}
for i = 0, 100 do
  local x = i / 100 * 2 * math.pi
  xs[#xs + 1], sin[#sin + 1], cos[#cos + 1] = x, math.sin(x), math.cos(x)
end
plot.plot {
  { x = xs, y = sin, title = "sin" },
  { x = xs, y = cos, title = "cos", style = "linespoints" },
  title = "Two curves", xlabel = "x", ylabel = "y", output = out .. "/curves.png",
}

T.manual_seed(1)
plot.hist(T.randn { 1000 }, { bins = 30, title = "1000 normal draws", output = out .. "/hist.png" })

-- A heat map as text (a table of the values), for a terminal without a display.
plot.imagesc({ { 5, 1, 0 }, { 2, 7, 1 }, { 0, 1, 9 } },
  { title = "a confusion matrix", xlabels = { "a", "b", "c" }, ylabels = { "a", "b", "c" }, output = out .. "/heat.txt" })
plot.close()
print("wrote " .. out .. "/curves.png, hist.png and heat.txt")
