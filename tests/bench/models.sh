#!/bin/sh
# Training-step speed of the resnet zoo: forward + cross entropy + backward, images/s, for
# resnet18/34 at 64 and 224 px, float32 and bf16 autocast; ftlua against the same loop in
# PyTorch with torchvision's models (models_step.lua / models_step.py), same batch, same
# threads, same run. Steps for BENCH_MIN_SECONDS each (default 5; with 2 the ratios swung
# 0.5-2.7x on a shared 2-core VM); the fastest step is reported.
PY=${FTLUA_PYTHON:-/usr/bin/python3}
THREADS=${BENCH_THREADS:-$(nproc)}
# 224 px uses batch 1 so that the whole run stays within a few minutes on 2 cores.
SPECS="resnet18:64:fp32:4 resnet18:64:bf16:4 resnet18:224:fp32:1 resnet18:224:bf16:1
       resnet34:64:fp32:4 resnet34:64:bf16:4 resnet34:224:fp32:1 resnet34:224:bf16:1"
echo "## resnet training step (forward + backward), images/s, $THREADS threads"
echo
if ! "$PY" -c 'import torch, torchvision' 2>/dev/null; then
    echo "(skipped: $PY has no torch/torchvision)"
    exit 0
fi
tv=$("$PY" -c 'import torch, torchvision; print(torch.__version__, "/", torchvision.__version__)')
printf '| model | px | batch | dtype | ftlua | PyTorch %s | ftlua / PyTorch |\n' "$tv"
printf '|---|---|---|---|---|---|---|\n'
# One configuration at a time, ftlua then PyTorch, so that a change in the machine's load
# hits both sides of a row rather than one framework.
for spec in $SPECS; do
    a=$(FTLUA_NUM_THREADS=$THREADS ./ftlua tests/bench/models_step.lua "$spec") || exit 1
    b=$(OMP_NUM_THREADS=$THREADS "$PY" tests/bench/models_step.py "$THREADS" "$spec") || exit 1
    echo "$a $b" | awk '{
        printf "| %s | %s | %s | %s | %.2f | %.2f | %.2fx |\n", $1, $2, $4,
               ($3 == "bf16" ? "bf16 autocast" : "float32"), $5, $10, $5 / $10 }'
done
