#!/usr/bin/env python3
"""`siglip2 export` writes a tokenizer.json that a stock transformers tokenises exactly as we trained, in a Python
process where google.protobuf and sentencepiece cannot be imported (so transformers cannot convert
tokenizer.model itself).

    python3 tests/interop/tokenizer_json_test.py --bin build/siglip2 --tool build/tests/data/preprocess_tool
        --models configs/models --workdir DIR

Sentencepiece models trained here:
  gemma     BPE, byte fallback, identity normalisation, no dummy prefix, spaces kept, user-defined pieces (Gemma's
            settings, SigLIP 2)
  prefixed  the same with sentencepiece's whitespace defaults (dummy prefix, extra spaces removed), no
            user-defined pieces
  prefixed_ud  the same with user-defined pieces: refused (tokenizers normalises between added tokens)
  defaults  sentencepiece's defaults: unigram, nmt_nfkc, dummy prefix
  nfkc_bpe  BPE with the default nmt_nfkc rule (what `siglip2 data synth` trained before)
For each with {fixed resolution, NaFlex} and lowercase {unicode, ascii, none}: either the export's
AutoTokenizer gives our ids (tests/data/preprocess_tool tokenize) for every text of tokenizer_corpus.py at lengths
64 and 16, or the export stops with one line naming the setting that tokenizer.json cannot express, and writes
nothing. SigLIP 1 (T5's nmt_nfkc unigram) keeps SiglipTokenizer over spiece.model: covered by
tests/data/tokenizer_parity.py, and it needs sentencepiece.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import sentencepiece as spm
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from interop_common import Checks  # noqa: E402
from tokenizer_corpus import USER_DEFINED, blocked_autotokenizer, corpus  # noqa: E402

def train(workdir, texts):
    path = os.path.join(workdir, "corpus.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(t.replace("\n", " ").lower() for t in texts if t.strip()) + "\n")
    ids = dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
               unk_piece="<unk>")
    common = dict(input=path, hard_vocab_limit=False, minloglevel=2, character_coverage=0.9995, vocab_size=900, **ids)
    gemma = dict(model_type="bpe", byte_fallback=True, normalization_rule_name="identity", split_digits=True,
                 user_defined_symbols=USER_DEFINED)
    settings = {
        "gemma": dict(gemma, add_dummy_prefix=False, remove_extra_whitespaces=False, allow_whitespace_only_pieces=True),
        "prefixed": dict(gemma, user_defined_symbols=[]),
        "prefixed_ud": dict(gemma),
        "defaults": dict(),
        "nfkc_bpe": dict(model_type="bpe", byte_fallback=True),
    }
    models = {}
    for name, extra in settings.items():
        spm.SentencePieceTrainer.train(**common, **extra, model_prefix=os.path.join(workdir, name))
        models[name] = os.path.join(workdir, name + ".model")
    return models


# (model, naflex, lowercase) -> None when the export must be exact, else a phrase of the expected refusal.
def expected_refusal(model, naflex, lowercase):
    if model == "defaults":
        return "model_type unigram"
    if model == "nfkc_bpe":
        return "normalization rule 'nmt_nfkc'"
    if model == "prefixed_ud":
        return "add_dummy_prefix with user-defined pieces"
    if naflex and lowercase != "unicode":
        return f"tokenizer.lowercase {lowercase} in a NaFlex export"
    if naflex and model == "prefixed":
        return "add_dummy_prefix in a NaFlex export"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--workdir")
    a = ap.parse_args()
    w = a.workdir or tempfile.mkdtemp(prefix="siglip2_tokenizer_json_")
    os.makedirs(w, exist_ok=True)
    texts = corpus()
    texts_path = os.path.join(w, "texts.json")
    with open(texts_path, "w", encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)
    print(f"{len(texts)} texts")
    checks = Checks()
    models = train(w, texts)

    jobs, ours = [], []
    for name, model_file in models.items():
        for naflex in (False, True):
            for lowercase in ("unicode", "ascii", "none"):
                tag = f"{name}-{'naflex' if naflex else 'fixed'}-{lowercase}"
                model_dir, hf_dir = os.path.join(w, tag + ".model"), os.path.join(w, tag + ".hf")
                preset = os.path.join(a.models, "tiny_naflex.yaml" if naflex else "tiny.yaml")
                subprocess.run([a.bin, "-q", "import", "--init", "random", "--config", preset, "--tokenizer", model_file,
                                "--set", f"tokenizer.lowercase={lowercase}", "--set", "model.text.vocab_size=1024",
                                "--out", model_dir, "--overwrite"], check=True)
                r = subprocess.run([a.bin, "export", model_dir, "--out", hf_dir, "--overwrite"], capture_output=True,
                                   text=True)
                refusal = expected_refusal(name, naflex, lowercase)
                if refusal:
                    errors = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
                    checks.check(f"{tag}: export refuses, naming the setting", r.returncode != 0 and len(errors) == 1
                                 and refusal in errors[0] and not os.path.exists(hf_dir),
                                 errors[0] if errors else r.stderr[-300:])
                    continue
                if r.returncode != 0:
                    checks.check(f"{tag}: export", False, r.stderr[-500:])
                    continue
                per_length = {}
                for length in (64, 16):
                    out = os.path.join(w, f"{tag}.{length}.ids.safetensors")
                    subprocess.run([a.tool, "tokenize", model_file, "gemma", lowercase, str(length), texts_path, out],
                                   check=True)
                    per_length[str(length)] = load_file(out)["input_ids"].tolist()
                jobs.append({"dir": hf_dir, "texts": texts, "lengths": [64, 16]})
                ours.append((tag, per_length))

    error, results = blocked_autotokenizer(w, jobs)
    if error is not None:
        checks.check("AutoTokenizer loads every export with protobuf and sentencepiece blocked", False, error[-2000:])
    else:
        for (tag, want), got in zip(ours, results):
            for length in ("64", "16"):
                bad = [i for i, (x, y) in enumerate(zip(want[length], got["ids"][length])) if x != y]
                checks.check(f"{tag}: {got['class']} (no protobuf, no sentencepiece) gives our ids for all {len(texts)} "
                             f"texts at length {length}", not bad,
                             "" if not bad else f"{len(bad)} differ, first {texts[bad[0]]!r}: ours "
                             f"{want[length][bad[0]][:12]} theirs {got['ids'][length][bad[0]][:12]}")
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
