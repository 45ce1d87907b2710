#!/bin/sh
# The standing audit of hostile folders and images (docs/reliability.md): symlink cycles, bombs
# and truncated files of each format, odd names, unreadable files, a vanishing folder, a FIFO.
# The cases and their expected outcomes are in hostile_folders.lua; this wrapper gives it the
# environment of tests/run.sh (make test runs it; `make audit` runs it alone) and a time limit,
# so that a hang anywhere fails instead of stopping the suite. About 15 s.
cd "$(dirname "$0")/../.." || exit 2
export FTLUA_ROOT="$PWD"
export LUA_PATH="$PWD/tests/lua/?.lua;;"
export FTLUA=${FTLUA:-./ftlua}
if [ ! -x "$FTLUA" ]; then
    echo "FAIL hostile_folders: $FTLUA is not built (make)"
    exit 1
fi
timeout 300 "$FTLUA" tests/audit/hostile_folders.lua
rc=$?
[ $rc -eq 124 ] && echo "FAIL hostile_folders: the audit did not finish in 300 s"
exit $rc
