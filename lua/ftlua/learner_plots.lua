-- learner_plots.lua: fastai's plots of the Learner over ft.plot (gnuplot). Loaded once by
-- learner_api.lua, which calls the returned function with (M, Learner, Interp, Recorder) to add
-- these methods to the classes (the constructors stay learner_api's):
--   learn:plot_lr_find{skip_end = 5, output =}
--   learn.recorder:plot_loss{skip_start = 5, with_valid = true, output =}
--   learn.recorder:plot_sched{output =}          (lr and mom of the last group, per iteration)
--   learn.recorder:plot_metrics{output =}        (every recorded value, per epoch)
--   interp:plot_confusion_matrix{normalize = false, output =}
--   interp:plot_top_losses(k, {output =, ncols =})  (a PNG grid, or a text table for .txt)
--   learn:show_results{max_n = 9, ds_idx = 1, output =}   (actual / predicted under each image)
-- Each draws where docs/plot.md's rule says (output, else FTLUA_PLOT_DIR, else the terminal) and
-- returns nothing, so the REPL prints nothing after it.
local T = require "ftlua.tensor"
local figures = require "ftlua.figures"

local function ft() return package.loaded.ftlua end

local A = require "ftlua.args"
local fail, check_keys, set = A.fail, A.check_keys, A.set

-- ft.plot's options: the series (if any) in the array part, the fields, output and term.
local function plot_opts(o, extra, series)
  for i, s in ipairs(series or {}) do extra[i] = s end
  for _, k in ipairs { "output", "term" } do if o[k] ~= nil then extra[k] = o[k] end end
  return extra
end

-- Data parallel: only rank 0 draws (every rank has the same numbers).
local function draw(fn, ...)
  if not ft().dist.is_main() then return end
  return ft().plot[fn](...)
end

local function sub(t, i, j)
  local out = {}
  for k = i, j do out[#out + 1] = t[k] end
  return out
end

return function(M, Learner, Interp, Recorder)
  -- The loss at lr on the curve (linear in log lr between the two nearest points).
  local function loss_at(lrs, losses, lr)
    if #lrs == 0 then return nil end
    if lr <= lrs[1] then return losses[1] end
    for i = 2, #lrs do
      if lr <= lrs[i] then
        local a, b = math.log(lrs[i - 1]), math.log(lrs[i])
        local t = b > a and (math.log(lr) - a) / (b - a) or 0
        return losses[i - 1] + t * (losses[i] - losses[i - 1])
      end
    end
    return losses[#losses]
  end

  -- learn:plot_lr_find{skip_end = 5, output =, term =, suggestions = true}: the curve without
  -- its last skip_end points, each suggestion a named point.
  function Learner:plot_lr_find(opts)
    opts = check_keys("plot_lr_find", opts, set { "skip_end", "output", "term", "suggestions", "title" })
    local src = self._lr_find or self.recorder
    if not src or #(src.lrs or {}) == 0 then fail("plot_lr_find: run learn:lr_find() first") end
    local skip = opts.skip_end or 5
    if math.type(skip) ~= "integer" or skip < 0 then fail("plot_lr_find: skip_end must be a non-negative integer") end
    local n = math.max(#src.lrs - skip, 0)
    if n == 0 then fail("plot_lr_find: skip_end = %d leaves no point of %d", skip, #src.lrs) end
    local lrs, losses = sub(src.lrs, 1, n), sub(src.losses, 1, n)
    local series = { { x = lrs, y = losses, title = "loss" } }
    local points = {}
    local sg = src.suggestions
    if sg and opts.suggestions ~= false then
      for _, name in ipairs { "minimum", "steep", "valley", "slide" } do
        local lr = sg[name]
        -- minimum suggests lr_min/10 but is drawn where the loss is lowest, at lr_min (fastai)
        local at = lr and (name == "minimum" and lr * 10 or lr)
        if lr then
          local l = loss_at(lrs, losses, at)
          if l then
            points[#points + 1] = { name = name, lr = lr, at = at, loss = l }
            series[#series + 1] = { x = { at }, y = { l }, title = ("%s %.2e"):format(name, lr), style = "points" }
          end
        end
      end
    end
    draw("plot", plot_opts(opts, { logx = true, xlabel = "Learning Rate",
      ylabel = "Loss", title = opts.title }, series))
  end

  -- recorder:plot_loss{skip_start = 5, with_valid = true, output =}: train per iteration
  -- (0-based, as fastai), valid at the cumulative iteration count of each epoch.
  function Recorder:plot_loss(opts)
    opts = check_keys("plot_loss", opts, set { "skip_start", "with_valid", "output", "term", "title" })
    local skip = opts.skip_start or 5
    local n = #self.losses
    if n == 0 then fail("plot_loss: nothing recorded yet (fit first)") end
    skip = math.min(skip, n - 1)
    local x, train = {}, {}
    for i = skip + 1, n do x[#x + 1] = i - 1 train[#train + 1] = self.losses[i] end
    local series = { { x = x, y = train, title = "train" } }
    if opts.with_valid ~= false then
      local col
      for j, name in ipairs(self.metric_names or {}) do if name == "valid_loss" then col = j end end
      local vx, vy = {}, {}
      for e, it in ipairs(self.iters or {}) do
        local v = self.values[e] and col and self.values[e][col]
        if it >= skip and v and v == v then vx[#vx + 1] = it vy[#vy + 1] = v end
      end
      if #vx > 0 then series[2] = { x = vx, y = vy, title = "valid", style = "linespoints" } end
    end
    draw("plot", plot_opts(opts, { xlabel = "iteration", ylabel = "loss",
      title = opts.title or "Loss" }, series))
  end

  -- recorder:plot_sched{output =}: lr and mom of the last group per iteration, as two series
  -- on a log y axis (their scales differ by ~3 decades).
  function Recorder:plot_sched(opts)
    opts = check_keys("plot_sched", opts, set { "output", "term", "title" })
    local lrs, moms = self.lrs or {}, self.moms or {}
    if #lrs == 0 then fail("plot_sched: nothing recorded yet (fit first)") end
    local series = { { y = lrs, title = "lr" } }
    if #moms > 0 then series[2] = { y = moms, title = "mom" } end
    draw("plot", plot_opts(opts, { logy = true, xlabel = "iteration",
      ylabel = "lr, mom", title = opts.title or "Schedule (last group)" }, series))
  end

  -- recorder:plot_metrics{output =}: each recorded value (train_loss, valid_loss, metrics) per
  -- epoch (0-based, as the epoch table).
  function Recorder:plot_metrics(opts)
    opts = check_keys("plot_metrics", opts, set { "output", "term", "title" })
    local vals = self.values or {}
    if #vals == 0 then fail("plot_metrics: no epoch recorded yet (fit first)") end
    local epochs, series = {}, {}
    for e = 1, #vals do epochs[e] = e - 1 end
    for j, name in ipairs(self.metric_names or {}) do
      local y = {}
      for e = 1, #vals do y[e] = vals[e][j] end
      series[#series + 1] = { x = epochs, y = y, title = name:gsub("_", " "), style = "linespoints" }
    end
    draw("plot", plot_opts(opts, { xlabel = "epoch", ylabel = "value",
      title = opts.title or "Metrics" }, series))
  end

  ---------------------------------------------------------------- interpretation

  -- The confusion matrix's size in pixels for n classes whose longest name has len characters:
  -- fastai leaves figsize to the caller (the book passes figsize = (12, 12), dpi = 60 at 37
  -- classes, 720 px); here the figure grows with the class count so that each cell holds its
  -- count (24 px a cell, 9 pt tick labels) and the names have their margin (~7 px a character).
  local function cm_size(n, len)
    local cells = n * (n > 12 and 24 or 48)
    local names = len * 7 + 60 -- the margins plot_imagesc.c leaves: names + 60 left and below, 130 right, 50 on top
    return math.max(640, names + cells + 130), math.max(480, names + cells + 50)
  end

  -- interp:plot_confusion_matrix{normalize = false, output =, title =, width =, height =}: rows
  -- actual, columns predicted (as confusion_matrix()), each count in its cell; normalize divides
  -- each row by its sum (2 decimals, as fastai's norm_dec). In the terminal: the counts as a table.
  function Interp:plot_confusion_matrix(opts)
    opts = check_keys("plot_confusion_matrix", opts, set { "normalize", "output", "term", "title", "width", "height" })
    local cm = self:confusion_matrix():totable()
    if opts.normalize then
      for i = 1, #cm do
        local s = 0
        for j = 1, #cm[i] do s = s + cm[i][j] end
        for j = 1, #cm[i] do cm[i][j] = s > 0 and math.floor(cm[i][j] / s * 100 + 0.5) / 100 or 0 end
      end
    end
    local names, len = {}, 0
    for i, v in ipairs(self.vocab) do names[i] = tostring(v) len = math.max(len, #names[i]) end
    local w, h = cm_size(#names, len)
    draw("imagesc", cm, plot_opts(opts, { title = opts.title or "Confusion matrix", xlabels = names,
      ylabels = names, xlabel = "Predicted", ylabel = "Actual", width = opts.width or w, height = opts.height or h }))
  end

  -- The images of items idx (1-based, in the loader's order) of a loader that is not shuffled:
  -- a [k, C, H, W] tensor on the CPU, rows in the order of idx.
  local function images_at(dl, idx, what)
    local want, picked, seen, base = {}, {}, 0, 0
    for i, j in ipairs(idx) do want[j] = want[j] or {} table.insert(want[j], i) end
    for x in dl:batches() do
      local n = x:size(1)
      for j = base + 1, base + n do
        for _, i in ipairs(want[j] or {}) do picked[i] = x[j - base]:cpu():clone() seen = seen + 1 end
      end
      base = base + n
      if seen >= #idx then break end
    end
    for i = 1, #idx do if not picked[i] then fail("%s: valid item %d not found in the loader", what, idx[i]) end end
    return T.stack(picked)
  end

  -- interp:plot_top_losses(k = 9, {output =, ncols =, largest = true}): the k valid items with
  -- the largest losses, titled prediction/actual / loss / probability (of the prediction), as
  -- fastai. A PNG grid at output (a .txt output: the table), else in FTLUA_PLOT_DIR, else the
  -- titles as a text grid on the terminal.
  function Interp:plot_top_losses(k, opts)
    opts = check_keys("plot_top_losses", opts, set { "output", "ncols", "nrows", "largest" })
    if k ~= nil and (math.type(k) ~= "integer" or k < 1) then
      fail("plot_top_losses: k must be a positive integer, got %s", tostring(k))
    end
    k = math.min(k or 9, self.losses:size(1))
    local losses, idx = self:top_losses(k, opts.largest)
    local lt, it = losses:totable(), idx:totable()
    local rows = {}
    local dec, targs = self.decoded:totable(), self.targs:totable()
    for i = 1, k do
      local j = it[i]
      local pred, actual = dec[j], targs[j]
      local prob = self.probs[{ j, pred }]
      if type(prob) ~= "number" then prob = prob:item() end
      local r = { idx = j, pred = tostring(self.vocab[pred]), actual = tostring(self.vocab[actual]), loss = lt[i], prob = prob }
      r.title = ("%s/%s / %.2f / %.2f"):format(r.pred, r.actual, r.loss, r.prob)
      rows[i] = r
    end
    if not ft().dist.is_main() then return end
    local output = opts.output
    if output and output:match("%.txt$") then
      local lines = { "Prediction/Actual/Loss/Probability" }
      for i, r in ipairs(rows) do lines[#lines + 1] = ("%d\t%d\t%s"):format(i, r.idx, r.title) end
      ft().plot._write_file(output, table.concat(lines, "\n") .. "\n")
      return
    end
    if output and not output:match("%.png$") then fail("plot_top_losses: the grid is a PNG (or .txt for a table): %s", output) end
    local dl = self.learn.dls.valid
    local titles, idxs = {}, {}
    for i, r in ipairs(rows) do titles[i], idxs[i] = r.title, r.idx end
    local info = dl:info()
    local ncols = opts.ncols or (opts.nrows and math.ceil(k / opts.nrows)) or math.ceil(math.sqrt(k))
    local text = {} -- in the terminal: the numbers on their own line
    for i, r in ipairs(rows) do text[i] = ("%s/%s\n%.2f / %.2f"):format(r.pred, r.actual, r.loss, r.prob) end
    if not output and not figures.auto_path("top_losses") and not figures.term_images() then -- no images needed
      figures.text_grid(text, ncols, "Prediction/Actual/Loss/Probability",
        "(the text of the grid: give output = \"top_losses.png\" for the picture)")
      return
    end
    figures.grid(images_at(dl, idxs, "plot_top_losses"), titles, { path = output, name = "top_losses", ncols = ncols,
      mean = info.mean, std = info.std, text_labels = text, title = "Prediction/Actual/Loss/Probability",
      path_key = "output" })
  end

  ---------------------------------------------------------------- show_results

  -- learn:show_results{max_n = 9, ds_idx = 1, nrows =, ncols =, output =}: the first max_n items
  -- of one batch of the valid (ds_idx = 1) or train (0, as its loader gives them) loader, each
  -- with its actual label and, under it, the model's prediction: green when right, red when
  -- wrong (in the terminal: "-> prediction", and "(wrong)" after a wrong one). As fastai's,
  -- which shows one batch of the valid set (fastai's is shuffled; ours is the first batch).
  function Learner:show_results(opts)
    opts = check_keys("show_results", opts, set { "max_n", "ds_idx", "nrows", "ncols", "output" })
    local max_n = opts.max_n or 9
    if math.type(max_n) ~= "integer" or max_n < 1 then fail("show_results: max_n must be a positive integer, got %s", tostring(max_n)) end
    if opts.ds_idx ~= nil and opts.ds_idx ~= 0 and opts.ds_idx ~= 1 then
      fail("show_results: ds_idx must be 1 (valid) or 0 (train), got %s", tostring(opts.ds_idx))
    end
    if opts.output ~= nil and not tostring(opts.output):match("%.png$") then
      fail("show_results: output must be a .png file, got %s", tostring(opts.output))
    end
    local dl = opts.ds_idx == 0 and self.dls.train or self.dls.valid
    local x, y = dl:one_batch()
    if not x then fail("show_results: the %s loader has no batch", opts.ds_idx == 0 and "train" or "valid") end
    if not y then fail("show_results: the loader has no labels to compare with") end
    local n = math.min(max_n, x:size(1))
    x, y = x:narrow(1, 1, n), y:narrow(1, 1, n)
    local out = T.no_grad(function()
      self.model:eval()
      return self.model(x)
    end)
    local _, pred = out:float():max(2)
    local yt, pt = y:cpu():totable(), pred:cpu():totable()
    if not ft().dist.is_main() then return end
    local labels, text = {}, {}
    for i = 1, n do
      local a, p = tostring(self.dls.vocab[yt[i]]), tostring(self.dls.vocab[pt[i]])
      local right = yt[i] == pt[i]
      local colour = right and "\27[32m" or "\27[31m"
      labels[i] = a .. "\n" .. colour .. p .. "\27[0m"
      text[i] = a .. "\n" .. colour .. "-> " .. p .. (right and "" or " (wrong)") .. "\27[0m"
    end
    local info = dl:info()
    local ncols = opts.ncols or (opts.nrows and math.ceil(n / opts.nrows)) or math.ceil(math.sqrt(n))
    figures.grid(x, labels, { path = opts.output, name = "show_results", ncols = ncols, mean = info.mean,
      std = info.std, text_labels = text, title = "show_results: actual, then predicted", path_key = "output" })
  end
end
