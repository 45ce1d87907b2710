#!/bin/sh
# scripts/pets.ipynb and scripts/main.ipynb, executed headless with nbclient on the ftlua kernel
# at tiny settings (FTLUA_NOTEBOOK_TINY=1, read by their parameters cells).
cd "$(dirname "$0")/../.." || exit 2
. tests/kernel/kernel_env.sh notebooks
if ! $PY -c "import nbclient" 2>/dev/null; then echo "skip notebooks: python3-nbclient is not installed"; exit 0; fi
export FTLUA_NOTEBOOK_TINY=1 FTLUA_NUM_THREADS=1
export FTLUA_SHARED="$(cd "${FTLUA_SHARED:-../shared}" 2>/dev/null && pwd)"
rc=0
# The notebooks are generated (scripts/main.ipynb from scripts/main.lua): a stale one fails here.
for nb in pets main; do
    $PY tests/kernel/make_${nb}_notebook.py "$KTMP/$nb-fresh.ipynb"
    if cmp -s "$KTMP/$nb-fresh.ipynb" scripts/$nb.ipynb; then
        echo "ok ${nb}_ipynb_up_to_date"
    else
        echo "FAIL ${nb}_ipynb_up_to_date: scripts/$nb.ipynb differs from what tests/kernel/make_${nb}_notebook.py makes; rerun it"
        rc=1
    fi
done
if [ -d "$FTLUA_SHARED/data/pets-sample" ]; then
    # a copy in a temporary folder: the notebook's cwd, where figures with a default file name land
    mkdir -p "$KTMP/pets" && cp scripts/pets.ipynb "$KTMP/pets/"
    $PY tests/kernel/run_notebook.py "$KTMP/pets/pets.ipynb" pets_ipynb 5 || rc=1
else
    echo "skip pets_ipynb: needs ../shared/data/pets-sample (FTLUA_SHARED)"
fi
if [ -d /usr/share/datasets/fashion-mnist ]; then
    mkdir -p "$KTMP/main" && cp scripts/main.ipynb "$KTMP/main/"
    FTLUA_HOME="$KTMP/home" $PY tests/kernel/run_notebook.py "$KTMP/main/main.ipynb" main_ipynb 3 || rc=1
else
    echo "skip main_ipynb: needs Debian's dataset-fashion-mnist (make deps)"
fi
exit $rc
