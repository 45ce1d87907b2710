"""learner_fit.py: PyTorch's side of tests/bench/learner.sh, the loop of ftlua's Learner:fit.
usage: learner_fit.py THREADS dtype ...   (dtype: fp32 | bf16)
torchvision resnet18(num_classes=10) on the first N_TRAIN Fashion-MNIST images (3 channels,
28 px, /255, bs 64, shuffled, last partial batch dropped, no augmentation), cross entropy,
AdamW(betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01) at a constant lr 1e-3; one warm-up
training batch, then a timed epoch (the loop of learner_fit.lua). Prints "dtype images_per_second"."""
import gzip, os, sys, time
import numpy as np
import torch, torchvision

torch.set_num_threads(int(sys.argv[1]))
N_TRAIN = int(os.environ.get("BENCH_N_TRAIN", "2048"))
DIR = "/usr/share/datasets/fashion-mnist"
BS, LR = 64, 1e-3


def read_idx(name):
    with gzip.open(os.path.join(DIR, name)) as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


x_all = torch.from_numpy(read_idx("train-images-idx3-ubyte.gz")[:N_TRAIN].copy())
y_all = torch.from_numpy(read_idx("train-labels-idx1-ubyte.gz")[:N_TRAIN].astype(np.int64))
x_all = (x_all.float() / 255).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()

for dtype in sys.argv[2:]:
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.AdamW(m.parameters(), lr=LR, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(n_batches):
        m.train()
        idx = torch.randperm(N_TRAIN)
        n = 0
        t0 = time.perf_counter()
        for b in range(n_batches):
            i = idx[b * BS:(b + 1) * BS]
            x, y = x_all[i], y_all[i]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=(dtype == "bf16")):
                loss = loss_fn(m(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            n += BS
        return n / (time.perf_counter() - t0)

    epoch(1)  # warm-up: allocations, oneDNN primitives
    print("%s %.3f" % (dtype, epoch(N_TRAIN // BS)), flush=True)
