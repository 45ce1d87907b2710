#!/bin/sh
# examples/plot_curves.lua DIR makes DIR (and its parents) when it does not exist, even with a
# quote in its name, and writes its three figures there, complete.
cd "$(dirname "$0")/../.." || exit 2
if ! command -v gnuplot >/dev/null 2>&1; then echo "skip plot_curves_makes_dir: gnuplot is missing"; exit 0; fi
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
dir="$tmp/new/it's here"
if out=$(timeout 120 ./ftlua examples/plot_curves.lua "$dir" 2>&1) &&
   [ "$(tail -c 8 "$dir/curves.png" | head -c 4)" = IEND ] && [ "$(tail -c 8 "$dir/hist.png" | head -c 4)" = IEND ] &&
   grep -q "rows: row, columns: column" "$dir/heat.txt"; then
    echo "ok plot_curves_makes_dir"
else
    echo "FAIL plot_curves_makes_dir: $(echo "$out" | tail -3 | tr '\n' ' '); files: $(ls -A "$dir" 2>&1 | tr '\n' ' ')"
fi
