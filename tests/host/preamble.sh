# preamble.sh: the common start of the shell tests in tests/host/, sourced after setting
# test_name (the prefix of its FAIL line). Without a built ftlua it FAILs and ends the test.
# Sets FTLUA (./ftlua unless given), tmp (removed at exit), out and err (files in it),
# failures=0, and the helpers ok NAME, fail NAME WHY (which shows $out and $err) and
# has FILE STRING (the file contains the plain string).
FTLUA=${FTLUA:-./ftlua}
if [ ! -x "$FTLUA" ]; then
    echo "FAIL ${test_name}_binary: $FTLUA is not built"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
out="$tmp/out" err="$tmp/err"

ok() { echo "ok $1"; }
fail() {
    echo "FAIL $1: $2"
    failures=$((failures + 1))
    for f in "$out" "$err"; do [ -s "$f" ] && sed "s|^|    $(basename "$f")> |" "$f" | head -20; done
}
has() { grep -qF -- "$2" "$1"; }
