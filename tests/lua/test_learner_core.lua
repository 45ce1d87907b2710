-- test_learner_core.lua: the Lua face of the learner's core (runtime/learner/learner_core.c)
-- against Python references: tests/py/learner_ref.py (the spec's formulas, as fastai computes
-- them), torch.optim.AdamW and torch's own ops for metrics and losses; known values otherwise.
local ft = require "ftlua"
local T = ft.tensor
local H = require "harness"

local ok, core = pcall(function() return ft.learner_core or require "ftlua.learner_core" end)
if not ok or type(core) ~= "table" then
  H.skip("learner_core", "ft.learner_core is not registered in this build")
  H.done()
end

-- Python prelude: the reference module, and tensors from Lua's nested tables.
local PY = [==[
import os, sys, torch, numpy as np
sys.path.insert(0, os.path.join(os.environ.get('FTLUA_ROOT', '.'), 'tests', 'py'))
import learner_ref as R
def f32(x): return torch.tensor(x, dtype=torch.float32)
]==]

local function totable_all(ts)
  local out = {}
  for i, t in ipairs(ts) do out[i] = t:detach():totable() end
  return out
end

local function lua_src(v) -- numbers and nested tables of numbers as Python literals
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = lua_src(x) end
    return "[" .. table.concat(parts, ", ") .. "]"
  elseif v ~= v then return "float('nan')"
  elseif v == math.huge then return "float('inf')"
  elseif v == -math.huge then return "-float('inf')"
  elseif math.type(v) == "integer" then return tostring(v)
  else return string.format("%.17g", v) end
end

-- ------------------------------------------------------------------ slices and lr per group

H.test("slice and the lr per group", function()
  local s = core.slice(1e-6, 1e-4)
  H.eq(tostring(s), "slice(1e-06, 0.0001)", "tostring")
  H.eq(core.is_slice(s), true, "is_slice")
  H.eq(core.is_slice({ 1 }), false, "a table is not a slice")
  H.close(core.lr_per_group(s, 3), { 1e-6, 1e-5, 1e-4 }, 1e-12)
  H.close(core.lr_per_group(core.slice(2e-3), 3), { 2e-4, 2e-4, 2e-3 }, 0)
  H.close(core.lr_per_group(3e-3, 3), { 3e-3, 3e-3, 3e-3 }, 0)
  H.close(core.lr_per_group({ 1e-3, 2e-3 }, 2), { 1e-3, 2e-3 }, 0)
  H.close(core.even_mults(1, 100, 3), { 1, 10, 100 }, 1e-12)
end)

H.test("bad lrs give clear errors", function()
  H.errors(function() core.lr_per_group(-1e-3, 3) end, "lr must be a positive finite number, got -0.001")
  H.errors(function() core.lr_per_group(0, 3) end, "positive")
  H.errors(function() core.lr_per_group(0 / 0, 3) end, "lr is NaN")
  H.errors(function() core.lr_per_group(core.slice(1e-2, 1e-3), 3) end, "slice(lo, hi) needs lo <= hi")
  H.errors(function() core.lr_per_group({ 1e-3, 1e-2 }, 3) end, "2 learning rates for 3 parameter groups")
  H.errors(function() core.lr_per_group("x", 3) end, "number, slice or table")
  H.errors(function() core.one_cycle(1e-3, { pct_start = 2 }) end, "pct_start")
  H.errors(function() core.one_cycle(core.slice(1, 0.1), { n_groups = 2 }) end, "lo <= hi")
end)

-- ------------------------------------------------------------------ schedules

H.test("one_cycle known values", function()
  local sch = core.one_cycle(1e-2, { n_groups = 1 })
  local lrs, mom = sch:at(0)
  H.eq(lrs[1], 1e-2 / 25, "first lr is lr_max/div")
  H.eq(mom, 0.95, "first mom")
  lrs, mom = sch:at(0.25)
  H.eq(lrs[1], 1e-2, "peak at pct_start")
  H.eq(mom, 0.85, "low mom at pct_start")
  local v = sch:values(4, 7)
  H.eq(#v.lrs, 28, "one value per batch")
  H.eq(v.lrs[8][1], 1e-2, "batch 8 (pos 0.25) is the peak")
  H.close(core.train_pos(3, 6, 7, 4), 27 / 28, 1e-15)
end)

if not H.have_torch() then
  H.skip("references", "/usr/bin/python3 has no torch (apt-get install python3-torch)")
  H.done()
end

H.test("one_cycle, flat_cos and sgdr per batch equal the reference", function()
  local cases = {
    { lr = core.slice(1e-6, 1e-4), py = "{'slice': [1e-6, 1e-4]}", kind = "one_cycle", n_epoch = 3, n_iter = 7, g = 3, opts = {} },
    { lr = core.slice(2e-3), py = "{'slice': [None, 2e-3]}", kind = "one_cycle", n_epoch = 1, n_iter = 50, g = 3, opts = { pct_start = 0.99 } },
    { lr = { 1e-3, 3e-3 }, py = "[1e-3, 3e-3]", kind = "one_cycle", n_epoch = 2, n_iter = 9, g = 2,
      opts = { div = 5, pct_start = 0.3, moms = { 0.9, 0.8, 0.9 } } },
    { lr = core.slice(1e-4, 1e-2), py = "{'slice': [1e-4, 1e-2]}", kind = "flat_cos", n_epoch = 2, n_iter = 10, g = 3, opts = {} },
    { lr = 1e-2, py = "1e-2", kind = "sgdr", n_iter = 6, g = 1, opts = {} },
  }
  local got, py = {}, {}
  for i, c in ipairs(cases) do
    c.opts.n_groups = c.g
    local sch
    if c.kind == "one_cycle" then sch = core.one_cycle(c.lr, c.opts)
    elseif c.kind == "flat_cos" then sch = core.flat_cos(c.lr, c.opts)
    else sch = core.sgdr(3, 1, c.lr, c.opts); c.n_epoch = sch.n_epoch end
    got[i] = sch:values(c.n_epoch, c.n_iter)
    local o = c.opts
    py[i] = ("dict(kind=%q, n_epoch=%d, n_iter=%d, n_groups=%d, lr=%s, n_cycles=3, cycle_len=1, cycle_mult=2%s%s%s)")
      :format(c.kind, c.n_epoch, c.n_iter, c.g, c.py, o.div and (", div=" .. lua_src(o.div)) or "",
        o.pct_start and (", pct_start=" .. lua_src(o.pct_start)) or "", o.moms and (", moms=" .. lua_src(o.moms)) or "")
  end
  local want = H.python(PY .. ([==[
out = []
for c in [%s]:
    lr_f, mom_f, n_epoch = R.case_scheds(c, True)
    pos = R.train_positions(n_epoch, c['n_iter'])
    out.append({'lrs': [[float(x) for x in np.atleast_1d(lr_f(p))] for p in pos],
                'moms': [mom_f(p) for p in pos] if mom_f else None})
print(lua(out))
]==]):format(table.concat(py, ", ")))
  for i, c in ipairs(cases) do
    H.close(got[i].lrs, want[i].lrs, 1e-9, c.kind .. " lrs")
    if want[i].moms then H.close(got[i].moms, want[i].moms, 1e-9, c.kind .. " moms") else H.eq(got[i].moms, nil) end
  end
end)

-- ------------------------------------------------------------------ Adam

-- Three params in two groups; grads and a beta1 that change every step.
local function adam_run(all_wd, vary)
  T.manual_seed(3)
  local w1, b1, w2 = T.randn { 4, 3 }:requires_grad(), T.randn { 3 }:requires_grad(), T.randn { 5 }:requires_grad()
  local ps = { w1, b1, w2 }
  local init = totable_all(ps)
  local opt = core.Adam({ { w1, b1 }, { w2 } }, { lr = core.slice(1e-2), wd = 0.01 })
  if not all_wd then opt:set_flags(2, { do_wd = false }) end
  local grads, hypers = {}, {}
  for s = 1, 5 do
    local gs = { T.randn { 4, 3 }, T.randn { 3 }, T.randn { 5 } }
    grads[s] = totable_all(gs)
    for i = 1, 3 do ps[i].grad = gs[i] end
    local mom = vary and 0.95 - 0.02 * s or 0.9
    opt:set_hyper("mom", mom)
    local h = opt:hypers()
    hypers[s] = { { h[1].lr, h[1].mom, h[1].sqr_mom, h[1].eps, h[1].wd }, { h[2].lr, h[2].mom, h[2].sqr_mom, h[2].eps, h[2].wd } }
    opt:step()
    opt:zero_grad()
  end
  return opt, ps, init, grads, hypers
end

local function adam_reference(impl, all_wd, init, grads, hypers)
  local params = {}
  local shapes, groups = { "[4, 3]", "[3]", "[5]" }, { 0, 0, 1 }
  for i = 1, 3 do
    params[i] = ("{'shape': %s, 'group': %d, 'do_wd': %s, 'data': %s}"):format(shapes[i], groups[i],
      (all_wd or i ~= 2) and "True" or "False", lua_src(init[i]))
  end
  return H.python(PY .. ([==[
import io, contextlib
req = {'impl': %q, 'params': [%s], 'grads': %s, 'hypers': %s}
for q in req['params']: q['data'] = np.array(q['data'], dtype=np.float64).reshape(-1).tolist()
req['grads'] = [[np.array(g, dtype=np.float64).reshape(-1).tolist() for g in gs] for gs in req['grads']]
buf = io.StringIO()
with contextlib.redirect_stdout(buf): R.mode_adam(req)
lines = buf.getvalue().split('\n')
print(lua([[float(x) for x in lines[i].split()] for i in range(3)]))
]==]):format(impl, table.concat(params, ", "), lua_src(grads), lua_src(hypers)))
end

local function flat(t, out)
  out = out or {}
  if type(t) == "table" then for _, x in ipairs(t) do flat(x, out) end else out[#out + 1] = t end
  return out
end

H.test("Adam equals the spec's Adam bit for bit (beta1 changing, no decay on a bias)", function()
  local _, ps, init, grads, hypers = adam_run(false, true)
  local want = adam_reference("fastai", false, init, grads, hypers)
  for i = 1, 3 do H.close(flat(ps[i]:detach():totable()), want[i], 0, "param " .. i) end
end)

H.test("Adam equals torch.optim.AdamW to float tolerance", function()
  local _, ps, init, grads, hypers = adam_run(true, false)
  local want = adam_reference("adamw", true, init, grads, hypers)
  for i = 1, 3 do H.close(flat(ps[i]:detach():totable()), want[i], 1e-6, "param " .. i) end
end)

H.test("Adam state, flags, snapshots, freezing", function()
  local opt, ps = adam_run(false, true)
  H.eq(tostring(opt), "Adam (2 groups, 3 params)")
  H.eq(opt:n_groups(), 2); H.eq(opt:n_params(), 3)
  local st = opt:param_state(1)
  H.eq(st.step, 5, "step"); H.eq(st.group, 1); H.eq(st.do_wd, true); H.eq(opt:param_state(2).do_wd, false)
  H.close(opt:hypers()[1].lr, 1e-3, 0); H.close(opt:hypers()[2].lr, 1e-2, 0)

  local snap, tsnap = opt:state_snapshot(), core.tensor_snapshot(ps)
  local before = totable_all(ps)
  local avg = opt:param_state(3).sqr_avg
  for _ = 1, 2 do
    for i = 1, 3 do ps[i].grad = T.ones(ps[i]:size()) end
    opt:set_hyper("lr", 0.5)
    opt:step(); opt:zero_grad()
  end
  tsnap:restore(ps)
  opt:restore(snap)
  for i = 1, 3 do H.close(ps[i]:detach():totable(), before[i], 0, "restored param " .. i) end
  H.eq(opt:param_state(3).sqr_avg:equal(avg), true, "restored state")
  H.eq(opt:param_state(3).step, 5)
  H.close(opt:hypers()[2].lr, 1e-2, 0, "restored lr")

  -- a param without grad is untouched and keeps its state
  local frozen_before = ps[3]:detach():clone()
  ps[1].grad = T.ones { 4, 3 }
  opt:step()
  H.eq(ps[3]:detach():equal(frozen_before), true, "no grad, no change")
  H.eq(opt:param_state(3).step, 5, "no grad, no step")
  opt:zero_grad(false)
  H.eq(ps[1].grad:sum():item(), 0, "zero_grad(false) zeroes in place")
  opt:zero_grad()
  H.eq(ps[1].grad, nil, "zero_grad() drops the grad")

  opt:clear_state()
  H.eq(opt:param_state(1).step, 0); H.eq(opt:param_state(1).grad_avg, nil)
  H.eq(opt:param_state(2).do_wd, false, "clear_state keeps do_wd")

  opt:set_flags(2, { force_train = true })
  H.eq(opt:freeze_to(-1), 1, "frozen_idx")
  H.eq(ps[1]:needs_grad(), false); H.eq(ps[2]:needs_grad(), true, "force_train"); H.eq(ps[3]:needs_grad(), true)
  opt:freeze_to(0)
  H.eq(ps[1]:needs_grad(), true, "unfrozen")
  H.errors(function() opt:set_hyper("beta", 1) end, "unknown hyper-parameter 'beta'")
  H.errors(function() opt:set_hyper("lr", { 1e-3 }) end, "1 learning rates for 2 parameter groups")
  H.errors(function() opt:set_hyper("lr", -1) end, "positive")
  H.errors(function() opt:param_state(4) end, "out of range")
  opt:free()
  H.errors(function() opt:step() end, "freed")
end)

-- ------------------------------------------------------------------ lr_find

H.test("LRFinder and the suggestions", function()
  local f = core.LRFinder { num_it = 100 }
  H.eq(f:lr(), 1e-7)
  local lrs, losses = {}, {}
  local stop = false
  while not stop do
    local i = f:train_iter()
    lrs[#lrs + 1] = f:lr()
    local x = math.log(lrs[#lrs], 10)
    losses[#losses + 1] = 2.3 - 1.5 / (1 + math.exp(-2 * (x + 4))) + (x > -1.5 and math.exp(3 * (x + 1.5)) - 1 or 0) + 0.01 * ((i * 7) % 3)
    stop = f:after_batch(losses[#losses])
  end
  local got = core.lr_suggestions(lrs, losses, 100)
  local want = H.python(PY .. ("m = R.suggestions(%s, %s, 100)\nprint(lua({'minimum': m[0], 'steep': m[1], 'valley': m[2], 'slide': m[3], 'n': %d}))")
    :format(lua_src(lrs), lua_src(losses), #lrs))
  H.eq(want.n, #lrs, "batches run")
  for _, k in ipairs { "minimum", "steep", "valley", "slide" } do H.eq(got[k], want[k], k) end
  local short = core.lr_suggestions({ 1, 2, 3, 4, 5, 6, 7 }, { 3, 2, 1, 0, 0, 0, 0 }, 6)
  H.eq(short.n, 2); H.eq(short.slide, nil, "slide needs 16 points"); H.eq(type(short.valley), "number")
  H.errors(function() core.LRFinder { start_lr = -1 } end, "positive")
end)

-- ------------------------------------------------------------------ metrics and losses

H.test("metrics and label smoothing equal torch", function()
  T.manual_seed(5)
  local pred = T.randn { 64, 10 }
  local targ = T.randint(1, 11, { 64 })
  local logits = T.randn { 16, 5 }:requires_grad()
  local t2 = T.randint(1, 6, { 16 })
  local got = {
    acc = core.accuracy(pred, targ):item(), err = core.error_rate(pred, targ):item(),
    top1 = core.top_k_accuracy(pred, targ, 1):item(), top3 = core.top_k_accuracy(pred, targ, 3):item(),
    top5 = core.top_k_accuracy(pred, targ):item(),
    ls_sum = core.label_smoothing_ce(logits, t2, { reduction = "sum" }):item(),
    ls_none = core.label_smoothing_ce(logits, t2, { eps = 0.2, reduction = "none" }):totable(),
  }
  local ls = core.label_smoothing_ce(logits, t2)
  ls:backward()
  got.ls = ls:item()
  got.grad = logits.grad:totable()
  local want = H.python(PY .. ([==[
import torch.nn.functional as F
p, t = f32(%s), torch.tensor(%s) - 1
x, t2 = f32(%s).requires_grad_(), torch.tensor(%s) - 1
acc = (p.argmax(dim=-1) == t).float().mean()
def topk(k): return (p.topk(k=k, dim=-1)[1] == t.unsqueeze(-1).expand(-1, k)).sum(dim=-1).float().mean().item()
def lsce(eps, red):
    c = x.size(1); lp = F.log_softmax(x, dim=1)
    if red == 'sum': loss = -lp.sum()
    else:
        loss = -lp.sum(dim=1)
        if red == 'mean': loss = loss.mean()
    return loss * eps / c + (1 - eps) * F.nll_loss(lp, t2, reduction=red)
ls = lsce(0.1, 'mean'); ls.backward()
print(lua({'acc': acc.item(), 'err': (1 - acc).item(), 'top1': topk(1), 'top3': topk(3), 'top5': topk(5),
           'ls': ls.item(), 'ls_sum': lsce(0.1, 'sum').item(), 'ls_none': lsce(0.2, 'none').tolist(),
           'grad': x.grad.tolist()}))
]==]):format(lua_src(pred:totable()), lua_src(targ:totable()), lua_src(logits:detach():totable()), lua_src(t2:totable())))
  for _, k in ipairs { "acc", "err", "top1", "top3", "top5", "ls", "ls_sum" } do H.close(got[k], want[k], 0, k) end
  H.close(got.ls_none, want.ls_none, 0, "ls_none")
  H.close(got.grad, want.grad, 1e-7, "grad")
  H.errors(function() core.accuracy(pred, T.randint(1, 11, { 63 })) end, "64 predictions but 63 targets")
  H.errors(function() core.top_k_accuracy(pred, targ, 11) end, "k = 11 for 10 classes")
end)

H.test("AvgMetric, AvgLoss and AvgSmoothLoss equal fastai's float32 arithmetic", function()
  T.manual_seed(9)
  local m, l, s = core.AvgMetric(), core.AvgLoss(), core.AvgSmoothLoss()
  H.eq(m:value(), nil, "no value before a batch"); H.eq(s:value(), nil)
  local vals, bss, losses = {}, {}, {}
  for i = 1, 7 do
    local v, loss = T.rand { 1 }:squeeze(), T.rand { 1 }:squeeze() * 3
    local bs = i == 7 and 13 or 64
    m:accumulate(v, bs); l:accumulate(loss, bs); s:accumulate(loss)
    vals[i], bss[i], losses[i] = v:item(), bs, loss:item()
  end
  local n = core.AvgMetric()
  n:accumulate(0.25, 3); n:accumulate(0.5, 1)
  H.close(n:value(), (0.25 * 3 + 0.5) / 4, 0, "plain numbers")
  local want = H.python(PY .. ([==[
vals, bss, losses = %s, %s, %s
tot, cnt = 0., 0
for v, b in zip(vals, bss): tot += f32(v) * b; cnt += b
ltot = 0.
for v, b in zip(losses, bss): ltot += f32(v).mean() * b
val = torch.tensor(0.)
for v in losses: val = torch.lerp(f32(v).mean(), val, 0.98)
print(lua({'m': (tot / cnt).item(), 'l': (ltot / cnt).item(), 's': (val / (1 - 0.98 ** len(losses))).item()}))
]==]):format(lua_src(vals), lua_src(bss), lua_src(losses)))
  H.close(m:value(), want.m, 0, "AvgMetric"); H.close(l:value(), want.l, 0, "AvgLoss"); H.close(s:value(), want.s, 0, "AvgSmoothLoss")
  s:reset(); H.eq(s:value(), nil, "reset")
end)

-- ------------------------------------------------------------------ printing

H.test("table lines, format_time, repr and CSVLogger", function()
  local names = { "epoch", "train_loss", "valid_loss", "error_rate", "time" }
  H.eq(core.table_header(names), "epoch     train_loss  valid_loss  error_rate  time    ")
  H.eq(core.table_row(names, { 0, 1.491732, 0.337355, 0.108254, "00:18" }),
    "0         1.491732    0.337355    0.108254    00:18     ")
  H.eq(core.format_time(18.9), "00:18"); H.eq(core.format_time(3725), "1:02:05")
  H.eq(core.repr(0.1), "0.1"); H.eq(core.repr(1e-5), "1e-05"); H.eq(core.repr(2.0), "2.0")
  local dir = H.tmpdir()
  local path = dir .. "/history.csv"
  local log = core.CSVLogger(path, names)
  log:write { 0, 0.33735501766204834, 0.2, 1 / 3, "00:18" }
  log:close()
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  H.eq(text, "epoch,train_loss,valid_loss,error_rate,time\n0,0.33735501766204834,0.2,0.3333333333333333,00:18\n")
  core.CSVLogger(path, names, { append = true }):close()
  core.CSVLogger(path, names, { append = false }):close()
  f = assert(io.open(path)); text = f:read("a"); f:close()
  H.eq(text, "epoch,train_loss,valid_loss,error_rate,time\n", "{append = false} truncates")
  os.remove(path); os.remove(dir)
  H.errors(function() core.CSVLogger("/nonexistent/x/h.csv", names) end, "cannot write '/nonexistent/x/h.csv': No such file")
  local bar = core.ProgressBar(0, 1, 3) -- silent unless stdout is a terminal
  bar:update(1); bar:comment(0.5); bar:update(3); bar:finish()
end)

H.done()
