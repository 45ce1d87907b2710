#!/bin/bash
# tools/device-check.sh: build and test ftlua on the lent GPU machine (../shared/device/README.md).
#
# Run it through the device tool, from the repository root, with `.deps` and `.device-data`
# carried (both ignored by git, never committed):
#   here, once:  mkdir -p .deps && cd .deps && apt-get download liblua5.4-dev liblua5.4-0 \
#                  libstb-dev libstb0 libturbojpeg0-dev libturbojpeg0 libreadline-dev libreadline8 \
#                  libncurses-dev libtinfo6 libzmq3-dev libzmq5 libsodium23 libpgm-5.3-0 libnorm1 \
#                  libjansson-dev libjansson4 && cd ..     (zmq and jansson: the Jupyter kernel)
#                bash tools/device-check.sh --prepare   (copies the photos, below)
#   device:      bash tools/device-check.sh        (carry: [".deps", ".device-data"], timeout ~540 s)
#
# ../shared does not travel to the GPU machine, and it has PyTorch 2.x in its own python3 and no
# gnuplot: the suite runs there with FTLUA_SHARED pointing nowhere, so the tests that need
# ../shared, a gnuplot or Debian's PyTorch skip and say why. The six pets photos that
# tests/c/test_image.c's augmentation checks use travel in .device-data/photos
# (FTLUA_TEST_PHOTOS); --prepare copies them from ../shared.
#
# It builds against the PyTorch wheel's libtorch (CUDA), runs the test suite with CUDA as the
# default device, runs the benchmarks, and prints a short table of results and timings last.
# Logs go to $OUT (or ./out) for the record in docs/performance.md.
set -u
PHOTOS="Abyssinian_1.jpg Bengal_10.jpg american_bulldog_100.jpg Abyssinian_5.jpg Bengal_105.jpg american_bulldog_11.jpg"
if [ "${1:-}" = --prepare ]; then
    src=${FTLUA_SHARED:-../shared}/data/pets-sample/images
    mkdir -p .device-data/photos
    for p in $PHOTOS; do cp "$src/$p" .device-data/photos/ || exit 1; done
    echo "copied $(ls .device-data/photos | wc -l) photos to .device-data/photos (git ignores it)"
    exit 0
fi
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
t_start=$(date +%s)
declare -a rows

row() { rows+=("$(printf '| %-28s | %-8s | %s |' "$1" "$2" "$3")"); }
elapsed() { echo $(( $(date +%s) - $1 ))s; }

# ---------------------------------------------------------------- carried Debian packages
if ls .deps/*.deb >/dev/null 2>&1; then
    mkdir -p .deps/root
    for f in .deps/*.deb; do dpkg -x "$f" .deps/root; done
fi
DEPS=$PWD/.deps/root
LUA_CFLAGS="-I$DEPS/usr/include/lua5.4 -I$DEPS/usr/include"
LIBDIR=$DEPS/usr/lib/x86_64-linux-gnu
# Link Lua and turbojpeg statically when the .a files came along, so nothing is needed at run time.
LUA_LIBS="$LIBDIR/liblua5.4.a"
[ -f "$LUA_LIBS" ] || LUA_LIBS="-L$LIBDIR -Wl,-rpath,$LIBDIR -llua5.4"
export LIBRARY_PATH=$LIBDIR:${LIBRARY_PATH:-}
export LD_LIBRARY_PATH=$LIBDIR:${LD_LIBRARY_PATH:-}
export CPATH=$DEPS/usr/include:$DEPS/usr/include/stb:${CPATH:-}

# ---------------------------------------------------------------- the PyTorch wheel's libtorch
TORCH_DIR=$($PY -c 'import torch, os; print(os.path.dirname(torch.__file__))')
ABI=$($PY -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
TORCH_VER=$($PY -c 'import torch; print(torch.__version__)')
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "libtorch $TORCH_VER at $TORCH_DIR (cxx11 abi $ABI), GPU: ${GPU:-none}"

# nccl.h for the c10d shim's NCCL backend: the wheel's nvidia-nccl package has it. ft_dist.cpp
# compiles NCCL in only when it finds nccl.h and the CUDA headers (__has_include).
CPATH_NO_NCCL=$CPATH
NCCL_INC=$($PY -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "include"))' 2>/dev/null)
[ -n "$NCCL_INC" ] && [ -f "$NCCL_INC/nccl.h" ] && export CPATH=$NCCL_INC:$CPATH
[ -d /usr/local/cuda/include ] && export CPATH=$CPATH:/usr/local/cuda/include

t=$(date +%s)
make -j"$(nproc)" LIBTORCH="$TORCH_DIR" TORCH_CXX11_ABI="$ABI" LUA_CFLAGS="$LUA_CFLAGS" \
     LUA_LIBS="$LUA_LIBS" all >"$OUT/build.log" 2>&1
build_rc=$?
if [ $build_rc != 0 ] && grep -q 'ft_dist' "$OUT/build.log"; then
    # The c10d shim's Gloo or NCCL part did not compile against the wheel: say so, and build
    # the rest without them, so that the other checks still run.
    row "build c10d backends" "FAIL" "$(grep -m1 'error' "$OUT/build.log" | cut -c1-100)"
    cp "$OUT/build.log" "$OUT/build-c10d.log"
    export CPATH=$CPATH_NO_NCCL
    make -j"$(nproc)" LIBTORCH="$TORCH_DIR" TORCH_CXX11_ABI="$ABI" LUA_CFLAGS="$LUA_CFLAGS" \
         LUA_LIBS="$LUA_LIBS" CPPFLAGS="-DFT_NO_GLOO -DFT_NO_NCCL" all >"$OUT/build.log" 2>&1
    build_rc=$?
fi
row "build (LIBTORCH=wheel)" "$([ $build_rc = 0 ] && echo ok || echo FAIL)" "$(elapsed "$t"), torch $TORCH_VER"
if [ $build_rc != 0 ]; then
    tail -30 "$OUT/build.log"
else
    # ---------------------------------------------------------------- CUDA visible from Lua
    ./ftlua -e 'local T = ft.tensor; print("cuda", T.cuda_available(), T.cuda_device_count(), T.default_device())' \
        >"$OUT/cuda.log" 2>&1
    row "cuda visible" "$(grep -q 'cuda	true' "$OUT/cuda.log" && echo ok || echo FAIL)" "$(tr '\t' ' ' <"$OUT/cuda.log" | head -1)"

    # ---------------------------------------------------------------- NCCL: a world of one GPU
    # docs/distributed.md: c10d's NCCL process group, an all-reduce and a broadcast on cuda:0,
    # then 2 steps of a data-parallel Learner on it.
    cat >"$OUT/nccl.lua" <<'LUA'
local T, D = ft.tensor, ft.dist
if not D.has_backend("nccl") then print("nccl unavailable in this build") os.exit(1) end
D.init { backend = "nccl", world_size = 1, rank = 0 }
local x = T.full({4}, 3, { device = "cuda" })
D.all_reduce(x, "mean")
D.broadcast(x, 0)
local xt = T.randint(0, 256, { 64, 8, 8 }):to("uint8")
local y = T.randint(1, 5, { 64 })
local dls = ft.vision.ImageDataLoaders.from_tensors(xt, y, xt, y, { bs = 32, channels = 1, verbose = false, device = "cuda" })
local learn = ft.Learner(dls, ft.nn.Sequential { ft.nn.Flatten(), ft.nn.Linear(64, 4) }):to_distributed()
learn:fit(1, 1e-2)
print("nccl", D.backend(), D.world_size(), x:sum():item(), #learn.recorder.losses)
LUA
    FTLUA_DIST_TIMEOUT=60 timeout 120 ./ftlua "$OUT/nccl.lua" >"$OUT/nccl.log" 2>&1
    row "nccl world of 1" "$(grep -q '^nccl	nccl	1	12.0	2' "$OUT/nccl.log" && echo ok || echo FAIL)" \
        "$(tail -1 "$OUT/nccl.log" | tr '\t' ' ' | cut -c1-120)"

    # ---------------------------------------------------------------- tests, CUDA as the test device
    t=$(date +%s)
    FTLUA_TEST_DEVICE=cuda make LIBTORCH="$TORCH_DIR" TORCH_CXX11_ABI="$ABI" LUA_CFLAGS="$LUA_CFLAGS" \
        LUA_LIBS="$LUA_LIBS" test-bins >"$OUT/test-build.log" 2>&1
    photos=""
    [ -d .device-data/photos ] && photos=$PWD/.device-data/photos
    [ -z "$photos" ] && row "photos carried" "skip" "no .device-data/photos: run --prepare here first"
    FTLUA_PYTHON=$PY FTLUA_TEST_DEVICE=cuda BUILD=build FTLUA_SHARED=${FTLUA_SHARED:-/nonexistent/shared} \
        FTLUA_TEST_PHOTOS=$photos FTLUA_REQUIRE_REFS=0 sh tests/run.sh >"$OUT/tests.log" 2>&1
    summary=$(tail -1 "$OUT/tests.log")
    row "tests (device cuda)" "$(echo "$summary" | grep -q ' 0 failed' && echo ok || echo FAIL)" "$summary, $(elapsed "$t")"
    grep -E '^ +FAIL' "$OUT/tests.log" | head -10

    # ---------------------------------------------------------------- benchmarks
    t=$(date +%s)
    make LIBTORCH="$TORCH_DIR" TORCH_CXX11_ABI="$ABI" LUA_CFLAGS="$LUA_CFLAGS" LUA_LIBS="$LUA_LIBS" \
        build/bench/bench_overhead >/dev/null 2>&1
    FTLUA_PYTHON=$PY BUILD=build sh tests/bench/run.sh >"$OUT/bench.log" 2>&1
    row "bench" "$([ -s "$OUT/bench.log" ] && echo ok || echo FAIL)" "$(elapsed "$t"), see bench.log"
fi

echo
cat "$OUT/bench.log" 2>/dev/null
echo
echo "| check                        | result   | detail |"
echo "|------------------------------|----------|--------|"
printf '%s\n' "${rows[@]}"
echo "total $(elapsed "$t_start")"
