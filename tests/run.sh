#!/bin/sh
# Run every test program and add up their results.
# Each program prints one line per check: "ok <name>", "FAIL <name>: <why>" or "skip <name>: <why>".
# A program that exits non-zero without printing a FAIL line counts as one failure.
# The last line is "N passed, N failed, N skipped".
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.." || exit 2
export FTLUA_ROOT="$PWD"
export FTLUA_SHARED="${FTLUA_SHARED:-$PWD/../shared}"
export LUA_PATH="$PWD/tests/lua/?.lua;;"
# The tests compare training with float32 references (PyTorch, finite differences), so they pin
# float32; the default precision policy (bf16 on CPUs with bf16 instructions) has its own test,
# tests/lua/test_learner_amp.lua, which runs ftlua without this variable.
export FTLUA_AMP=fp32
passed=0; failed=0; skipped=0
log=$(mktemp); trap 'rm -f "$log"' EXIT

run_one() { # name, command...
    name=$1; shift
    start=$(date +%s)
    "$@" >"$log" 2>&1 </dev/null
    rc=$?
    p=$(grep -c '^ok ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^skip ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1; echo "FAIL $name: exited with status $rc" >>"$log"
    fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    printf '%-40s %3d ok %3d failed %3d skipped  (%ss)\n' "$name" "$p" "$f" "$s" $(( $(date +%s) - start ))
    # Show what failed or was skipped, with the program's own output around failures.
    if [ "$f" -gt 0 ]; then sed 's/^/    /' "$log" | tail -40; else grep '^skip ' "$log" | sed 's/^/    /'; fi
}

for t in "$BUILD"/tests/test_*; do
    case "$t" in *.o) continue ;; esac
    [ -x "$t" ] && run_one "c/$(basename "$t")" "$t"
done
for t in tests/lua/test_*.lua; do
    [ -f "$t" ] && run_one "lua/$(basename "$t")" ./ftlua "$t"
done
for t in tests/*/test_*.sh; do
    [ -f "$t" ] && run_one "${t#tests/}" sh "$t"
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
