#!/bin/sh
# The one-way layer rule (docs/design.md, tools/check_layers.sh): io -> shim -> base -> modules
# -> host. The real tree passes; a copy with an include pointing up fails and names it.
cd "$(dirname "$0")/../.." || exit 2
if out=$(sh tools/check_layers.sh 2>&1); then
    echo "ok layers: no file includes a header from a layer above its own"
else
    echo "FAIL layers: $(printf '%s\n' "$out" | grep -v '^allowed' | head -5 | tr '\n' ';')"
fi
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tools" && cp tools/check_layers.sh "$tmp/tools/" && cp -r runtime "$tmp/"
printf '#include "learner/learner.h"\n' >>"$tmp/runtime/base/hooks.c"
printf '#include "repl.h"\n' >>"$tmp/runtime/data/data.c"
out=$(sh "$tmp/tools/check_layers.sh" 2>&1)
rc=$?
case "$out" in
    *"runtime/base/hooks.c -> runtime/learner/learner.h: base includes modules"*"runtime/data/data.c -> runtime/repl.h: modules includes host"*)
        [ $rc -ne 0 ] && echo "ok layers: an include that points up fails, naming file and header" ||
            echo "FAIL layers: violations found but the exit status was 0" ;;
    *) echo "FAIL layers: injected violations not reported: $out" ;;
esac

# The host is a tree (issue 12): main.c lends docall and print_error to the REPL and the report
# as arguments, so neither repl.o nor report.o uses a symbol that main.o defines.
BUILD=${BUILD:-build}
if [ -f "$BUILD/runtime/main.o" ] && [ -f "$BUILD/runtime/repl.o" ] && [ -f "$BUILD/runtime/report.o" ] &&
    command -v nm >/dev/null 2>&1; then
    nm --defined-only "$BUILD/runtime/main.o" | awk '$2 ~ /^[TDBRC]$/ { print $3 }' | sort >"$tmp/main.syms"
    used=""
    for o in repl report; do
        u=$(nm -u "$BUILD/runtime/$o.o" | awk '{ print $2 }' | sort | comm -12 - "$tmp/main.syms" | tr '\n' ' ')
        [ -n "$u" ] && used="$used $o.o uses $u;"
    done
    [ -z "$used" ] && echo "ok layers: repl.c and report.c call nothing of main.c" ||
        echo "FAIL layers: the host is not a tree:$used"
else
    echo "skip layers: repl.c and report.c call nothing of main.c: $BUILD/runtime/{main,repl,report}.o not built (or no nm)"
fi
