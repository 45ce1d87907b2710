#!/bin/sh
# Data parallel on one machine: N ranks x 1 thread (ftlua --nproc N, Gloo over the loopback,
# each rank 1/N of every batch of 64) against 1 process x N threads, N = the cores, on the same
# epoch of Learner:fit (tests/bench/dist_fit.lua), images/s of the training part; 1 process x 1
# thread for scale. Both sides use every core: what differs is processes with an all-reduce of
# every gradient at every step against libtorch's intra-op threads. BENCH_N_TRAIN images
# (default 512). The load average is printed: other jobs on the machine hurt intra-op threads
# (which wait for each other at every op) far more than separate processes.
FTLUA=${FTLUA:-./ftlua}
PY=${FTLUA_PYTHON:-/usr/bin/python3}
N=${BENCH_N_TRAIN:-512}
CORES=$(nproc)
echo "## Data parallel on one machine: $CORES ranks x 1 thread against 1 process x $CORES threads, one epoch of fit on Fashion-MNIST (bs 64), images/s"
echo
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "(skipped: /usr/share/datasets/fashion-mnist is absent; apt install dataset-fashion-mnist)"
    exit 0
fi
if ! "$FTLUA" -e 'os.exit(ft.dist.has_backend("gloo") and 0 or 1)' 2>/dev/null; then
    echo "(skipped: this build has no Gloo backend)"
    exit 0
fi
load() { cut -d' ' -f1 /proc/loadavg; }
echo "load average before: $(load)"
echo
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '| workload | 1 process x 1 thread | 1 process x %d threads | %d ranks x 1 thread | ranks / threads |\n' "$CORES" "$CORES"
printf '|---|---|---|---|---|\n'
for model in small resnet18; do
    one() { BENCH_N_TRAIN=$N FTLUA_NUM_THREADS=$1 "$FTLUA" tests/bench/dist_fit.lua $model | grep "^$model " | cut -d' ' -f2; }
    s=$(one 1) || exit 1
    t=$(one "$CORES") || exit 1
    r=$(BENCH_N_TRAIN=$N FTLUA_NUM_THREADS=1 "$FTLUA" --nproc "$CORES" --master-port "$port" \
        tests/bench/dist_fit.lua $model | grep "^$model " | cut -d' ' -f2) || exit 1
    echo "$model $N $s $t $r" | awk '{
        printf "| %s, %d images | %.1f | %.1f | %.1f | %.2fx |\n",
               ($1 == "small" ? "3-conv net, 0.1 M params" : "resnet18, 11.2 M params"), $2, $3, $4, $5, $5 / $4 }'
done
a=$(FTLUA_NUM_THREADS=1 "$FTLUA" --nproc "$CORES" --master-port "$port" tests/bench/dist_allreduce.lua | grep '^allreduce ' | cut -d' ' -f2)
echo
echo "One all-reduce of 45 MB (resnet18's gradients) among $CORES ranks over the loopback: ${a:-?} s."
echo "load average after: $(load)"
