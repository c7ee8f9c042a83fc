#!/usr/bin/env bash
# torchrun example: N processes on this machine (one per GPU, or CPU processes over Gloo).
#   scripts/torchrun_train.sh 8 configs/recipes/pretrain_b16_256.yaml [--set key=value ...]
# Several nodes: run it on each with --nnodes, --node-rank and --rdzv-endpoint added (torchrun --help).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/python.sh
nproc=${1:?usage: scripts/torchrun_train.sh NPROC CONFIG [--set ...]}
shift
exec "$(siglip2_python)" -m torch.distributed.run --standalone --nproc-per-node "$nproc" --no-python build/siglip2 train "$@"
