#!/usr/bin/env bash
# Builds siglip2-cpp with AddressSanitizer and UndefinedBehaviorSanitizer (SIGLIP2_SANITIZE) into
# build-asan/ and runs the unit tests and the bad-input suites against it; any sanitizer report
# (invalid access, leak, undefined behaviour) fails the suite that triggered it.
#   scripts/sanitize.sh           every unit test executable, then the suites that drive the binary:
#                                 the errors catalogue, malformed Hugging Face checkpoints, data CLI,
#                                 CLI behaviour, trainer behaviour, kill-and-resume
#   scripts/sanitize.sh --fast    the unit tests and the errors catalogue (what CI runs)
#   scripts/sanitize.sh -- --gtest_filter='Safetensors*'   arguments after -- go to the unit tests
# Results per suite are printed as they finish; each suite's output is in build-asan/sanitize-SUITE.log.
# LibTorch and the system libraries are not instrumented: ASan checks every access our code makes and
# every block it allocates or frees, UBSan checks our code. Leak checking is on
# (tests/sanitize/lsan.supp lists what is suppressed and why).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${SANITIZE_BUILD_DIR:-build-asan}
JOBS=${JOBS:-$(nproc)}
. scripts/python.sh
PY=$(siglip2_python)
unit=(common data losses models train)
binary_suites=(errors_catalogue interop_malformed data_cli cli_behaviour trainer_behaviour kill_resume)
gtest_args=()
while (($#)); do
  case "$1" in
    --fast) binary_suites=(errors_catalogue) ;;
    --) shift; gtest_args=("$@"); break ;;
    *) echo "sanitize: unknown argument '$1' (--fast, -- GTEST_ARGS...)" >&2; exit 2 ;;
  esac
  shift
done
targets=(siglip2)
for s in "${unit[@]}"; do targets+=("${s}_tests"); done
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# -O1 -g1: the optimisation level sanitizer builds usually take, with line tables for the reports.
t0=$SECONDS
if ! {
  cmake -S . -B "$BUILD_DIR" -G Ninja -DSIGLIP2_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1" \
    -DPython3_EXECUTABLE="$(command -v "$PY")" && cmake --build "$BUILD_DIR" -j "$JOBS" --target "${targets[@]}"
} >"$log" 2>&1; then
  cat "$log" >&2
  echo "sanitize: building with the sanitizers failed" >&2
  exit 2
fi
echo "sanitize: built ${targets[*]} in $((SECONDS - t0)) s"

supp="$PWD/tests/sanitize"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=1 BUILD_DIR PY
BIN="$PWD/$BUILD_DIR/siglip2"
export BIN

# One suite: SUITE [GTEST_ARGS...]. Prints one line; on failure, the sanitizer report or failed checks.
run_suite() {
  local suite=$1 out="$BUILD_DIR/sanitize-$1.log" status=0 t0=$SECONDS work="$BUILD_DIR/sanitize/$1"
  shift
  rm -rf "$work" && mkdir -p "$work"
  local src=$PWD
  case "$suite" in
    common | data | losses | models | train)
      (cd "$BUILD_DIR/tests/$suite" && "./${suite}_tests" --gtest_color=no "$@") ;;
    errors_catalogue)
      "$PY" tests/faults/errors_catalogue_test.py --bin "$BIN" --models "$src/configs/models" --workdir "$work" \
        --doc docs/errors.md ;;
    interop_malformed) "$PY" tests/interop/malformed_test.py --bin "$BIN" --workdir "$work" ;;
    data_cli) (cd "$work" && SIGLIP2_BIN="$BIN" "$PY" "$src/tests/data/data_cli_test.py") ;;
    cli_behaviour) "$PY" tests/cli/cli_test.py --bin "$BIN" --source "$src" ;;
    trainer_behaviour) (cd "$work" && "$PY" "$src/tests/train/trainer_test.py" --bin "$BIN" --models "$src/configs/models") ;;
    kill_resume) "$PY" tests/faults/kill_resume_test.py --bin "$BIN" --models "$src/configs/models" --workdir "$work" ;;
  esac >"$out" 2>&1 || status=$?
  local summary
  summary=$(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test|[0-9]+ passed, [0-9]+ failed' "$out" | tail -2 | tr '\n' ' ')
  if ((status == 0)); then
    printf 'sanitize %-18s ok   %4ss  %s\n' "$suite" $((SECONDS - t0)) "$summary"
  else
    printf 'sanitize %-18s FAIL %4ss  exit %s  %s(log: %s)\n' "$suite" $((SECONDS - t0)) "$status" "$summary" "$out"
    grep -E -A14 '^==[0-9]+==ERROR|runtime error:|^\[  FAILED  \]|^FAIL ' "$out" | head -60
    return 1
  fi
}
export -f run_suite

# The unit tests two executables at a time (each runs its tests in one process, so the leak check at its
# exit covers them all); then the suites that drive the binary, one at a time (they time kills).
failed=0
printf '%s\n' "${unit[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_suite "$@"' _ {} "${gtest_args[@]}" || failed=1
for s in "${binary_suites[@]}"; do
  run_suite "$s" || failed=1
done
exit $failed
