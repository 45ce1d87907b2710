"""accuracy_pets.py: the real fastai's side of tests/bench/accuracy.sh (run with
PYTHONPATH=../shared/reference/fastai-py). The recipe of accuracy_pets.lua: pets-sample,
resnet18 from scratch, Resize(131) items, aug_transforms(size=64, min_scale=0.75), bs 32,
RandomSplitter(seed=42) over the file names sorted (ftlua's get_image_files order),
fit_one_cycle(EPOCHS, 3e-3), one libtorch thread, no DataLoader worker.
usage: accuracy_pets.py SEED...   (env BENCH_PETS, BENCH_EPOCHS, BENCH_VALID_NAMES)
Checks that its valid split has the file names in BENCH_VALID_NAMES (ftlua's), prints
"valid split: N file names match ftlua's" (or exits 1), then per seed
"fastai SEED error_rate valid_loss seconds_per_epoch"."""
import os, sys, time
import torch
from fastai.vision.all import (DataBlock, ImageBlock, CategoryBlock, get_image_files, RandomSplitter,
                               RegexLabeller, Resize, aug_transforms, vision_learner, resnet18,
                               error_rate, set_seed)

torch.set_num_threads(1)
images = os.path.join(os.environ["BENCH_PETS"], "images")
epochs = int(os.environ.get("BENCH_EPOCHS", "10"))


def sorted_files(p):
    return sorted(get_image_files(p), key=lambda f: f.name)


for k, a in enumerate(sys.argv[1:]):
    seed = int(a)
    set_seed(seed)
    pets = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=sorted_files,
                     splitter=RandomSplitter(seed=42), get_y=RegexLabeller(r"(.+)_\d+\.jpg$"),
                     item_tfms=Resize(131), batch_tfms=aug_transforms(size=64, min_scale=0.75))
    dls = pets.dataloaders(images, bs=32, num_workers=0)
    if k == 0 and os.environ.get("BENCH_VALID_NAMES"):
        want = open(os.environ["BENCH_VALID_NAMES"]).read().split()
        got = [f.name for f in dls.valid_ds.items]
        if sorted(want) != sorted(got):
            print(f"valid split differs from ftlua's: {len(set(want) ^ set(got))} file names differ", file=sys.stderr)
            sys.exit(1)
        print(f"valid split: {len(got)} file names match ftlua's", flush=True)
    set_seed(seed)
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=error_rate)
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, 3e-3)
    dt = (time.perf_counter() - t0) / epochs
    valid_loss, err = learn.recorder.values[-1][1], learn.recorder.values[-1][2]
    print(f"fastai {seed} {err:.6f} {valid_loss:.6f} {dt:.2f}", flush=True)
