#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/ (checked in; run again
after changing a reader's format). The inputs mirror those of the unit and interop tests: valid files,
and one of each kind of rejection those tests check, so that fuzzing starts on both sides of each rule."""
import gzip
import io
import json
import shutil
import struct
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "corpus"


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data.encode() if isinstance(data, str) else data)


def safetensors_bytes(tensors, metadata=None, pad=True):
    header, data = {}, b""
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    f32 = struct.pack("<4f", 1, 2, 3, 4)
    put("safetensors", "valid_f32", safetensors_bytes({"w": ("F32", [2, 2], f32)}, {"format": "pt"}))
    put("safetensors", "valid_mixed", safetensors_bytes({
        "a": ("BF16", [3], b"\x80\x3f" * 3), "b": ("I64", [1], struct.pack("<q", 7)),
        "c": ("BOOL", [2], b"\x01\x00"), "d": ("U8", [0], b""), "e": ("F16", [], b"\x00\x3c")}))
    put("safetensors", "unaligned", safetensors_bytes({"x": ("U8", [1], b"\x01"), "y": ("F64", [1], b"\0" * 8)},
                                                        pad=False))
    put("safetensors", "empty_header", safetensors_bytes({}))
    good = safetensors_bytes({"w": ("F32", [2, 2], f32)})
    put("safetensors", "truncated", good[:-3])
    put("safetensors", "header_too_long", struct.pack("<Q", 1 << 20) + good[8:])
    put("safetensors", "overlap", struct.pack("<Q", 96) + json.dumps(
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
         "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode().ljust(96) + b"\0" * 12)
    put("safetensors", "bad_dtype", safetensors_bytes({"w": ("F8", [1], b"\0")}))


def config_seeds():
    for path in [ROOT / "configs/demo.yaml", ROOT / "configs/models/tiny.yaml", ROOT / "configs/models/tiny_naflex.yaml",
                 *sorted((ROOT / "configs/recipes").glob("*.yaml"))]:
        put("run_config", path.stem, path.read_bytes())
    put("run_config", "overrides", "model: {vision: {hidden_size: 64, num_attention_heads: 2},\n"
                                   "        text: {hidden_size: 64, num_attention_heads: 2}}\n"
                                   "train: {total_steps: 10, batch_size: 8}\nschedule: {warmup_steps: 1}\n"
                                   "optimizer: {lr: 1e-3, frozen: ['^text\\\\..*']}\n")
    put("run_config", "bad_type", "train:\n  total_steps: ten\n")
    put("run_config", "unknown_key", "optimizer:\n  lrr: 0.1\n")
    put("run_config", "anchors", "a: &x {lr: 0.5}\noptimizer: *x\n")
    # Findings of the fuzzer, replayed by every run: an alias inside its own anchor overflowed the stack
    # (found after 1.25 million inputs, 7 minutes); an alias bomb expands to a million values.
    put("run_config", "regress-alias_cycle", "a: &x {l: *x}\no: *x")
    put("run_config", "regress-alias_bomb", "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 6)))


def hf_config(model_type="siglip", vision=None, text=None):
    vision = vision or dict(hidden_size=32, intermediate_size=89, num_hidden_layers=2, num_attention_heads=4,
                            patch_size=8, image_size=32, num_channels=3, layer_norm_eps=1e-6)
    text = text or dict(vocab_size=99, hidden_size=32, intermediate_size=69, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=16, projection_size=32)
    return json.dumps({"model_type": model_type, "architectures": ["SiglipModel"], "text_config": text,
                       "vision_config": vision, "torch_dtype": "float32"}, indent=2)


def hf_seeds():
    put("hf_config", "siglip", hf_config())
    put("hf_config", "siglip2", hf_config("siglip2", vision=dict(hidden_size=32, intermediate_size=89,
                                                                  num_hidden_layers=2, num_attention_heads=4,
                                                                  patch_size=8, num_patches=64)))
    put("hf_config", "defaults", '{"model_type": "siglip", "text_config": {}, "vision_config": {}}')
    put("hf_config", "image_size_list", hf_config(vision=dict(image_size=[224, 224], patch_size=16)))
    put("hf_config", "vision_only", '{"model_type": "siglip_vision_model", "hidden_size": 32}')
    put("hf_config", "not_json", '{"model_type": "siglip", ')
    put("hf_config", "no_head", hf_config(vision=dict(vision_use_head=False)))
    put("hf_config", "negative", hf_config(text=dict(hidden_size=-1)))
    # Findings of the fuzzer, replayed by every run: each escaped as a JSON type_error or overflowed a cast.
    put("hf_config", "regress-model_type_number", '{"model_type": 3}')
    put("hf_config", "regress-image_size_strings",
        '{"model_type": "siglip", "text_config": {}, "vision_config": {"image_size": ["a", "a"]}}')
    put("hf_config", "regress-int_overflow", '{"model_type": "siglip", "text_config": {"hidden_size": 1e300}}')


def sentencepiece_seeds():
    """Small models trained here (Gemma's settings; a unigram with a dummy prefix), and broken copies."""
    import os
    import tempfile

    import sentencepiece as spm
    words = "a photo of the cat dog red blue digit three seven straße ελλάδα 東京 1234".split()
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(6)) for i in range(200)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("gemma", dict(model_type="bpe", byte_fallback=True, normalization_rule_name="identity",
                                            add_dummy_prefix=False, remove_extra_whitespaces=False)),
                            ("unigram", dict(normalization_rule_name="identity"))):  # no 240 kB charsmap
            spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=os.path.join(tmp, name),
                                           vocab_size=400, hard_vocab_limit=False, character_coverage=1.0, minloglevel=2, pad_id=0, eos_id=1,
                                           bos_id=2, unk_id=3, **extra)
            data = open(os.path.join(tmp, name + ".model"), "rb").read()
            put("sentencepiece_model", name, data)
            if name == "gemma":
                put("sentencepiece_model", "truncated", data[: len(data) // 2])
                put("sentencepiece_model", "wrong_wire_type", b"\x09" + data[1:])
    # A finding of the fuzzer (30 s), replayed by every run: a piece that is not UTF-8 escaped as a JSON
    # type_error when tokenizer.json was written.
    put("sentencepiece_model", "regress-piece_not_utf8", b"\x0a\x03\x0a\x01\xff")


def special(content):
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True}


def hf_preprocessing_seeds():
    """preprocessor_config.json and tokenizer_config.json as the Hub's SigLIP and SigLIP 2 checkpoints and
    `siglip2 export` write them; the target reads every input as both files."""
    half = [0.5, 0.5, 0.5]
    common = dict(do_resize=True, do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=half,
                  image_std=half)
    put("hf_preprocessing", "preprocessor_naflex", json.dumps(dict(
        image_processor_type="Siglip2ImageProcessorFast", resample=2, patch_size=16, max_num_patches=256,
        processor_class="Siglip2Processor", **common), indent=2))
    put("hf_preprocessing", "preprocessor_fixed", json.dumps(dict(
        image_processor_type="SiglipImageProcessor", resample=3, size={"height": 224, "width": 224},
        processor_class="SiglipProcessor", **common), indent=2))
    put("hf_preprocessing", "preprocessor_odd", json.dumps(dict(
        resample=0, size={"height": 224, "width": 256}, image_mean=[0.48, 0.45, 0.4], do_normalize=False)))
    put("hf_preprocessing", "tokenizer_gemma", json.dumps(dict(
        add_bos_token=False, add_eos_token=True,
        added_tokens_decoder={str(i): special(c) for i, c in enumerate(["<pad>", "<eos>", "<bos>", "<unk>"])},
        bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>", tokenizer_class="GemmaTokenizer",
        model_max_length=64, padding_side="right"), indent=2))
    put("hf_preprocessing", "tokenizer_siglip", json.dumps(dict(
        added_tokens_decoder={"1": special("</s>"), "2": special("<unk>")}, do_lower_case=True,
        eos_token={"content": "</s>", "special": True}, pad_token="</s>", unk_token="<unk>",
        tokenizer_class="SiglipTokenizer", model_max_length=64), indent=2))
    put("hf_preprocessing", "tokenizer_unknown_class", '{"tokenizer_class": "T5Tokenizer", "pad_token": "<p>", '
                                                       '"added_tokens_decoder": {"99999999": {"content": "<p>"}}}')
    put("hf_preprocessing", "not_json", '{"pad_token": ')
    # Inputs that escaped the readers as JSON type_errors or std::invalid_argument before they checked
    # every value's type (found by review when the target was written), replayed by every run.
    put("hf_preprocessing", "regress-array", "[]")
    put("hf_preprocessing", "regress-class_number", '{"tokenizer_class": 3}')
    put("hf_preprocessing", "regress-token_number", '{"pad_token": 5}')
    put("hf_preprocessing", "regress-content_number", '{"pad_token": {"content": 5}}')
    put("hf_preprocessing", "regress-decoder_key",
        '{"pad_token": "<pad>", "added_tokens_decoder": {"pad": {"content": "<pad>"}}}')
    put("hf_preprocessing", "regress-decoder_content",
        '{"pad_token": "<pad>", "added_tokens_decoder": {"0": {"content": 0}}}')
    put("hf_preprocessing", "regress-normalize_string", '{"do_normalize": "yes"}')


def tar_bytes(entries, mode="w"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.USTAR_FORMAT) as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def shard_seeds():
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 4, 3) + b"\x08\x02\0\0\0" + b"\0" * 4
    jpeg = b"\xff\xd8\xff\xc0\x00\x11\x08" + struct.pack(">HH", 3, 4) + b"\x03" + b"\x01\x22\x00" * 3 + b"\xff\xd9"
    webp = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8X" + struct.pack("<I", 10) + b"\0" * 4 + b"\x03\0\0\x02\0\0"
    regions = json.dumps({"regions": [{"box": [0.1, 0.1, 0.5, 0.6], "caption": "a cat"},
                                      {"box": [0.5, 0.2, 0.4, 0.9], "caption": "bad box"}]}).encode()
    samples = [("000000.png", png), ("000000.txt", b"a red square"), ("000000.json", regions),
               ("000001.jpg", jpeg), ("000001.txt", b"a photo"), ("000001.cls", b"3"),
               ("dir/000002.webp", webp), ("dir/000002.txt", b"   "), ("000003.txt", b"no image")]
    shard = tar_bytes(samples)
    put("shard", "samples.tar", shard)
    put("shard", "samples.tar.gz", gzip.compress(shard, mtime=0))
    put("shard", "truncated.tar", shard[:700])
    put("shard", "bad_json.tar", tar_bytes([("k.png", png), ("k.txt", b"x"), ("k.json", b'{"regions": 3}')]))
    put("shard", "not_a_tar", b"this is not a tar file\n")


if __name__ == "__main__":
    shutil.rmtree(OUT, ignore_errors=True)
    safetensors_seeds()
    config_seeds()
    hf_seeds()
    hf_preprocessing_seeds()
    shard_seeds()
    sentencepiece_seeds()
