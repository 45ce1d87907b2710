#!/bin/sh
# test_crash_quick.sh: the quick form of the crash audit, for make test: two writers (a
# safetensors file through ft.weights.save, and CSVLogger's file during a fit), each killed twice
# in the middle of its write and run once on a full tmpfs. `make audit` runs every writer
# (tests/audit/crash_writes.sh). Prints ok/FAIL/skip lines.
cd "$(dirname "$0")/../.." || exit 2
CRASH_KINDS="weights csv" CRASH_KILLS=2 exec sh tests/audit/crash_writes.sh
