#!/bin/sh
# Accuracy side by side: the same recipe run by ftlua and by the real fastai 2.7.12
# (../shared/reference/fastai-py), from the same data, one libtorch thread each, BENCH_SEEDS
# (default "1 2 3") seeds each; mean and spread (sample standard deviation) of the last epoch's
# error_rate and valid_loss, and seconds per epoch.
#   1. pets-sample, resnet18 from scratch, 64 px (Resize(131) items), bs 32,
#      fit_one_cycle(BENCH_EPOCHS = 10, 3e-3) (accuracy_pets.lua / .py); the valid split's file
#      names are checked to be the same on both sides.
#   2. the main job's transfer recipe on Fashion-MNIST (accuracy_fm.lua / .py): the same cached
#      backbone (ftlua's safetensors file, $BENCH_BACKBONE, made once by accuracy_fm.lua when
#      absent), 10 images per class, fit_one_cycle(3, 1e-2), unfreeze,
#      fit_one_cycle(12, slice(3e-4, 3e-3)).
# Slow: about an hour with the defaults on a busy 2-core machine (2026-12-06), plus about 11
# minutes the first time, to pretrain the backbone. docs/performance.md has the table.
PY=${FTLUA_PYTHON:-/usr/bin/python3}
FTLUA=${FTLUA:-./ftlua}
SHARED=${FTLUA_SHARED:-../shared}
SEEDS=${BENCH_SEEDS:-1 2 3}
export BENCH_EPOCHS=${BENCH_EPOCHS:-10}
export FTLUA_NUM_THREADS=1 OMP_NUM_THREADS=1 FTLUA_AMP=${FTLUA_AMP:-fp32}
FASTAI="$SHARED/reference/fastai-py"
echo "## Accuracy: ftlua and fastai 2.7.12, the same recipes, 1 thread each, float32 (FTLUA_AMP=$FTLUA_AMP), seeds $SEEDS"
echo
if [ ! -d "$FASTAI/fastai" ] || ! PYTHONPATH="$FASTAI" "$PY" -c 'import fastai.vision.all' 2>/dev/null; then
    echo "(skipped: the real fastai at $FASTAI does not import with $PY; see its README and make deps)"
    exit 0
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# table NAME FILE: one row per tool of "tool seed error_rate valid_loss s_per_epoch" lines.
table() {
    awk -v name="$1" '
    { n[$1]++; e[$1] += $3; ee[$1] += $3 * $3; l[$1] += $4; ll[$1] += $4 * $4; t[$1] += $5 }
    function sd(s, ss, k) { return k > 1 ? sqrt((ss - s * s / k) / (k - 1) > 0 ? (ss - s * s / k) / (k - 1) : 0) : 0 }
    END {
        for (tool in n) {
            k = n[tool]
            printf "| %s | %s | %d | %.4f ± %.4f | %.4f ± %.4f | %.1f |\n", name, tool, k,
                   e[tool] / k, sd(e[tool], ee[tool], k), l[tool] / k, sd(l[tool], ll[tool], k), t[tool] / k
        }
    }' "$2" | sort
}
printf '| recipe | tool | seeds | error_rate (mean ± sd) | valid_loss (mean ± sd) | s/epoch |\n|---|---|---|---|---|---|\n'

PETS="$SHARED/data/pets-sample"
if [ -d "$PETS/images" ]; then
    export BENCH_PETS="$PETS" BENCH_VALID_NAMES="$tmp/valid_names"
    # shellcheck disable=SC2086
    "$FTLUA" tests/bench/accuracy_pets.lua $SEEDS > "$tmp/pets.all" || exit 1
    grep '^ftlua ' "$tmp/pets.all" > "$tmp/pets"
    PYTHONPATH="$FASTAI" "$PY" -W ignore tests/bench/accuracy_pets.py $SEEDS > "$tmp/pets_py" || exit 1
    grep '^valid split' "$tmp/pets_py" > "$tmp/split_note"
    grep -v '^valid split' "$tmp/pets_py" >> "$tmp/pets"
    table "pets-sample, resnet18 scratch, 64 px, fit_one_cycle($BENCH_EPOCHS, 3e-3)" "$tmp/pets"
else
    echo "(pets-sample skipped: $PETS/images is absent)" > "$tmp/split_note"
fi

if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    export BENCH_BACKBONE=${BENCH_BACKBONE:-${FTLUA_HOME:-$HOME/.ftlua}/models/resnet_fm_source01278_6000.safetensors}
    mkdir -p "$(dirname "$BENCH_BACKBONE")"
    "$FTLUA" tests/bench/accuracy_fm.lua $SEEDS > "$tmp/fm.all" || exit 1
    grep '^backbone' "$tmp/fm.all" >> "$tmp/split_note"
    grep '^ftlua ' "$tmp/fm.all" > "$tmp/fm"
    PYTHONPATH="$FASTAI" "$PY" -W ignore tests/bench/accuracy_fm.py $SEEDS >> "$tmp/fm" || exit 1
    table "Fashion-MNIST transfer, 10 shots, $(echo "${BENCH_FM_EPOCHS:-3,12}" | sed 's/,/ + /') epochs" "$tmp/fm"
else
    echo "(Fashion-MNIST skipped: apt install dataset-fashion-mnist)" >> "$tmp/split_note"
fi
echo
cat "$tmp/split_note"
echo
echo "per seed (tool seed error_rate valid_loss s/epoch):"
sed 's/^/    pets /' "$tmp/pets" 2>/dev/null
sed 's/^/    fm   /' "$tmp/fm" 2>/dev/null
