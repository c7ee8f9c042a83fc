#!/usr/bin/env python3
"""Tokenizer (src/data/tokenizer.*, text_normalize.*) against the Hugging Face SigLIP tokenizers.

    python3 tests/data/tokenizer_parity.py --tool build/tests/data/preprocess_tool [--workdir DIR]

Trains two small sentencepiece models on generated English and non-English sentences:
  gemma: BPE with byte fallback, identity normalisation, no dummy prefix, pad 0 / eos 1 / bos 2 / unk 3,
         the settings of Gemma's tokenizer.model (SigLIP 2); HF side: Siglip2Tokenizer (lowercases itself) and
         GemmaTokenizer(Fast) on texts lowercased by Python, both built from the model by from_pretrained
  t5:    unigram, nmt_nfkc, dummy prefix, pad 0 / eos 1 / unk 2 (SigLIP 1's spiece.model); HF side:
         SiglipTokenizer(vocab_file=...), which lowercases and canonicalises itself
and compares input_ids from tokenizer(texts, padding="max_length", truncation=True, max_length=L) with ours,
text by text, for L = 64 and 16. Also compares the lowercasing and SigLIP 1 canonicalisation on every code point.
"""
import argparse
import json
import os
import random
import shutil
import string
import subprocess
import sys
import tempfile
import unicodedata

import sentencepiece as spm
from safetensors.torch import load_file

import transformers

WORDS = {
    "en": "a photo of the cat dog sitting on red blue green car street city night mountain lake view people "
    "walking under bright sky with two small houses near river old bridge".split(),
    "de": "Ein Foto der Katze auf dem Straße Grüße München Brücke über Fluß schöne Häuser ÄRGER ÖL".split(),
    "fr": "une photo du chat sur la rue près de l'église à côté château été Noël garçon ÉCOLE".split(),
    "el": "μια φωτογραφία της γάτας στο δρόμο Αθήνα ΟΔΥΣΣΕΥΣ ΠΑΣ Ελλάδα θάλασσα ΣΟΦΙΑ".split(),
    "ru": "фотография кошки на улице Москва ночью горы МОСТ река Ёлка".split(),
    "zh": "一只 猫 在 街道 上 的 照片 东京 日本語 写真 山 河".split(),
    "emoji": "😀 🐈 🚗 🌙 ❤️ 👍🏽 🇫🇷".split(),
}

TEXTS = [
    "a photo of a cat",
    "A Photo Of A CAT on the STREET.",
    "",
    " ",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\n and  double  spaces",
    "Ein Foto der Katze auf der Straße in München, schöne Grüße!",
    "Une photo du chat près de l'église, à côté du château — été, Noël.",
    "Μια φωτογραφία της γάτας στην Αθήνα. ΟΔΥΣΣΕΥΣ ΚΑΙ ΠΗΝΕΛΟΠΗ, ΣΟΦΙΑ'Σ.",
    "Фотография кошки на улице в Москве ночью. МОСТ через реку.",
    "一只猫在东京街道上的照片。日本語の写真。",
    "emoji 😀🐈 🚗🌙 ❤️ 👍🏽 🇫🇷 flags",
    "İstanbul ve Iğdır, DİYARBAKIR",
    "ﬁnd ＦＵＬＬＷＩＤＴＨ Ⅻ ẞ ǅ café (e\u0301) naïve",
    "non\u00a0breaking\u2009thin\u3000ideographic spaces",
    "punctuation!!! \"quoted\" (parens) [brackets] {braces} a-b_c/d\\e @#$%^&*~`|<>?",
    "numbers 1234567890 3.14159 1,000,000",
    "literal ▁ sentencepiece ▁▁ symbols",
    "mixed Zürich ΑΘΗΝΑ Москва 東京 😀 in one line",
    " ".join(["the quick brown fox jumps over the lazy dog"] * 12),
    " ".join(["Straße über Brücke Ελλάδα Москва 東京 😀"] * 10),
]


def generated_texts(rng, count, max_words):
    out = []
    for _ in range(count):
        lang = rng.choice(list(WORDS))
        words = [rng.choice(WORDS[lang]) for _ in range(rng.randint(1, max_words))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS[rng.choice(list(WORDS))]))
        text = " ".join(words)
        if rng.random() < 0.3:
            text = text.upper()
        if rng.random() < 0.3:
            text += rng.choice([".", "!", "?", " :)", ",", "..."])
        out.append(text)
    return out


def train(workdir, rng):
    corpus = os.path.join(workdir, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(generated_texts(rng, 600, 40)).lower() + "\n")
    common = dict(input=corpus, hard_vocab_limit=False, minloglevel=2, character_coverage=0.995)
    spm.SentencePieceTrainer.train(
        **common, model_prefix=os.path.join(workdir, "gemma"), model_type="bpe", vocab_size=1200,
        byte_fallback=True, normalization_rule_name="identity", add_dummy_prefix=False,
        remove_extra_whitespaces=False, split_digits=True, allow_whitespace_only_pieces=True,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>")
    spm.SentencePieceTrainer.train(
        **common, model_prefix=os.path.join(workdir, "t5"), model_type="unigram", vocab_size=600,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>")
    gemma_dir = os.path.join(workdir, "gemma_hf")
    os.makedirs(gemma_dir, exist_ok=True)
    shutil.copy(os.path.join(workdir, "gemma.model"), os.path.join(gemma_dir, "tokenizer.model"))
    return os.path.join(workdir, "gemma.model"), gemma_dir, os.path.join(workdir, "t5.model")


def ascii_lower(text):
    return text.translate(str.maketrans(string.ascii_uppercase, string.ascii_lowercase))


def hf_ids(tokenizer, texts, length):
    return tokenizer(texts, padding="max_length", truncation=True, max_length=length)["input_ids"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--workdir")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="siglip2_tokenizer_parity_")
    os.makedirs(workdir, exist_ok=True)
    print(f"transformers {transformers.__version__}, sentencepiece {spm.__version__}")

    rng = random.Random(0)
    gemma_model, gemma_dir, t5_model = train(workdir, rng)
    texts = TEXTS + generated_texts(rng, 150, 100)
    python_lower = [t.lower() for t in texts]
    spm_gemma = spm.SentencePieceProcessor(model_file=gemma_model)
    long_texts = sum(len(spm_gemma.encode(t.lower())) >= 64 for t in texts)
    print(f"{len(texts)} texts, {long_texts} of them 64 tokens or longer")

    # (name, HF tokenizer, texts given to HF, our model, mode, lowercase, texts given to ours)
    setups = []
    kwargs = dict(add_bos_token=False, add_eos_token=True, padding_side="right")
    if hasattr(transformers, "Siglip2Tokenizer"):
        siglip2 = transformers.Siglip2Tokenizer.from_pretrained(gemma_dir, **kwargs)
        setups.append(("Siglip2Tokenizer", siglip2, texts, gemma_model, "gemma", "unicode", texts))
    gemma = transformers.GemmaTokenizerFast.from_pretrained(gemma_dir, **kwargs)
    setups.append(("GemmaTokenizerFast(str.lower)", gemma, python_lower, gemma_model, "gemma", "none", python_lower))
    setups.append(("GemmaTokenizerFast(ascii)", gemma, [ascii_lower(t) for t in texts], gemma_model, "gemma", "ascii",
                   texts))
    siglip = transformers.SiglipTokenizer(vocab_file=t5_model)
    setups.append(("SiglipTokenizer", siglip, texts, t5_model, "siglip1", "unicode", texts))

    commands, runs = [], []
    for name, tokenizer, hf_texts, model, mode, lowercase, our_texts in setups:
        for length in (64, 16):
            stem = os.path.join(workdir, f"{len(runs)}")
            with open(stem + ".json", "w", encoding="utf-8") as f:
                json.dump(our_texts, f, ensure_ascii=False)
            commands.append(["tokenize", model, mode, lowercase, str(length), stem + ".json", stem + ".safetensors"])
            runs.append((name, tokenizer, hf_texts, length, stem + ".safetensors"))

    # Normalisation on every code point (surrogates excepted): Final_Sigma contexts for each, then all in a row.
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    every = "".join(f"A{c}\u03a3 A\u03a3{c} " for c in chars) + "".join(chars)
    with open(os.path.join(workdir, "every.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(every)
    for mode in ("lower", "lower_final_sigma", "ascii", "canonicalize"):
        commands.append(["text", mode, os.path.join(workdir, "every.txt"), os.path.join(workdir, f"every_{mode}.txt")])

    subprocess.run([args.tool, "batch"], input="".join(json.dumps(c) + "\n" for c in commands), text=True,
                   check=True)

    passed = failed = 0
    for name, tokenizer, hf_texts, length, out in runs:
        ours = load_file(out)["input_ids"].tolist()
        want = hf_ids(tokenizer, hf_texts, length)
        bad = [i for i in range(len(texts)) if ours[i] != want[i]]
        passed += len(texts) - len(bad)
        failed += len(bad)
        print(f"{name:30} length {length:2}: {len(texts) - len(bad)} of {len(texts)} texts identical")
        for i in bad[:5]:
            print(f"  FAIL {hf_texts[i]!r}\n    ours {ours[i]}\n    hf   {want[i]}")

    canonical = transformers.SiglipTokenizer(vocab_file=t5_model, do_lower_case=False)
    references = {
        "lower": "".join(c.lower() for c in every),  # character by character, like tokenizers' Lowercase
        "lower_final_sigma": every.lower(),
        "ascii": ascii_lower(every),
        "canonicalize": canonical.canonicalize_text(every),
    }
    for mode, want in references.items():
        with open(os.path.join(workdir, f"every_{mode}.txt"), encoding="utf-8", newline="") as f:
            got = f.read()
        ok = got == want
        passed, failed = passed + ok, failed + (not ok)
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        result = "identical" if ok else f"FAIL at {first}: {got[first:first + 8]!r} vs {want[first:first + 8]!r}"
        print(f"text {mode:18}: {result} on {len(every)} code points")

    # Information: the Rust Lowercase normalizer may follow a newer Unicode version than this Python.
    if hasattr(transformers, "Siglip2Tokenizer"):
        rust = siglip2.backend_tokenizer.normalizer.normalize_str
        plain = [c for c in chars if c not in " \u2581"]
        differ = []
        for i in range(0, len(plain), 4096):
            chunk = plain[i : i + 4096]
            if rust("".join(chunk)) != "".join(c.lower() for c in chunk):
                differ += [c for c in chunk if rust(c) != c.lower()]
        print(f"info: tokenizers' Lowercase differs from Python {sys.version.split()[0]}'s str.lower() (Unicode "
              f"{unicodedata.unidata_version}) on {len(differ)} code points: "
              f"{' '.join(f'U+{ord(c):04X}' for c in differ[:20])}{' ...' if len(differ) > 20 else ''}")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
