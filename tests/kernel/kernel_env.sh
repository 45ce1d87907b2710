# kernel_env.sh: sourced by the kernel tests. Installs the ftlua kernelspec for this build into
# a temporary Jupyter folder (JUPYTER_PATH) and sets PY to Debian's python3 (jupyter_client).
# Skips (exit 0 after a skip line) when jupyter_client is missing.
PY=/usr/bin/python3
if ! $PY -c "import jupyter_client" 2>/dev/null; then
    echo "skip $1: python3-jupyter-client is not installed (make deps)"
    exit 0
fi
KTMP=$(mktemp -d)
trap 'rm -rf "$KTMP"' EXIT
./ftlua --install-kernel --prefix "$KTMP" >/dev/null || { echo "FAIL install_kernel: --install-kernel failed"; exit 1; }
export JUPYTER_PATH="$KTMP/share/jupyter"
export JUPYTER_DATA_DIR="$KTMP/data" JUPYTER_RUNTIME_DIR="$KTMP/runtime" JUPYTER_CONFIG_DIR="$KTMP/config"
export IPYTHONDIR="$KTMP/ipython"
