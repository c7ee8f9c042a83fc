#!/usr/bin/env bash
# The C++ loader (`siglip2 data bench`) against the Python one (bench/loader_python.py: webdataset + PIL +
# torchvision + torch DataLoader), same shards, mode, threads and number of images, run alternately;
# prints the median images/s of each and the ratio ours / python.
#
#   bench/loader_compare.sh 'data/synth/train/{000000..000003}.tar' --mode fixed --threads 2
#
# Options: --mode fixed|naflex (default fixed), --threads N (2), --images M (1024), --rounds R (3);
# anything after `--` goes to `siglip2 data bench` only (e.g. -- --fast-decode).
# SIGLIP2_BIN names the binary (default build/siglip2).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
py=$(cd "$here/.." && . scripts/python.sh && siglip2_python)  # $PYTHON, .venv/bin/python or python3
# shellcheck source=bench/loader_args.sh
source "$here/loader_args.sh"
loader_args "$0" "$@"
bin=${SIGLIP2_BIN:-build/siglip2}
[[ -x $bin ]] || { echo "loader_compare.sh: $bin not found (build it, or set SIGLIP2_BIN)" >&2; exit 1; }

results=$(mktemp)
trap 'rm -f "$results"' EXIT
common=("$shards" --mode "$mode" --threads "$threads" --images "$images")
for ((r = 1; r <= rounds; ++r)); do
  "$bin" data bench "${common[@]}" "${extra[@]}" | grep '^RESULT ' | tee -a "$results"
  "$py" "$here/loader_python.py" "${common[@]}" | grep '^RESULT ' | tee -a "$results"
done

"$py" - "$results" "$rounds" <<'EOF'
import json, statistics, sys
rows = [json.loads(line.split(" ", 1)[1]) for line in open(sys.argv[1])]
median = {}
for impl in ("siglip2", "python"):
    runs = [r for r in rows if r["impl"] == impl]
    if len(runs) != int(sys.argv[2]):
        sys.exit(f"loader_compare.sh: {impl} finished {len(runs)} of {sys.argv[2]} rounds")
    median[impl] = statistics.median(r["images_per_s"] for r in runs)
first = rows[0]
print(f"mode {first['mode']}, {first['threads']} threads, {first['images']} images, median of {sys.argv[2]} rounds")
for impl in ("siglip2", "python"):
    print(f"  {impl:8s} {median[impl]:8.1f} images/s  {median[impl] / first['threads']:8.1f} per thread")
print(f"  ratio    {median['siglip2'] / median['python']:.2f}x (ours / python)")
EOF
