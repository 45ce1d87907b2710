"""fastai_ref.py: the real fastai 2.7.12 as the oracle for tests/lua/test_parity_fastai.lua
and tests/c/test_parity_aug.c.

Run with PYTHONPATH=../shared/reference/fastai-py and /usr/bin/python3 (Debian's torch 1.13).
Nothing here re-implements fastai: every answer comes from calling fastai's own code (its
Learner, ParamScheduler, lr_find, Adam, SGD, create_cnn_model, losses, metrics, augmentation
transforms, ClassificationInterpretation and ProgressCallback) on the inputs the tests give.

    import fastai_ref; fastai_ref.run(request) -> dict of answers, one key per area asked for
    fastai_ref.py aug_item REQUEST OUT.txt OUT.f32   (tests/c/test_parity_aug.c; see aug_item)

Areas (keys of the request):
  sched    [{name, kind: one_cycle|flat_cos|sgdr|fine_tune, n_iter, args, kwargs, opt}]: the lr
           of every parameter group and the mom, per training batch, from fastai's ParamScheduler
           on a dummy Learner (3 linear layers, 3 groups, n_iter batches per epoch; opt_func Adam,
           or partial(SGD, mom=opt.mom) when opt = {kind = "SGD", mom}: the optimizer's own
           hypers, as ParamScheduler set them); fine_tune
           gives its two phases ("phases": [{lr, mom}, {lr, mom}])
  suggest  [{lrs, losses, num_it}]: fastai's lr_find run on that recorded series (the fit
           itself skipped): minimum, steep, valley, slide (nan where fastai raises)
  opt      [{kind: Adam|SGD, mom, decouple_wd, params: [[flat...]...], groups: [[i...]...],
           grads: [[flat or None per param] per step], hypers: {lr, mom, wd, (Adam) sqr_mom, eps}
           or per group lists}]: the params after the steps, fastai's Adam or SGD made with
           that mom (SGD keeps grad_avg only when it is not 0) and decouple_wd
  head     {n_out, seeds}: create_cnn_model(resnet18, n_out, pretrained=False): the head's
           modules, every parameter name in order, the three groups, what freeze leaves
           trainable, and per head parameter the mean and std of its values over the seeds
  loss     {logits, targs, eps}: CrossEntropyLossFlat, LabelSmoothingCrossEntropy(eps),
           error_rate, accuracy (targets 0-based)
  interp   {probs, targs, losses, vocab, min_vals, ks}: ClassificationInterpretation's
           confusion_matrix, most_confused(min_val), top_losses(k)
  table    {names, rows}: what fastai's ProgressCallback prints for those rows
"""
import contextlib
import io
import math
import warnings
from functools import partial

warnings.filterwarnings("ignore")

import numpy as np
import torch
from torch import nn

from fastai.vision.all import (Learner, DataLoaders, DataLoader, Callback, ParamScheduler, params,
                               CrossEntropyLossFlat, LabelSmoothingCrossEntropy, error_rate, accuracy,
                               create_cnn_model, resnet18, minimum, steep, valley, slide, Adam, SGD)

torch.set_num_threads(1)


def f32(x):
    return float(np.float32(x))


# ---------------------------------------------------------------- schedules

class HyperRecorder(Callback):
    "Every group's lr and mom at each training batch, after ParamScheduler has set them."
    order = ParamScheduler.order + 1

    def before_fit(self):
        self.phases = getattr(self, "phases", [])
        self.phases.append({"lr": [], "mom": []})

    def before_batch(self):
        if not self.training: return
        self.phases[-1]["lr"].append([h["lr"] for h in self.opt.hypers])
        self.phases[-1]["mom"].append(self.opt.hypers[-1]["mom"])


def dummy_learner(n_iter, bs=4, opt_func=Adam):
    torch.manual_seed(0)
    x, y = torch.randn(n_iter * bs, 2), torch.randn(n_iter * bs, 1)
    ds = list(zip(x, y))
    dls = DataLoaders(DataLoader(ds, bs=bs, shuffle=True, drop_last=True), DataLoader(ds[:bs], bs=bs))
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 1))
    learn = Learner(dls, model, loss_func=nn.MSELoss(), opt_func=opt_func,
                    splitter=lambda m: [params(m[0]), params(m[1]), params(m[2])])
    rec = HyperRecorder()
    learn.add_cb(rec)
    return learn, rec


def lr_arg(v):
    if isinstance(v, dict): return slice(v.get("lo"), v["hi"])
    return v


def sched(case):
    opt = case.get("opt") or {}
    opt_func = Adam if opt.get("kind", "Adam") == "Adam" else partial(SGD, mom=opt.get("mom", 0.))
    learn, rec = dummy_learner(case["n_iter"], opt_func=opt_func)
    args = [lr_arg(a) for a in case.get("args", [])]
    kw = {k: tuple(v) if isinstance(v, list) else lr_arg(v) for k, v in (case.get("kwargs") or {}).items()}
    with learn.no_bar(), learn.no_logging():
        getattr(learn, "fit_" + case["kind"] if case["kind"] != "fine_tune" else "fine_tune")(*args, **kw)
    return {"phases": [{"lr": [[f32(v) for v in row] for row in p["lr"]], "mom": [f32(m) for m in p["mom"]]}
                       for p in rec.phases]}


# ---------------------------------------------------------------- lr_find's suggestions

def suggest(case):
    learn, _ = dummy_learner(5)
    out = {}
    for name, fn in [("minimum", minimum), ("steep", steep), ("valley", valley), ("slide", slide)]:
        learn.fit = lambda *a, **k: None  # keep the given series as the recorder's
        learn.recorder.lrs, learn.recorder.losses = list(case["lrs"]), [torch.tensor(l) for l in case["losses"]]
        try:
            with learn.no_bar():
                out[name] = float(learn.lr_find(num_it=case["num_it"], show_plot=False, suggest_funcs=(fn,))[0])
        except Exception as e:  # fastai raises where the series is too short
            out[name] = float("nan")
            out[name + "_error"] = type(e).__name__
    return out


# ---------------------------------------------------------------- Adam and SGD

def optimizer(case):
    ps = [torch.tensor(p, dtype=torch.float32) for p in case["params"]]
    ps = [nn.Parameter(p) for p in ps]
    groups = [[ps[i] for i in g] for g in case["groups"]]
    h = case["hypers"]
    if case["kind"] == "SGD":
        opt = SGD(groups, lr=1e-3, mom=case["mom"], decouple_wd=case["decouple_wd"])
    else:
        opt = Adam(groups, lr=1e-3, decouple_wd=case["decouple_wd"])
    for k, v in h.items():
        opt.set_hyper(k, v)
    for step in case["grads"]:
        for p, g in zip(ps, step):
            p.grad = None if g in (None, "None") else torch.tensor(g, dtype=torch.float32)
        opt.step()
    return [p.detach().tolist() for p in ps]


# ---------------------------------------------------------------- the head

def head(req):
    from fastai.vision.learner import _resnet_split
    n_out = req["n_out"]
    torch.manual_seed(0)
    m = create_cnn_model(resnet18, n_out, pretrained=False)
    names = [n for n, _ in m.named_parameters()]
    ids = {id(p): n for n, p in m.named_parameters()}
    groups = [[ids[id(p)] for p in g] for g in _resnet_split(m)]
    modules = [type(c).__name__ for c in m[1].children()]
    extras = {str(i): {"p": c.p} if isinstance(c, nn.Dropout) else
              {"in": c.in_features, "out": c.out_features, "bias": c.bias is not None} if isinstance(c, nn.Linear) else
              {"n": c.num_features, "eps": c.eps, "momentum": c.momentum} if isinstance(c, nn.BatchNorm1d) else {}
              for i, c in enumerate(m[1].children())}
    # freeze as Learner.freeze does (train_bn=True): a Learner around the model
    learn = Learner(DataLoaders(DataLoader([0], bs=1), DataLoader([0], bs=1)), m, splitter=_resnet_split,
                    loss_func=nn.MSELoss())
    learn.freeze()
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    stats = {}
    for s in req["seeds"]:
        torch.manual_seed(s)
        h = create_cnn_model(resnet18, n_out, pretrained=False)[1]
        for n, p in h.named_parameters():
            d = p.detach().double()
            st = stats.setdefault(n, {"mean": 0.0, "std": 0.0, "k": 0})
            st["mean"] += d.mean().item()
            st["std"] += d.std().item() if d.numel() > 1 else 0.0
            st["k"] += 1
    for st in stats.values():
        st["mean"] /= st["k"]
        st["std"] /= st["k"]
    return {"names": names, "groups": groups, "modules": modules, "extras": extras, "trainable": trainable,
            "stats": stats}


# ---------------------------------------------------------------- losses and metrics

def loss(req):
    x = torch.tensor(req["logits"], dtype=torch.float32)
    t = torch.tensor(req["targs"], dtype=torch.long)
    return {"ce": CrossEntropyLossFlat()(x, t).item(),
            "ce_none": CrossEntropyLossFlat(reduction="none")(x, t).tolist(),
            "ls": LabelSmoothingCrossEntropy(eps=req["eps"])(x, t).item(),
            "ls_none": LabelSmoothingCrossEntropy(eps=req["eps"], reduction="none")(x, t).tolist(),
            "error_rate": error_rate(x, t).item(), "accuracy": accuracy(x, t).item(),
            "decodes": CrossEntropyLossFlat().decodes(x).tolist()}


# ---------------------------------------------------------------- interpretation

class _FakeLearn:
    def __init__(self, probs, targs):
        self.probs, self.targs = probs, targs

    def get_preds(self, **kw):
        return self.probs, self.targs, self.probs.argmax(dim=1)


def interp(req):
    from types import SimpleNamespace
    from fastai.interpret import ClassificationInterpretation
    probs = torch.tensor(req["probs"], dtype=torch.float32)
    targs = torch.tensor(req["targs"], dtype=torch.long)
    losses = torch.tensor(req["losses"], dtype=torch.float32)
    ci = ClassificationInterpretation(_FakeLearn(probs, targs), SimpleNamespace(vocab=req["vocab"]), losses)
    out = {"cm": ci.confusion_matrix().tolist(), "most_confused": {}, "top_losses": {}}
    for mv in req["min_vals"]:
        out["most_confused"][mv] = [[a, p, int(c)] for a, p, c in ci.most_confused(min_val=mv)]
    for k in req["ks"]:
        for largest in (True, False):
            l, i = ci.top_losses(k, largest=largest)
            out["top_losses"][f"{k}_{largest}"] = {"losses": l.tolist(), "idx": i.tolist()}
    return out


# ---------------------------------------------------------------- the epoch table

def table(req):
    from fastai.callback.progress import ProgressCallback
    from fastprogress.fastprogress import master_bar
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        cb = ProgressCallback()
        cb.mbar = master_bar(range(1))
        cb._write_stats(req["names"])
        for row in req["rows"]:
            cb._write_stats([None if v == "None" else v for v in row])
    # the master bar draws itself first ("\u2588\r"): a terminal shows what follows the last \r
    return [l.split("\r")[-1] for l in buf.getvalue().split("\n")[:-1]]


def run(req):
    "req: a dict, or the path of a file holding one as a Python literal"
    if isinstance(req, str):
        with open(req) as f: req = eval(f.read(), {"nan": float("nan"), "inf": float("inf")})
    out = {}
    if "sched" in req: out["sched"] = {c["name"]: sched(c) for c in req["sched"]}
    if "suggest" in req: out["suggest"] = [suggest(c) for c in req["suggest"]]
    if "opt" in req: out["opt"] = [optimizer(c) for c in req["opt"]]
    if "head" in req: out["head"] = head(req["head"])
    if "loss" in req: out["loss"] = loss(req["loss"])
    if "interp" in req: out["interp"] = interp(req["interp"])
    if "table" in req: out["table"] = table(req["table"])
    return out


# ---------------------------------------------------------------- one item through fastai's pipeline

def aug_item(req_path, out_txt, out_f32):
    """For tests/c/test_parity_aug.c. The request (text): "N S", the path of a raw uint8
    [N, N, 3] image, the number of cases, one line of 14 draws per case (flip rotate zoom
    zoom_col zoom_row warp_x warp_y lighting brightness contrast crop_x crop_y crop_w crop_h),
    the number of points, one "x y" output pixel per line. Per case, fastai's own transforms
    with those draws (Flip, Warp, Rotate, Zoom composed by setup_aug_tfms into one
    AffineCoordTfm at full size, RandomResizedCropGPU(S) with the given crop, Brightness,
    Contrast, Normalize(imagenet_stats)) run on the image; out_f32 gets every output [3, S, S]
    as float32, out_txt the source pixel of each point through the same AffineCoordTfm's matrix
    and warp (and the crop), one "sx sy" line per point per case."""
    from fastai.vision.augment import (Flip, Warp, Rotate, Zoom, Brightness, Contrast, RandomResizedCropGPU,
                                       setup_aug_tfms, AffineCoordTfm)
    from fastai.vision.core import TensorImage
    from fastai.data.transforms import Normalize
    from fastai.vision.all import imagenet_stats
    lines = open(req_path).read().split("\n")
    N, S = map(int, lines[0].split())
    img = np.fromfile(lines[1], dtype=np.uint8).reshape(N, N, 3)
    n_cases = int(lines[2])
    cases = [[float(v) for v in lines[3 + i].split()] for i in range(n_cases)]
    n_pts = int(lines[3 + n_cases])
    pts = [[float(v) for v in lines[4 + n_cases + i].split()] for i in range(n_pts)]
    norm = Normalize.from_stats(*imagenet_stats, cuda=False)
    outs, txt = [], []
    for (f, r, z, zc, zr, wx, wy, light, b, c, cx, cy, cw, ch) in cases:
        x = TensorImage(torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255)
        tfms = [Flip(p=1., draw=[f]), Warp(magnitude=0.2, p=1., draw_x=[wx], draw_y=[wy]),
                Rotate(max_deg=10, p=1., draw=[r]), Zoom(min_zoom=1., max_zoom=1.1, p=1., draw=[z], draw_x=[zc], draw_y=[zr])]
        if light: tfms += [Brightness(max_lighting=0.2, p=1., draw=[b]), Contrast(max_lighting=0.2, p=1., draw=[c])]
        rrc = RandomResizedCropGPU(S, min_scale=0.75, ratio=(1, 1))

        def given_crop(b_, split_idx, rrc=rrc, cx=int(cx), cy=int(cy), cw=int(cw), ch=int(ch)):
            rrc.do, rrc.cp_size, rrc.tl = True, (ch, cw), (cy, cx)
        rrc.before_call = given_crop
        tfms = sorted(setup_aug_tfms(tfms + [rrc]), key=lambda t: t.order)
        for t in tfms:
            x = t(x, split_idx=0)
        outs.append(norm(x)[0].float().numpy())
        aff = [t for t in tfms if isinstance(t, AffineCoordTfm)][0]
        mat = aff.mat[0].double()
        for (px, py) in pts:
            qx = cx + px * (cw - 1) / (S - 1)
            qy = cy + py * (ch - 1) / (S - 1)
            u = torch.tensor([2 * qx / (N - 1) - 1, 2 * qy / (N - 1) - 1, 1.0], dtype=torch.float64)
            coords = (mat[:2] @ u).float().view(1, 1, 1, 2)
            for cf in aff.coord_fs: coords = cf(coords)
            sx, sy = coords.view(2).double().tolist()
            txt.append(f"{(sx + 1) / 2 * (N - 1)!r} {(sy + 1) / 2 * (N - 1)!r}")
    np.stack(outs).astype(np.float32).tofile(out_f32)
    with open(out_txt, "w") as fo: fo.write("\n".join(txt) + "\n")


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 5 and sys.argv[1] == "aug_item":
        aug_item(*sys.argv[2:])
    else:
        sys.exit("usage: fastai_ref.py aug_item REQUEST OUT.txt OUT.f32")
