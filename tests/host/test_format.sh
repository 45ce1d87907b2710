#!/bin/sh
# The house style holds over the whole tree: every C, C++ and CUDA file of runtime/ and tests/ is
# as clang-format (.clang-format, Debian 12's clang-format 14) would write it. `make format`
# fixes what this lists. A file it would change fails, by name.
cd "$(dirname "$0")/../.." || exit 2
if ! command -v clang-format >/dev/null; then
    echo "skip format: no clang-format (make deps installs it)"
    exit 0
fi
out=$(make -s format-check 2>&1)
if [ -z "$out" ]; then
    echo "ok format: every C, C++ and CUDA file is clang-formatted"
else
    echo "FAIL format: clang-format would change $(printf '%s\n' "$out" | wc -l) file(s): $(printf '%s\n' "$out" | head -5 | tr '\n' ' ')(run make format)"
fi
# the check can fail: a copy of one file, unformatted, is reported
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
printf 'int  f( int x ){return x;}\n' >"$tmp/a.c"
cp .clang-format "$tmp/"
if (cd "$tmp" && clang-format a.c | cmp -s - a.c); then
    echo "FAIL format: an unformatted file passed the check"
else
    echo "ok format: an unformatted file is caught"
fi
