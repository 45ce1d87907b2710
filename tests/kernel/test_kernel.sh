#!/bin/sh
# The Jupyter protocol through Debian's jupyter_client: see kernel_protocol.py.
cd "$(dirname "$0")/../.." || exit 2
. tests/kernel/kernel_env.sh kernel_protocol
$PY tests/kernel/kernel_protocol.py
