#!/usr/bin/env bash
# Installs everything (scripts/setup.sh), the Python packages of the parity tests, builds and runs
# every test with CTest. Extra arguments go to ctest, e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
scripts/setup.sh
. scripts/python.sh
PY=$(siglip2_python)  # after setup.sh: it may have made .venv
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore -r scripts/requirements-test.txt >"$log" 2>&1; then
  cat "$log" >&2
  echo "test: installing the Python test packages failed" >&2
  exit 1
fi
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${CTEST_JOBS:-2}" "$@"
