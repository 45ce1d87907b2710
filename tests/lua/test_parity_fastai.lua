-- test_parity_fastai.lua: ftlua against the real fastai 2.7.12 (../shared/reference/fastai-py),
-- run once through tests/py/fastai_ref.py with every case batched: schedules (fit_one_cycle with
-- a slice, fit_flat_cos, fit_sgdr, fine_tune's two phases: every group's lr and the mom per batch,
-- float32 exact), lr_find's four suggestions (smooth, NaN, short and a real ftlua series), the cnn
-- head (modules, parameter names, groups, freeze, init statistics over seeds), fastai's Adam and SGD
-- with and without momentum, decoupled or l2 weight decay (1e-6), a one-cycle fit with SGD,
-- the losses and metrics, ClassificationInterpretation and the printed epoch table.
-- Skips, saying why, without ../shared or without a Python that imports fastai.
local H = require "harness"
local S = require "synth"
local T, V, nn, core = ft.tensor, ft.vision, ft.nn, ft.learner_core

local FASTAI = H.shared("reference/fastai-py/fastai/__init__.py")
local PY = os.getenv("FTLUA_PYTHON") or "/usr/bin/python3"
local ROOT = os.getenv("FTLUA_ROOT") or "."
local AREAS = { "schedules", "lr_find suggestions", "cnn head", "optimizers (Adam, SGD)", "losses and metrics",
  "interpretation", "epoch table" }
if not FASTAI then
  for _, a in ipairs(AREAS) do H.skip("parity " .. a, "no ../shared/reference/fastai-py (FTLUA_SHARED)") end
  H.done()
end
FASTAI = FASTAI:match("^(.*)/fastai/__init__%.py$")
if os.execute(("PYTHONPATH='%s' %s -c 'import fastai.vision.all' >/dev/null 2>&1"):format(FASTAI, PY)) ~= true then
  for _, a in ipairs(AREAS) do
    H.skip("parity " .. a, PY .. " cannot import fastai 2.7.12 (make deps installs its Python packages)")
  end
  H.done()
end

-- A Lua value as a Python literal (lists for sequences, dicts for the rest).
local function py(v)
  local t = type(v)
  if t == "nil" then return "None"
  elseif t == "boolean" then return v and "True" or "False"
  elseif t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v then return "nan" end
    if v == math.floor(v) and math.abs(v) < 1e15 then return ("%.1f"):format(v) end
    if v == math.huge then return "inf" elseif v == -math.huge then return "-inf" end
    return ("%.17g"):format(v)
  elseif t == "string" then return "'" .. v:gsub("\\", "\\\\"):gsub("'", "\\'") .. "'"
  elseif t == "table" then
    local parts = {}
    if #v > 0 or next(v) == nil then
      for i = 1, #v do parts[i] = py(v[i]) end
      return "[" .. table.concat(parts, ", ") .. "]"
    end
    for k, x in pairs(v) do parts[#parts + 1] = py(k) .. ": " .. py(x) end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  error("py: cannot send a " .. t)
end

-- float32 rounding of a double, as numpy's float32 does (nearest even).
local function f32(x)
  if x ~= x or x == 0 or math.abs(x) == math.huge then return x end
  return string.unpack("f", string.pack("f", x))
end

-- A tiny learner on synthetic 8x8 grey images: 3 linear layers in 3 parameter groups, n_iter
-- batches of 4 per epoch (the shape of fastai_ref.py's dummy learner).
local function tiny_learner(n_iter, seed, opt_func)
  local x, y = S.halves(n_iter * 4 + 8, 8, seed or 1)
  local n = n_iter * 4
  local dls = V.ImageDataLoaders.from_tensors(x:narrow(1, 1, n), y:narrow(1, 1, n), x:narrow(1, n + 1, 8),
    y:narrow(1, n + 1, 8), { bs = 4, channels = 1, seed = 1, verbose = false })
  T.manual_seed(seed or 1)
  local model = nn.Sequential { nn.Flatten(), nn.Linear(64, 4), nn.Linear(4, 4), nn.Linear(4, 2) }
  return ft.Learner(dls, model, { splitter = { { "0", "1" }, { "2" }, { "3" } }, amp = "fp32", opt_func = opt_func })
end

------------------------------------------------------------------ the ftlua side of every case

local req = {}

-- Schedules: each case runs on a fresh tiny learner; fine_tune records both of its fits.
local SCHED = {
  { name = "one_cycle_slice", kind = "one_cycle", n_iter = 5, args = { 3, { lo = 1e-5, hi = 1e-3 } },
    run = function(l) l:fit_one_cycle(3, ft.slice(1e-5, 1e-3)) end },
  { name = "one_cycle_opts", kind = "one_cycle", n_iter = 4, args = { 2, 1e-2 },
    kwargs = { pct_start = 0.3, div = 10.0, div_final = 1e4, moms = { 0.9, 0.8, 0.9 } },
    run = function(l) l:fit_one_cycle(2, 1e-2, { pct_start = 0.3, div = 10, div_final = 1e4, moms = { 0.9, 0.8, 0.9 } }) end },
  { name = "flat_cos_slice_hi", kind = "flat_cos", n_iter = 6, args = { 2, { hi = 1e-3 } },
    run = function(l) l:fit_flat_cos(2, ft.slice(1e-3)) end },
  { name = "sgdr_3_cycles", kind = "sgdr", n_iter = 3, args = { 3, 1, { lo = 1e-4, hi = 1e-2 } },
    run = function(l) l:fit_sgdr(3, 1, ft.slice(1e-4, 1e-2)) end },
  { name = "fine_tune_2", kind = "fine_tune", n_iter = 5, args = { 2 }, run = function(l) l:fine_tune(2) end },
  -- SGD's mom is scheduled like Adam's (recorder.hps.mom reads the optimizer's own hyper)
  { name = "one_cycle_sgd_momentum", kind = "one_cycle", n_iter = 5, args = { 2, 1e-2 },
    opt = { kind = "SGD", mom = 0.9 }, run = function(l) l:fit_one_cycle(2, 1e-2) end },
  { name = "one_cycle_sgd_plain", kind = "one_cycle", n_iter = 4, args = { 2, 1e-2 }, opt = { kind = "SGD" },
    run = function(l) l:fit_one_cycle(2, 1e-2) end },
}
local sched_got = {}
for _, c in ipairs(SCHED) do
  local opt_func = c.opt and { c.opt.kind, mom = c.opt.mom } or nil
  local learn = tiny_learner(c.n_iter, nil, opt_func)
  local phases = {}
  local fit_one_cycle = learn.fit_one_cycle
  local function capture(self) phases[#phases + 1] = { lr = self.recorder.hps.lr, mom = self.recorder.hps.mom } end
  learn.fit_one_cycle = function(self, ...) local r = fit_one_cycle(self, ...) capture(self) return r end
  c.run(learn)
  if c.kind ~= "one_cycle" and c.kind ~= "fine_tune" then capture(learn) end
  sched_got[c.name] = phases
end
req.sched = {}
for _, c in ipairs(SCHED) do
  req.sched[#req.sched + 1] = { name = c.name, kind = c.kind, n_iter = c.n_iter, args = c.args, kwargs = c.kwargs or {},
    opt = c.opt or {} }
end

-- lr_find: series with a valley, a NaN, short ones, and a real one from an ftlua run.
local function series(n, nan_at)
  local lrs, losses = {}, {}
  for i = 0, n - 1 do
    lrs[#lrs + 1] = 1e-7 * (10 / 1e-7) ^ (i / (n - 1))
    local x = math.log(lrs[#lrs], 10)
    losses[#losses + 1] = 2.3 - 1.5 / (1 + math.exp(-(x + 3.5) * 2)) + 0.02 * math.sin(7 * i) + math.max(0, x + 1) ^ 2
  end
  if nan_at then for i = nan_at, n do losses[i] = 0 / 0 end end
  return lrs, losses
end
local SUGGEST = {}
local function add_series(name, lrs, losses, num_it) SUGGEST[#SUGGEST + 1] = { name = name, lrs = lrs, losses = losses, num_it = num_it } end
for _, c in ipairs { { "smooth_100", 100 }, { "nan_at_61", 100, 61 }, { "nan_first", 30, 1 }, { "short_25", 25 },
  { "short_10", 10 }, { "short_7", 7 }, { "short_6", 6 } } do
  local lrs, losses = series(c[2], c[3])
  add_series(c[1], lrs, losses, c[2])
end
do -- a real sweep: ftlua's lr_find on the tiny learner (20 batches per epoch), num_it 60
  local learn = tiny_learner(20, 3)
  learn:lr_find { num_it = 60 }
  add_series("ftlua_run_60", learn.recorder.lrs, learn.recorder.losses, 60)
end
local suggest_got = {}
for i, c in ipairs(SUGGEST) do suggest_got[i] = core.lr_suggestions(c.lrs, c.losses, c.num_it) end
req.suggest = {}
for _, c in ipairs(SUGGEST) do req.suggest[#req.suggest + 1] = { lrs = c.lrs, losses = c.losses, num_it = c.num_it } end

-- The optimizers: 3 params in 2 groups, 4 steps of given grads (param 3 has none in steps 2 and 3).
-- kind "SGD" is made with its mom, as fastai decides at creation whether SGD keeps grad_avg.
local function vals(n, a, b) local t = {} for i = 1, n do t[i] = math.sin(a * i + b) end return t end
local OPTS = {
  { name = "Adam wd_on_per_group_lr", kind = "Adam", hypers = { lr = { 1e-2, 3e-2 }, mom = 0.9, sqr_mom = 0.99, eps = 1e-5, wd = { 0.01, 0.1 } } },
  { name = "Adam wd_off", kind = "Adam", hypers = { lr = 5e-2, mom = 0.8, sqr_mom = 0.95, eps = 1e-8, wd = 0.0 } },
  { name = "Adam l2 (decouple_wd false)", kind = "Adam", decouple_wd = false,
    hypers = { lr = 2e-2, mom = 0.9, sqr_mom = 0.99, eps = 1e-5, wd = { 0.05, 0.2 } } },
  { name = "SGD mom 0, wd off", kind = "SGD", mom = 0.0, hypers = { lr = { 1e-1, 3e-2 }, mom = 0.0, wd = 0.0 } },
  { name = "SGD mom 0, decoupled wd", kind = "SGD", mom = 0.0, hypers = { lr = 5e-2, mom = 0.0, wd = { 0.1, 0.3 } } },
  { name = "SGD mom 0.9, wd off", kind = "SGD", mom = 0.9, hypers = { lr = { 1e-1, 3e-2 }, mom = 0.9, wd = 0.0 } },
  { name = "SGD mom 0.9, decoupled wd, per-group mom", kind = "SGD", mom = 0.9,
    hypers = { lr = 5e-2, mom = { 0.9, 0.85 }, wd = { 0.01, 0.2 } } },
  { name = "SGD mom 0.9, l2 (decouple_wd false)", kind = "SGD", mom = 0.9, decouple_wd = false,
    hypers = { lr = 5e-2, mom = 0.9, wd = { 0.05, 0.2 } } },
  { name = "SGD mom 0, l2 (decouple_wd false)", kind = "SGD", mom = 0.0, decouple_wd = false,
    hypers = { lr = 1e-1, mom = 0.0, wd = 0.1 } },
}
local adam_params = { vals(6, 1.3, 0.2), vals(4, 0.7, 1.1), vals(2, 2.1, -0.4) }
local adam_shapes = { { 3, 2 }, { 4 }, { 2 } }
local adam_grads = {}
for s = 1, 4 do
  adam_grads[s] = { vals(6, 0.9 * s, s), vals(4, 1.7, 0.3 * s) }
  if s ~= 2 and s ~= 3 then adam_grads[s][3] = vals(2, s, 0.5) end
end
local opt_got = {}
for k, c in ipairs(OPTS) do
  local ps = {}
  for i, v in ipairs(adam_params) do ps[i] = T.tensor(v):view(table.unpack(adam_shapes[i])):requires_grad() end
  local opt = core[c.kind]({ { ps[1], ps[2] }, { ps[3] } }, { mom = c.mom, decouple_wd = c.decouple_wd })
  assert(opt:kind() == c.kind, c.name .. ": made a " .. opt:kind())
  for h, v in pairs(c.hypers) do opt:set_hyper(h, type(v) == "table" and v or { v, v }) end
  for s = 1, 4 do
    local loss
    for i = 1, 3 do
      local g = adam_grads[s][i]
      if g then
        local term = (ps[i]:view(-1) * T.tensor(g)):sum()
        loss = loss and loss + term or term
      end
    end
    loss:backward()
    opt:step()
    opt:zero_grad()
  end
  opt_got[k] = {}
  for i = 1, 3 do opt_got[k][i] = ps[i]:view(-1):totable() end
end
req.opt = {}
for _, c in ipairs(OPTS) do
  local grads = {}
  for s = 1, 4 do grads[s] = { adam_grads[s][1], adam_grads[s][2], adam_grads[s][3] or "None" } end
  req.opt[#req.opt + 1] = { kind = c.kind, mom = c.mom or 0.0, decouple_wd = c.decouple_wd ~= false,
    params = adam_params, groups = { { 0, 1 }, { 2 } }, grads = grads, hypers = c.hypers }
end

-- The head: names, groups, freeze on one model; init statistics over seeds.
local N_OUT, SEEDS = 3, { 1, 2, 3, 4, 5, 6, 7, 8 }
req.head = { n_out = N_OUT, seeds = SEEDS }

-- Losses and metrics on the logits of a tiny learner's valid set (log of get_preds' softmax).
local loss_learn = tiny_learner(5, 7)
local probs, targs, item_losses = loss_learn:get_preds { with_loss = true }
local logits = probs:log()
local logits_t = logits:totable()
local targs0 = {}
for i, t in ipairs(targs:totable()) do targs0[i] = t - 1 end
req.loss = { logits = logits_t, targs = targs0, eps = 0.1 }

-- Interpretation: random probabilities over 4 classes for 60 items, with repeated counts.
T.manual_seed(11)
local ip = T.rand { 60, 4 }
ip = ip / ip:sum(2, true)
local it = T.randint(1, 5, { 60 })
local il = T.rand { 60 }
local VOCAB = { "abyssinian", "beagle", "bengal", "boxer" }
local interp = ft.ClassificationInterpretation.from_learner(loss_learn)
local _, dec = ip:max(2)
interp.vocab, interp.probs, interp.targs, interp.decoded, interp.losses = VOCAB, ip, it, dec, il
local it0 = {}
for i, t in ipairs(it:totable()) do it0[i] = t - 1 end
req.interp = { probs = ip:totable(), targs = it0, losses = il:totable(), vocab = { VOCAB }, min_vals = { 1, 2, 3 }, ks = { 5, 60 } }

-- The epoch table: fastai's metric names and rows with every kind of value.
local NAMES = { "epoch", "train_loss", "valid_loss", "error_rate", "accuracy", "time" }
local ROWS = {
  { 0, 1.8765031, 1.3996817, 0.625, 0.375, "00:16" },
  { 1, 0.5, 123456.789, 1e-9, 1.0, "01:02:03" },
  { 12, 0 / 0, math.huge, -0.25, 0.0, "00:00" },
}
req.table = { names = NAMES, rows = ROWS }

------------------------------------------------------------------ one run of fastai

local req_file = os.tmpname()
do
  local f = assert(io.open(req_file, "w"))
  f:write(py(req))
  f:close()
end
local ok, want = pcall(H.python, ("import sys\nsys.dont_write_bytecode = True\nsys.path[:0] = [%s, %s]\nimport fastai_ref\nprint(lua(fastai_ref.run(%s)))")
  :format(py(FASTAI), py(ROOT .. "/tests/py"), py(req_file)))
os.remove(req_file)
if not ok then
  H.test("parity: fastai_ref.py runs", function() error(want, 0) end)
  H.done()
end

------------------------------------------------------------------ comparisons

for _, c in ipairs(SCHED) do
  H.test("parity schedules: " .. c.name .. " (every group's lr and the mom per batch, float32 exact)", function()
    local got, ref = sched_got[c.name], want.sched[c.name].phases
    H.eq(#got, #ref, "fits")
    for p = 1, #ref do
      H.eq(#got[p].lr, #ref[p].lr, ("phase %d batches"):format(p))
      for b = 1, #ref[p].lr do
        for g = 1, 3 do
          local a, w = f32(got[p].lr[b][g]), ref[p].lr[b][g]
          if a ~= w then error(("phase %d batch %d group %d: lr %.9g, fastai %.9g"):format(p, b, g, a, w), 0) end
        end
        local a, w = f32(got[p].mom[b][3]), ref[p].mom[b]
        if a ~= w then error(("phase %d batch %d: mom %.9g, fastai %.9g"):format(p, b, a, w), 0) end
      end
    end
  end)
end

H.test("parity lr_find suggestions: minimum, steep, valley, slide on identical series", function()
  local equal, absent = 0, 0
  for i, c in ipairs(SUGGEST) do
    local got, ref = suggest_got[i], want.suggest[i]
    for _, k in ipairs { "minimum", "steep", "valley", "slide" } do
      local a, w = got[k], ref[k]
      -- fastai raises where a suggestion needs more points than there are; ftlua leaves it out
      if not ((a == nil and w ~= w) or a == w) then
        error(("%s: %s = %s, fastai %s%s"):format(c.name, k, tostring(a), tostring(w),
          ref[k .. "_error"] and (" (fastai raised " .. ref[k .. "_error"] .. ")") or ""), 0)
      end
      if a == nil then absent = absent + 1 else equal = equal + 1 end
    end
  end
  print(("# lr_find: %d suggestions equal to fastai's, %d left out where fastai raises"):format(equal, absent))
  H.eq(equal >= 20, true, "enough suggestions compared")
end)

for k, c in ipairs(OPTS) do
  H.test("parity optimizer " .. c.name .. " (4 steps, a param without grad, 1e-6)", function()
    H.close(opt_got[k], want.opt[k], 1e-6, "params")
  end)
end

H.test("parity cnn head: modules, parameter names in order, three groups, freeze", function()
  local ref = want.head
  T.manual_seed(0)
  local m = V.create_cnn_model("resnet18", N_OUT, { pretrained = false })
  local names = {}
  for n in m:named_parameters() do names[#names + 1] = n end
  H.eq(table.concat(names, ","), table.concat(ref.names, ","), "parameter names")
  local _, gnames = m:param_groups()
  H.eq(#gnames, 3, "groups")
  for g = 1, 3 do H.eq(table.concat(gnames[g], ","), table.concat(ref.groups[g], ","), "group " .. g) end
  local head
  for name, child in m:children() do if name == "1" then head = child end end
  local types, i = {}, 0
  for name, child in head:children() do
    types[#types + 1] = child:type()
    local e = ref.extras[tostring(i)]
    if e.p then H.close(tonumber(tostring(child):match("^Dropout%(p=([%d.]+)")), e.p, 0, "dropout p of " .. name) end
    if e["in"] then
      H.close(child.weight:size(), { e.out, e["in"] }, 0, "linear " .. name)
      H.eq(child.bias ~= nil, e.bias, "linear bias of " .. name)
    end
    if e.n then H.close(child.weight:size(1), e.n, 0, "bn features of " .. name) end
    i = i + 1
  end
  H.eq(table.concat(types, ","), table.concat(ref.modules, ","), "head modules")
  m:freeze()
  local trainable = {}
  for n, p in m:named_parameters() do if p:needs_grad() then trainable[#trainable + 1] = n end end
  H.eq(table.concat(trainable, ","), table.concat(ref.trainable, ","), "trainable after freeze")
end)

H.test(("parity cnn head init: mean and std of every head parameter over %d seeds"):format(#SEEDS), function()
  local sum = {}
  for _, s in ipairs(SEEDS) do
    T.manual_seed(s)
    local m = V.create_cnn_model("resnet18", N_OUT, { pretrained = false })
    for name, child in m:children() do
      if name == "1" then
        for n, p in child:named_parameters() do
          local d = p:double()
          local st = sum[n] or { mean = 0, std = 0, numel = d:numel() }
          st.mean = st.mean + d:mean():item() / #SEEDS
          st.std = st.std + (d:numel() > 1 and d:std():item() or 0) / #SEEDS
          sum[n] = st
        end
      end
    end
  end
  for n, w in pairs(want.head.stats) do
    local g = sum[n]
    if not g then error("no head parameter " .. n .. " in ftlua", 0) end
    -- sampling noise of a mean and a std over numel * seeds normal draws, 5 sigma
    local k = g.numel * #SEEDS
    local tol_mean, tol_std = 5 * w.std / math.sqrt(k) + 1e-12, 5 * w.std / math.sqrt(2 * k) + 1e-12
    print(("# head %-14s ftlua mean %+.6f std %.6f   fastai mean %+.6f std %.6f"):format(n, g.mean, g.std, w.mean, w.std))
    if math.abs(g.mean - w.mean) > tol_mean then error(("%s: mean %.6g, fastai %.6g"):format(n, g.mean, w.mean), 0) end
    if math.abs(g.std - w.std) > tol_std then error(("%s: std %.6g, fastai %.6g"):format(n, g.std, w.std), 0) end
  end
end)

H.test("parity losses and metrics: CrossEntropyLossFlat, LabelSmoothingCrossEntropy, error_rate, accuracy", function()
  local ref = want.loss
  H.close(item_losses, ref.ce_none, 1e-5, "CrossEntropyLossFlat per item (get_preds)")
  H.close(item_losses:mean():item(), ref.ce, 1e-5, "CrossEntropyLossFlat")
  H.close(core.label_smoothing_ce(logits, targs, { eps = 0.1 }):item(), ref.ls, 1e-6, "LabelSmoothingCrossEntropy")
  H.close(core.label_smoothing_ce(logits, targs, { eps = 0.1, reduction = "none" }), ref.ls_none, 1e-6, "LS per item")
  H.close(core.label_smoothing_ce(logits, targs, { eps = 0 }):item(), ref.ce, 1e-5, "LS with eps 0 is CE")
  H.close(core.error_rate(logits, targs):item(), ref.error_rate, 1e-7, "error_rate")
  H.close(core.accuracy(logits, targs):item(), ref.accuracy, 1e-7, "accuracy")
end)

H.test("parity interpretation: confusion_matrix, most_confused(min_val), top_losses", function()
  local ref = want.interp
  H.close(interp:confusion_matrix(), ref.cm, 0, "confusion_matrix")
  for _, mv in ipairs { 1, 2, 3 } do
    local got, w = interp:most_confused { min_val = mv }, ref.most_confused[mv]
    H.eq(#got, #w, "most_confused(" .. mv .. ") length")
    for i = 1, #w do
      H.eq(table.concat(got[i], "|"), table.concat(w[i], "|"), ("most_confused(%d)[%d]"):format(mv, i))
    end
  end
  for _, k in ipairs { 5, 60 } do
    for _, largest in ipairs { true, false } do
      local l, idx = interp:top_losses(k, largest)
      local w = ref.top_losses[("%d_%s"):format(k, largest and "True" or "False")]
      H.close(l, w.losses, 0, "top_losses values")
      local i0 = {}
      for j, v in ipairs(idx:totable()) do i0[j] = v - 1 end
      H.close(i0, w.idx, 0, "top_losses indices")
    end
  end
end)

H.test("parity epoch table: header and rows as fastai's ProgressCallback prints them", function()
  local ref = want.table
  H.eq(core.table_header(NAMES), ref[1], "header")
  for i, row in ipairs(ROWS) do H.eq(core.table_row(NAMES, row), ref[i + 1], "row " .. i) end
end)

H.done()
