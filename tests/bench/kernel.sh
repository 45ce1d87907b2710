#!/bin/sh
# The Jupyter kernel: a trivial cell's round trip through jupyter_client (execute_request sent
# to execute_reply and the idle status received), and one epoch of fit in the kernel against
# the same fit under `ftlua script.lua` (tests/bench/learner_fit.lua, float32), side by side.
# About a minute on 2 cores.
PY=${FTLUA_PYTHON:-/usr/bin/python3}
THREADS=${BENCH_THREADS:-$(nproc)}
echo "## Jupyter kernel: trivial-cell round trip, and a fit in the kernel vs under ftlua script.lua ($THREADS threads)"
echo
if ! "$PY" -c 'import jupyter_client' 2>/dev/null; then
    echo "(skipped: $PY has no jupyter_client; apt install python3-jupyter-client)"
    exit 0
fi
KTMP=$(mktemp -d)
trap 'rm -rf "$KTMP"' EXIT
./ftlua --install-kernel --prefix "$KTMP" >/dev/null || exit 1
export JUPYTER_PATH="$KTMP/share/jupyter" JUPYTER_RUNTIME_DIR="$KTMP/runtime" JUPYTER_DATA_DIR="$KTMP/data"
export FTLUA_NUM_THREADS=$THREADS BENCH_N_TRAIN=${BENCH_N_TRAIN:-512}
"$PY" tests/bench/kernel_bench.py
