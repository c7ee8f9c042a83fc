#!/usr/bin/env bash
# Gathers the small dependencies of the training core (headers of yaml-cpp, nlohmann-json, CLI11,
# fmt, spdlog, Gloo, plus the static yaml-cpp library) into .deps/, for a GPU host that has
# LibTorch (inside python3's torch), CMake and a compiler but none of Debian's packages.
# There:  cmake -S . -B build -DCMAKE_PREFIX_PATH=$PWD/.deps -DSIGLIP2_BUILD_TESTS=OFF ...
set -euo pipefail
cd "$(dirname "$0")/.."
out=.deps
rm -rf "$out"
mkdir -p "$out/include" "$out/lib"
for d in yaml-cpp nlohmann CLI fmt spdlog gloo; do
  [ -d "/usr/include/$d" ] || { echo "gather_deps: /usr/include/$d missing (run scripts/setup.sh)" >&2; exit 1; }
  cp -r "/usr/include/$d" "$out/include/"
done
cp /usr/lib/x86_64-linux-gnu/libyaml-cpp.a "$out/lib/"
du -sh "$out" | awk '{print "gather_deps: " $1 " in .deps/"}'
