#!/bin/sh
# tests/run.sh itself: where make deps installed python3-torch, a test that skips for want of
# PyTorch is a failure (FTLUA_REQUIRE_REFS=1, found from dpkg), elsewhere a skip; other skips
# stay skips; FTLUA_TEST_ONLY and FTLUA_TEST_FILTER pick the files; the last line is the total.
# It runs run.sh on a fake build tree holding one test program made for it.
cd "$(dirname "$0")/../.." || exit 2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tests"
cat >"$tmp/tests/test_fake" <<'SH'
#!/bin/sh
echo "ok fake_one"
echo "skip fake_ref: no python3 with torch"
echo "skip fake_photos: no pets sample (set FTLUA_SHARED)"
SH
chmod +x "$tmp/tests/test_fake"
run() { BUILD=$tmp FTLUA_TEST_ONLY=c FTLUA_TEST_FILTER=test_fake "$@" sh tests/run.sh 2>&1 | tail -1; }
check() { if [ "$2" = "$3" ]; then echo "ok $1"; else echo "FAIL $1: got '$2', want '$3'"; fi; }
check runner_refs_required "$(run env FTLUA_REQUIRE_REFS=1)" "1 passed, 1 failed, 1 skipped"
check runner_refs_optional "$(run env FTLUA_REQUIRE_REFS=0)" "1 passed, 0 failed, 2 skipped"
# Unset: decided by dpkg (python3-torch installed: required), unless FTLUA_PYTHON names another.
if dpkg-query -W -f='${Status}' python3-torch 2>/dev/null | grep -q "install ok installed"; then
    want="1 passed, 1 failed, 1 skipped"
else
    want="1 passed, 0 failed, 2 skipped"
fi
check runner_refs_from_dpkg "$(run env -u FTLUA_REQUIRE_REFS -u FTLUA_PYTHON)" "$want"
check runner_refs_other_python "$(run env -u FTLUA_REQUIRE_REFS FTLUA_PYTHON=/opt/py/bin/python3)" \
    "1 passed, 0 failed, 2 skipped"
check runner_filter_none "$(BUILD=$tmp FTLUA_TEST_ONLY=c FTLUA_TEST_FILTER=nothing sh tests/run.sh 2>&1 | tail -1)" \
    "0 passed, 0 failed, 0 skipped"
