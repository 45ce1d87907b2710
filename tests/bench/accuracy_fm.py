"""accuracy_fm.py: the real fastai's side of tests/bench/accuracy.sh for the main job's transfer
recipe (accuracy_fm.lua): the same cached backbone, read from ftlua's safetensors file, in a
torchvision-layout resnet (torchvision's BasicBlock, 16..128 channels, one input channel);
vision_learner(pretrained, normalize=False, fastai's resnet splitter) on SHOTS images per target
class (file order), valid on the 5000 test images of those classes; Resize(32) items,
aug_transforms(size=28, min_scale=0.75, max_warp=0) and Normalize([0.286], [0.353]) batches,
bs 16, val_bs 256; fit_one_cycle(3, 1e-2), unfreeze, fit_one_cycle(12, slice(3e-4, 3e-3)).
One libtorch thread, no DataLoader worker.
usage: accuracy_fm.py SEED...   (env BENCH_FM, BENCH_BACKBONE, BENCH_SHOTS)
Per seed prints "fastai SEED error_rate valid_loss seconds_per_epoch"."""
import gzip, json, os, struct, sys, time
import numpy as np
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock
from fastai.vision.all import (DataBlock, ImageBlock, CategoryBlock, PILImageBW, IndexSplitter, Resize,
                               aug_transforms, Normalize, vision_learner, error_rate, set_seed)
from fastai.vision.learner import _resnet_split

torch.set_num_threads(1)
DIR = os.environ.get("BENCH_FM", "/usr/share/datasets/fashion-mnist")
shots = int(os.environ.get("BENCH_SHOTS", "10"))
e1, e2 = map(int, os.environ.get("BENCH_FM_EPOCHS", "3,12").split(","))
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
TARGET = [3, 4, 5, 6, 9]


def read_idx(name):
    with gzip.open(os.path.join(DIR, name)) as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def read_safetensors(path):
    """The format's layout: u64 little-endian header size, a JSON header, the raw data."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "BF16": None}
    out = {}
    for name, t in header.items():
        if name == "__metadata__": continue
        a, b = t["data_offsets"]
        arr = np.frombuffer(raw[8 + n + a:8 + n + b], dtypes[t["dtype"]]).reshape(t["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def subset(x, y, classes, per_class=None):
    taken = {c: 0 for c in classes}
    idx = []
    for i, c in enumerate(y):
        if c in taken and (per_class is None or taken[c] < per_class):
            taken[c] += 1
            idx.append(i)
    return x[idx], [NAMES[y[i]] for i in idx]


def resnet_fm(pretrained=True, **kw):
    def down(cin, cout): return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))
    def layer(cin, cout, stride):
        return nn.Sequential(BasicBlock(cin, cout, stride, down(cin, cout) if stride > 1 else None))
    m = nn.Sequential()
    for name, mod in [("conv1", nn.Conv2d(1, 16, 3, padding=1, bias=False)), ("bn1", nn.BatchNorm2d(16)),
                      ("relu", nn.ReLU(inplace=True)), ("maxpool", nn.MaxPool2d(3, stride=2, padding=1)),
                      ("layer1", layer(16, 16, 1)), ("layer2", layer(16, 32, 2)), ("layer3", layer(32, 64, 2)),
                      ("layer4", layer(64, 128, 2)), ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                      ("fc", nn.Linear(128, 5))]:
        m.add_module(name, mod)
    if pretrained: m.load_state_dict(read_safetensors(os.environ["BENCH_BACKBONE"]))
    return m


x_tr, y_tr = read_idx("train-images-idx3-ubyte.gz"), read_idx("train-labels-idx1-ubyte.gz")
x_te, y_te = read_idx("t10k-images-idx3-ubyte.gz"), read_idx("t10k-labels-idx1-ubyte.gz")
xt, lt = subset(x_tr, y_tr, TARGET, shots)
xv, lv = subset(x_te, y_te, TARGET)
xs, labels = np.concatenate([xt, xv]), lt + lv
vocab = [NAMES[c] for c in TARGET]

for a in sys.argv[1:]:
    seed = int(a)
    set_seed(seed)
    block = DataBlock(blocks=(ImageBlock(PILImageBW), CategoryBlock(vocab=vocab)),
                      get_x=lambda i: PILImageBW.create(xs[i]), get_y=lambda i: labels[i],
                      splitter=IndexSplitter(list(range(len(xt), len(xs)))), item_tfms=Resize(32),
                      batch_tfms=[*aug_transforms(size=28, min_scale=0.75, max_warp=0),
                                  Normalize.from_stats([0.286], [0.353])])
    dls = block.dataloaders(list(range(len(xs))), bs=16, val_bs=256, num_workers=0)
    learn = vision_learner(dls, resnet_fm, pretrained=True, normalize=False, splitter=_resnet_split,
                           metrics=error_rate)
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(e1, 1e-2)
        learn.unfreeze()
        learn.fit_one_cycle(e2, slice(3e-4, 3e-3))
    dt = (time.perf_counter() - t0) / (e1 + e2)
    valid_loss, err = learn.recorder.values[-1][1], learn.recorder.values[-1][2]
    print(f"fastai {seed} {err:.6f} {valid_loss:.6f} {dt:.2f}", flush=True)
