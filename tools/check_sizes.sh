#!/bin/sh
# check_sizes.sh: the size limits of docs/design.md ("Style"): no source file in runtime/ or
# lua/ftlua/ over 800 lines, and no C or C++ function in runtime/ over 80 lines, except the
# unpickler's opcode switch (pk_run: one case per opcode reads best as one switch).
#
# A function is what lies between a line that starts at column 0 with a name (its signature's
# first line) and the next line that is exactly "}". Prints one line per file or function over
# its limit and exits 1 if there is one.
# Usage: sh tools/check_sizes.sh [root]   (default: the repository this script is in)
cd "${1:-$(dirname "$0")/..}" || exit 2
MAX_FILE=800
MAX_FUNCTION=80
EXEMPT="pk_run"

bad=0
for f in $(find runtime lua/ftlua -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' -o -name '*.cu' -o -name '*.lua' | sort); do
    n=$(wc -l <"$f")
    if [ "$n" -gt $MAX_FILE ]; then
        echo "file over $MAX_FILE lines: $f ($n lines): split it by job"
        bad=1
    fi
done

over=$(for f in $(find runtime -name '*.c' -o -name '*.cpp' -o -name '*.cu' | sort); do
    awk -v max=$MAX_FUNCTION -v file="$f" '
        /^(namespace|extern "C")/ || /^} *\/\// { next }          # C++ scopes, not functions
        /^[A-Za-z_][A-Za-z_0-9]*:$/ { next }                       # a label at column 0
        /^[A-Za-z_].*\{.*\}[ \t]*(\/[*\/].*)?$/ && start == 0 { next } # a one-line function
        /^[A-Za-z_][^=]*\(/ && start == 0 && !/;[ \t]*(\/[*\/].*)?$/ { # a signature starts
            start = NR; sig = $0; next
        }
        /^}/ && start {
            if ($0 == "}" && NR - start + 1 > max) {
                name = sig; sub(/\(.*/, "", name); sub(/.*[ *]/, "", name)
                printf "%s %s:%d %d\n", name, file, start, NR - start + 1
            }
            start = 0; next
        }
        /^[A-Za-z_].*;[ \t]*$/ { start = 0 }                        # a declaration ends
    ' "$f"
done)
echo "$over" | while read -r name where len; do
    [ -n "$name" ] || continue
    case " $EXEMPT " in *" $name "*) continue ;; esac
    echo "function over $MAX_FUNCTION lines: $name at $where ($len lines): make it readable steps"
done | grep . && bad=1
exit $bad
