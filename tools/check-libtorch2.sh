#!/bin/sh
# tools/check-libtorch2.sh: compile the libtorch shim against libtorch 2.x headers (Debian trixie's
# libtorch-dev), to check that the same sources build against 1.13 and 2.x without a GPU machine.
# It also compiles our CUDA kernels when nvcc is here. It only compiles; linking and running
# against 2.x with CUDA is tools/device-check.sh's job.
# Uses a private apt state under $DIR, so the machine's own sources are left alone.
set -e
DIR=${DIR:-/tmp/ftlua-trixie}
mkdir -p "$DIR/lists/partial" "$DIR/cache/archives/partial" "$DIR/sources"
cat > "$DIR/sources/trixie.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
APT="-o Dir::Etc::sourcelist=/dev/null -o Dir::Etc::sourceparts=$DIR/sources -o Dir::State::Lists=$DIR/lists -o Dir::Cache=$DIR/cache"
if ! ls "$DIR"/libtorch-dev_*.deb "$DIR"/libgloo-dev_*.deb >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    apt-get $APT update -qq
    # shellcheck disable=SC2086
    (cd "$DIR" && apt-get $APT download libtorch-dev libgloo-dev 2>/dev/null)
fi
deb=$(ls "$DIR"/libtorch-dev_*.deb | head -1)
rm -rf "$DIR/root" && dpkg -x "$deb" "$DIR/root"
gloo=$(ls "$DIR"/libgloo-dev_*.deb | head -1)
dpkg -x "$gloo" "$DIR/root" # ProcessGroupGloo.hpp includes gloo's headers
INC=$DIR/root/usr/include
cd "$(dirname "$0")/.."
for cpp in ft_torch ft_tensor_ops ft_nn; do
    g++ -std=c++17 -O0 -Wall -Wextra -Werror -fPIC -Iruntime -isystem "$INC" \
        -isystem "$INC/torch/csrc/api/include" -c runtime/torch/$cpp.cpp -o "$DIR/$cpp.o"
done
echo "ok shim compiles against $(basename "$deb" .deb) ($(strings "$DIR/ft_torch.o" | grep -m1 -E '^2\.[0-9]+\.[0-9]+$'))"
# The c10d shim, with Gloo (gloo's headers from trixie's libgloo-dev, found by __has_include).
g++ -std=c++17 -O0 -Wall -Wextra -Werror -fPIC -Iruntime -isystem "$INC" \
    -isystem "$INC/torch/csrc/api/include" -c runtime/torch/ft_dist.cpp -o "$DIR/ft_dist.o"
nm -C "$DIR/ft_dist.o" | grep -q 'U c10d::ProcessGroupGloo::ProcessGroupGloo' ||
    { echo "FAIL ft_dist.cpp compiled without Gloo"; exit 1; }
echo "ok c10d shim (Gloo) compiles against $(basename "$deb" .deb) and $(basename "$gloo" .deb)"

# Our own CUDA kernels: compile them with nvcc when this machine has it (no GPU needed to compile).
NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
if [ -n "$NVCC" ]; then
    for cu in runtime/*/*.cu; do
        "$NVCC" -O2 -std=c++17 -arch=sm_80 -Xcompiler -fPIC,-Wall,-Wextra,-Werror -Iruntime -c "$cu" \
            -o "$DIR/$(basename "$cu" .cu).o"
        echo "ok $cu compiles with $("$NVCC" --version | grep -o 'release [0-9.]*')"
    done
else
    echo "skip CUDA kernels: no nvcc here"
fi
