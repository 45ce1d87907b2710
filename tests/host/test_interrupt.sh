#!/bin/sh
# Ctrl-C stops a fit with "interrupted!" mid-epoch, under ./ftlua and under a stock lua5.4 with
# ftlua.so (issue 12: the library sees lua.c's interrupt hook itself; it never calls the host).
cd "$(dirname "$0")/../.." || exit 2
# A shell that starts us in the background ignores SIGINT for its children, and lua.c then
# keeps ignoring it: nothing to test there.
if grep -q '^SigIgn:.*[2367abef]$' /proc/self/status 2>/dev/null; then
    echo "skip Ctrl-C stops fit: SIGINT is ignored in this process (started in the background)"
    exit 0
fi
check() { # name, command...
    name=$1; shift
    out=$(FTLUA_AMP=fp32 "$@" tests/host/interrupt_fit.lua "$name" 2>&1)
    line=$(printf '%s\n' "$out" | grep '^ok \|^FAIL ')
    if [ -n "$line" ]; then echo "$line"; else echo "FAIL $name: no result:"; printf '%s\n' "$out" | tail -5; fi
}
check "ftlua: Ctrl-C stops fit mid-epoch" ./ftlua
if command -v lua5.4 >/dev/null 2>&1; then
    LUA_CPATH="./?.so" check "lua5.4: Ctrl-C stops fit mid-epoch" lua5.4
else
    echo "skip lua5.4: Ctrl-C stops fit: lua5.4 is not installed (apt-get install lua5.4)"
fi
