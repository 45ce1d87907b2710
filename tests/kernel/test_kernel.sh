#!/bin/sh
# The Jupyter kernel: the kernelspec --install-kernel writes, a bad connection file, then the
# protocol through Debian's jupyter_client (kernel_protocol.py).
cd "$(dirname "$0")/../.." || exit 2
. tests/kernel/kernel_env.sh kernel_protocol
$PY - "$KTMP/share/jupyter/kernels/ftlua" "$(readlink -f ./ftlua)" <<'PYEOF'
import json, struct, sys
d, exe = sys.argv[1], sys.argv[2]
spec = json.load(open(d + "/kernel.json"))
ok = spec["argv"] == [exe, "--kernel", "{connection_file}"] and spec["language"] == "lua"
print("ok install_kernel_json" if ok else "FAIL install_kernel_json: %r" % spec)
for n in (32, 64):
    png = open("%s/logo-%dx%d.png" % (d, n, n), "rb").read()
    w, h = struct.unpack(">II", png[16:24])
    good = png[:8] == b"\x89PNG\r\n\x1a\n" and (w, h) == (n, n)
    print(("ok install_kernel_logo_%d" % n) if good else "FAIL install_kernel_logo_%d: not a %dx%d PNG" % (n, n, n))
PYEOF
out=$(./ftlua --kernel "$KTMP/no-such-connection.json" 2>&1)
rc=$?
if [ $rc -ne 0 ] && printf '%s' "$out" | grep -q "no-such-connection.json"; then echo "ok kernel_bad_connection_file"
else echo "FAIL kernel_bad_connection_file: exit $rc, said: $out"; fi
$PY tests/kernel/kernel_protocol.py
