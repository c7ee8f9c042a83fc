#!/usr/bin/env python3
"""An imported checkpoint keeps its own tokenizer.json: import, fine-tuning checkpoints and export carry it byte for
byte while the tokenizer settings are unchanged, and a stock transformers (protobuf and sentencepiece blocked) then
tokenises as we do.

    python3 tests/interop/tokenizer_kept_test.py --bin build/siglip2 --tool build/tests/data/preprocess_tool
        --models configs/models [--workdir DIR]

The "Google-style" directory is made as google/siglip2-* were: a Gemma-style sentencepiece model (BPE, byte
fallback, identity normalisation, no dummy prefix, <mask> as id 4, user-defined pieces) converted by transformers'
own GemmaTokenizer (sentencepiece and protobuf available here) and saved with save_pretrained, next to random tiny
weights. For fixed resolution and NaFlex:
  - `siglip2 import --hf` keeps tokenizer.json (+ tokenizer_origin.json); exports of the model directory, of the
    Hugging Face directory itself and of a checkpoint fine-tuned from the model directory write it unchanged;
  - AutoTokenizer on the export gives our ids (tests/data/preprocess_tool) for every text of tokenizer_corpus.py,
    except texts where lowercasing makes or breaks a user-defined piece ("<H1>", "<Mixed>"): transformers'
    conversion matches user-defined pieces before lowercasing, big_vision and we after. Those texts are counted, and every
    difference must be one of them; the generated tokenizer.json (tokenizer_json_test.py) has no such exception;
  - `export --regenerate-tokenizer`, and a changed setting (tokenizer.lowercase none, which makes export generate
    tokenizer.json and say why), give our ids on every text.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import sentencepiece as spm
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from interop_common import Checks  # noqa: E402
from tokenizer_corpus import USER_DEFINED, blocked_autotokenizer, corpus  # noqa: E402

TRAIN = """base: {models}/{preset}
model:
  text: {{vocab_size: 1024}}
  decoder: {{max_length: 12}}
tokenizer: {{model_file: {tokenizer}}}
schedule: {{warmup_steps: 1}}
train:
  data: synthetic
  out_dir: {out}
  batch_size: 4
  total_steps: 2
  checkpoint_every: 2
  self_distillation: false
  spike_factor: 0
"""


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def google_style_tokenizer(w, texts):
    """tokenizer.model and the files transformers' GemmaTokenizer conversion saves for it."""
    path = os.path.join(w, "corpus.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(t.replace("\n", " ").lower() for t in texts if t.strip()) + "\n")
    prefix = os.path.join(w, "gemma")
    spm.SentencePieceTrainer.train(
        input=path, model_prefix=prefix, vocab_size=900, hard_vocab_limit=False, minloglevel=2,
        character_coverage=0.9995, pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
        bos_piece="<bos>", unk_piece="<unk>", control_symbols=["<mask>"], user_defined_symbols=USER_DEFINED,
        model_type="bpe", byte_fallback=True, normalization_rule_name="identity", split_digits=True,
        add_dummy_prefix=False, remove_extra_whitespaces=False, allow_whitespace_only_pieces=True)
    src, out = os.path.join(w, "gemma-src"), os.path.join(w, "gemma-hf")
    os.makedirs(src, exist_ok=True)
    shutil.copy(prefix + ".model", os.path.join(src, "tokenizer.model"))
    with open(os.path.join(src, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "GemmaTokenizer", "add_bos_token": False, "add_eos_token": True,
                   "padding_side": "right", "do_lower_case": True, "model_max_length": 64}, f)
    code = ("import sys, transformers; t = transformers.AutoTokenizer.from_pretrained(sys.argv[1]); "
            "t.save_pretrained(sys.argv[2]); print(type(t).__name__)")
    r = run(sys.executable, "-c", code, src, out, check=True)
    shutil.copy(prefix + ".model", os.path.join(out, "tokenizer.model"))
    return prefix + ".model", out, r.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--workdir")
    a = ap.parse_args()
    w = a.workdir or tempfile.mkdtemp(prefix="siglip2_tokenizer_kept_")
    os.makedirs(w, exist_ok=True)
    checks = Checks()
    texts = corpus()
    texts_path = os.path.join(w, "texts.json")
    with open(texts_path, "w", encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)
    sp_model, converted, cls = google_style_tokenizer(w, texts)
    original = read(os.path.join(converted, "tokenizer.json"))
    print(f"{len(texts)} texts; Google-style tokenizer.json from transformers' {cls}, {len(original)} bytes")

    # Texts where lowercasing makes or breaks a user-defined piece ("<H1>" becomes "<h1>", "<Mixed>" goes).
    def affected(text):
        return any(text.lower().count(p) != text.count(p) if p == p.lower() else p in text for p in USER_DEFINED)

    ours = {}
    for lowercase in ("unicode", "none"):
        out = os.path.join(w, f"ours-{lowercase}.safetensors")
        run(a.tool, "tokenize", sp_model, "gemma", lowercase, 64, texts_path, out, check=True)
        ours[lowercase] = load_file(out)["input_ids"].tolist()

    jobs, expect = [], []
    for naflex in (False, True):
        tag = "naflex" if naflex else "fixed"
        preset = "tiny_naflex.yaml" if naflex else "tiny.yaml"
        weights, google = os.path.join(w, tag + "-weights"), os.path.join(w, tag + "-google")
        run(a.bin, "-q", "import", "--init", "random", "--config", os.path.join(a.models, preset), "--set",
            "model.text.vocab_size=1024", "--out", weights, "--overwrite", check=True)
        run(a.bin, "-q", "export", weights, "--out", google, "--no-tokenizer", "--overwrite", check=True)
        shutil.rmtree(weights)
        for name in os.listdir(converted):
            shutil.copy(os.path.join(converted, name), google)

        model_dir = os.path.join(w, tag + "-model")
        r = run(a.bin, "import", "--hf", google, "--out", model_dir, "--overwrite")
        if not checks.check(f"{tag}: import --hf", r.returncode == 0, r.stderr[-800:]):
            continue
        checks.check(f"{tag}: the model directory keeps tokenizer.json byte for byte, with tokenizer_origin.json",
                     read(os.path.join(model_dir, "tokenizer.json")) == original and
                     os.path.isfile(os.path.join(model_dir, "tokenizer_origin.json")))

        sources = {"model directory": model_dir, "Hugging Face directory": google}
        cfg = os.path.join(w, tag + "-finetune.yaml")
        with open(cfg, "w") as f:
            f.write(TRAIN.format(models=os.path.abspath(a.models), preset=preset,
                                 tokenizer=os.path.join(model_dir, "tokenizer.model"),
                                 out=os.path.join(w, tag + "-run")))
        r = run(a.bin, "-q", "train", cfg, "--init-from", model_dir, "--no-resume")
        ckpt = os.path.join(w, tag + "-run", "ckpt-00000002")
        if checks.check(f"{tag}: fine-tune 2 steps from the model directory", r.returncode == 0, r.stderr[-1500:]):
            checks.check(f"{tag}: the checkpoint carries tokenizer.json and tokenizer_origin.json",
                         read(os.path.join(ckpt, "tokenizer.json")) == original and
                         os.path.isfile(os.path.join(ckpt, "tokenizer_origin.json")))
            sources["fine-tuned checkpoint"] = ckpt
        for what, src in sources.items():
            hf = os.path.join(w, f"{tag}-export-{what.replace(' ', '_')}")
            r = run(a.bin, "export", src, "--out", hf, "--overwrite")
            if not checks.check(f"{tag}: export of the {what}", r.returncode == 0, r.stderr[-800:]):
                continue
            checks.check(f"{tag}: export of the {what} writes the original tokenizer.json unchanged",
                         read(os.path.join(hf, "tokenizer.json")) == original and "imported original" in r.stderr,
                         r.stderr[-500:])
            jobs.append({"dir": hf, "texts": texts, "lengths": [64]})
            expect.append((f"{tag}: {what}", "unicode", True))

        # --regenerate-tokenizer: our own file, exact on every text.
        hf = os.path.join(w, tag + "-export-regenerated")
        r = run(a.bin, "export", model_dir, "--out", hf, "--overwrite", "--regenerate-tokenizer")
        if checks.check(f"{tag}: export --regenerate-tokenizer", r.returncode == 0, r.stderr[-800:]):
            checks.check(f"{tag}: ... writes a generated tokenizer.json",
                         read(os.path.join(hf, "tokenizer.json")) != original)
            jobs.append({"dir": hf, "texts": texts, "lengths": [64]})
            expect.append((f"{tag}: --regenerate-tokenizer", "unicode", False))

        # A setting changed since the import: the original no longer applies.
        if naflex:
            continue
        changed = os.path.join(w, tag + "-changed")
        shutil.copytree(model_dir, changed, dirs_exist_ok=True)
        yaml_path = os.path.join(changed, "config.yaml")
        text = read(yaml_path, "r")
        with open(yaml_path, "w") as f:
            f.write(text.replace("lowercase: unicode", "lowercase: none"))
        hf = os.path.join(w, tag + "-export-changed")
        r = run(a.bin, "export", changed, "--out", hf, "--overwrite")
        if checks.check(f"{tag}: export after tokenizer.lowercase changed to none", r.returncode == 0, r.stderr[-800:]):
            checks.check(f"{tag}: ... generates tokenizer.json and says why",
                         read(os.path.join(hf, "tokenizer.json")) != original and
                         'tokenizer.lowercase is "none", was "unicode"' in r.stderr, r.stderr[-600:])
            jobs.append({"dir": hf, "texts": texts, "lengths": [64]})
            expect.append((f"{tag}: lowercase none (generated)", "none", False))

    error, results = blocked_autotokenizer(w, jobs)
    if not checks.check("AutoTokenizer loads every export with protobuf and sentencepiece blocked", error is None,
                        (error or "")[-2000:]):
        return 1
    n_affected = sum(map(affected, texts))
    for (name, lowercase, original_file), got in zip(expect, results):
        want = ours[lowercase]
        bad = [i for i, (x, y) in enumerate(zip(want, got["ids"]["64"])) if x != y]
        if original_file:
            other = [i for i in bad if not affected(texts[i])]
            checks.check(f"{name}: {got['class']} gives our ids except where lowercasing makes or breaks a user-defined piece "
                         f"({len(bad)} of the {n_affected} such texts differ, of {len(texts)})",
                         not other and 0 < len(bad),
                         "" if not other else f"{len(other)} others differ, first {texts[other[0]]!r}: ours "
                         f"{want[other[0]][:12]} theirs {got['ids'][other[0]][:12]}")
        else:
            checks.check(f"{name}: {got['class']} gives our ids for all {len(texts)} texts", not bad,
                         "" if not bad else f"{len(bad)} differ, first {texts[bad[0]]!r}")
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
