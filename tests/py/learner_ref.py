#!/usr/bin/python3
"""learner_ref.py: independent references for the learner core (tests/c/test_schedule.c,
test_lr_find.c, test_optimizer.c, test_progress.c and tests/lua/test_learner_core.lua).

    /usr/bin/python3 tests/py/learner_ref.py MODE REQUEST.json

Everything here is written from ../shared/reference/fastai-spec.md (sections 0-6 and 9) in
Python, with torch and numpy doing the arithmetic where fastai's does: fastai's `tensor()` makes
float32 tensors, so the cumulative pcts of combine_scheds and the lr_find series are float32,
and np.gradient runs on a float32 array. Output goes to stdout: numbers as Python repr (exact
round trip), "nan" where a value does not exist, or raw text lines for the formatting modes.

Modes and their REQUEST:
  sched     {"cases": [{kind: one_cycle|flat_cos|sgdr, n_epoch, n_iter, n_groups, lr, ...}]}
            lr is a number, a list, or {"slice": [lo|null, hi]}. For every batch of every case:
            n_groups lrs and the mom ("nan" when not scheduled), first as fastai computes them
            (line "F ...") then with plain double arithmetic (line "D ...").
  sweep     {"cases": [{start, end, num_it}]}: lr_i for i = 0..num_it, one line per case
  finder    {"cases": [{losses, num_it, stop_div}]}: batches run before LRFinder stops
  suggest   {"cases": [{lrs, losses, num_it}]}: minimum steep valley slide, one line per case
  adam      {"params": [{shape, data, group, do_wd}], "grads": [[flat or null per param] per
             step], "hypers": [[[lr, mom, sqr_mom, eps, wd] per group] per step],
             "impl": "fastai"|"adamw"}: the params after the last step, then per param
             "state step grad_avg... sqr_avg..." or "state 0"
  repr      {"hex": ["0x1.8p+1", ...]}: repr(float) per line
  time      {"t": [...]}: format_time per line
  table     {"rows": [[cell...]]} with the first row the names; cells {"i"|"f"|"s"|"none"}
  bar       {"cases": [{total, cols, epoch, n_epoch, events: [[val, t, comment|null]]}]}:
            what fastprogress writes, UTF-8 bytes in hex, a line per case
  csv       {"rows": [...]} like table: the CSVLogger file's text
"""
import json
import math
import sys

import numpy as np

torch = None  # imported on first use: the formatting modes don't need it, and it is slow to load


def need_torch():
    global torch
    if torch is None:
        import torch as t
        torch = t


def tensor(xs):
    """fastai's tensor() on a list of Python floats: a float32 tensor."""
    need_torch()
    return torch.tensor(np.array(xs, dtype=np.float64)).float()


def r(x):
    x = float(x)
    return "nan" if math.isnan(x) else repr(x)


# ---------------------------------------------------------------- schedules (fastai callback/schedule.py)

def sched_cos(start, end, pos):
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def combine_scheds(pcts, scheds, exact=True):
    """pcts -> cumsum([0] + pcts); idx = min(max{i: pos >= pcts[i]}, len(pcts) - 2).
    exact=True keeps fastai's float32 pcts; exact=False is the formula in doubles."""
    assert abs(sum(pcts) - 1) < 1e-12
    if exact:
        need_torch()
        cum = torch.cumsum(tensor([0.0] + list(pcts)), 0)
        lim = len(cum) - 2

        def inner(pos):
            idx = min(int((pos >= cum).nonzero().max()), lim)
            actual = (pos - cum[idx]) / (cum[idx + 1] - cum[idx])
            return scheds[idx](actual.item())
    else:
        cum = [0.0]
        for p in pcts:
            cum.append(cum[-1] + p)
        lim = len(cum) - 2

        def inner(pos):
            idx = min(max(i for i, c in enumerate(cum) if pos >= c), lim)
            return scheds[idx]((pos - cum[idx]) / (cum[idx + 1] - cum[idx]))
    return inner


def cos_sched(start, end):
    return lambda pos: sched_cos(start, end, pos)


def combined_cos(pct, start, middle, end, exact=True):
    return combine_scheds([pct, 1 - pct], [cos_sched(start, middle), cos_sched(middle, end)], exact)


def even_mults(start, stop, n):
    if n == 1:
        return stop
    step = (stop / start) ** (1 / (n - 1))
    return np.array([start * step ** i for i in range(n)])


def lr_per_group(v, n):
    """The optimizer's set_hyper rule."""
    if isinstance(v, dict):
        lo, hi = v["slice"]
        if lo:
            v = even_mults(lo, hi, n)
        else:
            v = [hi / 10] * (n - 1) + [hi]
    v = list(np.atleast_1d(np.array(v, dtype=np.float64)))
    if len(v) == 1:
        v = v * n
    assert len(v) == n
    return np.array(v, dtype=np.float64)


def train_positions(n_epoch, n_iter):
    """pct_train as TrainEvalCallback keeps it: epoch/n_epoch, += 1/(n_iter*n_epoch) per batch."""
    out = []
    for epoch in range(n_epoch):
        pct = epoch / n_epoch
        for _ in range(n_iter):
            out.append(pct)
            pct += 1. / (n_iter * n_epoch)
    return out


def case_scheds(c, exact):
    n = c["n_groups"]
    lr = lr_per_group(c["lr"], n)
    kind = c["kind"]
    if kind == "one_cycle":
        pct = c.get("pct_start", 0.25)
        div, div_final = c.get("div", 25.), c.get("div_final", 1e5)
        moms = c.get("moms", [0.95, 0.85, 0.95])
        return (combined_cos(pct, lr / div, lr, lr / div_final, exact),
                combined_cos(pct, *moms, exact=exact), c["n_epoch"])
    if kind == "flat_cos":
        pct = c.get("pct_start", 0.75)
        return combined_cos(pct, lr, lr, lr / c.get("div_final", 1e5), exact), None, c["n_epoch"]
    if kind == "sgdr":
        nc, cl, cm = c["n_cycles"], c["cycle_len"], c.get("cycle_mult", 2)
        n_epoch = cl * (cm ** nc - 1) // (cm - 1)
        pcts = [cl * cm ** i / n_epoch for i in range(nc)]
        return combine_scheds(pcts, [cos_sched(lr, 0 * lr) for _ in range(nc)], exact), None, n_epoch
    raise ValueError(kind)


def mode_sched(req):
    for c in req["cases"]:
        for tag, exact in (("F", True), ("D", False)):
            lr_f, mom_f, n_epoch = case_scheds(c, exact)
            for pos in train_positions(n_epoch, c["n_iter"]):
                lrs = np.atleast_1d(lr_f(pos))
                mom = mom_f(pos) if mom_f else float("nan")
                print(tag, " ".join(r(x) for x in lrs), r(mom))


# ---------------------------------------------------------------- lr_find (fastai callback/schedule.py)

def mode_sweep(req):
    for c in req["cases"]:
        s, e, n = c["start"], c["end"], max(c["num_it"], 6)
        print(" ".join(r(s * (e / s) ** (i / n)) for i in range(n + 1)))


def mode_finder(req):
    for c in req["cases"]:
        num_it = max(c["num_it"], 6)
        best, it = float("inf"), 0
        for v in c["losses"]:
            it += 1  # TrainEvalCallback.after_batch runs first
            v = np.float32(v)  # the smoothed loss is a float32 tensor
            if v < best:
                best = v
            if v > 4 * best and c["stop_div"]:
                break
            if it >= num_it:
                break
        print(it)


def minimum(lrs, losses):
    return lrs[losses.argmin()].item() / 10


def steep(lrs, losses):
    grads = (losses[1:] - losses[:-1]) / (lrs[1:].log() - lrs[:-1].log())
    return lrs[grads.argmin()].item()


def valley(lrs, losses):
    n = len(losses)
    max_start = max_end = 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[idx])


def slide(lrs, losses, lr_diff=15, thresh=.005, adjust_value=1.):
    losses = losses.numpy()
    g = np.gradient(losses)
    ri = -1
    li = ri - lr_diff
    lr = lrs[li]
    while li >= -len(losses) and abs(g[ri] - g[li]) > thresh:
        lr = lrs[li]
        ri -= 1
        li -= 1
    return float(lr) * adjust_value


def suggestions(rec_lrs, rec_losses, num_it):
    need_torch()
    lrs, losses = tensor(rec_lrs[num_it // 10:-5]), tensor(rec_losses[num_it // 10:-5])
    nan = torch.nonzero(torch.isnan(losses.view(-1)))
    if len(nan) > 0:
        drop = int(min(nan))
        lrs, losses = lrs[:drop], losses[:drop]
    out = []
    for f in (minimum, steep, valley, slide):
        try:
            out.append(f(lrs, losses))
        except (IndexError, ValueError, RuntimeError):
            out.append(float("nan"))  # fastai raises here: too few points
    return out


def mode_suggest(req):
    for c in req["cases"]:
        losses = [float("nan") if v is None else v for v in c["losses"]]
        print(" ".join(r(x) for x in suggestions(c["lrs"], losses, c["num_it"])))


# ---------------------------------------------------------------- Adam (fastai optimizer.py)

def fastai_adam_step(p, grad, st, lr, mom, sqr_mom, eps, wd, do_wd):
    """One step in the spec's order, with the ops fastai's callbacks use."""
    if do_wd and wd != 0:
        p.mul_(1 - lr * wd)
    if "grad_avg" not in st:
        st["grad_avg"] = torch.zeros_like(grad)
        st["sqr_avg"] = torch.zeros_like(grad)
        st["step"] = 0
    st["grad_avg"].mul_(mom).add_(grad, alpha=1 - mom)
    st["sqr_avg"].mul_(sqr_mom).addcmul_(grad, grad, value=1 - sqr_mom)
    st["step"] += 1
    step = st["step"]
    debias1 = (1 - mom) * (1 - mom ** step) / (1 - mom)
    debias2 = (1 - sqr_mom) * (1 - sqr_mom ** step) / (1 - sqr_mom)
    p.addcdiv_(st["grad_avg"], (st["sqr_avg"] / debias2).sqrt() + eps, value=-lr / debias1)


def mode_adam(req):
    need_torch()
    params = [torch.tensor(q["data"], dtype=torch.float32).reshape(q["shape"]) for q in req["params"]]
    meta = req["params"]
    states = [{} for _ in params]
    if req["impl"] == "adamw":
        ws = [p.clone().requires_grad_() for p in params]
        h0 = req["hypers"][0]
        n_groups = len(h0)
        groups = [{"params": [w for w, q in zip(ws, meta) if q["group"] == g],
                   "lr": h0[g][0], "betas": (h0[g][1], h0[g][2]), "eps": h0[g][3],
                   "weight_decay": h0[g][4]} for g in range(n_groups)]
        opt = torch.optim.AdamW(groups)
        for grads, hyp in zip(req["grads"], req["hypers"]):
            for g, pg in enumerate(opt.param_groups):
                pg["lr"], pg["betas"], pg["eps"], pg["weight_decay"] = hyp[g][0], (hyp[g][1], hyp[g][2]), hyp[g][3], hyp[g][4]
            for w, gr in zip(ws, grads):
                w.grad = None if gr is None else torch.tensor(gr, dtype=torch.float32).reshape(w.shape)
            opt.step()
        params = [w.detach() for w in ws]
        for w, st in zip(ws, states):
            s = opt.state.get(w, {})
            if s:
                st.update(grad_avg=s["exp_avg"], sqr_avg=s["exp_avg_sq"], step=int(s["step"]))
    else:
        for grads, hyp in zip(req["grads"], req["hypers"]):
            for p, q, gr, st in zip(params, meta, grads, states):
                if gr is None:
                    continue  # no grad: fastai's step skips the param
                grad = torch.tensor(gr, dtype=torch.float32).reshape(p.shape)
                fastai_adam_step(p, grad, st, *hyp[q["group"]], q["do_wd"])
    for p in params:
        print(" ".join(r(x) for x in p.reshape(-1).tolist()))
    for st in states:
        if not st:
            print("state 0")
        else:
            print("state", st["step"], " ".join(r(x) for x in st["grad_avg"].reshape(-1).tolist()),
                  " ".join(r(x) for x in st["sqr_avg"].reshape(-1).tolist()))


# ---------------------------------------------------------------- printing (fastai learner.py Recorder, callback/progress.py)

def format_time(t):
    t = int(t)
    h, m, s = t // 3600, (t // 60) % 60, t % 60
    return f"{h}:{m:02d}:{s:02d}" if h != 0 else f"{m:02d}:{s:02d}"


def cell(c):
    if "i" in c:
        return c["i"]
    if "f" in c:
        return float(c["f"]) if c["f"] is not None else float("nan")
    if "s" in c:
        return c["s"]
    return None


def stats_strings(row):
    """ProgressCallback._write_stats: floats as %.6f, everything else str()."""
    return [f"{v:.6f}" if isinstance(v, float) else str(v) for v in row]


def table_lines(rows):
    names = None
    out = []
    for row in rows:
        line = stats_strings(row)
        if names is None:
            names = [n + " " * (8 - len(n)) if len(n) < 8 else n for n in line]
            out.append("  ".join(names))
        else:
            out.append("".join(t + " " * (2 + len(n) - len(t)) for t, n in zip(line, names)))
    return out


def mode_table(req):
    rows = [[cell(c) for c in row] for row in req["rows"]]
    for line in table_lines(rows):
        print(line)


def mode_csv(req):
    rows = [[cell(c) for c in row] for row in req["rows"]]
    sys.stdout.write("".join(",".join(str(t) for t in row) + "\n" for row in rows))


def mode_repr(req):
    for h in req["hex"]:
        print(repr(float.fromhex(h)))


def mode_time(req):
    for t in req["t"]:
        print(format_time(t))


def bar_output(c):
    """What fastprogress's console child bar writes for a sequence of (val, time, comment)
    events, stdout being a terminal: ProgressBar.update's throttling, update_bar's text and
    ConsoleProgressBar.on_update's drawing, then on_iter_end's clearing (leave=False)."""
    cols = min(c["cols"], 160)
    length, max_len = cols - 60, 0
    prefix = f"Epoch {c['epoch'] + 1}/{c['n_epoch']} :"
    total = c["total"]
    out = []
    st = {}
    comment = ""

    def on_update(val, text):
        nonlocal length, max_len
        if length > cols - len(text) - len(prefix) - 4:
            length = cols - len(text) - len(prefix) - 4
        filled = int(length * val // total) if total else 0
        bar = "\u2588" * filled + "-" * (length - filled)
        to_write = f"\r{prefix} |{bar}| {text}"
        if len(to_write) > max_len:
            max_len = len(to_write)
        out.append(to_write + "\r")

    def update_bar(val):
        elapsed = st["last_t"] - st["start_t"]
        remaining = format_time(st["pred_t"] - elapsed)
        end = "" if len(comment) == 0 else f" {comment}"
        on_update(val, f"{100 * val / total:.2f}% [{val}/{total} {format_time(elapsed)}<{remaining}{end}]")

    def clear():
        # fastprogress writes "\r{prefix}" and spaces here, leaving "Epoch 2/2 :" for a shorter
        # next line to half cover ("[93.38s]2 :"); ftlua blanks the whole bar, prefix included.
        out.append("\r" + " " * (max_len - 1) + "\r")

    for val, t, com in c["events"]:
        if val == 0:
            st.update(start_t=t, last_t=t, pred_t=0, last_v=0, wait_for=1)
            update_bar(0)
        elif val <= 5 or val >= st["last_v"] + st["wait_for"] or val >= total:
            avg_t = (t - st["start_t"]) / val
            st["wait_for"] = max(int(0.2 / (avg_t + 1e-8)), 1)
            st["pred_t"] = avg_t * total
            st["last_v"], st["last_t"] = val, t
            update_bar(val)
            if val >= total:
                clear()
        if com is not None:
            comment = f"{com:.4f}"
    return "".join(out)


def mode_bar(req):
    for c in req["cases"]:
        print(bar_output(c).encode().hex())


def main():
    mode, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        req = json.load(f)
    {"sched": mode_sched, "sweep": mode_sweep, "finder": mode_finder, "suggest": mode_suggest,
     "adam": mode_adam, "repr": mode_repr, "time": mode_time, "table": mode_table,
     "csv": mode_csv, "bar": mode_bar}[mode](req)


if __name__ == "__main__":
    main()
