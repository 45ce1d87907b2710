#!/usr/bin/python3
"""image_ref.py: reference results for tests/c/test_image.c, from PIL, torchvision and torch.

    /usr/bin/python3 tests/py/image_ref.py REQUEST.json

REQUEST.json is {"status": PATH, "jobs": [JOB, ...]}. Each job writes its raw output file (".u8":
uint8 [h,w,3]; ".f32": float32 [n,3,S,S], native byte order) and one line to the status file:
"ok [w h | names...]" or "error <message>". Jobs:

  decode        {path, out, draft}   PIL Image.open(path)[.draft(...)].convert('RGB')
  resize        {src, w, h, out_w, out_h, method, px, py, out}
                fastai's Resize on a PIL image: crop/pad (numpy pad) then PIL BILINEAR
  augment       {src, n, h, w, size, mean, std, params: [..], mode, out}
                mode "fused": the C kernel's single sampling, built step by step the fastai way
                (affine_grid-style base grid through the crop, the affine matrix, fastai's
                find_coeffs/apply_perspective warp) and sampled by torch's grid_sample
                (bilinear, reflection, align_corners=True), in float64.
                mode "fastai": what fastai itself does, in float32: grid_sample at full size,
                crop, a second grid_sample to size (with fastai's area pre-shrink hack).
  make_formats  {dir}  writes small test images in many formats; status "ok name name ..."
"""
import json
import math
import os
import sys

import numpy as np
from PIL import Image


# ---------------------------------------------------------------- decode / resize

def decode(job):
    im = Image.open(job["path"])
    d = job.get("draft", 1)
    if d > 1:  # the same libjpeg DCT scaling the C side asks TurboJPEG for
        im.draft("RGB", (im.width // d, im.height // d))
    im = im.convert("RGB")
    with open(job["out"], "wb") as f:
        f.write(im.tobytes())
    return "ok %d %d" % im.size


def load_raw(path, w, h):
    return Image.frombytes("RGB", (w, h), open(path, "rb").read())


def fastai_resize(img, size, method, px, py):
    """fastai.vision.augment.Resize.encodes + crop_pad/_do_crop_pad for PIL images.
    fastai pads with torchvision's pad, which for PIL images is numpy.pad (mode 'reflect' or
    'constant'); we call numpy.pad directly to skip torchvision's slow import."""
    w, h = img.size
    orig = np.array([w, h])
    if method == "squish":
        sz, tl = orig.copy(), np.array([0, 0])
    else:
        big = method in ("pad", "pad_zeros")
        a, b = w / size[0], h / size[1]
        m = (a if a > b else b) if big else (a if a < b else b)
        sz = np.array([int(m * size[0]), int(m * size[1])])
        tl = np.array([int(px * (w - sz[0])), int(py * (h - sz[1]))])
    if (tl >= 0).any() or (tl + sz <= orig).any():
        c, e = np.maximum(tl, 0), np.minimum(tl + sz, orig)
        img = img.crop((int(c[0]), int(c[1]), int(e[0]), int(e[1])))
    if (tl < 0).any() or (tl + sz >= orig).any():
        p, f = np.maximum(-tl, 0), np.maximum(sz - orig + tl, 0)
        mode = "constant" if method == "pad_zeros" else "reflect"
        a = np.pad(np.asarray(img), ((p[1], f[1]), (p[0], f[0]), (0, 0)), mode=mode)
        img = Image.fromarray(a, "RGB")
    return img.resize(tuple(size), Image.BILINEAR)


def resize(job):
    img = load_raw(job["src"], job["w"], job["h"])
    out = fastai_resize(img, (job["out_w"], job["out_h"]), job["method"], job["px"], job["py"])
    with open(job["out"], "wb") as f:
        f.write(out.tobytes())
    return "ok %d %d" % out.size


# ---------------------------------------------------------------- augmentation

def affine_mat(p, h, w, dtype):
    """flip_mat @ rotate_mat @ zoom_mat, then _prepare_mat: a [2,3] matrix on -1..1 coords."""
    import torch
    f = -1.0 if p["flip"] else 1.0
    th = p["rotate"] * math.pi / 180
    s = 1 / p["zoom"]
    F = torch.tensor([[f, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=dtype)
    R = torch.tensor([[math.cos(th), math.sin(th), 0], [-math.sin(th), math.cos(th), 0], [0, 0, 1]],
                     dtype=dtype)
    Z = torch.tensor([[s, 0, (1 - s) * (2 * p["zoom_col"] - 1)],
                      [0, s, (1 - s) * (2 * p["zoom_row"] - 1)], [0, 0, 1]], dtype=dtype)
    m = F @ R @ Z
    m[0, 1] *= h / w
    m[1, 0] *= w / h
    return m[:2]


def find_coeffs(p1, p2):
    """fastai's find_coeffs: the 8 perspective coefficients mapping p2 to p1 ([B,4,2] each)."""
    import torch
    m = []
    p = p1[:, 0, 0]
    one, zero = torch.ones_like(p), torch.zeros_like(p)
    for i in range(p1.shape[1]):
        m.append(torch.stack([p2[:, i, 0], p2[:, i, 1], one, zero, zero, zero,
                              -p1[:, i, 0] * p2[:, i, 0], -p1[:, i, 0] * p2[:, i, 1]]))
        m.append(torch.stack([zero, zero, zero, p2[:, i, 0], p2[:, i, 1], one,
                              -p1[:, i, 1] * p2[:, i, 0], -p1[:, i, 1] * p2[:, i, 1]]))
    A = torch.stack(m).permute(2, 0, 1)
    B = p1.reshape(p1.shape[0], 8, 1)
    return torch.linalg.solve(A, B)


def apply_perspective(coords, coeffs):
    """fastai's apply_perspective on [B,H,W,2] coords."""
    import torch
    sz = coords.shape
    coords = coords.reshape(sz[0], -1, 2)
    coeffs = torch.cat([coeffs, torch.ones_like(coeffs[:, :1])], dim=1).view(coeffs.shape[0], 3, 3)
    coords1 = coords @ coeffs[..., :2].transpose(1, 2) + coeffs[..., 2].unsqueeze(1)
    if (coords1[..., 2] == 0.).any():
        return coords[..., :2].view(*sz)
    coords = coords1 / coords1[..., 2].unsqueeze(-1)
    return coords[..., :2].reshape(*sz)


def warp(coords, p):
    """fastai's _WarpCoord with drawn x_t, y_t."""
    import torch
    dt = coords.dtype
    x_t = torch.tensor([p["warp_x"]], dtype=dt)
    y_t = torch.tensor([p["warp_y"]], dtype=dt)
    orig = torch.tensor([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=dt).unsqueeze(0)
    targ = torch.stack([torch.stack([-1 - y_t, -1 - x_t]), torch.stack([-1 + y_t, 1 + x_t]),
                        torch.stack([1 + y_t, -1 + x_t]), torch.stack([1 - y_t, 1 - x_t])])
    targ = targ.permute(2, 0, 1)
    return apply_perspective(coords, find_coeffs(orig, targ))


def lighting_normalize(x, p, mean, std):
    import torch
    if p["lighting"]:
        def logit(t):
            t = t.clamp(1e-7, 1 - 1e-7)
            return -(1 / t - 1).log()
        b = logit(torch.tensor(p["brightness"], dtype=x.dtype))
        x = torch.sigmoid((logit(x) + b) * p["contrast"])
    mean = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def fused_one(x, p, S):
    """The C kernel's composition, step by step, float64: x [1,3,h,w] in 0..1."""
    import torch
    import torch.nn.functional as F
    dt = x.dtype
    h, w = x.shape[-2:]
    # RandomResizedCropGPU: an identity affine_grid of size S over the crop (align_corners=True).
    ident = torch.tensor([[[1, 0, 0], [0, 1, 0]]], dtype=dt)
    g = F.affine_grid(ident, (1, 1, S, S), align_corners=True)[0]
    px = (g[..., 0] + 1) / 2 * (p["crop_w"] - 1) + p["crop_x"]  # pixels of fastai's affine output
    py = (g[..., 1] + 1) / 2 * (p["crop_h"] - 1) + p["crop_y"]
    u = 2 * px / (w - 1) - 1 if w > 1 else torch.zeros_like(px)
    v = 2 * py / (h - 1) - 1 if h > 1 else torch.zeros_like(py)
    base = torch.stack([u, v], -1).view(1, S * S, 2)
    # affine_grid: coords = base @ mat[:, :2].T + mat[:, 2], then the warp (coord_fs).
    m = affine_mat(p, h, w, dt)
    coords = (base @ m[:, :2].T + m[:, 2]).view(1, S, S, 2)
    if p["warp_x"] != 0 or p["warp_y"] != 0:
        coords = warp(coords, p)
    return F.grid_sample(x, coords, mode="bilinear", padding_mode="reflection", align_corners=True)


def fastai_grid_sample(x, coords):
    """fastai's _grid_sample, with its 'smoother downwards resampling' hack."""
    import torch.nn.functional as F
    mn, mx = coords.min(), coords.max()
    z = 1 / (mx - mn).item() * 2
    d = min(x.shape[-2] / coords.shape[-2], x.shape[-1] / coords.shape[-1]) / 2
    if d > 1 and d > z:
        x = F.interpolate(x, scale_factor=1 / d, mode="area", recompute_scale_factor=True)
    return F.grid_sample(x, coords, mode="bilinear", padding_mode="reflection", align_corners=True)


def fastai_one(x, p, S):
    """AffineCoordTfm (size=None) then RandomResizedCropGPU, as fastai runs them, float32."""
    import torch
    import torch.nn.functional as F
    h, w = x.shape[-2:]
    train = bool(p["lighting"])  # valid: identity matrix, no coord_fs
    m = affine_mat(p, h, w, torch.float64).float() if train else torch.eye(3)[:2]
    coords = F.affine_grid(m[None], (1, 3, h, w), align_corners=True)
    if train:
        coords = warp(coords, p)
    x = fastai_grid_sample(x, coords)
    x = x[..., p["crop_y"]:p["crop_y"] + p["crop_h"], p["crop_x"]:p["crop_x"] + p["crop_w"]]
    ident = torch.eye(3)[:2][None]
    return fastai_grid_sample(x, F.affine_grid(ident, (1, 3, S, S), align_corners=True))


def augment(job):
    import torch
    n, h, w, S = job["n"], job["h"], job["w"], job["size"]
    fused = job["mode"] == "fused"
    dt = torch.float64 if fused else torch.float32
    raw = np.fromfile(job["src"], dtype=np.uint8).reshape(n, h, w, 3)
    x = torch.from_numpy(raw.copy()).permute(0, 3, 1, 2).to(dt) / 255  # IntToFloatTensor
    outs = []
    for i, p in enumerate(job["params"]):
        y = (fused_one if fused else fastai_one)(x[i:i + 1], p, S)
        outs.append(lighting_normalize(y, p, job["mean"], job["std"]))
    out = torch.cat(outs).float().contiguous().numpy()
    out.tofile(job["out"])
    return "ok"


# ---------------------------------------------------------------- synthetic formats

def make_formats(job):
    """Small images in the colour modes and formats a dataset can throw at us."""
    d = job["dir"]
    rs = np.random.RandomState(7)
    W, H = 67, 45
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([xx * 255 // W, yy * 255 // H, (xx + yy) % 256], -1).astype(np.int32)
    rgb = np.clip(rgb + rs.randint(-20, 21, rgb.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(rgb, "RGB")
    grey = im.convert("L")
    alpha = Image.fromarray(((xx * 7 + yy * 3) % 256).astype(np.uint8), "L")
    names = []

    def save(name, img, **kw):
        img.save(os.path.join(d, name), **kw)
        names.append(name)

    save("grey.jpg", grey, format="JPEG", quality=90)
    save("cmyk.jpg", im.convert("CMYK"), format="JPEG", quality=90)
    save("progressive.jpg", im, format="JPEG", quality=85, progressive=True)
    save("s444.jpg", im, format="JPEG", quality=95, subsampling=0)
    save("grey.png", grey, format="PNG")
    la = Image.merge("LA", (grey, alpha))
    save("grey_alpha.png", la, format="PNG")
    rgba = im.copy()
    rgba.putalpha(alpha)
    save("rgba.png", rgba, format="PNG")
    pal = im.convert("P", palette=Image.ADAPTIVE, colors=50)
    save("palette.png", pal, format="PNG")
    save("palette_trns.png", pal, format="PNG", transparency=3)
    g16 = Image.fromarray((rgb[..., 0].astype(np.int32) * 3).astype(np.int32), "I")
    save("grey16.png", g16, format="PNG")  # PIL writes mode I as 16-bit grey
    save("rgb.bmp", im, format="BMP")
    save("grey.bmp", grey, format="BMP")
    save("palette.bmp", pal, format="BMP")
    frame2 = Image.fromarray(255 - rgb, "RGB").convert("P", palette=Image.ADAPTIVE, colors=40)
    save("anim_trns.gif", pal, format="GIF", save_all=True, append_images=[frame2],
         transparency=5, duration=100)
    save("still.gif", pal, format="GIF")
    # A first frame smaller than the GIF's screen (PIL fills the rest with the transparent
    # index, or index 0): save, then enlarge the logical screen in the header.
    for name, kw in (("small_frame.gif", {}), ("small_frame_trns.gif", {"transparency": 9})):
        save(name, pal, format="GIF", **kw)
        path = os.path.join(d, name)
        b = bytearray(open(path, "rb").read())
        b[6:10] = (W + 5).to_bytes(2, "little") + (H + 4).to_bytes(2, "little")
        open(path, "wb").write(bytes(b))
    return "ok " + " ".join(names)


OPS = {"decode": decode, "resize": resize, "augment": augment, "make_formats": make_formats}


def main():
    req = json.load(open(sys.argv[1]))
    with open(req["status"], "w") as st:
        for job in req["jobs"]:
            try:
                line = OPS[job["op"]](job)
            except Exception as e:  # one bad job must not hide the others
                line = "error %s: %s" % (type(e).__name__, str(e).replace("\n", " "))
            st.write(line + "\n")
            st.flush()


if __name__ == "__main__":
    main()
