# dist_preamble.sh: the common start of the data-parallel tests, sourced by test_dist.sh and
# test_dist_learner.sh from the repository root after setting test_name (its FAIL/skip lines).
# Without a built ftlua it FAILs, without Gloo it skips (both end the test). Sets FTLUA, PY,
# tmp (removed at exit) and failures=0, and short c10d timeouts so that a fault ends in seconds.
FTLUA=${FTLUA:-./ftlua}
if [ ! -x "$FTLUA" ]; then
    echo "FAIL ${test_name}_binary: $FTLUA is not built"
    exit 1
fi
if ! "$FTLUA" -e 'os.exit(ft.dist.has_backend("gloo") and 0 or 1)' 2>/dev/null; then
    echo "skip $test_name: this build has no Gloo backend (libgloo-dev)"
    exit 0
fi
PY=${FTLUA_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
export FTLUA_DIST_TIMEOUT=20 FTLUA_DIST_GRACE=5
