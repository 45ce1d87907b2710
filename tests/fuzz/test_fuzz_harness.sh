#!/bin/sh
# The fuzz harness (tests/fuzz/run.sh) itself: an input that times out under load but runs
# quickly alone is not a failure; one that hangs alone too is. Two tiny libFuzzer targets made
# for it, built in a temp dir: fuzz_slow sleeps past the timeout the first time it sees its seed
# "SLOW" (a marker file remembers), fuzz_hang never returns on its seed "HANG".
cd "$(dirname "$0")/../.." || exit 2
if ! command -v clang >/dev/null 2>&1 ||
   ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
     clang -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then
    echo "skip fuzz_harness: no clang with libFuzzer (make deps installs clang and libclang-rt-14-dev)"
    exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/seeds/fuzz_slow" "$tmp/seeds/fuzz_hang"
printf SLOW >"$tmp/seeds/fuzz_slow/slow"
printf HANG >"$tmp/seeds/fuzz_hang/hang"
echo 'typedef int nothing_else;' >"$tmp/none.c" # no runtime sources needed
# Each target has only its own branch: libFuzzer learns the strings a target compares with
# (memcmp), so a target holding both would soon try "HANG" too.
for t in slow hang; do
    if [ $t = hang ]; then
        body='if (n >= 4 && !memcmp(d, "HANG", 4))
        for (;;) sleep(1);'
    else
        body='if (n >= 4 && !memcmp(d, "SLOW", 4)) {
        const char *mark = getenv("FUZZ_TEST_MARK");
        if (mark && access(mark, F_OK) != 0) {
            FILE *f = fopen(mark, "w");
            if (f) fclose(f);
            /* "under load": 6 s, only the first time. Not sleep(): the alarm of libFuzzer cuts it. */
            time_t end = time(NULL) + 6;
            while (time(NULL) < end) sleep(1);
        }
    }'
    fi
    cat >"$tmp/fuzz_$t.c" <<C
/* FUZZ_SOURCES: $tmp/none.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    $body
    return 0;
}
C
done
FUZZ_TEST_MARK="$tmp/mark" FUZZ_TIMEOUT=2 FUZZ_OUT="$tmp/out" \
    FUZZ_TARGETS="$tmp/fuzz_slow.c $tmp/fuzz_hang.c" sh tests/fuzz/run.sh 2 >"$tmp/log" 2>&1
rc=$?
sed 's/^/# /' "$tmp/log"
check() { if eval "$2"; then echo "ok $1"; else echo "FAIL $1: $3"; fi; }
check fuzz_timeout_rerun_alone_passes "grep -q '^ok fuzz_slow' '$tmp/log' && grep -q 'timed out under load' '$tmp/log'" \
    "fuzz_slow should pass after running its slow input alone"
check fuzz_hang_alone_fails "grep -q '^FAIL fuzz_hang: an input times out alone too' '$tmp/log'" \
    "fuzz_hang should fail"
check fuzz_harness_exit_status "[ $rc -ne 0 ]" "run.sh should exit non-zero when a target failed"
