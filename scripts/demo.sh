#!/usr/bin/env bash
# The whole SigLIP 2 pipeline on one CPU machine, on real data, in a few minutes: install and build; make
# WebDataset shards of scikit-learn's 1,797 handwritten-digit scans (single digits, and scenes of 2-4 digits
# with boxes and region captions); train a tokenizer and configs/demo_digits.yaml (sigmoid + LocCa from the
# start, self-distillation from 80%); evaluate zero-shot and retrieval on 297 held-out scans; export to Hugging
# Face format; find digits in 100 held-out scenes with `siglip2 caption --refer` (IoU >= 0.5); classify a
# held-out scan with the export in transformers (AutoModel, AutoImageProcessor, AutoTokenizer).
# It starts by removing its output directory (runs/digits).
#   scripts/demo.sh [--set train.total_steps=200 ...]   (extra arguments go to `siglip2 train`)
#   DEMO_OUT=DIR DEMO_SCENES=N DEMO_SETUP=0 scripts/demo.sh   another output directory, fewer scenes, no set-up
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SIGLIP2_BIN:-build/siglip2}
OUT=${DEMO_OUT:-runs/digits}
# The config's paths, moved under $OUT.
paths=(--set "tokenizer.model_file=$OUT/data/tokenizer.model"
  --set "data.shards=[\"$OUT/data/train/{000000..000015}.tar\"]" --set "eval.shards=$OUT/data/eval/000000.tar"
  --set "eval.classnames=$OUT/data/classnames.txt" --set "eval.templates=$OUT/data/templates.txt")

echo "== set-up and build (scripts/setup.sh)"
start=$(date +%s)
# The command alone, without the tests' packages; a first build in combined units, in a third of the time (a
# build directory configured before, e.g. by scripts/test.sh, keeps its settings and its tests).
unity=""
[ -f "${BUILD_DIR:-build}/CMakeCache.txt" ] || unity=-DSIGLIP2_UNITY=ON
[ "${DEMO_SETUP:-1}" = 0 ] || BUILD_TARGETS=siglip2 SETUP_TESTS=0 CMAKE_ARGS="$unity ${CMAKE_ARGS:-}" scripts/setup.sh
. scripts/python.sh
PY=$(siglip2_python)  # after setup.sh: on Debian's own Python it makes .venv
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The transformers and tokenizers versions the tests pin (scripts/requirements-test.txt). No sentencepiece or
# protobuf: the export carries its tokenizer as tokenizer.json.
if ! "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore "torch==2.11.0" \
    "transformers==5.24.0" "tokenizers==0.23.3" safetensors pillow scikit-learn >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
echo "set-up took $(( $(date +%s) - start )) s"

echo "== handwritten digits as WebDataset shards, and a tokenizer"
rm -rf "$OUT"
"$PY" scripts/make_digits.py --out "$OUT/data" --scenes "${DEMO_SCENES:-100}"
if ! $BIN -q data tokenizer --corpus "$OUT/data/corpus.txt" --out "$OUT/data/tokenizer.model" --vocab-size 512 \
    >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi

echo "== training configs/demo_digits.yaml"
start=$(date +%s)
$BIN train configs/demo_digits.yaml --no-resume "${paths[@]}" --set "train.out_dir=$OUT/run" "$@"
echo "training took $(( $(date +%s) - start )) s"

echo "== zero-shot and retrieval on the held-out scans"
ckpt="$OUT/run/$(cat "$OUT/run/latest")"
$BIN -q eval --model "$ckpt" configs/demo_digits.yaml "${paths[@]}" | tee "$OUT/eval.json"

echo "== export to Hugging Face format"
$BIN export "$ckpt" --format hf --out "$OUT/hf" --overwrite

echo "== referring expressions in held-out scenes, the export in transformers on a held-out scan"
"$PY" - "$OUT" "$BIN" "$ckpt" <<'PYEOF'
import sys
# As on a user's machine without them: the export must not need sentencepiece or protobuf.
sys.modules["sentencepiece"] = sys.modules["google.protobuf"] = sys.modules["google"] = None
import io, json, os, subprocess, tarfile
from PIL import Image
import transformers
out, binary, ckpt = sys.argv[1:4]
words = [w for w in open(os.path.join(out, "data", "classnames.txt")).read().split("\n") if w]


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def refer(path, text):
    r = subprocess.run([binary, "-q", "caption", "--model", ckpt, "--image", path, "--refer", text],
                       capture_output=True, text=True, check=True)
    try:
        return [float(v) for v in r.stdout.strip().split(",")]
    except ValueError:
        return None  # "no box decoded"


scene_dir = os.path.join(out, "scenes")
os.makedirs(scene_dir, exist_ok=True)
hits = total = 0
guess = 0.0  # a model that found every digit but could not read them would pick the right one 1/n of the time
example = None
with tarfile.open(os.path.join(out, "data", "scenes", "000000.tar")) as tar:
    members = {m.name: m for m in tar.getmembers()}
    keys = sorted(n[:-4] for n in members if n.endswith(".jpg"))
    for i, key in enumerate(keys):
        path = os.path.join(scene_dir, key + ".jpg")
        with open(path, "wb") as f:
            f.write(tar.extractfile(members[key + ".jpg"]).read())
        regions = json.loads(tar.extractfile(members[key + ".json"]).read())["regions"]
        region = regions[i % len(regions)]  # one digit per scene, cycling through the positions
        box = refer(path, region["caption"])
        hit = box is not None and iou(box, region["box"]) >= 0.5
        hits, total = hits + hit, total + 1
        guess += 1 / len(regions)
        if example is None:
            example = (key, path, region, box)
key, path, region, box = example
print(f"siglip2 caption --refer '{region['caption']}' on held-out scene {key}: box {box}, "
      f"true box {[round(v, 3) for v in region['box']]}")
print(f"referring expressions: {hits} of {total} boxes found with IoU >= 0.5 ({100 * hits / total:.1f}%); boxing a "
      f"digit of the scene at random would score {100 * guess / total:.1f}%")

with tarfile.open(os.path.join(out, "data", "eval", "000000.tar")) as tar:
    members = {m.name: m for m in tar.getmembers()}
    key = sorted(n for n in members if n.endswith(".jpg"))[0][:-4]
    image = Image.open(io.BytesIO(tar.extractfile(members[key + ".jpg"]).read())).convert("RGB")
    label = int(tar.extractfile(members[key + ".cls"]).read())
# What the zero-shot-image-classification pipeline computes (sigmoid of logits_per_image), written out: the
# pipeline pads SigLIP texts to 64 tokens and, in transformers 5.24, drops its tokenizer_kwargs, so it cannot
# run a model with 16 text positions.
import torch
hf = os.path.join(out, "hf")
model = transformers.AutoModel.from_pretrained(hf).eval()
length = model.config.text_config.max_position_embeddings
inputs = dict(transformers.AutoImageProcessor.from_pretrained(hf)(images=image, return_tensors="pt"))
inputs.update(transformers.AutoTokenizer.from_pretrained(hf)([f"a handwritten digit {w}." for w in words],
                                                               padding="max_length", max_length=length,
                                                               truncation=True, return_tensors="pt"))
with torch.no_grad():
    probs = torch.sigmoid(model(**inputs).logits_per_image[0])
print(f"transformers (AutoModel, AutoImageProcessor, AutoTokenizer) on held-out scan {key} "
      f"(a handwritten '{words[label]}'):")
for p, w in sorted(zip(probs.tolist(), words), reverse=True)[:3]:
    print(f"  {p:.4f}  {w}")
ev = json.load(open(os.path.join(out, "eval.json")))
print(f"zero-shot accuracy on {ev['images']} held-out scans: top-1 {100 * ev['top1']:.1f}%, "
      f"top-5 {100 * ev['top5']:.1f}% ({ev['classes']} classes, chance {100 * ev['chance_top1']:.1f}%)")
PYEOF
case "$PY" in
  */.venv/bin/python) echo "torch, transformers and the rest are in .venv: run Python tools with .venv/bin/python" ;;
esac
