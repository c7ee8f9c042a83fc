#!/usr/bin/env bash
# The GPU check, in one go on a host with one NVIDIA GPU, LibTorch inside python3's torch, CMake, nvcc
# and g++, but no Debian packages and no network:
#   1. builds the training core from the source tree plus .deps/ (scripts/gather_deps.sh on the build
#      machine gathers it: the few headers and one static library the core needs);
#   2. CUDA checks: NCCL collectives (comm-check), CPU and CUDA embeddings of the same random model agree,
#      full training steps with every objective on CUDA in fp32 and bf16;
#   3. the bench for B/16 at 256 px (bf16, batch $BATCH) next to bench/reference_pytorch.py on the same GPU,
#      alternating (bench/compare.sh).
# Prints a Markdown block for docs/performance.md (device, date, numbers) and writes it to
# $OUT/gpu_check.md when $OUT is set. Exit status: non-zero when a check fails.
#   scripts/gather_deps.sh              # on the build machine
#   scripts/gpu_check.sh                # on the GPU host, from the source tree (with .deps/)
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${BATCH:-256}
STEPS=${STEPS:-10}
ROUNDS=${ROUNDS:-2}
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
report="$work/report.md"
fail=0
say() { echo "$*" | tee -a "$report"; }
check() {  # check NAME COMMAND...: runs it, records ok/FAIL
  local name=$1
  shift
  if "$@" >"$work/last.log" 2>&1; then
    say "- ok: $name"
  else
    say "- FAIL: $name"
    tail -n 30 "$work/last.log"
    fail=1
  fi
}

[ -d .deps ] || { echo "gpu_check: .deps/ is missing (run scripts/gather_deps.sh on the build machine)" >&2; exit 2; }
command -v nvidia-smi >/dev/null || { echo "gpu_check: no nvidia-smi: not a GPU host" >&2; exit 2; }
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)
torch_version=$(python3 -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')

say "### GPU check, $(date -u +%Y-%m-%d) on $gpu"
say ""
say "torch $torch_version; $(nproc) CPU cores; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
say ""

# 1. Build the core (no data pipeline: no OpenCV, libarchive or sentencepiece on the host).
t0=$(date +%s)
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PWD/.deps" \
  -DSIGLIP2_BUILD_TESTS=OFF -DSIGLIP2_WITH_OPENCV=OFF -DSIGLIP2_WITH_ARCHIVE=OFF -DSIGLIP2_WITH_CURL=OFF -DSIGLIP2_WITH_SENTENCEPIECE=OFF \
  -DSIGLIP2_CUDA=ON >"$work/configure.log" 2>&1 || { tail -n 40 "$work/configure.log"; exit 1; }
cmake --build "$BUILD" -j "$JOBS" --target siglip2 >"$work/build.log" 2>&1 || { tail -n 60 "$work/build.log"; exit 1; }
BIN=$PWD/$BUILD/siglip2
say "- built the core in $(( $(date +%s) - t0 )) s: $($BIN --version)"

# 2. CUDA checks.
check "NCCL collectives (comm-check, one process)" "$BIN" comm-check --backend nccl
"$BIN" -q import --init random --config configs/models/tiny.yaml --seed 3 --out "$work/tiny" >/dev/null
python3 - "$work/inputs.safetensors" <<'EOF'
import sys, torch
from safetensors.torch import save_file
g = torch.Generator().manual_seed(0)
save_file({"pixel_values": torch.rand(4, 3, 64, 64, generator=g) * 2 - 1,
           "input_ids": torch.randint(2, 1024, (4, 64), generator=g)}, sys.argv[1])
EOF
for dev in cpu cuda; do
  "$BIN" -q embed --model "$work/tiny" --inputs "$work/inputs.safetensors" --out "$work/$dev.safetensors" --device $dev
done
check "CPU and CUDA embeddings agree (fp32, 2e-3: cuDNN convolutions may use TF32)" python3 - "$work" <<'EOF'
import sys
from safetensors.torch import load_file
a, b = load_file(sys.argv[1] + "/cpu.safetensors"), load_file(sys.argv[1] + "/cuda.safetensors")
for k in ("image_embeds", "text_embeds"):
    d = (a[k] - b[k]).abs().max().item()
    print(k, d)
    assert d < 2e-3, (k, d)
EOF
# NaFlex positions on degenerate grids (one patch wide or tall, upsampled past the learned 8x8 grid): the
# resize is explicit matrices (src/models/resize.cpp), so CPU and CUDA must agree on these too.
"$BIN" -q import --init random --config configs/models/tiny_naflex.yaml --seed 4 --out "$work/tiny_naflex" >/dev/null
python3 - "$work/naflex_inputs.safetensors" <<'EOF'
import sys, torch
from safetensors.torch import save_file
shapes = [(64, 1), (2, 1), (9, 1), (1, 64), (1, 2), (16, 4), (3, 21), (8, 8)]
g = torch.Generator().manual_seed(1)
pv, mask = torch.zeros(len(shapes), 64, 192), torch.zeros(len(shapes), 64, dtype=torch.int32)
for i, (h, w) in enumerate(shapes):
    pv[i, : h * w] = torch.rand(h * w, 192, generator=g) * 2 - 1
    mask[i, : h * w] = 1
save_file({"pixel_values": pv, "pixel_attention_mask": mask, "spatial_shapes": torch.tensor(shapes)}, sys.argv[1])
EOF
for dev in cpu cuda; do
  "$BIN" -q embed --model "$work/tiny_naflex" --inputs "$work/naflex_inputs.safetensors" --features \
    --out "$work/naflex_$dev.safetensors" --device $dev
done
check "NaFlex degenerate grids (64x1, 2x1, 1x64, ...): CPU and CUDA agree (fp32, 2e-3)" python3 - "$work" <<'EOF'
import sys
from safetensors.torch import load_file
a, b = load_file(sys.argv[1] + "/naflex_cpu.safetensors"), load_file(sys.argv[1] + "/naflex_cuda.safetensors")
for k in ("image_embeds", "image_features"):
    d = (a[k] - b[k]).abs().max().item()
    print(k, d)
    assert d < 2e-3, (k, d)
EOF
check "training steps on CUDA, every objective, fp32" \
  "$BIN" bench --preset tiny --batch 32 --steps 3 --device cuda --precision fp32 --objectives sigmoid,locca,self_distillation
check "training steps on CUDA, every objective, bf16" \
  "$BIN" bench --preset tiny --batch 32 --steps 3 --device cuda --precision bf16 --objectives sigmoid,locca,self_distillation
check "NaFlex training steps on CUDA, bf16" \
  "$BIN" bench --preset b16_naflex --batch 32 --steps 3 --device cuda --precision bf16 --objectives sigmoid,locca
# Activation checkpointing on CUDA: the recomputation runs on the autograd device thread, with the CUDA
# generator and bf16 autocast restored.
check "training steps on CUDA with activation checkpointing, every objective, bf16" \
  "$BIN" bench --preset tiny --batch 32 --steps 3 --device cuda --precision bf16 \
  --objectives sigmoid,locca,self_distillation --activation-checkpointing blocks

# The trainer on CUDA (bf16 autocast): every objective, self-distillation from step 6, checkpoints, then a
# resume that continues to step 12.
cat >"$work/train.yaml" <<EOF
base: $PWD/configs/models/tiny.yaml
model: {decoder: {max_length: 12}}
loss: {self_distillation: {prototypes: 64, head_hidden: 32, head_bottleneck: 16}}
schedule: {warmup_steps: 2}
train: {data: synthetic, out_dir: $work/run, batch_size: 16, total_steps: 10, log_every: 2, checkpoint_every: 5,
        self_distillation_start: 0.5, phase_checkpoints: [0.5], device: cuda}
EOF
check "siglip2 train on CUDA, every objective, bf16" "$BIN" train "$work/train.yaml"
check "siglip2 train on CUDA resumes to step 12" "$BIN" train "$work/train.yaml" --set train.total_steps=12
check "CUDA run's checkpoint exports" "$BIN" export "$work/run/$(cat "$work/run/latest" 2>/dev/null)" --format hf \
  --out "$work/run-hf"
# The ACID stage on CUDA: the reference (the run above) scores bf16 super-batches with the learner, then resumes.
check "siglip2 train on CUDA, the ACID stage" "$BIN" train "$work/train.yaml" --set train.out_dir="$work/acid" \
  --set train.locca=false --set train.self_distillation=false --set acid.reference="$work/run" --set acid.chunks=4
check "ACID bench on CUDA, bf16" "$BIN" bench --preset tiny --batch 32 --steps 3 --device cuda --precision bf16 \
  --objectives acid --set acid.chunks=4

# 3. B/16 at 256 px, bf16: ours against the PyTorch reference, alternating.
# compare_b16 TITLE LOG [ARGS...]: bench/compare.sh at B/16 @ 256, bf16; its table of medians into the report.
compare_b16() {
  local title=$1 log=$2
  shift 2
  say ""
  say "$title"
  say ""
  if SIGLIP2_BIN="$BIN" bench/compare.sh --rounds "$ROUNDS" --preset b16_256 --batch "$BATCH" --steps "$STEPS" \
      --device cuda --precision bf16 "$@" >"$log" 2>&1; then
    say '```'
    sed -n '/^medians over/,/^COMPARE /p' "$log" | tee -a "$report"
    say '```'
  else
    tail -n 40 "$log"
    say "- FAIL: bench/compare.sh $*"
    fail=1
  fi
}
compare_b16 "B/16 @ 256 px, bf16 autocast, batch $BATCH, $STEPS timed steps, sigmoid loss, $ROUNDS rounds each:" \
  "$work/compare.log"
if "$BIN" bench --preset b16_256 --batch "$BATCH" --steps "$STEPS" --device cuda --precision bf16 \
    --objectives sigmoid,locca,self_distillation >"$work/all.log" 2>&1; then
  say ""
  say "All objectives (sigmoid + LocCa + self-distillation), same shape:"
  say ""
  say '```'
  sed -n '/pairs\/s/,/MFU/p' "$work/all.log" | tee -a "$report" >/dev/null
  say '```'
else
  tail -n 30 "$work/all.log"
  say "- FAIL: B/16 bench with every objective"
  fail=1
fi
# Activation checkpointing at B/16, both implementations (the reference: transformers' gradient checkpointing).
compare_b16 "B/16 @ 256 px, bf16, activation checkpointing of every block, $ROUNDS rounds each:" \
  "$work/compare_ac.log" --activation-checkpointing blocks

if [ -n "${OUT:-}" ]; then
  cp "$report" "$OUT/gpu_check.md"
  cp "$work/compare.log" "$OUT/compare.log" 2>/dev/null || true
  cp "$work/compare_ac.log" "$OUT/compare_ac.log" 2>/dev/null || true
fi
echo
echo "gpu_check: $([ $fail = 0 ] && echo 'all checks passed' || echo 'some checks FAILED')"
exit $fail
