#!/usr/bin/python3
"""data_torchvision.py: images/s of torchvision's DataLoader on the same files, for data.sh.

    python3 tests/bench/data_torchvision.py DIR WORKERS

The closest PIL pipeline to ftlua's: fastai's Resize(460) for the train split (the largest square
at a random position, PIL bilinear to 460), RandomResizedCrop(224, scale=(0.75, 1), ratio=(1, 1)),
a flip, RandomAffine(rotate 10, zoom 1..1.1), ColorJitter(brightness=.2, contrast=.2),
ToTensor, Normalize(ImageNet); bs 64, shuffled, drop_last, the same 480 train files. Prints img/s
of one epoch, worker start-up included (ftlua's threads start per epoch too).
"""
import os
import random
import re
import sys
import time

import torch
from PIL import Image
from torchvision import transforms as T

torch.set_num_threads(1)
d, workers = sys.argv[1], int(sys.argv[2])
names = sorted(os.listdir(d))
classes = sorted({re.match(r"(.+)_\d+\.jpg$", n).group(1) for n in names})
torch.manual_seed(42)
idx = torch.randperm(len(names))
train = [names[i] for i in idx[int(0.2 * len(names)):]]


def resize_crop_460(img):  # fastai's Resize(460), train split: random position
    w, h = img.size
    s = min(w, h)
    x, y = int(random.random() * (w - s)), int(random.random() * (h - s))
    return img.crop((x, y, x + s, y + s)).resize((460, 460), Image.BILINEAR)


tfm = T.Compose([
    T.Lambda(resize_crop_460),
    T.RandomResizedCrop(224, scale=(0.75, 1), ratio=(1, 1)),
    T.RandomHorizontalFlip(),
    T.RandomAffine(10, scale=(1, 1.1)),
    T.ColorJitter(brightness=0.2, contrast=0.2),
    T.ToTensor(),
    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
])


class Pets(torch.utils.data.Dataset):
    def __len__(self):
        return len(train)

    def __getitem__(self, i):
        n = train[i]
        img = Image.open(os.path.join(d, n)).convert("RGB")
        return tfm(img), classes.index(re.match(r"(.+)_\d+\.jpg$", n).group(1))


dl = torch.utils.data.DataLoader(Pets(), batch_size=64, shuffle=True, drop_last=True, num_workers=workers)
t0 = time.perf_counter()
n = sum(x.shape[0] for x, _ in dl)
print("%.1f" % (n / (time.perf_counter() - t0)))
