#!/bin/sh
# make bench: every benchmark, each compared with PyTorch (Debian python3-torch) in the same run.
# Prints a table; copy it into docs/performance.md with the machine and the date.
cd "$(dirname "$0")/../.." || exit 2
BUILD=${BUILD:-build}
PY=${FTLUA_PYTHON:-/usr/bin/python3}
N=${BENCH_N:-200000}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u +%Y-%m-%d)"
echo
echo "## per-call overhead of a tiny op (1-element float32 add, a + a), ns per call, 1 thread"
c=$(FTLUA_NUM_THREADS=1 "$BUILD"/bench/bench_overhead "$N")
lua=$(FTLUA_NUM_THREADS=1 ./ftlua tests/bench/overhead.lua "$N")
py=$(OMP_NUM_THREADS=1 "$PY" -c "
import torch, time
torch.set_num_threads(1)
a = torch.ones(1)
for rep in range(2):
    t0 = time.perf_counter()
    for i in range($N): c = a + a
    t = time.perf_counter() - t0
print('%.1f' % (t / $N * 1e9))")
printf '| caller | ns/call | vs PyTorch |\n|---|---|---|\n'
for row in "C (shim) $c" "Lua (ftlua) $lua" "Python (torch $("$PY" -c 'import torch; print(torch.__version__)')) $py"; do
    name=${row% *}; v=${row##* }
    printf '| %s | %s | %s |\n' "$name" "$v" "$(echo "$v $py" | awk '{printf "%.2fx", $1/$2}')"
done
