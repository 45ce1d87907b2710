-- learner_plots.lua: fastai's plots of the Learner over ft.plot (gnuplot). Loaded once by
-- learner_api.lua, which calls the returned function with (M, Learner, Interp):
--   learn:plot_lr_find{skip_end = 5, output =}
--   learn.recorder:plot_loss{skip_start = 5, with_valid = true, output =}
--   learn.recorder:plot_sched{output =}          (lr and mom of the last group, per iteration)
--   learn.recorder:plot_metrics{output =}        (every recorded value, per epoch)
--   interp:plot_confusion_matrix{normalize = false, output =}
--   interp:plot_top_losses(k, {output =, ncols =})  (a PNG grid, or a text table for .txt)
-- Each returns the data it sent, so that tests and scripts can check them.
local T = require "ftlua.tensor"

local function ft() return package.loaded.ftlua end

local function fail(fmt, ...) error(fmt:format(...), 3) end

local function check_keys(what, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then fail("%s: options must be a table", what) end
  for k in pairs(opts) do
    if not allowed[k] then fail("%s: unknown option '%s'", what, tostring(k)) end
  end
  return opts
end

local function set(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end

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

return function(M, Learner, Interp)
  ---------------------------------------------------------------- the recorder
  local Recorder = {}
  Recorder.__index = Recorder
  M.RecorderClass = Recorder

  local function attach(learn)
    if type(learn) == "table" and type(learn.recorder) == "table" and getmetatable(learn.recorder) == nil then
      setmetatable(learn.recorder, Recorder)
    end
    return learn
  end

  -- The C loop replaces learn.recorder at every fit: give the new one its methods, even when
  -- the fit stopped with an error.
  local run = Learner._run
  function Learner:_run(...)
    local ok, err = pcall(run, self, ...)
    attach(self)
    if not ok then error(err, 0) end
    return self
  end

  local new_learner, load_learner = M.Learner, M.load_learner
  M.Learner = function(...) return attach(new_learner(...)) end
  M.load_learner = function(...) return attach(load_learner(...)) end

  -- lr_find keeps its curve and suggestions for plot_lr_find (a later fit replaces the recorder).
  local lr_find = Learner.lr_find
  function Learner:lr_find(...)
    local lr_min, lr_steep, sg = lr_find(self, ...)
    local rec = self.recorder
    self._lr_find = { lrs = sub(rec.lrs, 1, #rec.lrs), losses = sub(rec.losses, 1, #rec.losses), suggestions = sg }
    return lr_min, lr_steep, sg
  end

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

  -- learn:plot_lr_find{skip_end = 5, output =, term =, suggestions = true}
  -- -> {lrs =, losses =, points = {{name =, lr =, loss =}, ...}}
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
    return { lrs = lrs, losses = losses, points = points }
  end

  -- recorder:plot_loss{skip_start = 5, with_valid = true, output =}
  -- -> {x =, train =, valid_x =, valid =}: train per iteration (0-based, as fastai), valid at
  -- the cumulative iteration count of each epoch.
  function Recorder:plot_loss(opts)
    opts = check_keys("plot_loss", opts, set { "skip_start", "with_valid", "output", "term", "title" })
    local skip = opts.skip_start or 5
    local n = #self.losses
    if n == 0 then fail("plot_loss: nothing recorded yet (fit first)") end
    skip = math.min(skip, n - 1)
    local x, train = {}, {}
    for i = skip + 1, n do x[#x + 1] = i - 1 train[#train + 1] = self.losses[i] end
    local series = { { x = x, y = train, title = "train" } }
    local out = { x = x, train = train }
    if opts.with_valid ~= false then
      local col
      for j, name in ipairs(self.metric_names or {}) do if name == "valid_loss" then col = j end end
      local vx, vy = {}, {}
      for e, it in ipairs(self.iters or {}) do
        local v = self.values[e] and col and self.values[e][col]
        if it >= skip and v and v == v then vx[#vx + 1] = it vy[#vy + 1] = v end
      end
      if #vx > 0 then series[2] = { x = vx, y = vy, title = "valid", style = "linespoints" } end
      out.valid_x, out.valid = vx, vy
    end
    draw("plot", plot_opts(opts, { xlabel = "iteration", ylabel = "loss",
      title = opts.title or "Loss" }, series))
    return out
  end

  -- recorder:plot_sched{output =}: lr and mom of the last group per iteration, as two series
  -- on a log y axis (their scales differ by ~3 decades). -> {lr =, mom =}
  function Recorder:plot_sched(opts)
    opts = check_keys("plot_sched", opts, set { "output", "term", "title" })
    local lrs, moms = self.lrs or {}, self.moms or {}
    if #lrs == 0 then fail("plot_sched: nothing recorded yet (fit first)") end
    local series = { { y = lrs, title = "lr" } }
    if #moms > 0 then series[2] = { y = moms, title = "mom" } end
    draw("plot", plot_opts(opts, { logy = true, xlabel = "iteration",
      ylabel = "lr, mom", title = opts.title or "Schedule (last group)" }, series))
    return { lr = lrs, mom = moms }
  end

  -- recorder:plot_metrics{output =}: each recorded value (train_loss, valid_loss, metrics) per
  -- epoch. -> {epochs =, [name] = values}
  function Recorder:plot_metrics(opts)
    opts = check_keys("plot_metrics", opts, set { "output", "term", "title" })
    local vals = self.values or {}
    if #vals == 0 then fail("plot_metrics: no epoch recorded yet (fit first)") end
    local epochs, series, out = {}, {}, {}
    for e = 1, #vals do epochs[e] = e - 1 end
    out.epochs = epochs
    for j, name in ipairs(self.metric_names or {}) do
      local y = {}
      for e = 1, #vals do y[e] = vals[e][j] end
      out[name] = y
      series[#series + 1] = { x = epochs, y = y, title = name:gsub("_", " "), style = "linespoints" }
    end
    draw("plot", plot_opts(opts, { xlabel = "epoch", ylabel = "value",
      title = opts.title or "Metrics" }, series))
    return out
  end

  ---------------------------------------------------------------- interpretation

  -- interp:plot_confusion_matrix{normalize = false, output =, title =} -> the matrix plotted
  -- (rows actual, columns predicted, as confusion_matrix()).
  function Interp:plot_confusion_matrix(opts)
    opts = check_keys("plot_confusion_matrix", opts, set { "normalize", "output", "term", "title" })
    local cm = self:confusion_matrix():totable()
    if opts.normalize then
      for i = 1, #cm do
        local s = 0
        for j = 1, #cm[i] do s = s + cm[i][j] end
        for j = 1, #cm[i] do cm[i][j] = s > 0 and math.floor(cm[i][j] / s * 100 + 0.5) / 100 or 0 end
      end
    end
    local names = {}
    for i, v in ipairs(self.vocab) do names[i] = tostring(v) end
    draw("imagesc", cm, plot_opts(opts, { title = opts.title or "Confusion matrix", xlabels = names,
      ylabels = names, xlabel = "Predicted", ylabel = "Actual" }))
    return cm
  end

  -- interp:plot_top_losses(k = 9, {output = "top_losses.png", ncols =}): the k valid items
  -- with the largest losses, titled prediction/actual / loss / probability (of the prediction),
  -- as a PNG grid (the data module's writer) or, for a .txt output, a text table.
  -- -> {{idx =, pred =, actual =, loss =, prob =, title =}, ...}
  function Interp:plot_top_losses(k, opts)
    opts = check_keys("plot_top_losses", opts, set { "output", "ncols", "nrows", "largest" })
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
    local output = opts.output or "top_losses.png"
    if output:match("%.txt$") then
      local f = assert(io.open(output, "w"))
      f:write("Prediction/Actual/Loss/Probability\n")
      for i, r in ipairs(rows) do f:write(("%d\t%d\t%s\n"):format(i, r.idx, r.title)) end
      f:close()
      return rows
    end
    if not output:match("%.png$") then fail("plot_top_losses: the grid is a PNG (or .txt for a table): %s", output) end
    -- The images: the valid loader is in order, so item j is row j of the concatenated batches.
    local dl = self.learn.dls.valid
    local want, pos = {}, {}
    for i, r in ipairs(rows) do want[r.idx] = want[r.idx] or {} table.insert(want[r.idx], i) end
    local picked, seen, base = {}, 0, 0
    for x in dl:batches() do
      local n = x:size(1)
      for j = base + 1, base + n do
        for _, i in ipairs(want[j] or {}) do picked[i] = x[j - base]:cpu():clone() seen = seen + 1 end
      end
      base = base + n
      if seen >= k then break end
    end
    for i = 1, k do if not picked[i] then fail("plot_top_losses: valid item %d not found in the loader", rows[i].idx) end end
    local imgs = T.stack(picked)
    local titles = {}
    for i, r in ipairs(rows) do titles[i] = r.title end
    local info = dl:info()
    local ncols = opts.ncols or math.ceil(math.sqrt(k))
    ft().vision.write_grid(imgs, titles, output, { ncols = ncols, mean = info.mean, std = info.std })
    return rows, output
  end
end
