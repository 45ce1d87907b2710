#!/bin/sh
# Training speed of the Learner: one epoch of Learner:fit(1, 1e-3) (fastai's Adam, constant lr)
# with resnet18{num_classes=10} on a Fashion-MNIST subset (3 channels, 28 px, bs 64, no
# augmentation), float32 and bf16 autocast, images/s of the epoch's training part; against the
# same loop in PyTorch (torchvision's resnet18, AdamW(betas=(0.9, 0.99), eps=1e-5,
# weight_decay=0.01), torch.autocast) in the same run, same threads (learner_fit.lua /
# learner_fit.py). Each side does one warm-up batch first.
# Training images: BENCH_N_FP32 (default 2048) and BENCH_N_BF16 (default 2048 on a CPU with bf16
# instructions, 192 without: there autocast is ~20x slower than float32, and 2048 images would
# take ~7 minutes per side on 2 cores). About 3 minutes on 2 cores.
PY=${FTLUA_PYTHON:-/usr/bin/python3}
FTLUA=${FTLUA:-./ftlua}
THREADS=${BENCH_THREADS:-$(nproc)}
N_FP32=${BENCH_N_FP32:-2048}
if grep -qw -e avx512_bf16 -e amx_bf16 /proc/cpuinfo; then N_BF16=${BENCH_N_BF16:-2048}; else N_BF16=${BENCH_N_BF16:-192}; fi
echo "## Learner: one epoch of fit, resnet18 on Fashion-MNIST (28 px, 3 channels, bs 64), images/s, $THREADS threads"
echo
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "(skipped: /usr/share/datasets/fashion-mnist is absent; apt install dataset-fashion-mnist)"
    exit 0
fi
if ! "$PY" -c 'import torch, torchvision' 2>/dev/null; then
    echo "(skipped: $PY has no torch/torchvision)"
    exit 0
fi
printf '| workload | ftlua img/s | PyTorch img/s | ftlua/PyTorch |\n|---|---|---|---|\n'
# One dtype at a time, ftlua then PyTorch, so that a change in the machine's load hits both
# sides of a row.
for dtype in fp32 bf16; do
    N=$N_FP32
    [ $dtype = bf16 ] && N=$N_BF16
    a=$(BENCH_N_TRAIN=$N FTLUA_NUM_THREADS=$THREADS "$FTLUA" tests/bench/learner_fit.lua $dtype | grep "^$dtype ") || exit 1
    b=$(BENCH_N_TRAIN=$N OMP_NUM_THREADS=$THREADS "$PY" tests/bench/learner_fit.py "$THREADS" $dtype) || exit 1
    echo "$N $a $b" | awk '{
        printf "| resnet18, %s, %d images | %.2f | %.2f | %.2fx |\n",
               ($2 == "bf16" ? "bf16 autocast" : "float32"), $1, $3, $5, $3 / $5 }'
done
