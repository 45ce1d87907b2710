-- test_learner_plots.lua: the learner's plots over ft.plot (lua/ftlua/learner_plots.lua):
-- plot_lr_find, recorder:plot_loss/plot_sched/plot_metrics, interp:plot_confusion_matrix and
-- plot_top_losses, show_results. A tiny learner on synthetic data; every plot writes a complete
-- PNG and returns nothing, the dumb-terminal text has the labels, and the data sent to gnuplot
-- (logged by tests/lua/gnuplot_log.sh: this file re-runs itself with it) equal the recorder's
-- and the interp's. 37 classes: tests/lua/test_plots_37.lua.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"
local self_exe = H.self_exe
local G = require "gplog"
local nn = ft.nn

H.need_gnuplot("learner plots")

local root = os.getenv("FTLUA_ROOT") or "."
local LOG = os.getenv("FTLUA_TEST_GP_LOG")
if not LOG then -- gnuplot must be the logging one from the first figure on: run again with it
  LOG = os.tmpname()
  local exe = self_exe()
  local ok = os.execute(("env -u DISPLAY -u FTLUA_PLOT_DIR FTLUA_TEST_GP_LOG='%s' FTLUA_GNUPLOT='%s/tests/lua/gnuplot_log.sh' '%s' '%s'")
    :format(LOG, root, exe, arg[0]))
  os.remove(LOG)
  os.exit(ok == true and 0 or 1)
end
-- The last plot sent, which must have been written to file.
local function sent(file)
  local plots = G.plots(LOG)
  local p = plots[#plots]
  assert(p and p.output and p.output:find("/." .. file:match("[^/]+$") .. ".", 1, true), "the last plot went to " .. tostring(p and p.output))
  return p
end
local function none(...) H.eq(select("#", ...), 0, "values returned") end

T.set_num_threads(1)

-- Two classes of grey images (bright left half or right half): tests/lua/synth.lua.
local synth = require("synth").halves

local function cnn(c_in, n_out)
  return nn.Sequential {
    nn.Conv2d(c_in, 8, 3, { stride = 2, padding = 1, bias = false }), nn.BatchNorm2d(8), nn.ReLU(),
    nn.Conv2d(8, 16, 3, { stride = 2, padding = 1, bias = false }), nn.BatchNorm2d(16), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, n_out),
  }
end

local dir = H.tmpdir()
local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local function png(p, w, h)
  local s = slurp(p)
  H.eq(s:sub(1, 8), "\137PNG\r\n\26\n", p .. " magic")
  H.eq(s:sub(13, 16), "IHDR", p .. " IHDR")
  local pw, ph = string.unpack(">I4I4", s, 17)
  assert(pw > 0 and ph > 0, p .. ": empty size")
  if w then H.eq(pw, w, p .. " width") H.eq(ph, h, p .. " height") end
  H.eq(s:sub(-8, -5), "IEND", p .. " IEND at the end")
end
local function has(p, ...)
  local s = slurp(p)
  for _, w in ipairs { ... } do assert(s:find(w, 1, true), ("'%s' not in %s:\n%s"):format(w, p, s)) end
end

T.manual_seed(0)
local xt, yt = synth(128, 16, 1)
local xv, yv = synth(48, 16, 2)
local dls = ft.vision.ImageDataLoaders.from_tensors(xt, yt, xv, yv, { bs = 32, channels = 1, verbose = false,
  seed = 1, vocab = { "left", "right" } })
local learn = ft.Learner(dls, cnn(1, 2), { metrics = ft.metrics.error_rate })
local lr_min, lr_steep, sg = learn:lr_find { num_it = 30 }
local rec_lrs, rec_losses = learn.recorder.lrs, learn.recorder.losses
local n_find = #rec_lrs

H.test("plot_lr_find: PNG, data = recorder minus skip_end, suggestions marked", function()
  none(learn:plot_lr_find { output = dir .. "/lr.png" })
  png(dir .. "/lr.png", 640, 480)
  local d = sent("lr.png")
  H.eq(#d.series[1], n_find - 5, "points")
  for i = 1, n_find - 5 do
    H.close(d.series[1][i], { rec_lrs[i], rec_losses[i] }, 1e-15, "point " .. i)
  end
  assert(#d.series >= 3, "the suggestions are marked")
  local set = G.settings(d) .. "\n" .. d.plot
  assert(d.plot:find(("minimum %.2e"):format(lr_min), 1, true), "minimum in " .. d.plot)
  assert(d.plot:find(("steep %.2e"):format(lr_steep), 1, true), "steep in " .. d.plot)
  H.close(d.series[2][1][1], lr_min * 10, 1e-12, "minimum drawn at lr_min (fastai)")
  none(learn:plot_lr_find { skip_end = 0, output = dir .. "/lr0.svg" })
  H.eq(#sent("lr0.svg").series[1], n_find, "skip_end = 0")
  learn:plot_lr_find { output = dir .. "/lr.txt" }
  has(dir .. "/lr.txt", "Learning Rate", "Loss", "minimum")
end)

learn:fit_one_cycle(2, 1e-2)

H.test("recorder methods after a fit; plot_lr_find still shows lr_find's curve", function()
  assert(learn.recorder.plot_loss, "recorder has plot_loss")
  learn:plot_lr_find { output = dir .. "/lr2.png" }
  H.eq(#sent("lr2.png").series[1], n_find - 5, "lr_find's points")
end)

H.test("plot_loss: train per iteration, valid at the epochs' iteration counts", function()
  local rec = learn.recorder
  none(rec:plot_loss { output = dir .. "/loss.png" })
  png(dir .. "/loss.png", 640, 480)
  local d = sent("loss.png")
  local train, valid = d.series[1], d.series[2]
  H.eq(#train, #rec.losses - 5, "skip_start 5")
  H.eq(train[1][1], 5, "x starts at skip_start (0-based)")
  H.close(train[1][2], rec.losses[6], 1e-15, "first train point")
  local n_after = 0
  for _, it in ipairs(rec.iters) do if it >= 5 then n_after = n_after + 1 end end
  H.eq(#valid, n_after, "valid points from skip_start on (as fastai)")
  H.eq(valid[#valid][1], #rec.losses, "last valid at the last iteration")
  H.close(valid[#valid][2], rec.values[2][2], 1e-15, "valid_loss")
  rec:plot_loss { skip_start = 0, output = dir .. "/loss0.png" }
  local v0 = sent("loss0.png").series[2]
  H.eq(#v0, 2, "one valid point per epoch")
  H.eq(v0[1][1], rec.iters[1], "valid at iters")
  H.close(v0[1][2], rec.values[1][2], 1e-15, "valid_loss epoch 1")
  rec:plot_loss { output = dir .. "/loss.txt", with_valid = false }
  has(dir .. "/loss.txt", "Loss", "iteration")
end)

H.test("plot_sched and plot_metrics", function()
  local rec = learn.recorder
  none(rec:plot_sched { output = dir .. "/sched.png" })
  png(dir .. "/sched.png")
  local d = sent("sched.png")
  H.eq(#d.series[1], #rec.losses, "lr per iteration")
  H.eq(#d.series[2], #rec.losses, "mom per iteration")
  H.close(d.series[1][3][2], rec.lrs[3], 1e-15, "lr 3")
  rec:plot_sched { output = dir .. "/sched.txt" }
  has(dir .. "/sched.txt", "Schedule", "iteration")
  none(rec:plot_metrics { output = dir .. "/metrics.png" })
  png(dir .. "/metrics.png")
  local m = sent("metrics.png")
  H.eq(#m.series, 3, "train_loss, valid_loss, error_rate")
  H.eq(#m.series[3], 2, "error_rate per epoch")
  H.close(m.series[2][1], { 0, rec.values[1][2] }, 1e-15, "valid_loss at epoch 0")
  rec:plot_metrics { output = dir .. "/metrics.txt" }
  has(dir .. "/metrics.txt", "Metrics", "epoch")
end)

local interp = ft.ClassificationInterpretation.from_learner(learn)

H.test("plot_confusion_matrix: the values of confusion_matrix(), labels", function()
  none(interp:plot_confusion_matrix { output = dir .. "/cm.png" })
  png(dir .. "/cm.png", 640, 480)
  local cm = sent("cm.png")
  -- the reference: counted here from the predictions
  local want = { { 0, 0 }, { 0, 0 } }
  local t, d = interp.targs:totable(), interp.decoded:totable()
  for i = 1, #t do want[t[i]][d[i]] = want[t[i]][d[i]] + 1 end
  H.close(cm.matrix, want, 0, "matrix")
  for i = 1, 2 do for j = 1, 2 do H.eq(tonumber(cm.labels[i][j]), want[i][j], ("count in cell %d,%d"):format(i, j)) end end
  H.close(cm.xtics, { "left", "right" }, 0, "x ticks")
  local set = G.settings(cm)
  assert(set:find("'Predicted'", 1, true) and set:find("'Actual'", 1, true), set)
  interp:plot_confusion_matrix { normalize = true, output = dir .. "/cm.txt" }
  has(dir .. "/cm.txt", "Confusion matrix", "rows: Actual, columns: Predicted", "left", "right")
  local rows = {}
  for name, a, b in slurp(dir .. "/cm.txt"):gmatch("%d (%a+)%s+(%S+)%s+(%S+)") do rows[name] = { tonumber(a) or 0, tonumber(b) or 0 } end
  for i, name in ipairs { "left", "right" } do
    local s = want[i][1] + want[i][2]
    if s > 0 then H.close(rows[name], { want[i][1] / s, want[i][2] / s }, 0.006, "normalized row " .. name) end
  end
end)

H.test("plot_top_losses: a PNG grid; titles pred/actual/loss/prob", function()
  none(interp:plot_top_losses(4, { output = dir .. "/top.png" }))
  png(dir .. "/top.png")
  none(interp:plot_top_losses(3, { output = dir .. "/top.txt" }))
  has(dir .. "/top.txt", "Prediction/Actual/Loss/Probability")
  -- the reference: the largest losses, sorted here
  local l, p, t, d = interp.losses:totable(), interp.probs:totable(), interp.targs:totable(), interp.decoded:totable()
  local order = {}
  for i = 1, #l do order[i] = i end
  table.sort(order, function(a, b) return l[a] > l[b] end)
  local lines = {}
  for line in slurp(dir .. "/top.txt"):gmatch("[^\n]+") do lines[#lines + 1] = line end
  H.eq(#lines, 4, "header and 3 rows")
  for r = 1, 3 do
    local j = order[r]
    local names = { "left", "right" }
    H.eq(lines[r + 1], ("%d\t%d\t%s/%s / %.2f / %.2f"):format(r, j, names[d[j]], names[t[j]], l[j], p[j][d[j]]), "row " .. r)
  end
  H.errors(function() interp:plot_top_losses(0) end, "positive integer")
end)

H.test("show_results: a PNG grid, nothing returned; bad options named", function()
  none(learn:show_results { output = dir .. "/results.png", max_n = 4 })
  png(dir .. "/results.png")
  H.errors(function() learn:show_results { output = dir .. "/r.jpg" } end, "show_results", ".png")
  H.errors(function() learn:show_results { max_n = 0 } end, "max_n")
  H.errors(function() learn:show_results { bogus = 1 } end, "unknown option")
end)

H.test("errors: unknown options, plot_lr_find before lr_find", function()
  H.errors(function() learn.recorder:plot_loss { bogus = 1 } end, "unknown option")
  local l2 = ft.Learner(dls, cnn(1, 2))
  H.errors(function() l2:plot_lr_find() end, "lr_find")
end)

ft.plot.close()
os.execute("rm -rf '" .. dir .. "'")
H.done()
