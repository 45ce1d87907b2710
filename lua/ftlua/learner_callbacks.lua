-- learner_callbacks.lua: fastai's callbacks written in Lua (ft.callbacks): Callback,
-- SaveModelCallback, EarlyStoppingCallback and CSVLogger. Loaded once by learner_api.lua, which
-- calls the returned function with (M, core) to fill M.callbacks. The C loop
-- (runtime/learner/learner.c) calls their methods by fastai's event names.
local A = require "ftlua.args"
local check_keys, set = A.check_keys, A.set

local function ft() return package.loaded.ftlua end

return function(M, core)
  M.callbacks = {}

  -- Callback{name = "...", after_epoch = function(self, learn) ... end, ...}: a table with
  -- methods named after fastai's events; returning "cancel_batch", "cancel_train",
  -- "cancel_valid", "cancel_epoch" or "cancel_fit" cancels as fastai's exceptions do.
  function M.callbacks.Callback(t)
    t = t or {}
    t.name = t.name or "Callback"
    return t
  end

  local function monitor_value(learn, monitor)
    local rec = learn.recorder
    local names = rec.metric_names
    for i, n in ipairs(names) do
      if n == monitor then return learn.final_record[i] end
    end
    error(("monitor '%s' is not among the recorded values (%s)"):format(monitor, table.concat(names, ", ")), 0)
  end

  local function better(monitor, comp)
    if comp then return comp end
    local lower = monitor:find("loss") or monitor:find("error")
    return lower and function(a, b) return a < b end or function(a, b) return a > b end
  end

  -- SaveModelCallback{monitor = "valid_loss", fname = "model", every_epoch = false,
  -- with_opt = false}: saves when the monitored value improves, loads the best at the end.
  -- A NaN is never best: an epoch whose value is NaN (or not a number at all, as valid_loss with
  -- no validation set) is skipped with a warning, and when no epoch had a value, nothing was
  -- saved, the end says so and the model keeps its last weights (a file from an earlier fit is
  -- not loaded).
  function M.callbacks.SaveModelCallback(opts)
    opts = check_keys("SaveModelCallback", opts, set { "monitor", "fname", "every_epoch", "with_opt", "comp", "min_delta", "reset_on_fit" })
    local cb = { name = "SaveModelCallback", monitor = opts.monitor or "valid_loss", fname = opts.fname or "model",
      every_epoch = opts.every_epoch, with_opt = opts.with_opt, min_delta = opts.min_delta or 0 }
    local cmp = better(cb.monitor, opts.comp)
    local function warn(fmt, ...)
      if ft().dist.is_main() then io.stderr:write("warning: SaveModelCallback: ", fmt:format(...), "\n") end
    end
    function cb:before_fit() self.best, self.best_epoch, self.skipped = nil, nil, 0 end
    function cb:after_epoch(learn)
      if self.every_epoch then learn:save(("%s_%d"):format(self.fname, learn.epoch), { with_opt = self.with_opt }) return end
      local v = monitor_value(learn, self.monitor)
      if type(v) ~= "number" or v ~= v then
        self.skipped = self.skipped + 1
        warn("%s is %s at epoch %d: not a better model, not saved", self.monitor,
          type(v) == "number" and "NaN" or "missing", learn.epoch)
        return
      end
      if self.best == nil or cmp(v - (cmp(0, 1) and self.min_delta or -self.min_delta), self.best) then
        if self.best ~= nil and ft().dist.is_main() then
          print(("Better model found at epoch %d with %s value: %s."):format(learn.epoch, self.monitor, tostring(v)))
        end
        self.best, self.best_epoch = v, learn.epoch
        learn:save(self.fname, { with_opt = self.with_opt })
      end
    end
    function cb:after_fit(learn)
      if self.every_epoch then return end
      if self.best == nil then
        if self.skipped > 0 then
          warn("no epoch had a %s that is a number (%d NaN or missing%s): no model was saved, none is "
            .. "loaded, the model keeps the weights of its last epoch", self.monitor, self.skipped,
            self.monitor:find("^valid") and "; is the validation set empty (valid_pct = 0)?" or "")
        end
        return
      end
      learn:load(self.fname, { with_opt = self.with_opt })
    end
    return cb
  end

  -- EarlyStoppingCallback{monitor = "valid_loss", min_delta = 0, patience = 1}
  function M.callbacks.EarlyStoppingCallback(opts)
    opts = check_keys("EarlyStoppingCallback", opts, set { "monitor", "min_delta", "patience", "comp" })
    local cb = { name = "EarlyStoppingCallback", monitor = opts.monitor or "valid_loss",
      min_delta = opts.min_delta or 0, patience = opts.patience or 1 }
    local cmp = better(cb.monitor, opts.comp)
    local sign = cmp(0, 1) and 1 or -1
    function cb:before_fit() self.best, self.wait = nil, 0 end
    function cb:after_epoch(learn)
      local v = monitor_value(learn, self.monitor)
      if self.best == nil or cmp(v + sign * self.min_delta, self.best) then
        self.best, self.wait = v, 0
      else
        self.wait = self.wait + 1
        if self.wait >= self.patience then
          if ft().dist.is_main() then
            print(("No improvement since epoch %d: early stopping"):format(learn.epoch - self.wait))
          end
          return "cancel_fit"
        end
      end
    end
    return cb
  end

  -- CSVLogger{fname = "history.csv", append = false}: the table's rows, unrounded, under
  -- learn.path; the whole file is rewritten atomically after each epoch (core.CSVLogger): after
  -- a crash or a full disk it holds the lines up to the last good epoch, never a torn or empty file.
  function M.callbacks.CSVLogger(opts)
    opts = check_keys("CSVLogger", opts, set { "fname", "append" })
    local cb = { name = "CSVLogger", fname = opts.fname or "history.csv", append = opts.append }
    function cb:before_fit(learn)
      local names = { "epoch" }
      for _, n in ipairs(learn:_metric_names()) do names[#names + 1] = n end
      names[#names + 1] = "time"
      self.path = (learn.path or ".") .. "/" .. self.fname
      if not ft().dist.is_main() then return end -- data parallel: rank 0 writes
      self.log = core.CSVLogger(self.path, names, { append = self.append })
      self.t0 = ft().clock()
    end
    function cb:before_epoch() self.t0 = ft().clock() end
    function cb:after_epoch(learn)
      local row = { learn.epoch }
      for _, v in ipairs(learn.final_record) do row[#row + 1] = v end
      row[#row + 1] = core.format_time(ft().clock() - self.t0)
      if self.log then self.log:write(row) end
    end
    function cb:after_fit() if self.log then self.log:close() self.log = nil end end
    return cb
  end
end
