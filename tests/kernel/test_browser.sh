#!/bin/sh
# scripts/pets.ipynb in a real Jupyter Notebook, run by headless Chromium (browser_check.py) at
# tiny settings. FTLUA_SCREENSHOT=docs/jupyter-pets.png keeps the screenshot (docs/jupyter.md).
cd "$(dirname "$0")/../.." || exit 2
. tests/kernel/kernel_env.sh browser
for tool in jupyter chromium; do
    command -v $tool >/dev/null || { echo "skip browser: $tool is not installed (make deps)"; exit 0; }
done
export FTLUA_SHARED="$(cd "${FTLUA_SHARED:-../shared}" 2>/dev/null && pwd)"
[ -d "$FTLUA_SHARED/data/pets-sample" ] || { echo "skip browser: needs ../shared/data/pets-sample (FTLUA_SHARED)"; exit 0; }
export FTLUA_NOTEBOOK_TINY="${FTLUA_NOTEBOOK_TINY-1}" FTLUA_NUM_THREADS=1
shot="${FTLUA_SCREENSHOT:-$KTMP/screenshot.png}"
case "$shot" in /*) ;; *) shot="$PWD/$shot" ;; esac
mkdir -p "$KTMP/work"
$PY tests/kernel/browser_check.py scripts/pets.ipynb "$KTMP/work" "$shot"
rc=$?
[ $rc -ne 0 ] && tail -20 "$KTMP/work/notebook.log" | sed 's/^/    notebook: /'
exit $rc
