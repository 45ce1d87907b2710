#!/bin/sh
# Install the Debian packages ftlua needs. Idempotent; silent when everything is present.
set -e
PKGS="build-essential pkg-config libtorch-dev liblua5.4-dev lua5.4 libreadline-dev libstb-dev
libturbojpeg0-dev python3-torch python3-torchvision gnuplot-nox tmux clang libclang-rt-14-dev clang-format
dataset-fashion-mnist curl zlib1g-dev chromium libgloo-dev
libzmq3-dev libjansson-dev python3-jupyter-client python3-nbclient jupyter-nbconvert jupyter-notebook
python3-pandas python3-matplotlib python3-sklearn python3-scipy python3-packaging python3-pil
python3-yaml python3-requests"
# (python3-pandas to python3-requests: what the real fastai in ../shared/reference/fastai-py
# imports, for the parity tests and make bench's accuracy table)
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
