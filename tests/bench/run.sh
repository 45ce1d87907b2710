#!/bin/sh
# make bench: every benchmark (tests/bench/*.sh), each compared with PyTorch (Debian
# python3-torch) in the same run. Prints markdown tables for docs/performance.md.
cd "$(dirname "$0")/../.." || exit 2
export BUILD=${BUILD:-build}
export FTLUA_PYTHON=${FTLUA_PYTHON:-/usr/bin/python3}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%Y-%m-%d)"
for b in tests/bench/*.sh; do
    [ "$b" = tests/bench/run.sh ] && continue
    echo
    sh "$b"
done
