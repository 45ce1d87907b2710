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
