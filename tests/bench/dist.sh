#!/bin/sh
# Data parallel on one machine: 2 ranks x 1 thread (ftlua --nproc 2, Gloo over the loopback,
# each rank half of every batch of 64) against 1 process x 2 threads, on the same epoch of
# Learner:fit (tests/bench/dist_fit.lua), images/s of the training part. Both sides use every
# core; what differs is data parallelism across processes (plus the all-reduce of every
# gradient, every step) against libtorch's intra-op threads. BENCH_N_TRAIN images (default 1024).
FTLUA=${FTLUA:-./ftlua}
PY=${FTLUA_PYTHON:-/usr/bin/python3}
N=${BENCH_N_TRAIN:-1024}
CORES=$(nproc)
echo "## Data parallel: $CORES ranks x 1 thread against 1 process x $CORES threads, one epoch of fit on Fashion-MNIST (bs 64), images/s"
echo
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "(skipped: /usr/share/datasets/fashion-mnist is absent; apt install dataset-fashion-mnist)"
    exit 0
fi
if ! "$FTLUA" -e 'os.exit(ft.dist.has_backend("gloo") and 0 or 1)' 2>/dev/null; then
    echo "(skipped: this build has no Gloo backend)"
    exit 0
fi
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '| workload | 1 process x %d threads | %d ranks x 1 thread | ranks/threads |\n|---|---|---|---|\n' "$CORES" "$CORES"
for model in small resnet18; do
    a=$(BENCH_N_TRAIN=$N FTLUA_NUM_THREADS=$CORES "$FTLUA" tests/bench/dist_fit.lua $model | grep "^$model ") || exit 1
    b=$(BENCH_N_TRAIN=$N FTLUA_NUM_THREADS=1 "$FTLUA" --nproc "$CORES" --master-port "$port" \
        tests/bench/dist_fit.lua $model | grep "^$model ") || exit 1
    echo "$N $a $b" | awk '{
        printf "| %s, %d images | %.1f | %.1f | %.2fx |\n",
               ($2 == "small" ? "3-conv net, 0.1 M params" : "resnet18, 11.2 M params"), $1, $3, $5, $5 / $3 }'
done
