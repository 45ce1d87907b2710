-- learner_api.lua: the entry of the learner module's Lua half (runtime/learner/learner_lua.c
-- runs it once with the C core class and ft.learner_core; it is not meant for require): the
-- Learner class.
--
-- The training loop, validation and prediction are C (runtime/learner/learner_fit.c, learner_step.c, learner_predict.c). This file
-- checks options, turns fastai's fit methods into schedule specs for the C loop, and holds
-- what runs once per fit or per epoch: fine_tune, lr_find's suggestions, predict, get_preds
-- and tta. Its parts, each loaded once from here:
--   learner_callbacks.lua  ft.callbacks (SaveModelCallback, EarlyStoppingCallback, CSVLogger)
--   learner_export.lua     learn:save/load/export, ft.load_learner
--   learner_interp.lua     ft.ClassificationInterpretation
--   learner_plots.lua      the plots (plot_lr_find, recorder:plot_loss, ...)
local C, core = ...
if type(C) ~= "table" then error("ftlua.learner_api is loaded by ftlua.learner; use ft.Learner", 2) end
local T = require "ftlua.tensor"
local A = require "ftlua.args"
local fail, check_keys, set = A.fail, A.check_keys, A.set

local M = {}

local function ft() return package.loaded.ftlua end

---------------------------------------------------------------- slices, metrics, losses

M.slice = core.slice

-- Metrics are tables the C loop reads (kind, k, name); they can also be called from Lua like
-- fastai's functions: ft.metrics.error_rate(pred, targ) with 1-based targets.
local function builtin(kind, fn, k)
  return setmetatable({ kind = kind, name = kind, k = k }, {
    __call = function(self, pred, targ) return fn(pred, targ, self.k) end,
    __tostring = function(self) return "metric " .. self.name end,
  })
end

M.metrics = {
  error_rate = builtin("error_rate", core.error_rate),
  accuracy = builtin("accuracy", core.accuracy),
  top_k_accuracy = builtin("top_k_accuracy", core.top_k_accuracy, 5),
}
-- top_k(k): top_k_accuracy with another k.
function M.metrics.top_k(k)
  if math.type(k) ~= "integer" or k < 1 then fail("top_k: k must be a positive integer, got %s", A.describe(k)) end
  return builtin("top_k_accuracy", core.top_k_accuracy, k)
end
-- Metric(name, fn): a Lua function fn(pred, targ) -> number or 0-dim tensor, shown as name.
function M.metrics.Metric(name, fn)
  if type(fn) ~= "function" then fail("Metric: expected a function") end
  return { kind = "lua", name = tostring(name), fn = fn }
end

local function metric_specs(metrics)
  if metrics == nil then return {} end
  if type(metrics) == "function" or getmetatable(metrics) or metrics.kind then metrics = { metrics } end
  local out = {}
  for i, m in ipairs(metrics) do
    if type(m) == "function" then
      out[i] = { kind = "lua", fn = m, name = "metric" .. (i > 1 and i or "") }
    elseif type(m) == "table" and m.kind then
      out[i] = { kind = m.kind, k = m.k, name = m.name, fn = m.fn }
    else
      fail("metrics: entry %d is a %s, expected ft.metrics.* or a function", i, type(m))
    end
  end
  return out
end

-- Losses are callables, as PyTorch's modules and fastai's loss classes are:
-- loss(pred [N, C], targ [N] (1-based classes)) -> a 0-dim tensor (or [N] with reduction =
-- "none"). The C loop reads their kind (and eps) and computes the same loss without calling back.
local Loss = { __name = "Loss" }
Loss.__index = Loss

local function check_targets(what, pred, targ)
  local function fail(fmt, ...) A.fail_at(3, fmt, ...) end -- at the caller of the loss
  if not T.is_tensor(pred) then fail("%s: pred must be a tensor, got a %s", what, type(pred)) end
  if not T.is_tensor(targ) then fail("%s: targ must be a tensor of 1-based class indices, got a %s", what, type(targ)) end
  if pred:dim() < 2 then fail("%s: pred must be [N, C] (logits per class), got %d dims", what, pred:dim()) end
  if targ:numel() > 0 then
    local lo, hi, c = targ:min():item(), targ:max():item(), pred:size(2)
    if lo < 1 or hi > c or math.type(lo) ~= "integer" and lo % 1 ~= 0 then
      fail("%s: targets are 1-based class indices in 1..%d, got values in %s..%s", what, c, tostring(lo), tostring(hi))
    end
  end
end

local function reduction_of(what, r)
  r = r or "mean"
  if r ~= "mean" and r ~= "sum" and r ~= "none" then
    fail("%s: reduction must be \"mean\", \"sum\" or \"none\", got %s", what, tostring(r))
  end
  return r
end

-- Flat: fastai's *Flat losses move the class axis last and flatten, so [N, C, H, W] logits and
-- [N, H, W] targets work too.
local function flatten(pred, targ)
  if pred:dim() <= 2 then return pred, targ end
  local c = pred:size(2)
  return pred:transpose(2, pred:dim()):contiguous():view(-1, c), targ:reshape(-1)
end

function Loss:__call(pred, targ, reduction)
  local what = self.name
  check_targets(what, pred, targ)
  pred, targ = flatten(pred, targ)
  reduction = reduction_of(what, reduction or self.reduction)
  if self.kind == "label_smoothing" then
    return core.label_smoothing_ce(pred:float(), targ, { eps = self.eps, reduction = reduction })
  end
  return core.cross_entropy(pred:float(), targ, { reduction = reduction })
end

function Loss:__tostring()
  local extra = self.kind == "label_smoothing" and ("eps=" .. tostring(self.eps)) or ""
  if self.reduction ~= "mean" then extra = (extra ~= "" and extra .. ", " or "") .. "reduction='" .. self.reduction .. "'" end
  return ("%s(%s)"):format(self.name, extra)
end

local function new_loss(name, kind, opts, keys)
  opts = check_keys(name, opts, set(keys))
  local l = setmetatable({ kind = kind, name = name, reduction = reduction_of(name, opts.reduction) }, Loss)
  if kind == "label_smoothing" then
    l.eps = opts.eps or 0.1
    if type(l.eps) ~= "number" or not (l.eps >= 0 and l.eps < 1) then fail("%s: eps must be in [0, 1), got %s", name, tostring(l.eps)) end
  end
  return l
end

M.losses = {}
-- CrossEntropyLoss{reduction = "mean"}: torch's nn.CrossEntropyLoss; CrossEntropyLossFlat (fastai)
-- also flattens [N, C, ...] predictions. LabelSmoothingCrossEntropy{eps = 0.1, reduction}.
function M.losses.CrossEntropyLoss(opts) return new_loss("CrossEntropyLoss", "cross_entropy", opts, { "reduction" }) end
function M.losses.CrossEntropyLossFlat(opts) return new_loss("CrossEntropyLossFlat", "cross_entropy", opts, { "reduction", "axis", "flatten" }) end
function M.losses.LabelSmoothingCrossEntropy(opts)
  return new_loss("LabelSmoothingCrossEntropy", "label_smoothing", opts, { "eps", "reduction" })
end
function M.losses.LabelSmoothingCrossEntropyFlat(opts)
  return new_loss("LabelSmoothingCrossEntropyFlat", "label_smoothing", opts, { "eps", "reduction", "axis", "flatten" })
end
M._Loss = Loss

-- ft.nn.functional: torch.nn.functional's cross_entropy and nll_loss with 1-based targets;
-- opts = {reduction = "mean"|"sum"|"none", label_smoothing = 0} or the reduction as a string.
local F = {}
local function fopts(what, opts, keys)
  if type(opts) == "string" then opts = { reduction = opts } end
  opts = check_keys(what, opts, set(keys))
  reduction_of(what, opts.reduction)
  return opts
end
function F.cross_entropy(input, target, opts)
  opts = fopts("cross_entropy", opts, { "reduction", "label_smoothing" })
  check_targets("cross_entropy", input, target)
  return core.cross_entropy(input, target, opts)
end
function F.nll_loss(input, target, opts)
  opts = fopts("nll_loss", opts, { "reduction" })
  check_targets("nll_loss", input, target)
  return core.nll_loss(input, target, opts)
end
function F.log_softmax(x, dim) return x:log_softmax(dim or -1) end
function F.softmax(x, dim) return x:softmax(dim or -1) end
M._functional = F

-- A loss as the C loop takes it: a kind ("cross_entropy", "label_smoothing") or a Lua function
-- called as fn(pred, targ, reduction). A table without a metatable (an export's description)
-- becomes a Loss again.
local function loss_spec(lf)
  if lf == nil then return "cross_entropy", 0.1 end
  if type(lf) == "table" and (lf.kind == "cross_entropy" or lf.kind == "label_smoothing") then
    -- a loss made with reduction = "sum" trains on the sum, as in fastai; per-item losses
    -- (get_preds{with_loss}) still ask for "none"
    if getmetatable(lf) == Loss and lf.reduction ~= "mean" then
      return function(p, t, r) return lf(p, t, r == "none" and "none" or lf.reduction) end, 0.1
    end
    return lf.kind, lf.eps or 0.1
  end
  if type(lf) == "function" then return lf, 0.1 end
  local mt = getmetatable(lf)
  if mt and mt.__call then return function(p, t, r) return lf(p, t, r) end, 0.1 end
  fail("loss_func: expected ft.nn.CrossEntropyLossFlat() (or another ft.nn loss) or a function(pred, targ, reduction), got a %s", type(lf))
end

-- The callable for learn.loss_func: what was given, or the default CrossEntropyLossFlat().
local function loss_callable(lf)
  if lf == nil then return M.losses.CrossEntropyLossFlat() end
  if type(lf) == "table" and getmetatable(lf) == nil and lf.kind then
    local name = lf.name or (lf.kind == "label_smoothing" and "LabelSmoothingCrossEntropy" or "CrossEntropyLossFlat")
    return setmetatable({ kind = lf.kind, name = name, reduction = lf.reduction or "mean",
      eps = lf.kind == "label_smoothing" and (lf.eps or 0.1) or nil }, Loss)
  end
  return lf
end

---------------------------------------------------------------- callbacks

require("ftlua.learner_callbacks")(M, core)

---------------------------------------------------------------- Learner

local Learner = {}
Learner.__index = Learner
M.LearnerClass = Learner

-- The recorder's class; its methods (plot_loss, plot_sched, plot_metrics) are learner_plots.lua's.
local Recorder = {}
Recorder.__index = Recorder
M.RecorderClass = Recorder

-- Give learn.recorder its methods: a new Learner's, and the one the C loop puts in place at
-- every fit.
local function with_recorder(learn)
  if type(learn.recorder) == "table" and getmetatable(learn.recorder) == nil then
    setmetatable(learn.recorder, Recorder)
  end
  return learn
end

local LEARNER_KEYS = set { "loss_func", "opt_func", "lr", "wd", "metrics", "path", "model_dir", "cbs",
  "splitter", "train_bn", "moms", "amp" }

-- Whether this CPU has bf16 instructions (AVX512-BF16 or AMX-BF16), from /proc/cpuinfo's flags
-- (or the text given, for the tests).
function M._cpu_has_bf16(cpuinfo)
  if cpuinfo == nil then
    local f = io.open("/proc/cpuinfo", "r")
    cpuinfo = f and f:read("a") or ""
    if f then f:close() end
  end
  local flags = " " .. (("\n" .. cpuinfo):match("\nflags%s*:([^\n]*)") or "") .. " "
  return flags:find(" avx512_bf16 ", 1, true) ~= nil or flags:find(" amx_bf16 ", 1, true) ~= nil
end

-- The precision a new Learner trains in: bf16 autocast where it helps, float32 elsewhere. With
-- bf16 instructions a convolutional model trains 1.1-1.9x faster under autocast, to float32's
-- accuracy (docs/performance.md); without them libtorch emulates bf16, 20-30x slower. Models
-- with no convolution (small MLPs) gain nothing. On CUDA fp16 stays a choice (to_fp16).
-- FTLUA_AMP = fp32 | bf16 | auto, or opts.amp, decide instead.
function M._default_amp(device, model, env, cpuinfo)
  if env == nil then env = os.getenv("FTLUA_AMP") or "auto" end
  if env == "fp32" or env == "bf16" then return env end
  if env ~= "" and env ~= "auto" then
    fail("FTLUA_AMP must be fp32, bf16 or auto, got '%s'", tostring(env))
  end
  if tostring(device or "cpu"):match("^cuda") then return "fp32" end
  local conv = false
  pcall(function()
    for _, m in model:named_modules() do if m:type() == "Conv2d" then conv = true break end end
  end)
  return (conv and M._cpu_has_bf16(cpuinfo)) and "bf16" or "fp32"
end

local function check_lr(what, lr)
  if type(lr) ~= "number" or lr ~= lr or lr <= 0 or lr == math.huge then
    fail("%s: the learning rate must be a positive finite number, got %s", what, tostring(lr))
  end
end

-- opt_func: ft.learner.Adam (the default) or ft.learner.SGD, or a table {ft.learner.SGD, mom = 0.9,
-- wd = 1e-4, decouple_wd = false} for fastai's partial(SGD, mom=0.9, ...) -> "Adam"|"SGD", settings.
local OPT_KEYS = { Adam = set { "mom", "sqr_mom", "eps", "wd", "decouple_wd" }, SGD = set { "mom", "wd", "decouple_wd" } }
local function opt_spec(opt_func)
  local kind, settings = opt_func, {}
  if type(opt_func) == "table" then kind, settings = opt_func[1], opt_func end
  if kind == nil then kind = "Adam" end
  if not OPT_KEYS[kind] then
    fail("Learner: opt_func must be ft.learner.Adam or ft.learner.SGD (or {ft.learner.SGD, mom = 0.9} for "
      .. "fastai's partial(SGD, mom=0.9)), got %s", type(kind) == "string" and "'" .. kind .. "'" or tostring(kind))
  end
  for k, v in pairs(settings) do
    if k ~= 1 and not OPT_KEYS[kind][k] then
      local names = {}
      for n in pairs(OPT_KEYS[kind]) do names[#names + 1] = n end
      table.sort(names)
      fail("Learner: opt_func: %s has no setting '%s' (it takes %s)", kind, tostring(k), table.concat(names, ", "))
    end
    if k == "decouple_wd" then
      if type(v) ~= "boolean" then fail("Learner: opt_func: decouple_wd must be true or false, got %s", tostring(v)) end
    elseif k ~= 1 and (type(v) ~= "number" or v ~= v or math.abs(v) == math.huge) then
      fail("Learner: opt_func: %s must be a finite number, got %s", k, tostring(v))
    end
  end
  return kind, settings
end

-- The C core over model, with the optimizer of o ({kind, mom, sqr_mom, eps, wd, decouple_wd}: a
-- Learner's _opt) and the other settings of fields.
local function new_core(model, o, fields)
  fields.opt, fields.mom, fields.sqr_mom, fields.eps = o.kind, o.mom, o.sqr_mom, o.eps
  fields.wd, fields.decouple_wd = o.wd, o.decouple_wd
  return C.new(model, fields)
end

-- ft.Learner(dls, model, {loss_func, opt_func = ft.learner.Adam, lr = 1e-3, wd, metrics, path,
-- model_dir = "models", cbs, splitter, train_bn = true, moms = {0.95, 0.85, 0.95}})
function M.Learner(dls, model, opts)
  opts = check_keys("Learner", opts, LEARNER_KEYS)
  if type(dls) ~= "table" or not dls.train then fail("Learner: expected DataLoaders as the first argument") end
  local opt_kind, opt_settings = opt_spec(opts.opt_func)
  local lr = opts.lr or 1e-3
  check_lr("Learner", lr)
  if opts.splitter then
    local groups = opts.splitter
    if type(groups) == "function" then groups = groups(model) end
    model:set_param_groups(groups)
  end
  local loss, eps = loss_spec(opts.loss_func)
  local self = setmetatable({
    dls = dls, model = model, lr = lr, wd = opts.wd, path = opts.path or dls.path or ".",
    model_dir = opts.model_dir or "models", cbs = {}, moms = opts.moms or { 0.95, 0.85, 0.95 },
    metrics = metric_specs(opts.metrics), loss_func = loss_callable(opts.loss_func),
    recorder = { lrs = {}, moms = {}, losses = {}, iters = {}, values = {}, metric_names = {} },
  }, Learner)
  -- The Learner's wd overrides opt_func's, as fastai's fit sets it when it is not None.
  local wd = opts.wd
  if wd == nil then wd = opt_settings.wd end
  -- What learn:save and learn:export record, so that a loaded learner trains the same way.
  self._opt = { kind = opt_kind, mom = opt_settings.mom, sqr_mom = opt_settings.sqr_mom, eps = opt_settings.eps,
    wd = wd, decouple_wd = opt_settings.decouple_wd }
  self._core = new_core(model, self._opt, { lr = lr, train_bn = opts.train_bn, loss = loss, ls_eps = eps,
    metrics = self.metrics })
  for _, cb in ipairs(opts.cbs or {}) do self:add_cb(cb) end
  local amp = opts.amp
  if amp == nil or amp == "auto" then amp = M._default_amp(dls.device, model)
  elseif amp ~= "fp32" and amp ~= "bf16" and amp ~= "fp16" then
    fail("Learner: amp must be \"auto\", \"fp32\", \"bf16\" or \"fp16\", got '%s'", tostring(amp))
  end
  if amp == "bf16" then self:to_bf16() elseif amp == "fp16" then self:to_fp16() end
  -- Started by a launcher (ftlua --nproc, torchrun, Slurm): data parallel without asking.
  if (tonumber(os.getenv("WORLD_SIZE")) or 1) > 1 then self:to_distributed() end
  return with_recorder(self)
end
M.Adam = "Adam"
M.SGD = "SGD"

-- learn:to_distributed(): data-parallel training over ft.dist's process group (made from the
-- launcher's variables if there is none yet). Every rank starts from rank 0's weights, takes its
-- part of every global batch, and all-reduces its gradients; validation numbers are all-reduced;
-- only rank 0 prints, plots and writes files. Automatic when WORLD_SIZE > 1.
function Learner:to_distributed()
  local D = ft().dist
  if not D.is_initialized() then D.init() end
  self._core:set_dist(true)
  self.distributed = true
  return self
end

-- Data parallel: rank 0 writes; the others wait for it, so that a load right after finds the file.
function Learner:_rank0_writes(fn)
  local D = ft().dist
  local ok, r = true, nil
  if D.is_main() then ok, r = pcall(fn) end
  if self.distributed then D.barrier() end
  if not ok then error(r, 0) end
  return r
end

-- "Learner: Sequential, 3 parameter groups, ..., lr 0.003 (last fit_one_cycle)": the lr of the last
-- fit (its maximum for a schedule; a slice shows its first and last groups), else the default lr.
function Learner:__tostring()
  local lr
  local last = self._last_fit
  if last then
    local lrs = last.lrs
    lr = #lrs > 1 and lrs[1] ~= lrs[#lrs] and ("%g..%g"):format(lrs[1], lrs[#lrs]) or ("%g"):format(lrs[1])
    lr = ("lr %s (last %s)"):format(lr, last.name)
  else
    lr = ("lr %g (default)"):format(self.lr)
  end
  local frozen = ""
  local fz = self._frozen_idx
  if fz and fz > 0 then frozen = (", groups 1-%d frozen"):format(fz) end
  return ("Learner: %s, %d parameter groups%s, %s%s"):format(self.model:type(), self._core:n_groups(), frozen, lr,
    self.amp and (", " .. self.amp) or "")
end

-- A notebook shows a Learner result as HTML (docs/jupyter.md): the summary, then the last
-- fit's values per epoch.
function Learner:__html()
  local function esc(v) return (tostring(v):gsub("[<>&]", { ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;" })) end
  local h = { "<p>" .. esc(self) .. "</p>" }
  local rec = self.recorder
  if rec and rec.values and #rec.values > 0 then
    h[#h + 1] = "<table><thead><tr><th>epoch</th>"
    for _, n in ipairs(rec.metric_names) do h[#h + 1] = "<th>" .. esc(n) .. "</th>" end
    h[#h + 1] = "</tr></thead><tbody>"
    for e, row in ipairs(rec.values) do
      h[#h + 1] = "<tr><td>" .. (e - 1) .. "</td>"
      for _, v in ipairs(row) do h[#h + 1] = ("<td>%.6f</td>"):format(v) end
      h[#h + 1] = "</tr>"
    end
    h[#h + 1] = "</tbody></table>"
  end
  return table.concat(h)
end

function Learner:add_cb(cb)
  if type(cb) ~= "table" then fail("add_cb: a callback is a table of event methods") end
  self.cbs[#self.cbs + 1] = cb
  return self
end

function Learner:remove_cb(cb)
  for i, c in ipairs(self.cbs) do if c == cb then table.remove(self.cbs, i) break end end
  return self
end

function Learner:_metric_names()
  local n = { "train_loss", "valid_loss" }
  for _, m in ipairs(self.metrics) do n[#n + 1] = m.name end
  return n
end

function Learner:n_groups() return self._core:n_groups() end

-- The lr per group of a number, ft.slice(lo, hi), ft.slice(hi) or a table, checked.
function Learner:_lrs(lr, what)
  if lr == nil then lr = self.lr end
  if type(lr) == "number" then check_lr(what, lr) end
  local ok, v = pcall(core.lr_per_group, lr, self._core:n_groups())
  if not ok then error(what .. ": " .. tostring(v):gsub("^[^:]*:%d+: ", ""), 3) end
  return v
end

function Learner:_run(n_epoch, spec, cbs)
  local all = {}
  for _, c in ipairs(self.cbs) do all[#all + 1] = c end
  for _, c in ipairs(cbs or {}) do all[#all + 1] = c end
  if spec.wd == nil then spec.wd = self.wd end
  -- the recorder gets its methods even when the fit stopped with an error
  local ok, err = pcall(self._core.fit, self._core, self, n_epoch, spec, all, self.dls.train, self.dls.valid)
  with_recorder(self)
  if not ok then error(err, 0) end
  return self
end

-- What the learner's __tostring shows of the last fit: its name and lr (per group).
function Learner:_note_fit(name, lrs)
  self._last_fit = { name = name, lrs = lrs }
end

local FIT_KEYS = set { "wd", "cbs" }
local function epochs(what, n)
  if math.type(n) ~= "integer" or n < 1 then
    local got = type(n) == "string" and ("the string %q"):format(n) or type(n) == "number" and tostring(n) or ("a " .. type(n))
    fail("%s: the number of epochs must be a positive integer, got %s", what, got)
  end
end

-- fit(n_epoch, lr, {wd, cbs}): a constant lr (per group).
function Learner:fit(n_epoch, lr, opts)
  opts = check_keys("fit", opts, FIT_KEYS)
  epochs("fit", n_epoch)
  local lrs = self:_lrs(lr, "fit")
  self:_note_fit("fit", lrs)
  self:_run(n_epoch, { kind = "const", lrs = lrs, wd = opts.wd }, opts.cbs)
end

local ONE_CYCLE_KEYS = set { "div", "div_final", "pct_start", "moms", "wd", "cbs" }
function Learner:fit_one_cycle(n_epoch, lr_max, opts)
  opts = check_keys("fit_one_cycle", opts, ONE_CYCLE_KEYS)
  epochs("fit_one_cycle", n_epoch)
  local lrs = self:_lrs(lr_max, "fit_one_cycle")
  self:_note_fit("fit_one_cycle", lrs)
  self:_run(n_epoch, { kind = "one_cycle", lrs = lrs, div = opts.div,
    div_final = opts.div_final, pct_start = opts.pct_start, moms = opts.moms or self.moms, wd = opts.wd }, opts.cbs)
end

function Learner:fit_flat_cos(n_epoch, lr, opts)
  opts = check_keys("fit_flat_cos", opts, set { "div_final", "pct_start", "wd", "cbs" })
  epochs("fit_flat_cos", n_epoch)
  local lrs = self:_lrs(lr, "fit_flat_cos")
  self:_note_fit("fit_flat_cos", lrs)
  self:_run(n_epoch, { kind = "flat_cos", lrs = lrs, div_final = opts.div_final,
    pct_start = opts.pct_start, wd = opts.wd }, opts.cbs)
end

function Learner:fit_sgdr(n_cycles, cycle_len, lr_max, opts)
  opts = check_keys("fit_sgdr", opts, set { "cycle_mult", "wd", "cbs" })
  epochs("fit_sgdr", n_cycles)
  epochs("fit_sgdr", cycle_len)
  local lrs = self:_lrs(lr_max, "fit_sgdr")
  self:_note_fit("fit_sgdr", lrs)
  self:_run(1, { kind = "sgdr", lrs = lrs, n_cycles = n_cycles,
    cycle_len = cycle_len, cycle_mult = opts.cycle_mult or 2, wd = opts.wd }, opts.cbs)
end

function Learner:freeze_to(n)
  A.check_type("freeze_to", "n", n, "integer")
  self._frozen_idx = self._core:freeze_to(n)
end
function Learner:freeze() self:freeze_to(-1) end
function Learner:unfreeze() self:freeze_to(0) end

-- fine_tune(epochs, {base_lr = 2e-3, freeze_epochs = 1, lr_mult = 100, pct_start = 0.3,
-- div = 5, wd, cbs}): fastai's recipe: one frozen cycle, then an unfrozen one.
function Learner:fine_tune(n_epoch, opts)
  opts = check_keys("fine_tune", opts, set { "base_lr", "freeze_epochs", "lr_mult", "pct_start", "div", "wd", "cbs" })
  epochs("fine_tune", n_epoch)
  local base_lr = opts.base_lr or 2e-3
  check_lr("fine_tune", base_lr)
  local fe = opts.freeze_epochs or 1
  self:freeze()
  if fe > 0 then self:fit_one_cycle(fe, M.slice(base_lr), { pct_start = 0.99, wd = opts.wd, cbs = opts.cbs }) end
  base_lr = base_lr / 2
  self:unfreeze()
  self:fit_one_cycle(n_epoch, M.slice(base_lr / (opts.lr_mult or 100), base_lr),
    { pct_start = opts.pct_start or 0.3, div = opts.div or 5.0, wd = opts.wd, cbs = opts.cbs })
end

-- lr_find{start_lr = 1e-7, end_lr = 10, num_it = 100, stop_div = true} -> lr_min (minimum/10),
-- lr_steep, {minimum, steep, valley, slide}. The model, its buffers and the optimizer state
-- are restored in memory afterwards, bit for bit.
function Learner:lr_find(opts)
  opts = check_keys("lr_find", opts, set { "start_lr", "end_lr", "num_it", "stop_div", "cbs" })
  local s, e, n = opts.start_lr or 1e-7, opts.end_lr or 10, opts.num_it or 100
  check_lr("lr_find", s)
  check_lr("lr_find", e)
  if math.type(n) ~= "integer" or n < 1 then fail("lr_find: num_it must be a positive integer, got %s", A.describe(n)) end
  self:_run(1, { kind = "lr_find", start_lr = s, end_lr = e, num_it = n, stop_div = opts.stop_div ~= false,
    no_logging = true }, opts.cbs)
  local rec = self.recorder
  local sg = core.lr_suggestions(rec.lrs, rec.losses, n)
  -- kept for plot_lr_find (a later fit replaces the recorder)
  self._lr_find = { lrs = table.move(rec.lrs, 1, #rec.lrs, 1, {}), losses = table.move(rec.losses, 1, #rec.losses, 1, {}),
    suggestions = sg }
  return sg.minimum, sg.steep, sg
end

---------------------------------------------------------------- mixed precision, layout

function Learner:to_bf16() self._core:set_amp("bf16") self.amp = "bf16" return self end
function Learner:to_fp16()
  if not (self.dls.device or ""):match("^cuda") then
    fail("to_fp16: fp16 training needs a CUDA device (use to_bf16 on the CPU)")
  end
  self._core:set_amp("fp16")
  self.amp = "fp16"
  return self
end
function Learner:to_fp32() self._core:set_amp("off") self.amp = nil return self end
function Learner:to_channels_last()
  self.model:to_channels_last()
  self._core:set_channels_last(true)
  return self
end

---------------------------------------------------------------- persistence

require("ftlua.learner_export")(M, Learner,
  { Loss = Loss, loss_spec = loss_spec, loss_callable = loss_callable, with_recorder = with_recorder,
    new_core = new_core })

---------------------------------------------------------------- predictions

-- get_preds{ds_idx = 1 (valid) | 0 (train), dl = loader, with_loss = false, act = true}
-- -> probs, targets (1-based), losses (with_loss)
-- dl may also be a list of batches {{x, y}, ...} (or {x, ...}), as the book's dl=[(x,y)].
function Learner:get_preds(opts)
  opts = check_keys("get_preds", opts, set { "ds_idx", "dl", "with_loss", "act" })
  if opts.ds_idx ~= nil and opts.ds_idx ~= 0 and opts.ds_idx ~= 1 then
    fail("get_preds: ds_idx must be 1 (valid) or 0 (train), got %s", tostring(opts.ds_idx))
  end
  local dl = opts.dl
  if dl == nil then dl = opts.ds_idx == 0 and self.dls.train or self.dls.valid
  elseif type(dl) == "table" then
    if dl.valid or dl.train then fail("get_preds: dl is a DataLoaders: give one of its loaders (dl = dls.valid), or ds_idx = 1 | 0") end
    if T.is_tensor(dl[1]) and T.is_tensor(dl[2]) and dl[2]:dim() <= 1 and dl[1]:dim() > 1 and #dl == 2 then
      fail("get_preds: dl must be a list of batches: write dl = {{x, y}}, not dl = {x, y}")
    end
    if #dl == 0 then fail("get_preds: dl is an empty list (give {{x, y}, ...} batches or a loader)") end
  elseif type(dl) ~= "userdata" then
    fail("get_preds: dl must be a loader (dls.valid, dls:test_dl(files)) or a list of {x, y} batches, got a %s", type(dl))
  end
  local ok, p, t, l = pcall(self._core.predict, self._core, dl, { with_loss = opts.with_loss, act = opts.act })
  if not ok then
    error(("get_preds: %s"):format(tostring(p):gsub("^[^:]*:%d+: ", ""):gsub("^bad argument #1 to '[%w_]+'", "dl")
      :gsub("^predict: ", "")), 2)
  end
  return p, t, l
end

-- predict(image_path) -> label, index (1-based), probs
function Learner:predict(item)
  local dls = self.dls
  if not dls.test_dl then fail("predict: these DataLoaders cannot make a test loader") end
  local dl = dls:test_dl({ item }, { num_workers = 1 })
  local probs = self._core:predict(dl)
  local p = probs[1]
  local _, idx = p:max(1)
  idx = idx:item()
  return dls.vocab and dls.vocab[idx] or idx, idx, p
end

-- A loader over the items of split ds_idx (1 valid, 0 train) in order, with the train split's
-- transforms when train (random crop position and augmentation draws; fastai's tta uses the
-- train pipeline), else the valid split's. File datasets keep one dataset and each split's
-- items; from_tensors and FashionMNIST keep one dataset per split (train_ds, valid_ds).
-- nil when the DataLoaders keep neither.
local function split_loader(dls, ds_idx, train)
  local cfg = dls._cfg
  if not cfg or not dls.valid or not dls.valid.info then return nil end
  local ds, items
  if cfg.array then
    ds = ds_idx == 0 and dls.train_ds or dls.valid_ds
    if ds then
      items = {}
      for i = 1, #ds do items[i] = i end
    end
  else
    ds, items = dls.dataset, ds_idx == 0 and dls.train_items or dls.valid_items
  end
  if not (ds and items) then return nil end
  local info = dls.valid:info()
  return ds:loader(items, { bs = cfg.val_bs or info.bs, shuffle = false, drop_last = false, train = train,
    seed = cfg.seed, aug = cfg.aug, size = cfg.aug and cfg.aug.size or nil, mean = info.mean, std = info.std,
    channels = cfg.channels, device = cfg.device, num_workers = cfg.num_workers, on_error = cfg.on_error })
end

-- tta{ds_idx = 1, n = 4, beta = 0.25, use_max = false} -> preds, targs: n passes with the
-- train split's augmentation over the split's items, then lerp with the plain pass (the same
-- items in the same order with the valid transforms, as fastai's set_split_idx(1)).
function Learner:tta(opts)
  opts = check_keys("tta", opts, set { "ds_idx", "n", "beta", "use_max" })
  local ds_idx, n, beta = opts.ds_idx or 1, opts.n or 4, opts.beta or 0.25
  if ds_idx ~= 0 and ds_idx ~= 1 then fail("tta: ds_idx must be 1 (valid) or 0 (train), got %s", tostring(ds_idx)) end
  if math.type(n) ~= "integer" or n < 1 then fail("tta: n must be a positive integer, got %s", tostring(n)) end
  if type(beta) ~= "number" or not (beta >= 0 and beta <= 1) then
    fail("tta: beta must be a number in [0, 1], got %s", tostring(beta))
  end
  local dls = self.dls
  local aug_dl = split_loader(dls, ds_idx, true)
  if not aug_dl then
    io.stderr:write("warning: tta: these DataLoaders keep no dataset to run the items through the train "
      .. "transforms (ImageDataLoaders and FashionMNIST do); returning the plain predictions\n")
    return self:get_preds { ds_idx = ds_idx }
  end
  -- the valid loader is already the valid items in order; the train loader shuffles
  local plain, targs = self:get_preds { dl = ds_idx == 1 and dls.valid or split_loader(dls, 0, false) }
  -- fastai: aug = max (use_max) or mean over the n passes; then max(plain, aug) or
  -- lerp(aug, plain, beta) = (1-beta)*aug + beta*plain. Pass i draws epoch 1000+i's augmentations.
  local acc
  for i = 1, n do
    local p = self._core:predict(aug_dl, { epoch = 1000 + i })
    if not acc then acc = p elseif opts.use_max then acc = acc:maximum(p) else acc = acc + p end
  end
  if opts.use_max then return plain:maximum(acc), targs end
  return (acc / n) * (1 - beta) + plain * beta, targs
end

---------------------------------------------------------------- interpretation

local Interp = require("ftlua.learner_interp")(M)

---------------------------------------------------------------- vision_learner

-- fastai's resnet splitter is set by create_cnn_model; cnn_learner adds ImageNet stats when
-- pretrained and the data has none, and freezes a pretrained body.
local CNN_KEYS = set { "metrics", "pretrained", "weights", "loss_func", "lr", "wd", "path", "model_dir",
  "cbs", "train_bn", "moms", "n_out", "lin_ftrs", "ps", "concat_pool", "normalize", "opt_func", "amp" }

function M.cnn_learner(dls, arch, opts)
  opts = check_keys("cnn_learner", opts, CNN_KEYS)
  local vision = ft().vision
  local pretrained = opts.pretrained
  if pretrained == nil then pretrained = true end
  local n_out = opts.n_out or dls.c
  if not n_out then fail("cnn_learner: cannot tell the number of classes (give n_out)") end
  if pretrained and opts.normalize ~= false and dls.add_normalize then dls:add_normalize() end
  local model = vision.create_cnn_model(arch, n_out, { pretrained = pretrained, weights = opts.weights,
    lin_ftrs = opts.lin_ftrs, ps = opts.ps, concat_pool = opts.concat_pool })
  local learn = M.Learner(dls, model, { metrics = opts.metrics, loss_func = opts.loss_func, lr = opts.lr,
    wd = opts.wd, path = opts.path, model_dir = opts.model_dir, cbs = opts.cbs, train_bn = opts.train_bn,
    moms = opts.moms, opt_func = opts.opt_func, amp = opts.amp })
  learn.arch = type(arch) == "string" and arch or nil
  if not learn.arch then
    for name, f in pairs(ft().models or {}) do if f == arch then learn.arch = name end end
  end
  if learn.arch and not opts.custom_head then
    learn._cnn = { kind = "cnn", arch = learn.arch, n_out = n_out, lin_ftrs = opts.lin_ftrs, ps = opts.ps,
      concat_pool = opts.concat_pool }
  end
  if pretrained then learn:freeze() end
  return learn
end
M.vision_learner = M.cnn_learner

-- The learner's plots over ft.plot (plot_lr_find, recorder:plot_loss/plot_sched/plot_metrics,
-- interp:plot_confusion_matrix/plot_top_losses): lua/ftlua/learner_plots.lua.
require("ftlua.learner_plots")(M, Learner, Interp, Recorder)

return M
