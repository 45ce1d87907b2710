# dist_preamble.sh: the common start of the data-parallel tests, sourced by test_dist.sh and
# test_dist_learner.sh from the repository root after setting test_name (its FAIL/skip lines).
# preamble.sh first (FTLUA, tmp, out, err, failures, ok, fail, has); without Gloo it skips (and
# ends the test). Sets PY, free_port (a free TCP port on 127.0.0.1), and short c10d timeouts so
# that a fault ends in seconds.
. tests/host/preamble.sh
if ! "$FTLUA" -e 'os.exit(ft.dist.has_backend("gloo") and 0 or 1)' 2>/dev/null; then
    echo "skip $test_name: this build has no Gloo backend (libgloo-dev)"
    exit 0
fi
PY=${FTLUA_PYTHON:-/usr/bin/python3}
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export FTLUA_DIST_TIMEOUT=20 FTLUA_DIST_GRACE=5
