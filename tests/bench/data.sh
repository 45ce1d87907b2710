#!/bin/sh
# Vision data loader throughput on pets-sample: ftlua's loader (1 worker and all cores; decoding
# every epoch, and with decoded items cached in RAM) and torchvision's DataLoader on the same
# files with the closest PIL pipeline (tests/bench/data_torchvision.py), in the same run.
PY=${FTLUA_PYTHON:-/usr/bin/python3}
FTLUA=${FTLUA:-./ftlua}
SHARED=${FTLUA_SHARED:-../shared}
DIR=$SHARED/data/pets-sample/images
CORES=$(nproc)
echo "## Vision data loader, pets-sample train split (448 of 480 photos), img/s"
echo
if [ ! -d "$DIR" ]; then
    echo "skipped: $DIR is absent (set FTLUA_SHARED)"
    exit 0
fi
echo "Resize(460) at a random position, then aug_transforms(size=224, min_scale=0.75) and ImageNet"
echo "Normalize (ftlua: one fused resampling pass with flip, rotate, zoom, warp, lighting), bs 64,"
echo "one shuffled epoch, float32 batches on the CPU; $CORES cores. \"build\" is ftlua's dataloaders"
echo "construction, which decodes and checks every file once (and fills the cache)."
echo
printf '| loader | workers | build s | img/s |\n|---|---|---|---|\n'
for cache in 0 4096; do
    what="ftlua, decode every epoch (cache_mb=0)"
    [ "$cache" != 0 ] && what="ftlua, decoded photos cached in RAM"
    for w in 1 "$CORES"; do
        r=$(FTLUA_NUM_THREADS=1 "$FTLUA" tests/bench/data_loader.lua "$DIR" "$w" "$cache" 2>&1 | tail -1)
        printf '| %s | %s | %s | %s |\n' "$what" "$w" "${r% *}" "${r#* }"
    done
done
for w in 0 "$CORES"; do
    r=$(OMP_NUM_THREADS=1 "$PY" tests/bench/data_torchvision.py "$DIR" "$w" 2>&1 | tail -1)
    printf '| torchvision DataLoader (PIL) | %s | - | %s |\n' "$w" "$r"
done
echo
echo "(The rate at which resnet34 training consumes images at 224 px is in the resnet table of the same run: the loader must outrun it.)"
