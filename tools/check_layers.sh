#!/bin/sh
# check_layers.sh: the one-way rule of docs/design.md over the #include lines of runtime/.
#
#   io  ->  shim  ->  base  ->  modules  ->  host        (each may include only its own or lower)
#
#   io       runtime/io/          file formats: bytes in, arrays out
#   shim     runtime/torch/       the flat C API over libtorch
#   base     runtime/base/        what every module stands on: hooks the host installs, ...
#   modules  runtime/<module>/, runtime/ftlua.[ch], host*.[ch]   the Lua modules (ftlua.so)
#   host     runtime/main.[ch], repl.[ch], report.[ch], runtime/kernel/   the ftlua program
# A new file directly in runtime/ has no layer until this script names it.
#
# Prints one line per violation and exits 1 if there is one that ALLOWED does not list.
# Usage: sh tools/check_layers.sh [root]   (default: the repository this script is in)
cd "${1:-$(dirname "$0")/..}" || exit 2

# Known violations, "file -> header", to be fixed by issue 12. Keep it shrinking; never add to it
# without naming the issue that removes the entry.
ALLOWED="
"

layer_of() { # path relative to runtime/ -> 0..4, or "unknown"
    case "$1" in
        io/*) echo 0 ;;
        torch/*) echo 1 ;;
        base/*) echo 2 ;;
        main.c | main.h | repl.c | repl.h | report.c | report.h | kernel/*) echo 4 ;;
        ftlua.c | ftlua.h | host.c | host.h | host_*.c | host_*.h | */*) echo 3 ;; # host*: the library's help for any host
        *) echo unknown ;;
    esac
}
NAMES="io shim base modules host"
name_of() { echo $NAMES | cut -d" " -f$(($1 + 1)); }

bad=0
for f in $(find runtime -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' -o -name '*.cu' | sort); do
    rel=${f#runtime/}
    mine=$(layer_of "$rel")
    if [ "$mine" = unknown ]; then
        echo "no layer: runtime/$rel: name it in tools/check_layers.sh (layer_of)"
        bad=1
        continue
    fi
    dir=$(dirname "$rel")
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
        # "x.h" is looked up next to the file first, then under runtime/ (-Iruntime)
        if [ -f "runtime/$dir/$inc" ] && [ "$dir" != . ]; then target="$dir/$inc"; else target=$inc; fi
        [ -f "runtime/$target" ] || continue # a system or generated header
        theirs=$(layer_of "$target")
        [ "$theirs" != unknown ] || continue # reported with its own file
        if [ "$theirs" -gt "$mine" ]; then
            what="runtime/$rel -> runtime/$target"
            case "$ALLOWED" in
                *"
$what
"*) echo "allowed (issue 12): $what ($(name_of "$mine") includes $(name_of "$theirs"))" ;;
                *) echo "layer violation: $what: $(name_of "$mine") includes $(name_of "$theirs")"; bad=1 ;;
            esac
        fi
    done
done
exit $bad
