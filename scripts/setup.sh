#!/usr/bin/env bash
# Installs what siglip2-cpp needs on Debian 12 (apt packages, the torch wheel that carries LibTorch,
# ccache, Ninja), then configures and builds into build/. Safe to run again; quiet unless something fails,
# but for one line of timings at the end.
# Python packages go into the Python of scripts/python.sh: $PYTHON, else python3, or .venv made here when
# python3 is Debian's own (which refuses pip installs, PEP 668).
#   BUILD_DIR=build  CMAKE_ARGS="-DSIGLIP2_SANITIZE=ON"  JOBS=2  BUILD_TARGETS="siglip2"  SETUP_TESTS=0  scripts/setup.sh
# BUILD_TARGETS: build only these targets (scripts/demo.sh builds the command alone).
# SETUP_TESTS=0: neither the packages only the tests need (GoogleTest, Google Benchmark, clang for the fuzz
# targets) nor, in a build directory configured for the first time, the tests' targets (scripts/demo.sh); a
# directory configured before keeps its choice. The default, 1, configures the tests, as scripts/test.sh needs.
# Prints how long each part took.
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

SETUP_TESTS=${SETUP_TESTS:-1}
apt_packages=(build-essential cmake ninja-build ccache pkg-config python3 python3-pip
  libyaml-cpp-dev libsentencepiece-dev libopencv-dev libarchive-dev nlohmann-json3-dev
  libcurl4-openssl-dev libfmt-dev libspdlog-dev libcli11-dev libgloo-dev)
if [ "$SETUP_TESTS" != 0 ]; then
  apt_packages+=(libgtest-dev libgmock-dev libbenchmark-dev
    clang lld libclang-rt-14-dev)  # these three: libFuzzer targets (scripts/fuzz.sh)
fi
start=$(date +%s)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if ((${#missing[@]})); then
  quietly $sudo apt-get update -qq
  quietly env DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

. scripts/python.sh
PY=$(siglip2_python)
torch_of() { "$1" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true; }
# PEP 668 is in the way unless pip is told to break system packages or the pinned torch is there already.
pep668() {
  [ -z "${PIP_BREAK_SYSTEM_PACKAGES:-}" ] && siglip2_python_externally_managed "$1" &&
    [ "$(torch_of "$1")" != "$TORCH_VERSION" ]
}
if [ -z "${PYTHON:-}" ] && [ "$PY" = python3 ] && pep668 python3; then
  # Debian's own Python refuses pip installs (PEP 668): torch and the test packages go into .venv.
  echo "setup: this python3 is managed by the system (PEP 668); installing into .venv (run Python tools with .venv/bin/python)"
  if ! dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "install ok installed"; then
    quietly env DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv
  fi
  quietly python3 -m venv .venv
  PY=$(siglip2_python)
elif pep668 "$PY"; then
  echo "setup: $PY refuses pip installs (PEP 668, externally managed); unset PYTHON or give a virtual environment's python" >&2
  exit 1
fi
apt_s=$(($(date +%s) - start))
start=$(date +%s)
if [ "$(torch_of "$PY")" != "$TORCH_VERSION" ]; then
  quietly "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore "torch==$TORCH_VERSION"
fi

pip_s=$(($(date +%s) - start))
start=$(date +%s)

tests=-DSIGLIP2_BUILD_TESTS=ON
if [ "$SETUP_TESTS" = 0 ]; then
  tests=""  # a build directory configured before keeps its choice
  [ -f "$BUILD_DIR/CMakeCache.txt" ] || tests=-DSIGLIP2_BUILD_TESTS=OFF
fi
# shellcheck disable=SC2086  # CMAKE_ARGS is a list
quietly cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$(command -v "$PY")" \
  $tests ${CMAKE_ARGS:-}
# shellcheck disable=SC2086  # BUILD_TARGETS is a list
quietly cmake --build "$BUILD_DIR" -j "$JOBS" ${BUILD_TARGETS:+--target $BUILD_TARGETS}
echo "setup: Debian packages ${apt_s} s, torch ${pip_s} s, build ${BUILD_TARGETS:-everything} $(($(date +%s) - start)) s ($JOBS jobs)"
