#!/usr/bin/env bash
# The whole SigLIP 2 pipeline on one CPU machine, in a few minutes: install and build, write synthetic
# WebDataset shards, train configs/demo.yaml (sigmoid + LocCa from the start, self-distillation from
# 80%), evaluate zero-shot on the held-out split, export to Hugging Face format, and classify a held-out
# image with the transformers zero-shot pipeline from the exported directory.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
BIN=build/siglip2
OUT=runs/demo

echo "== set-up and build (scripts/setup.sh)"
scripts/setup.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The transformers and tokenizers versions the tests pin (scripts/requirements-test.txt). No sentencepiece or
# protobuf: the export carries its tokenizer as tokenizer.json.
if ! $PY -m pip install -q --disable-pip-version-check --root-user-action=ignore "torch==2.11.0" \
    "transformers==5.24.0" "tokenizers==0.23.3" safetensors pillow >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi

echo "== synthetic data"
rm -rf "$OUT"
$BIN -q data synth --out "$OUT/data" --train-shards 8 --eval-shards 2 --per-shard 500 --seed 0 --image-size 64 \
  --vocab-size 512

echo "== training configs/demo.yaml"
start=$(date +%s)
$BIN train configs/demo.yaml --no-resume "$@"
echo "training took $(( $(date +%s) - start )) s"

echo "== zero-shot evaluation of the last checkpoint"
ckpt="$OUT/run/$(cat "$OUT/run/latest")"
$BIN eval --model "$ckpt" configs/demo.yaml | tee "$OUT/eval.json"

echo "== export to Hugging Face format"
$BIN export "$ckpt" --format hf --out "$OUT/hf"

echo "== transformers zero-shot pipeline on a held-out image"
$PY - "$OUT" <<'PYEOF'
import io, json, os, sys, tarfile
from PIL import Image
import transformers
out = sys.argv[1]
with tarfile.open(os.path.join(out, "data", "eval", "000000.tar")) as tar:
    members = {m.name: m for m in tar.getmembers()}
    key = sorted(n for n in members if n.endswith(".jpg"))[0][:-4]
    image = Image.open(io.BytesIO(tar.extractfile(members[key + ".jpg"]).read())).convert("RGB")
    label = int(tar.extractfile(members[key + ".cls"]).read())
classes = open(os.path.join(out, "data", "classnames.txt")).read().split("\n")
classes = [c for c in classes if c]
pipe = transformers.pipeline("zero-shot-image-classification", model=os.path.join(out, "hf"), device="cpu")
result = pipe(image, candidate_labels=classes, hypothesis_template="a photo of a {}.")
print(f"held-out image {key}: true class '{classes[label]}'")
for r in result[:5]:
    print(f"  {r['score']:.4f}  {r['label']}")
ev = json.load(open(os.path.join(out, "eval.json")))
print(f"zero-shot accuracy on {ev['images']} held-out images: top-1 {100 * ev['top1']:.1f}%, "
      f"top-5 {100 * ev['top5']:.1f}% ({ev['classes']} classes, chance {100 * ev['chance_top1']:.1f}%)")
PYEOF
