#!/bin/sh
# Per-call overhead of a tiny op from C (the shim), from Lua (ftlua) and from Python (torch).
PY=${FTLUA_PYTHON:-/usr/bin/python3}
N=${BENCH_N:-200000}
echo "## Per-call overhead of a tiny op (1-element float32 a + a), ns per call, 1 thread"
echo
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
for row in "C (ftlua shim) $c" "Lua (ftlua) $lua" "Python (torch $("$PY" -c 'import torch; print(torch.__version__)')) $py"; do
    name=${row% *}; v=${row##* }
    printf '| %s | %s | %s |\n' "$name" "$v" "$(echo "$v $py" | awk '{printf "%.2fx", $1/$2}')"
done
