"""corpus() -> the texts of the tokenizer.json parity test (tokenizer_json_test.py): mixed case, CJK, right-to-left
scripts, emoji sequences, combining marks, ligatures, full-width forms, runs of spaces, tabs and newlines, control
characters, empty text, texts over 64 tokens, digits, special-token strings inside text, user-defined pieces
(USER_DEFINED, as Gemma's) in every case and next to other text."""
import json
import os
import random
import subprocess
import sys

WORDS = {
    "en": "a photo of the cat dog sitting on red blue green car street city night mountain lake view people walking "
          "under bright sky with two small houses near river old bridge Hello WORLD CamelCase iPhone McDonald's".split(),
    "de": "Ein Foto der Katze auf dem Straße Grüße München Brücke über Fluß schöne Häuser ÄRGER ÖL STRASSE ẞ".split(),
    "fr": "une photo du chat sur la rue près de l'église à côté château été Noël garçon ÉCOLE œuvre Æther".split(),
    "el": "μια φωτογραφία της γάτας στο δρόμο Αθήνα ΟΔΥΣΣΕΥΣ ΠΑΣ Ελλάδα θάλασσα ΣΟΦΙΑ ΣΑΣ Σ ΑΣ. ΑΣ'".split(),
    "ru": "фотография кошки на улице Москва ночью горы МОСТ река Ёлка".split(),
    "tr": "İstanbul Iğdır DİYARBAKIR ışık İİ i̇ ı I".split(),
    "zh": "一只 猫 在 街道 上 的 照片 东京 日本語 写真 山 河 한국어 사진 カタカナ ｶﾀｶﾅ".split(),
    "ar": "صورة قطة في الشارع مدينة القاهرة ٠١٢٣٤٥٦٧٨٩ ﻻ ﷺ".split(),
    "he": "תמונה של חתול ברחוב ירושלים שָׁלוֹם".split(),
    "hi": "बिल्ली की तस्वीर नमस्ते क्षत्रिय ไทย ภาษา".split(),
    "emoji": "😀 🐈 🚗 🌙 ❤️ 👍🏽 👍🏿 🇫🇷 🇯🇵 👨‍👩‍👧‍👦 🏳️‍🌈 🧑🏽‍💻 ☺︎ 1️⃣ #️⃣".split(),
    "sym": "ﬁ ﬂ ﬃ ＦＵＬＬ ｗｉｄｔｈ １２３ Ⅻ ½ ² ㎏ ℃ ™ © ǅ Ǆ ǆ e\u0301 a\u0308\u0301 ︵ ＜ ＞ ／ …".split(),
    "special": "<eos> <pad> </s> <unk> <bos> <s> <0x41> <mask> ▁ ▁▁ ＜/s＞ ＜pad＞ ＜unk＞ ＜eos＞ ＜0x41＞".split(),
    "digits": "0 00 000 0000 12345 3.14159 1,000,000 2024-01-01 ٣ ５".split(),
    "rep": "aaaa aaaaaaa .... !!!! ???? 0000000 hahaha hahahahaha lololol ---- ____ ==== ~~~~ ababab abcabc".split(),
}

# User-defined pieces of the test's Gemma-style model: sentencepiece keeps each as one piece wherever it appears.
# "<Mixed>" has an upper-case letter: after lowercasing no text contains it.
USER_DEFINED = ["<start_of_turn>", "<end_of_turn>", "<h1>", "</h1>", "\n\n", "\t\t", "[multimodal]", "<unused0>",
                "<Mixed>"]
WORDS["user"] = USER_DEFINED + ["<START_OF_TURN>", "<H1>", "[MULTIMODAL]", "<mixed>", "<MIXED>", "\n\n\n", "\t\t\t"]

FIXED = [
    "<start_of_turn>user\nhello<end_of_turn>", "<START_OF_TURN>User", "<h1>Title</h1> <H1>x</H1>", "a<h1>b</h1>c",
    "\n\n\n", "\t\t\t\t\t", "<unused0><unused0><unused0>", "[multimodal] [MULTIMODAL] [Multimodal]",
    "<h1 > < h1> <h1", "<Mixed> <mixed> <MIXED>", "word<start_of_turn>word", "\n\n<h1>\n\n",
    "", " ", "  ", "\t", "\n", "\r\n", " \t\n ", "a", "A", ".", "!!!", "...", "▁", "▁▁▁", " ▁ ", "<eos>", "</s>",
    "<pad>", "<unk>", "<bos>", "<0x41>", "a photo of a cat", "A Photo Of A CAT on the STREET.",
    "  leading and trailing spaces  ", "tabs\tand\nnewlines\r\n and  double  spaces", "a  b   c    d",
    "Μια φωτογραφία της γάτας στην Αθήνα. ΟΔΥΣΣΕΥΣ ΚΑΙ ΠΗΝΕΛΟΠΗ, ΣΟΦΙΑ'Σ.", "ΣΑΣ Σ ΑΣ ΑΣ. ΑΣ' Α'Σ ΑΣ'Α ᾼ Σ xͅΣ Σͅ",
    "İstanbul ve Iğdır, DİYARBAKIR", "ﬁnd ＦＵＬＬＷＩＤＴＨ Ⅻ ẞ ǅ café (e\u0301) naïve", "e\u0301\u0301 a\u0301\u0302 ñ",
    "non\u00a0breaking\u2009thin\u3000ideographic\u200bzero\u200dwidth\ufeffbom spaces",
    "\x1c\x1d\x1e\x1f sep \x85 nel \u2028 ls \u2029 ps \u180e mvs \u200b zwsp",
    "punctuation!!! \"quoted\" (parens) [brackets] {braces} a-b_c/d\\e @#$%^&*~`|<>?",
    "numbers 1234567890 3.14159 1,000,000", "literal ▁ sentencepiece ▁▁ symbols ▁x x▁",
    "mixed Zürich ΑΘΗΝΑ Москва 東京 😀 in one line", "text with <eos> and </s> and <pad> and <unk> inside",
    "full width ＜/s＞ ＜pad＞ ＜unk＞ ＜eos＞ ＜0x41＞ ＜bos＞", "byte <0x41><0x42> <0xE2><0x96><0x81>",
    "emoji 👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 🇫🇷🇩🇪🇯🇵 skin 👍🏻👍🏼👍🏽👍🏾👍🏿 keycap 1️⃣",
    "Arabic: صورة قطة في الشارع. Hebrew: תמונה של חתול.", "\u202eRTL override\u202c and \u200fRLM",
    "control \x00 \x01 \x07 \x7f \u0080 \u009f chars", "\x01", "\x01 \x02", " \x01 a \x01 ",
    "\ufeff", "\u200b", "\u0301", "\u0301a", "a\u0301", "ｶﾞｷﾞ ｸﾞ", "㍻ ㌀ ㍿ ㈱", "ⅰⅱⅲ ⅠⅡⅢ",
    "ǅungla Ǆ ǆ ǈ ǋ", "ΐ ΰ ϐ ϑ ϕ ϖ ϰ ϱ ϵ ſ ﬅ ﬆ", "Ꭰ ꭰ Ⓐ ⓐ 𐐀 𐐨 𝔄 𝕬",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "........................................",
    "0000000000000000000000000000", "hahahahahahahahahahahahahahaha", "!!!!!!!!!!!!!!!!!!!!",
    " ".join(["the quick brown fox jumps over the lazy dog"] * 12),
    " ".join(["Straße über Brücke Ελλάδα Москва 東京 😀"] * 10),
    "一只猫在东京街道上的照片。日本語の写真。" * 8,
    "😀" * 80, "a" * 300, "ab " * 100,
]


def corpus(n_random=360, seed=1):
    rng = random.Random(seed)
    out = list(FIXED)
    langs = list(WORDS)
    seps = [" ", " ", " ", "  ", "\t", "\n", "", ", ", ". ", "\u3000", "\u00a0", "▁", " - "]
    for _ in range(n_random):
        k = rng.choice([1, 2, 3, 5, 8, 13, 30, 60])
        words = []
        for _ in range(k):
            lang = rng.choice(langs) if rng.random() < 0.4 else rng.choice(["en", "en", "de", "el", "special", "rep"])
            w = rng.choice(WORDS[lang])
            r = rng.random()
            if r < 0.15:
                w = w.upper()
            elif r < 0.25:
                w = w.title()
            elif r < 0.3:
                w = w * rng.randint(2, 4)
            words.append(w)
            words.append(rng.choice(seps))
        text = "".join(words)
        if rng.random() < 0.2:
            text = rng.choice([" ", "  ", "\n", "▁"]) + text
        if rng.random() < 0.2:
            text += rng.choice([".", "!", "?", " :)", ",", "...", " ", "\n"])
        out.append(text)
    return out


if __name__ == "__main__":
    c = corpus()
    print(len(c), "texts")


# Tokenises with the stock AutoTokenizer in a fresh Python where google.protobuf and sentencepiece cannot be
# imported (so transformers cannot convert tokenizer.model itself and must use tokenizer.json).
_BLOCKED_SIDE = r'''
import sys
sys.modules["google.protobuf"] = None
sys.modules["google"] = None
sys.modules["sentencepiece"] = None
import json
from transformers import AutoTokenizer
jobs = json.load(open(sys.argv[1], encoding="utf-8"))
out = []
for job in jobs:
    tok = AutoTokenizer.from_pretrained(job["dir"])
    out.append({"class": type(tok).__name__, "ids": {str(n): tok(job["texts"], padding="max_length", truncation=True,
                                                                 max_length=n)["input_ids"] for n in job["lengths"]}})
json.dump(out, open(sys.argv[2], "w"))
'''


def blocked_autotokenizer(workdir, jobs):
    """jobs: [{"dir", "texts", "lengths"}] -> (None, [{"class", "ids": {"64": [[...]]}}]) or (stderr, None)."""
    jobs_path, out_path = os.path.join(workdir, "jobs.json"), os.path.join(workdir, "hf_ids.json")
    with open(jobs_path, "w", encoding="utf-8") as f:
        json.dump(jobs, f, ensure_ascii=False)
    side = os.path.join(workdir, "hf_side.py")
    with open(side, "w") as f:
        f.write(_BLOCKED_SIDE)
    r = subprocess.run([sys.executable, side, jobs_path, out_path], capture_output=True, text=True)
    if r.returncode != 0:
        return r.stderr, None
    with open(out_path) as f:
        return None, json.load(f)
