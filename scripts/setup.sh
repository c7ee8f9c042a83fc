#!/usr/bin/env bash
# Installs what siglip2-cpp needs on Debian 12 (apt packages, the torch wheel that carries LibTorch,
# ccache, Ninja), then configures and builds into build/. Safe to run again; quiet unless something fails.
#   BUILD_DIR=build  CMAKE_ARGS="-DSIGLIP2_SANITIZE=ON"  JOBS=2  BUILD_TARGETS="siglip2"  scripts/setup.sh
# BUILD_TARGETS: build only these targets (scripts/demo.sh builds the command alone; the tests stay configured).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
TORCH_VERSION=2.11.0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

quietly() {  # run a command, show its output only when it fails
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: failed: $*" >&2
    exit 1
  fi
}

apt_packages=(build-essential cmake ninja-build ccache pkg-config python3 python3-pip
  libyaml-cpp-dev libsentencepiece-dev libopencv-dev libarchive-dev nlohmann-json3-dev
  libcurl4-openssl-dev libfmt-dev libspdlog-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libgloo-dev
  clang lld libclang-rt-14-dev)  # the last three: libFuzzer targets (scripts/fuzz.sh)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  quietly $sudo apt-get update -qq
  quietly env DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
have_torch=$($PY -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
if [ "$have_torch" != "$TORCH_VERSION" ]; then
  quietly $PY -m pip install -q --disable-pip-version-check --root-user-action=ignore "torch==$TORCH_VERSION"
fi

quietly cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$(command -v $PY)" ${CMAKE_ARGS:-}
# shellcheck disable=SC2086  # BUILD_TARGETS is a list
quietly cmake --build "$BUILD_DIR" -j "$JOBS" ${BUILD_TARGETS:+--target $BUILD_TARGETS}
