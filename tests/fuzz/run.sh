#!/bin/sh
# Build and run every libFuzzer target tests/fuzz/fuzz_*.c for SECONDS each (default 30).
#   sh tests/fuzz/run.sh [SECONDS]          (make fuzz FUZZ_SECONDS=...)
# Prints "ok fuzz_X" or "FAIL fuzz_X: why" per target; exits non-zero if any failed.
#
# Conventions for a target fuzz_X.c:
# - It is compiled with every runtime/io/*.c, -Iruntime and the Lua include path, unless it has
#   a line "FUZZ_SOURCES: a.c b.c" (paths from the repository root) naming its own sources.
#   A line "FUZZ_LDLIBS: -lz" adds link flags.
# - Seeds: the files in seeds/fuzz_X/ next to the source, if that folder exists; and if the source
#   mentions FUZZ_SEED_MAIN, it is also built with -DFUZZ_SEED_MAIN (no libFuzzer) and run as
#   `prog CORPUS_DIR DICT_FILE` to write seed files (and optionally a libFuzzer dictionary).
# - Everything lands in build/fuzz/: binaries, corpus/fuzz_X (kept between runs, so coverage
#   accumulates), artifacts/fuzz_X/ (crashing inputs), fuzz_X.log.
# Timeouts: an input gets FUZZ_TIMEOUT seconds (default 60; the slowest image input takes about
# 0.5 s alone, but on a loaded 2-core machine the sanitizers and the other jobs can make that
# 20x). An input that still times out is run again alone before the target fails: only one that
# times out alone too (a real hang) is a failure; one that passes alone is reported and kept in
# artifacts/ for a look.
# FUZZ_TARGETS (source files) and FUZZ_OUT (instead of build/fuzz) let
# tests/fuzz/test_fuzz_harness.sh run the harness itself on targets made to be slow.
SECS=${1:-30}
TIMEOUT=${FUZZ_TIMEOUT:-60}
cd "$(dirname "$0")/../.." || exit 2
OUT=${FUZZ_OUT:-build/fuzz}
CC=${FUZZ_CC:-clang}
LUA_INC=$(pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
BASE="-std=c11 -g -O1 -D_GNU_SOURCE -Iruntime $LUA_INC"
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
mkdir -p "$OUT"
failed=0

# The value after "TAG:" on a line of file $2, or $3 when there is none.
tagged() { v=$(sed -n "s/.*$1:[[:space:]]*\([^*]*\).*$/\1/p" "$2" | head -1); echo "${v:-$3}"; }

for src in ${FUZZ_TARGETS:-tests/fuzz/fuzz_*.c}; do
    [ -f "$src" ] || continue
    name=$(basename "$src" .c)
    bin=$OUT/$name
    corpus=$OUT/corpus/$name
    art=$OUT/artifacts/$name
    log=$OUT/$name.log
    dict=$OUT/$name.dict
    mkdir -p "$corpus" "$art"
    srcs=$(tagged FUZZ_SOURCES "$src" "$(ls runtime/io/*.c 2>/dev/null)")
    libs=$(tagged FUZZ_LDLIBS "$src" "")

    # shellcheck disable=SC2086
    if ! $CC $BASE $SAN "$src" $srcs -o "$bin" $libs >"$log" 2>&1; then
        echo "FAIL $name: build failed (see $log)"
        sed 's/^/    /' "$log" | tail -15
        failed=$((failed + 1))
        continue
    fi
    seeds=$(dirname "$src")/seeds/$name
    if [ -d "$seeds" ]; then
        cp "$seeds"/* "$corpus"/ 2>/dev/null
    fi
    rm -f "$dict"
    if grep -q FUZZ_SEED_MAIN "$src"; then
        # shellcheck disable=SC2086
        if ! $CC $BASE -DFUZZ_SEED_MAIN "$src" $srcs -o "$bin-seeds" $libs >>"$log" 2>&1 ||
           ! "$bin-seeds" "$corpus" "$dict" >>"$log" 2>&1; then
            echo "FAIL $name: could not make seeds (see $log)"
            sed 's/^/    /' "$log" | tail -15
            failed=$((failed + 1))
            continue
        fi
    fi
    dictflag=""
    [ -s "$dict" ] && dictflag="-dict=$dict"

    # shellcheck disable=SC2086
    rm -f "$art"/timeout-*
    "$bin" -max_total_time="$SECS" -timeout="$TIMEOUT" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$art/" $dictflag "$corpus" >>"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$log" | tail -1)
    slow=$(ls "$art"/timeout-* 2>/dev/null | head -1)
    if [ "$rc" -ne 0 ] && [ -n "$slow" ] && grep -q 'ERROR: libFuzzer: timeout' "$log"; then
        # A timeout under load: run that input alone, with the same limit, before judging.
        echo "== $slow again, alone" >>"$log"
        if "$bin" -timeout="$TIMEOUT" -rss_limit_mb=2048 "$slow" >>"$log" 2>&1; then
            echo "ok $name"
            echo "    ${runs:-?} inputs in ${SECS}s; one input timed out under load but runs alone in" \
                 "under ${TIMEOUT}s (kept: $slow)"
            continue
        fi
        echo "FAIL $name: an input times out alone too (over ${TIMEOUT}s): $slow, log in $log"
        failed=$((failed + 1))
        continue
    fi
    if [ "$rc" -eq 0 ]; then
        echo "ok $name"
        echo "    ${runs:-?} inputs in ${SECS}s, corpus $(ls "$corpus" | wc -l) files"
    else
        echo "FAIL $name: exit status $rc; crashing inputs in $art/, log in $log"
        grep -E 'ERROR|SUMMARY|fuzz_|Test unit written|runtime error' "$log" | head -8 | sed 's/^/    /'
        failed=$((failed + 1))
    fi
done
[ "$failed" -eq 0 ]
