#!/usr/bin/env bash
# The loader (`siglip2 data bench`) reading the same shards from local files and over HTTP from a server on
# 127.0.0.1 (tests/data/shard_server.py: Range requests, as object stores serve them), run alternately;
# prints the median images/s of each and the ratio http / files.
#
#   bench/loader_remote.sh 'data/photos/{000000..000003}.tar' --mode fixed --threads 2
#
# Options: --mode fixed|naflex (default fixed), --threads N (2), --images M (1024), --rounds R (3);
# anything after `--` goes to `siglip2 data bench` (e.g. -- --fast-decode). The shards must lie in one folder.
# SIGLIP2_BIN names the binary (default build/siglip2).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
py=$(cd "$here/.." && . scripts/python.sh && siglip2_python)  # $PYTHON, .venv/bin/python or python3
# shellcheck source=bench/loader_args.sh
source "$here/loader_args.sh"
loader_args "$0" "$@"
bin=${SIGLIP2_BIN:-build/siglip2}
[[ -x $bin ]] || { echo "loader_remote.sh: $bin not found (build it, or set SIGLIP2_BIN)" >&2; exit 1; }

work=$(mktemp -d)
server=""
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
"$py" "$here/../tests/data/shard_server.py" "$(dirname "$shards")" >"$work/port" &
server=$!
for _ in $(seq 100); do [[ -s $work/port ]] && break; sleep 0.1; done
port=$(head -n1 "$work/port")
url="http://127.0.0.1:$port/$(basename "$shards")"

common=(--mode "$mode" --threads "$threads" --images "$images")
for ((r = 1; r <= rounds; ++r)); do
  "$bin" data bench "$shards" "${common[@]}" "${extra[@]}" | grep '^RESULT ' | sed 's/^RESULT /RESULT files /' |
    tee -a "$work/results"
  "$bin" data bench "$url" "${common[@]}" "${extra[@]}" | grep '^RESULT ' | sed 's/^RESULT /RESULT http /' |
    tee -a "$work/results"
done

"$py" - "$work/results" "$rounds" <<'PYEOF'
import json, statistics, sys
rows = [line.split(" ", 2)[1:] for line in open(sys.argv[1])]
median = {}
for source in ("files", "http"):
    runs = [json.loads(r) for s, r in rows if s == source]
    if len(runs) != int(sys.argv[2]):
        sys.exit(f"loader_remote.sh: {source} finished {len(runs)} of {sys.argv[2]} rounds")
    median[source] = statistics.median(r["images_per_s"] for r in runs)
first = json.loads(rows[0][1])
print(f"mode {first['mode']}, {first['threads']} threads, {first['images']} images, median of {sys.argv[2]} rounds")
for source in ("files", "http"):
    print(f"  {source:6s} {median[source]:8.1f} images/s  {median[source] / first['threads']:8.1f} per thread")
print(f"  ratio  {median['http'] / median['files']:.2f} (http / files)")
PYEOF
