#!/bin/sh
# Run every test program and add up their results.
# Each program prints one line per check: "ok <name>", "FAIL <name>: <why>" or "skip <name>: <why>".
# A program that exits non-zero without printing a FAIL line counts as one failure.
# The last line is "N passed, N failed, N skipped".
#
# Environment: BUILD (the build tree, default build), FTLUA (the program the Lua tests run,
# default ./ftlua; make test-asan gives ./ftlua-asan), FTLUA_TEST_ONLY (the kinds to run, any of
# "c lua sh"; default all), FTLUA_TEST_FILTER (run only the test files with one of these names,
# without the extension: "test_image test_data"), FTLUA_SHARED (../shared: the pets photos and fastai; tests that need it skip without).
#
# References: where `make deps` installed python3-torch (dpkg says so), a test that skips for
# want of PyTorch, torchvision or PIL means the reference is broken, not absent: such a skip
# counts as a failure. FTLUA_REQUIRE_REFS=1 asks for that anywhere, =0 never (the GPU machine,
# whose PyTorch is a pip wheel in another python3, sets FTLUA_PYTHON and decides itself).
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.." || exit 2
FTLUA=${FTLUA:-./ftlua}
ONLY=${FTLUA_TEST_ONLY:-c lua sh}
FILTER=${FTLUA_TEST_FILTER:-}
if [ -z "${FTLUA_REQUIRE_REFS:-}" ]; then
    FTLUA_REQUIRE_REFS=0
    if [ -z "${FTLUA_PYTHON:-}" ] &&
       dpkg-query -W -f='${Status}' python3-torch 2>/dev/null | grep -q "install ok installed"; then
        FTLUA_REQUIRE_REFS=1
    fi
fi
export FTLUA_ROOT="$PWD"
export FTLUA_SHARED="${FTLUA_SHARED:-$PWD/../shared}"
export LUA_PATH="$PWD/tests/lua/?.lua;;"
# The tests compare training with float32 references (PyTorch, finite differences), so they pin
# float32; the default precision policy (bf16 on CPUs with bf16 instructions) has its own test,
# tests/lua/test_learner_amp.lua, which runs ftlua without this variable.
export FTLUA_AMP=fp32
passed=0; failed=0; skipped=0
log=$(mktemp); trap 'rm -f "$log" "$log.refs"' EXIT

run_one() { # name, command...
    name=$1; shift
    start=$(date +%s)
    "$@" >"$log" 2>&1 </dev/null
    rc=$?
    if [ "$FTLUA_REQUIRE_REFS" = 1 ]; then
        # python3-torch is installed: a reference that is "missing" is a broken one.
        sed -E 's/^skip ([^:]*): (.*(python|PIL|no torch|torchvision).*)$/FAIL \1: skipped, but make deps installed python3-torch: \2/' \
            "$log" >"$log.refs" && mv "$log.refs" "$log"
    fi
    p=$(grep -c '^ok ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^skip ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1; echo "FAIL $name: exited with status $rc" >>"$log"
    fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    printf '%-40s %3d ok %3d failed %3d skipped  (%ss)\n' "$name" "$p" "$f" "$s" $(( $(date +%s) - start ))
    # Show what failed or was skipped, with the program's own output around failures.
    if [ "$f" -gt 0 ]; then sed 's/^/    /' "$log" | tail -40; else grep '^skip ' "$log" | sed 's/^/    /'; fi
}

wanted() { # kind, file: in FTLUA_TEST_ONLY and matching FTLUA_TEST_FILTER
    case " $ONLY " in *" $1 "*) ;; *) return 1 ;; esac
    [ -z "$FILTER" ] && return 0
    base=${2##*/}; base=${base%.*}
    for w in $FILTER; do [ "$w" = "$base" ] && return 0; done
    return 1
}
for t in "$BUILD"/tests/test_*; do
    case "$t" in *.o) continue ;; esac
    [ -x "$t" ] && wanted c "$t" && run_one "c/$(basename "$t")" "$t"
done
for t in tests/lua/test_*.lua; do
    [ -f "$t" ] && wanted lua "$t" && run_one "lua/$(basename "$t")" "$FTLUA" "$t"
done
for t in tests/*/test_*.sh; do
    [ -f "$t" ] && wanted sh "$t" && run_one "${t#tests/}" sh "$t"
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
