#!/usr/bin/env bash
# siglip2 bench against the PyTorch-eager reference, same arguments, alternating runs, medians compared.
#
#   bench/compare.sh [--rounds R] --preset b16_256 --batch 8 --steps 5 --device cpu --threads 2
#
# Every argument except --rounds goes unchanged to both `siglip2 bench` and bench/reference_pytorch.py.
# Environment: ROUNDS (default 3), SIGLIP2_BIN (default build/siglip2), PYTHON (default: scripts/python.sh's choice).
# Prints one row per round, a table of medians with the ratio siglip2/pytorch, and a final
# `COMPARE {json}` line. Exit status: 0 done, 1 a run failed, 2 bad usage or no bench command.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
bin=${SIGLIP2_BIN:-$root/build/siglip2}
py=$(cd "$root" && . scripts/python.sh && siglip2_python)  # $PYTHON, .venv/bin/python or python3
rounds=${ROUNDS:-3}

args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) [ $# -ge 2 ] || { echo "error: --rounds needs a value" >&2; exit 2; }; rounds=$2; shift 2 ;;
    --rounds=*) rounds=${1#--rounds=}; shift ;;
    --objectives|--objectives=*)
      objectives=${1#--objectives}; objectives=${objectives#=}
      if [ -z "$objectives" ]; then [ $# -ge 2 ] && objectives=$2; args+=("$1"); shift; fi
      if [ "$objectives" != sigmoid ]; then
        echo "error: --objectives $objectives: the PyTorch reference supports only 'sigmoid'" >&2
        exit 2
      fi
      args+=("$1"); shift ;;
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$rounds" in ''|*[!0-9]*|0) echo "error: rounds must be a positive integer, got '$rounds'" >&2; exit 2 ;; esac
[ ${#args[@]} -gt 0 ] || { echo "error: no benchmark arguments (try: --preset tiny --batch 8 --steps 5)" >&2; exit 2; }

if [ ! -x "$bin" ]; then
  echo "error: $bin not found or not executable (build it: cmake --build build)" >&2
  exit 2
fi
if ! "$bin" bench --help >/dev/null 2>&1; then
  echo "error: $bin has no 'bench' command (rebuild it from a source tree that has one)" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run NAME CMD...: runs one benchmark, keeps its output, appends its RESULT json to $work/NAME.jsonl.
run() {
  local name=$1 log=$work/$1.log
  shift
  local status=0
  "$@" >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    echo "error: $name run failed (exit $status): $*" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  local line
  line=$(grep '^RESULT ' "$log" | tail -n 1 || true)
  if [ -z "$line" ]; then
    echo "error: $name printed no RESULT line: $*" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  echo "${line#RESULT }" >>"$work/$name.jsonl"
  echo "${line#RESULT }" | "$py" -c 'import json, sys
r = json.load(sys.stdin)
print("  %-8s %10.2f pairs/s %10.2f ms/step" % (r["impl"], r["pairs_per_s"], r["step_ms"]))'
}

echo "siglip2 bench vs PyTorch reference, $rounds rounds: ${args[*]}"
for ((r = 1; r <= rounds; r++)); do
  echo "round $r/$rounds"
  run siglip2 "$bin" bench "${args[@]}"
  run pytorch "$py" "$here/reference_pytorch.py" "${args[@]}"
done

"$py" - "$work/siglip2.jsonl" "$work/pytorch.jsonl" <<'EOF'
import json
import statistics
import sys

ours, ref = ([json.loads(l) for l in open(p) if l.strip()] for p in sys.argv[1:3])
rows = [("pairs/s", "pairs_per_s", "{:.2f}"), ("step ms", "step_ms", "{:.2f}"), ("forward ms", "forward_ms", "{:.2f}"),
        ("backward ms", "backward_ms", "{:.2f}"), ("optimizer ms", "optimizer_ms", "{:.2f}"),
        ("comm ms", "comm_ms", "{:.2f}"), ("peak MiB", "peak_mem_mib", "{:.0f}"),
        ("activations MiB", "activation_mib", "{:.0f}"),
        ("train GFLOP/pair", "train_gflop_per_pair", "{:.3f}"), ("MFU", "mfu", "{:.2%}")]


def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


summary = {"model": ref[0]["model"], "device": ours[0]["device"], "precision": ours[0]["precision"],
           "threads": ours[0]["threads"], "batch": ours[0]["batch"], "rounds": len(ours)}
print(f"\nmedians over {len(ours)} rounds | {summary['model']} | {summary['device']} {summary['precision']} | "
      f"threads {summary['threads']} | batch {summary['batch']}")
print(f"  {'':<18}{'siglip2':>12}{'pytorch':>12}{'ratio':>8}")
for label, key, fmt in rows:
    a, b = median(ours, key), median(ref, key)
    ratio = a / b if a is not None and b else None
    cell = lambda v: "-" if v is None else fmt.format(v)
    print(f"  {label:<18}{cell(a):>12}{cell(b):>12}{'-' if ratio is None else f'{ratio:.2f}':>8}")
    summary[key] = {"siglip2": a, "pytorch": b, "ratio": ratio}
print("  (ratio = siglip2 / pytorch: above 1 is better for pairs/s, below 1 for times and memory)")
print("  (activations: siglip2 counts tensor bytes alive from the forward's end to the backward; the reference,\n"
      "   the bytes its forward saves for backward, parameters excluded)")
print("COMPARE " + json.dumps(summary))
EOF
