#!/bin/sh
# Every examples/*.lua runs to completion under ./ftlua.
cd "$(dirname "$0")/../.." || exit 2
for f in examples/*.lua; do
    if out=$(timeout 120 ./ftlua "$f" 2>&1); then
        echo "ok example $f"
    else
        echo "FAIL example $f: $(echo "$out" | tail -5 | tr '\n' ' ')"
    fi
done
