#!/bin/sh
# The size limits of docs/design.md (tools/check_sizes.sh): no source file over 800 lines, no C
# function over 80 (the unpickler's opcode switch excepted). The real tree passes; a copy with a
# long function, a long file and a long exempt function fails on the first two only.
cd "$(dirname "$0")/../.." || exit 2
if out=$(sh tools/check_sizes.sh 2>&1); then
    echo "ok sizes: no file over 800 lines, no function over 80"
else
    echo "FAIL sizes: $(printf '%s\n' "$out" | head -5 | tr '\n' ';')"
fi
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tools" "$tmp/runtime/io" "$tmp/lua/ftlua"
cp tools/check_sizes.sh "$tmp/tools/"
body() { i=0; while [ $i -lt "$1" ]; do echo "    x += $i;"; i=$((i + 1)); done; }
{
    echo "static int short_one(int x) { return x; }"
    echo "static int long_one(int x,"
    echo "                    int y) {"
    body 79
    echo "    return x + y;"
    echo "}"
    echo "static int fine(int x) {"
    body 77
    echo "    return x;"
    echo "}"
} >"$tmp/runtime/io/a.c"
{ echo "int pk_run(int x) {"; body 200; echo "}"; } >"$tmp/runtime/io/b.c"
i=0; while [ $i -lt 801 ]; do echo "-- line $i"; i=$((i + 1)); done >"$tmp/lua/ftlua/long.lua"
out=$(sh "$tmp/tools/check_sizes.sh" "$tmp" 2>&1)
rc=$?
n=$(printf '%s\n' "$out" | grep -c .)
case "$out" in
    *"function over 80 lines: long_one at runtime/io/a.c:2 (83 lines)"*"file over 800 lines: lua/ftlua/long.lua (801 lines)"* | \
    *"file over 800 lines: lua/ftlua/long.lua (801 lines)"*"function over 80 lines: long_one at runtime/io/a.c:2 (83 lines)"*)
        if [ $rc -ne 0 ] && [ "$n" -eq 2 ]; then echo "ok sizes: a long function and a long file fail, by name; pk_run and an 80-line function pass"
        else echo "FAIL sizes: rc=$rc, $n lines: $out"; fi ;;
    *) echo "FAIL sizes: injected long function/file not reported as expected: $out" ;;
esac
