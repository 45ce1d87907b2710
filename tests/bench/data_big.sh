#!/bin/sh
# Big camera photos (12 megapixels) through the vision loader: JPEGs over 4 megapixels decode at a
# DCT scale (libjpeg-turbo, like PIL's Image.draft) that keeps twice the item size, and a train
# item keeps at most 16 item sizes (4 MP) in the cache (docs/data.md). FTLUA_JPEG_DRAFT=0 turns
# the DCT scaling off: every photo decodes at full size, and train photos (over the cache's
# per-item bound) are decoded again each epoch. The photos are pets-sample photos enlarged to
# 4000x3000 by PIL (made once in a temp dir; they take ~1 minute to make).
PY=${FTLUA_PYTHON:-/usr/bin/python3}
FTLUA=${FTLUA:-./ftlua}
SHARED=${FTLUA_SHARED:-../shared}
DIR=$SHARED/data/pets-sample/images
N=${BENCH_BIG_PHOTOS:-64}
CORES=$(nproc)
echo "## Vision data loader, $N photos of 4000x3000 (12 MP), Resize(460) + aug_transforms(224)"
echo
if [ ! -d "$DIR" ]; then
    echo "skipped: $DIR is absent (set FTLUA_SHARED)"
    exit 0
fi
if ! "$PY" -c 'import PIL' 2>/dev/null; then
    echo "skipped: $PY has no PIL to make the photos"
    exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$PY" - "$DIR" "$tmp" "$N" <<'PYEOF'
import os, sys
from PIL import Image
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = sorted(f for f in os.listdir(src) if f.endswith(".jpg"))
step = max(1, len(names) // n)
for k, name in enumerate(names[::step][:n]):
    im = Image.open(os.path.join(src, name)).convert("RGB").resize((4000, 3000), Image.BICUBIC)
    im.save(os.path.join(dst, name), quality=90)
PYEOF
echo "Same pipeline as the pets table but bs 16, $CORES workers, cache_mb=4096, one train epoch (the"
echo "photos the build cached, or decoded again); RSS is the process's peak (libtorch alone ~150 MB)."
echo
printf '| decode | build s | img/s | peak RSS MB |\n|---|---|---|---|\n'
for draft in 0 1; do
    what="full size (FTLUA_JPEG_DRAFT=0)"
    [ "$draft" = 1 ] && what="DCT-scaled to >= 2x the item (default)"
    r=$(FTLUA_JPEG_DRAFT=$draft FTLUA_NUM_THREADS=1 "$FTLUA" tests/bench/data_loader.lua "$tmp" "$CORES" 4096 rss 16 2>&1 | tail -1)
    set -- $r
    printf '| %s | %s | %s | %s |\n' "$what" "$1" "$2" "$3"
done
