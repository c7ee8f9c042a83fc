#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang into build-fuzz/ and runs each for SECONDS,
# starting from its seed corpus (tests/fuzz/corpus/TARGET, which holds the regression inputs too)
# and its dictionary (tests/fuzz/TARGET.dict).
#   scripts/fuzz.sh [SECONDS=30] [TARGET...]      targets: safetensors run_config hf_config hf_preprocessing shard sentencepiece_model
# Prints, per target, the inputs tried and whether anything was found; exits 1 on a finding, whose
# input is kept in build-fuzz/findings/TARGET/ (replay: build-fuzz/tests/fuzz/fuzz_TARGET FILE).
# New inputs that reach new code go to build-fuzz/corpus/TARGET/ and are reused by the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-30}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(safetensors run_config hf_config hf_preprocessing shard sentencepiece_model)
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
. scripts/python.sh
PY=$(siglip2_python)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if ! {
  cmake -S . -B "$BUILD_DIR" -G Ninja -DSIGLIP2_FUZZ=ON -DCMAKE_CXX_COMPILER="${FUZZ_CXX:-clang++}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIGLIP2_CUDA=OFF -DSIGLIP2_GLOO=OFF -DSIGLIP2_WITH_OPENCV=OFF \
    -DSIGLIP2_WITH_SENTENCEPIECE=OFF -DPython3_EXECUTABLE="$(command -v "$PY")" &&
    cmake --build "$BUILD_DIR" -j "$JOBS"
} >"$log" 2>&1; then
  cat "$log" >&2
  echo "fuzz: building the fuzz targets failed (needs clang and libFuzzer: scripts/setup.sh installs them)" >&2
  exit 2
fi

found=0
for t in "${targets[@]}"; do
  bin="$BUILD_DIR/tests/fuzz/fuzz_$t"
  seeds="tests/fuzz/corpus/$t"
  if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
    echo "fuzz: unknown target '$t' (safetensors run_config hf_config hf_preprocessing shard sentencepiece_model)" >&2
    exit 2
  fi
  work="$BUILD_DIR/corpus/$t"
  findings="$BUILD_DIR/findings/$t"
  mkdir -p "$work" "$findings"
  out="$BUILD_DIR/fuzz-$t.log"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  scratch=$(mktemp -d)  # the targets write each input to a file here
  status=0
  TMPDIR="$scratch" "$bin" "$work" "$seeds" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$findings/" "${dict[@]}" >"$out" 2>&1 || status=$?
  rm -rf "$scratch"
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
  if ((status == 0)); then
    printf 'fuzz %-12s %4ss  %10s inputs tried  %5s in corpus  nothing found\n' "$t" "$SECONDS_PER_TARGET" \
      "${runs:-?}" "$(ls "$work" | wc -l)"
  else
    found=1
    kept=$(ls -t "$findings" | head -1)
    printf 'fuzz %-12s %4ss  %10s inputs tried  FINDING (exit %s): %s\n' "$t" "$SECONDS_PER_TARGET" \
      "${runs:-?}" "$status" "$findings/$kept"
    grep -m1 -E "^==[0-9]+==ERROR|runtime error|terminate called|deadly signal|ALARM|out-of-memory" "$out" || true
    echo "  full log: $out"
  fi
done
exit $found
