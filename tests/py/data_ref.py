#!/usr/bin/python3
"""data_ref.py: references for tests/lua/test_data*.lua, from PIL and torch (Debian python3).

Imported by the tests' inline Python (H.python) with tests/py on sys.path; every function
writes raw little-endian results to a file the Lua side reads with T.frombytes.

  items(files, size, out, method, px, py)
                                      uint8 [n,h,w,3]: PIL open + convert('RGB'), then fastai's
                                      Resize(size, method) at pcts px, py (valid: 0.5, 0.5);
                                      size is an int or (w, h)
  valid_batch(files, resize, size, mean, std, out, mode)
                                      float32 [n,3,S,S]: the valid split of
                                      Resize(resize) + aug_transforms(size=S) + Normalize.
                                      mode "ours": one bilinear resample of the centre crop
                                      (grid_sample, align_corners=True), what ftlua does;
                                      mode "fastai": fastai's own steps (area pre-shrink first)
  idx_summary(path)                   shape, dtype, first and last values, histogram of a
                                      gzip'd IDX file, parsed with struct + gzip
"""
import gzip
import os
import struct
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import image_ref  # noqa: E402  fastai_resize, fused_one, fastai_one, lighting_normalize


def load_resized(path, size, method="crop", px=0.5, py=0.5):
    """fastai's PILImage.create then Resize; size is an int (square) or (w, h)."""
    img = Image.open(path).convert("RGB")
    wh = (size, size) if isinstance(size, int) else tuple(size)
    return image_ref.fastai_resize(img, wh, method, px, py)


def items(files, size, out, method="crop", px=0.5, py=0.5):
    a = np.stack([np.asarray(load_resized(f, size, method, px, py)) for f in files])
    a.astype(np.uint8).tofile(out)
    return list(a.shape)


VALID_PARAMS = {"flip": 0, "rotate": 0.0, "zoom": 1.0, "zoom_col": 0.5, "zoom_row": 0.5,
                "warp_x": 0.0, "warp_y": 0.0, "lighting": 0, "brightness": 0.5, "contrast": 1.0}


def valid_batch(files, resize, size, mean, std, out, mode="ours"):
    import torch
    dt = torch.float64 if mode == "ours" else torch.float32
    outs = []
    for f in files:
        a = np.asarray(load_resized(f, resize))
        x = torch.from_numpy(a.copy()).permute(2, 0, 1)[None].to(dt) / 255
        p = dict(VALID_PARAMS, crop_x=0, crop_y=0, crop_w=resize, crop_h=resize)
        y = (image_ref.fused_one if mode == "ours" else image_ref.fastai_one)(x, p, size)
        outs.append(image_ref.lighting_normalize(y, p, mean, std))
    torch.cat(outs).float().contiguous().numpy().tofile(out)
    return len(outs)


def idx_summary(path):
    with gzip.open(path, "rb") as f:
        b = f.read()
    zero, code, ndim = struct.unpack(">HBB", b[:4])
    assert zero == 0
    dims = list(struct.unpack(">" + "I" * ndim, b[4:4 + 4 * ndim]))
    data = np.frombuffer(b, dtype=np.uint8, offset=4 + 4 * ndim)
    assert code == 0x08 and data.size == int(np.prod(dims))
    return {"shape": dims, "first": data[:8].tolist(), "last": data[-8:].tolist(),
            "hist": np.bincount(data, minlength=256)[:10].tolist(), "sum": int(data.sum(dtype=np.int64))}
