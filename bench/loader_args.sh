# Shared by bench/loader_compare.sh and bench/loader_remote.sh (sourced): parses
#   SHARDS [--mode fixed|naflex] [--threads N] [--images M] [--rounds R] [-- ARGS for siglip2 data bench]
# into shards, mode (fixed), threads (2), images (1024), rounds (3), extra (array); prints the caller's header
# comment (lines 2-10) for -h, --help or no arguments, and exits 2 on an unknown option.
loader_args() {
  local script=$1
  shift
  if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
    sed -n '2,10p' "$script" | sed 's/^# \{0,1\}//'
    exit 2
  fi
  shards=$1
  shift
  mode=fixed threads=2 images=1024 rounds=3
  extra=()
  while [[ $# -gt 0 ]]; do
    case $1 in
      --mode) mode=$2; shift 2 ;;
      --threads) threads=$2; shift 2 ;;
      --images) images=$2; shift 2 ;;
      --rounds) rounds=$2; shift 2 ;;
      --) shift; extra=("$@"); break ;;
      *) echo "$(basename "$script"): unknown option '$1'" >&2; exit 2 ;;
    esac
  done
}
