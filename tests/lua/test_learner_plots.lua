-- test_learner_plots.lua: the learner's plots over ft.plot (lua/ftlua/learner_plots.lua):
-- plot_lr_find, recorder:plot_loss/plot_sched/plot_metrics, interp:plot_confusion_matrix and
-- plot_top_losses. A tiny learner on synthetic data; every plot writes a complete PNG, the
-- dumb-terminal text has the labels, and the data sent equal the recorder's / the interp's.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"
local nn = ft.nn

if os.execute("command -v gnuplot >/dev/null 2>&1") ~= true then
  H.skip("learner plots", "gnuplot is missing (apt-get install gnuplot-nox)")
  H.done()
end

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
  local d = learn:plot_lr_find { output = dir .. "/lr.png" }
  png(dir .. "/lr.png", 640, 480)
  H.eq(#d.lrs, n_find - 5, "points")
  for i = 1, n_find - 5 do
    H.eq(d.lrs[i], rec_lrs[i], "lr " .. i)
    H.eq(d.losses[i], rec_losses[i], "loss " .. i)
  end
  assert(#d.points >= 2, "the suggestions are marked")
  local names = {}
  for _, p in ipairs(d.points) do names[p.name] = p.lr end
  H.eq(names.minimum, lr_min, "minimum")
  H.eq(names.steep, lr_steep, "steep")
  local d0 = learn:plot_lr_find { skip_end = 0, output = dir .. "/lr0.svg" }
  H.eq(#d0.lrs, n_find, "skip_end = 0")
  learn:plot_lr_find { output = dir .. "/lr.txt" }
  has(dir .. "/lr.txt", "Learning Rate", "Loss", "minimum")
end)

learn:fit_one_cycle(2, 1e-2)

H.test("recorder methods after a fit; plot_lr_find still shows lr_find's curve", function()
  assert(learn.recorder.plot_loss, "recorder has plot_loss")
  local d = learn:plot_lr_find { output = dir .. "/lr2.png" }
  H.eq(#d.lrs, n_find - 5, "lr_find's points")
end)

H.test("plot_loss: train per iteration, valid at the epochs' iteration counts", function()
  local rec = learn.recorder
  local d = rec:plot_loss { output = dir .. "/loss.png" }
  png(dir .. "/loss.png", 640, 480)
  H.eq(#d.train, #rec.losses - 5, "skip_start 5")
  H.eq(d.x[1], 5, "x starts at skip_start (0-based)")
  H.eq(d.train[1], rec.losses[6], "first train point")
  local n_after = 0
  for _, it in ipairs(rec.iters) do if it >= 5 then n_after = n_after + 1 end end
  H.eq(#d.valid, n_after, "valid points from skip_start on (as fastai)")
  H.eq(d.valid_x[#d.valid_x], #rec.losses, "last valid at the last iteration")
  H.eq(d.valid[#d.valid], rec.values[2][2], "valid_loss")
  local d0 = rec:plot_loss { skip_start = 0, output = dir .. "/loss0.png" }
  H.eq(#d0.valid, 2, "one valid point per epoch")
  H.eq(d0.valid_x[1], rec.iters[1], "valid at iters")
  H.eq(d0.valid[1], rec.values[1][2], "valid_loss epoch 1")
  rec:plot_loss { output = dir .. "/loss.txt", with_valid = false }
  has(dir .. "/loss.txt", "Loss", "iteration")
end)

H.test("plot_sched and plot_metrics", function()
  local rec = learn.recorder
  local d = rec:plot_sched { output = dir .. "/sched.png" }
  png(dir .. "/sched.png")
  H.eq(#d.lr, #rec.losses, "lr per iteration")
  H.eq(#d.mom, #rec.losses, "mom per iteration")
  rec:plot_sched { output = dir .. "/sched.txt" }
  has(dir .. "/sched.txt", "Schedule", "iteration")
  local m = rec:plot_metrics { output = dir .. "/metrics.png" }
  png(dir .. "/metrics.png")
  H.eq(#m.error_rate, 2, "error_rate per epoch")
  H.eq(m.valid_loss[1], rec.values[1][2], "valid_loss")
  rec:plot_metrics { output = dir .. "/metrics.txt" }
  has(dir .. "/metrics.txt", "Metrics", "epoch")
end)

local interp = ft.ClassificationInterpretation.from_learner(learn)

H.test("plot_confusion_matrix: the values of confusion_matrix(), labels", function()
  local cm = interp:plot_confusion_matrix { output = dir .. "/cm.png" }
  png(dir .. "/cm.png")
  H.eq(#cm, 2, "rows")
  local want = interp:confusion_matrix():totable()
  for i = 1, 2 do for j = 1, 2 do H.eq(cm[i][j], want[i][j], ("cm[%d][%d]"):format(i, j)) end end
  local cn = interp:plot_confusion_matrix { normalize = true, output = dir .. "/cm.txt" }
  for i = 1, 2 do
    local s = want[i][1] + want[i][2]
    if s > 0 then H.close(cn[i][1] + cn[i][2], 1, 0.02, "normalized row " .. i) end
  end
  has(dir .. "/cm.txt", "Predicted", "Confusion matrix", "left", "right") -- dumb omits a rotated ylabel
end)

H.test("plot_top_losses: a PNG grid; titles pred/actual/loss/prob", function()
  local rows, out = interp:plot_top_losses(4, { output = dir .. "/top.png" })
  png(out)
  H.eq(#rows, 4, "k rows")
  local l, idx = interp:top_losses(4)
  H.close(rows[1].loss, l:totable()[1], 1e-6, "largest loss first")
  H.eq(rows[1].idx, idx:totable()[1], "index")
  assert(rows[1].title:match("^%a+/%a+ / [%d.]+ / [%d.]+$"), rows[1].title)
  interp:plot_top_losses(3, { output = dir .. "/top.txt" })
  has(dir .. "/top.txt", "Prediction/Actual/Loss/Probability")
end)

H.test("errors: unknown options, plot_lr_find before lr_find", function()
  H.errors(function() learn.recorder:plot_loss { bogus = 1 } end, "unknown option")
  local l2 = ft.Learner(dls, cnn(1, 2))
  H.errors(function() l2:plot_lr_find() end, "lr_find")
end)

ft.plot.close()
os.execute("rm -rf '" .. dir .. "'")
H.done()
