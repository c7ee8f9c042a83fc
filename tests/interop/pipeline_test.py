"""`siglip2 zero-shot` on an exported-then-reimported model prints the probabilities of the transformers
zero-shot-image-classification pipeline on the same photograph: a fresh tiny model with a sentencepiece
tokenizer trained here, exported to HF format, imported back, for a fixed-resolution and a NaFlex tower."""
import math
import os

import numpy as np
import sentencepiece as spm
import torch
import transformers
from PIL import Image

import interop_common as ic

# Mixed case: the exported tokenizer.json must lowercase as our tokenizer does.
LABELS = ["A Photo of a CAT", "a photo of a dog", "An Astronaut", "TWO RED CIRCLES", "a plate of food"]


def train_tokenizer(workdir, vocab):
    words = ["photo", "cat", "dog", "astronaut", "red", "circle", "circles", "plate", "food", "two", "a", "an", "of",
             "the", "blue", "green", "square", "triangle", "large", "small", "left", "right", "above", "below"]
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, size=8)) for _ in range(3000)]
    model = os.path.join(workdir, "spm")
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=model, vocab_size=vocab,
                                   model_type="bpe", byte_fallback=True, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
                                   character_coverage=1.0, add_dummy_prefix=False, hard_vocab_limit=False,
                                   normalization_rule_name="identity", remove_extra_whitespaces=False,
                                   minloglevel=2)
    return model + ".model"


def main():
    a = ic.parse_args()
    checks = ic.Checks()
    from skimage import data as skdata
    image = os.path.join(a.workdir, "astronaut.jpg")
    Image.fromarray(skdata.astronaut()).save(image, quality=92)
    for preset in ("tiny", "tiny_naflex"):
        config = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "models", preset + ".yaml")
        tok = train_tokenizer(a.workdir, 1024)
        fresh, hf, back = (os.path.join(a.workdir, preset + s) for s in (".fresh", ".hf", ".back"))
        steps = [("init", "import", "--init", "random", "--config", config, "--seed", "3", "--tokenizer", tok,
                  "--out", fresh),
                 ("export", "export", fresh, "--format", "hf", "--out", hf),
                 ("re-import", "import", "--hf", hf, "--out", back)]
        if not ic.run_ok(checks, f"{preset} init", a.bin, *steps[0][1:]):
            continue
#A fresh model has bias - 10 : every probability would print as 0.0000 and agree trivially.Spread
#them : a large temperature, and a bias that centres these labels' logits on this image.
        weights = os.path.join(fresh, "model.safetensors")
        tensors = ic.load_file(weights)
        tensors["logit_scale"] = torch.full((1,), math.log(2000.0))
        tensors["logit_bias"] = torch.zeros(1)
        ic.save_file(tensors, weights, metadata={"format": "pt"})
        if not ic.run_ok(checks, f"{preset} export (probe)", a.bin, *steps[1][1:], "--overwrite"):
            continue
        model = transformers.AutoModel.from_pretrained(hf).eval()
#The image processor and tokenizer on their own, as the pipeline uses them(Siglip2Processor would
#override the image processor's patch settings with its own defaults).
        inputs = dict(transformers.AutoImageProcessor.from_pretrained(hf)(images=Image.open(image), return_tensors="pt"))
        inputs.update(transformers.AutoTokenizer.from_pretrained(hf)(LABELS, padding="max_length", max_length=64,
                                                                    truncation=True, return_tensors="pt"))
        with torch.no_grad():
            logits = model(**inputs).logits_per_image[0].tolist()
        tensors["logit_bias"] = torch.full((1,), -float(np.median(logits)))
        ic.save_file(tensors, weights, metadata={"format": "pt"})
        if not all(ic.run_ok(checks, f"{preset} {name}", a.bin, *args, "--overwrite") for name, *args in steps[1:]):
            continue
        r = ic.run(a.bin, "zero-shot", "--model", back, "--image", image, "--labels", *LABELS, "--template", "{}")
        if not checks.check(f"{preset} zero-shot runs", r.returncode == 0, r.stderr[-2000:]):
            continue
        ours = [(float(p), label) for p, label in (line.split("  ", 1) for line in r.stdout.strip().splitlines())]
        pipe = transformers.pipeline("zero-shot-image-classification", model=hf, device="cpu")
        theirs = pipe(Image.open(image), candidate_labels=LABELS, hypothesis_template="{}")
        want = {t["label"]: t["score"] for t in theirs}
        diff = max(abs(p - want[label]) for p, label in ours)
        order_ok = [label for _, label in ours] == [t["label"] for t in theirs] or diff < 1e-4
        spread = max(p for p, _ in ours) - min(p for p, _ in ours)
        checks.check(f"{preset} probabilities are spread out (max - min {spread:.3f})", spread > 0.05, str(ours))
        checks.check(f"{preset} zero-shot equals the transformers pipeline (max difference {diff:.1e}, printed to 4 "
                     f"decimals)", diff <= 6e-5 and order_ok, f"ours {ours}\npipeline {theirs}")
    checks.finish()


if __name__ == "__main__":
    main()
