-- plots37.lua: a session at the Pets dataset's real size (37 classes, the real breed names) for
-- tests/lua/test_plots_37.lua, which runs it in a child process and reads its stdout:
--   ./ftlua tests/lua/plots37.lua OUT terminal|files
-- terminal: every figure with no output (the terminal, or FTLUA_PLOT_DIR when set);
-- files: every figure with an explicit output/path in OUT. Lines "REF ..." are the references,
-- computed here from get_preds without the code under test; "==== name" starts each figure's
-- output; "RET name n" is how many values a call returned. Not a test itself.
local ft = require "ftlua"
local T, nn = ft.tensor, ft.nn
local out, mode = arg[1], arg[2]
T.set_num_threads(1)

local NAMES = require("synth_pets").BREEDS -- the 37 real breed names

-- Class c: a bright 2x2 block at its own place of a 7x6 grid, over noise; 16x16 grey.
local function data(per_class, seed)
  T.manual_seed(seed)
  local n = #NAMES * per_class
  local x = T.rand { n, 16, 16 } * 80
  local y = {}
  for i = 1, n do
    local c = (i - 1) % #NAMES + 1
    y[i] = c
    local r, k = (c - 1) // 6 * 2 + 1, (c - 1) % 6 * 2 + 2
    x[i][{ { r, r + 1 }, { k, k + 1 } }] = 250
  end
  return x:to("uint8"), T.tensor(y, "int64")
end
local xt, yt = data(10, 1)
local xv, yv = data(2, 2)
local dls = ft.vision.ImageDataLoaders.from_tensors(xt, yt, xv, yv, { bs = 32, channels = 1, verbose = false,
  seed = 1, vocab = NAMES })
local model = nn.Sequential {
  nn.Conv2d(1, 16, 3, { stride = 2, padding = 1, bias = false }), nn.BatchNorm2d(16), nn.ReLU(),
  nn.Conv2d(16, 32, 3, { stride = 2, padding = 1, bias = false }), nn.BatchNorm2d(32), nn.ReLU(),
  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, #NAMES),
}
local learn = ft.Learner(dls, model, { metrics = ft.metrics.error_rate })
learn:lr_find { num_it = 12 }
for i, lr in ipairs(learn.recorder.lrs) do print(("REF lrfind %.17g %.17g"):format(lr, learn.recorder.losses[i])) end
learn:fit_one_cycle(6, 5e-2)

-- References from get_preds: the confusion counts, the top losses, the first batch's predictions.
local probs, targs, losses = learn:get_preds { with_loss = true }
local _, dec = probs:max(2)
local pt, tt, lt = dec:totable(), targs:totable(), losses:totable()
local cm = {}
for i = 1, #NAMES do cm[i] = {} for j = 1, #NAMES do cm[i][j] = 0 end end
for i = 1, #tt do cm[tt[i]][pt[i]] = cm[tt[i]][pt[i]] + 1 end
for i = 1, #NAMES do print("REF cm " .. i .. " " .. table.concat(cm[i], " ")) end
local order = {}
for i = 1, #lt do order[i] = i end
table.sort(order, function(a, b) return lt[a] > lt[b] end)
for r = 1, 9 do
  local j = order[r]
  print(("REF top %d %s %s %.2f %.2f"):format(r, NAMES[pt[j]], NAMES[tt[j]], lt[j], probs[j][pt[j]]))
end
local bs = dls.valid:info().bs
for i = 1, math.min(9, bs) do print(("REF result %d %s %s"):format(i, NAMES[tt[i]], NAMES[pt[i]])) end
local _, ybatch = dls.train:one_batch()
local yb = ybatch:totable()
for i = 1, 9 do print(("REF batch %d %s"):format(i, NAMES[yb[i]])) end

local interp = ft.ClassificationInterpretation.from_learner(learn)
local function call(name, f, ...)
  print("==== " .. name)
  io.stdout:flush()
  print("RET " .. name .. " " .. select("#", f(...)))
end
local function o(file) return mode == "files" and { output = out .. "/" .. file } or nil end
call("plot_lr_find", learn.plot_lr_find, learn, o "lr_find.png")
call("plot_loss", learn.recorder.plot_loss, learn.recorder, o "loss.png")
call("plot_sched", learn.recorder.plot_sched, learn.recorder, o "sched.png")
call("plot_metrics", learn.recorder.plot_metrics, learn.recorder, o "metrics.png")
call("plot_confusion_matrix", interp.plot_confusion_matrix, interp, o "cm.png")
call("plot_top_losses", interp.plot_top_losses, interp, 9, o "top_losses.png")
call("show_batch", dls.show_batch, dls, mode == "files" and { path = out .. "/batch.png" } or nil)
call("show_results", learn.show_results, learn, o "results.png")
print("==== vocab")
print(dls.vocab)
print("==== end")
