"""Tiny random transformers SiglipModel / Siglip2Model checkpoints -> `siglip2 import` -> `siglip2 embed --inputs`:
embeddings, logits, pooled features and hidden states equal transformers' (eager and sdpa) within 1e-5 in fp32.
Also: sharded checkpoints, embedding an HF directory directly, bf16 checkpoints, and a tokenizer carried
through the import (`embed --texts` gives transformers' token ids and text embeddings)."""
import json
import os
import random
import shutil

import sentencepiece as spm
import torch
import transformers
from safetensors.torch import load_file
from transformers import Siglip2Config, Siglip2Model, SiglipConfig, SiglipModel

import interop_common as ic

# (name, naflex, text config, vision config, image inputs)
CASES = [
    ("siglip-w32-p4-i16", False, ic.text_config(32, 2, 1), ic.vision_config(32, 2, 1, 4, image_size=16),
     dict(batch=3)),
    ("siglip-w48-p8-i32-proj48", False, ic.text_config(64, 4, 3, projection=48),
     ic.vision_config(48, 4, 2, 8, image_size=32), dict(batch=2)),
    ("siglip2-w64-p4-n16-proj64", True, ic.text_config(48, 2, 2, projection=64),
     ic.vision_config(64, 4, 3, 4, num_patches=16),
     dict(shapes=[(4, 4), (2, 6), (6, 4), (1, 3), (5, 2), (6, 1), (2, 1)], max_patches=24)),
    ("siglip2-w32-p8-n64", True, ic.text_config(32, 2, 1), ic.vision_config(32, 2, 2, 8, num_patches=64),
     dict(shapes=[(8, 8), (5, 12), (2, 3), (16, 4), (64, 1), (9, 1)], max_patches=64)),
]


def build(naflex, text, vision, seed):
    torch.manual_seed(seed)
    if naflex:
        model = Siglip2Model(Siglip2Config(text_config=text, vision_config=vision))
    else:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    ic.perturb_(model, seed)
    return model.eval()


def make_inputs(naflex, text, vision, spec, seed):
    if naflex:
        v = ic.naflex_inputs(spec["shapes"], spec["max_patches"], vision["patch_size"], 3, seed)
    else:
        v = ic.fixed_inputs(spec["batch"], vision["image_size"], 3, seed)
    pad = 0 if naflex else 1
    ids = ic.text_inputs(4, text["max_position_embeddings"], text["vocab_size"], pad, seed + 1)
    return v, ids


def references(hf_dir, vision, ids):
    refs = {}
    for impl in ("eager", "sdpa"):
        model = transformers.AutoModel.from_pretrained(hf_dir, attn_implementation=impl).eval()
        refs[impl] = ic.hf_reference(model, vision, ids)
    return refs


def embed_and_compare(checks, a, name, model_dir, inputs_path, refs, vision):
    out = os.path.join(a.workdir, name + ".out.safetensors")
    if not ic.run_ok(checks, f"{name} embed", a.bin, "embed", "--model", model_dir, "--inputs", inputs_path, "--out",
                     out, "--features", "--device", "cpu", "--batch-size", "3"):
        return
    got = load_file(out)
    for impl, ref in refs.items():
        ic.compare_outputs(checks, f"{name} vs {impl}", got, ref, vision)


def train_tokenizer(workdir):
    words = ("a photo of the cat dog bear two teddy bears red blue green circle on background with border "
             "zürich straße").split()
    rng = random.Random(0)
    corpus = os.path.join(workdir, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        for _ in range(400):
            f.write(" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) + "\n")
    prefix = os.path.join(workdir, "gemma")
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=prefix, model_type="bpe", vocab_size=400, hard_vocab_limit=False, minloglevel=2,
        byte_fallback=True, normalization_rule_name="identity", add_dummy_prefix=False, remove_extra_whitespaces=False,
        split_digits=True, allow_whitespace_only_pieces=True, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>")
    return prefix + ".model"


def main():
    a = ic.parse_args()
    checks = ic.Checks()
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    torch.set_num_threads(1)

    for idx, (name, naflex, text, vision, spec) in enumerate(CASES):
        hf_dir = os.path.join(a.workdir, name + ".hf")
        model = build(naflex, text, vision, seed=10 + idx)
        model.save_pretrained(hf_dir)
        v, ids = make_inputs(naflex, text, vision, spec, seed=100 + idx)
        inputs = os.path.join(a.workdir, name + ".inputs.safetensors")
        ic.save_inputs(inputs, v, ids)
        refs = references(hf_dir, v, ids)

        cpp_dir = os.path.join(a.workdir, name + ".cpp")
        if ic.run_ok(checks, f"{name} import", a.bin, "import", "--hf", hf_dir, "--out", cpp_dir):
            ours = load_file(os.path.join(cpp_dir, "model.safetensors"))
            theirs = model.state_dict()
            same = set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
            checks.check(f"{name} imported tensors are the HF tensors, bit for bit", same,
                         f"{len(ours)} tensors" if same else f"key difference {set(ours) ^ set(theirs)}")
            embed_and_compare(checks, a, name, cpp_dir, inputs, refs, v)
        # An HF directory works as a model directory too (imported in memory).
        embed_and_compare(checks, a, name + " (HF dir)", hf_dir, inputs, {"eager": refs["eager"]}, v)

        if idx == 2:  # round trip: HF -> siglip2-cpp -> HF gives back the same model
            back = os.path.join(a.workdir, name + ".roundtrip.hf")
            if ic.run_ok(checks, f"{name} export of the imported model", a.bin, "export", cpp_dir, "--out", back):
                again, info = transformers.AutoModel.from_pretrained(back, output_loading_info=True)
                sd, want = again.state_dict(), model.state_dict()
                keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "patch_size",
                        "num_patches", "image_size", "vocab_size", "max_position_embeddings", "projection_size",
                        "layer_norm_eps", "hidden_act")

                def fields(c):
                    return {k: getattr(c, k, None) for k in keys}

                same_config = all(fields(getattr(again.config, s)) == fields(getattr(model.config, s))
                                  for s in ("vision_config", "text_config"))
                checks.check(f"{name} round trip: same class, config fields and tensors",
                             type(again) is type(model) and not any(info.values()) and same_config and
                             all(torch.equal(sd[k], want[k]) for k in want),
                             f"{type(again).__name__} {info} config {same_config}")

        if idx == 2:  # the same model, sharded
            sharded = os.path.join(a.workdir, name + ".sharded.hf")
            model.save_pretrained(sharded, max_shard_size="40KB")
            shards = [f for f in os.listdir(sharded) if f.startswith("model-")]
            checks.check(f"{name} sharded save has several shards", len(shards) > 2, f"{len(shards)} shards")
            sharded_cpp = os.path.join(a.workdir, name + ".sharded.cpp")
            if ic.run_ok(checks, f"{name} sharded import", a.bin, "import", "--hf", sharded, "--out", sharded_cpp):
                embed_and_compare(checks, a, name + " (sharded)", sharded_cpp, inputs, {"eager": refs["eager"]}, v)

        if idx == 0:  # a bfloat16 checkpoint is imported as float32 copies of its values
            bf16 = os.path.join(a.workdir, name + ".bf16.hf")
            model.to(torch.bfloat16).save_pretrained(bf16)
            bf16_cpp = os.path.join(a.workdir, name + ".bf16.cpp")
            if ic.run_ok(checks, f"{name} bf16 import", a.bin, "import", "--hf", bf16, "--out", bf16_cpp):
                ours = load_file(os.path.join(bf16_cpp, "model.safetensors"))
                want = {k: t.float() for k, t in model.state_dict().items()}
                ok = all(ours[k].dtype == torch.float32 and torch.equal(ours[k], want[k]) for k in want)
                checks.check(f"{name} bf16 import holds the bf16 values as float32", ok)

    # Hub files omit values equal to the transformers defaults; the importer must supply the same ones.
    for naflex in (False, True):
        name = "siglip2-defaults" if naflex else "siglip-defaults"
        text = dict(vocab_size=99, hidden_size=32, intermediate_size=40, num_hidden_layers=1, num_attention_heads=2)
        vision = dict(hidden_size=32, intermediate_size=40, num_hidden_layers=1, num_attention_heads=2)
        model = build(naflex, text, vision, seed=21 + naflex)
        hf_dir = os.path.join(a.workdir, name + ".hf")
        model.save_pretrained(hf_dir)
        minimal = {"model_type": "siglip2" if naflex else "siglip", "text_config": text, "vision_config": vision}
        with open(os.path.join(hf_dir, "config.json"), "w") as f:
            json.dump(minimal, f)
        spec = dict(shapes=[(16, 16), (10, 20), (3, 7), (256, 1), (100, 1)], max_patches=256) if naflex else dict(batch=2)
        full_vision = dict(vision, patch_size=16, **({} if naflex else {"image_size": 224}))
        full_text = dict(text, max_position_embeddings=64)
        v, ids = make_inputs(naflex, full_text, full_vision, spec, seed=200 + naflex)
        inputs = os.path.join(a.workdir, name + ".inputs.safetensors")
        ic.save_inputs(inputs, v, ids)
        refs = {"eager": ic.hf_reference(model, v, ids)}
        cpp_dir = os.path.join(a.workdir, name + ".cpp")
        if ic.run_ok(checks, f"{name} import of a config.json without defaults", a.bin, "import", "--hf", hf_dir,
                     "--out", cpp_dir):
            embed_and_compare(checks, a, name, cpp_dir, inputs, refs, v)

    # A tokenizer travels with the import: embed --texts tokenizes as transformers does.
    name = "siglip2-tokenizer"
    tok_model = train_tokenizer(a.workdir)
    text = ic.text_config(32, 2, 2, vocab=512, positions=16)
    vision = ic.vision_config(32, 2, 1, 4, num_patches=16)
    model = build(True, text, vision, seed=7)
    hf_dir = os.path.join(a.workdir, name + ".hf")
    model.save_pretrained(hf_dir)
    shutil.copy(tok_model, os.path.join(hf_dir, "tokenizer.model"))
    kwargs = dict(add_bos_token=False, add_eos_token=True, padding_side="right")
    tokenizer = transformers.Siglip2Tokenizer.from_pretrained(hf_dir, **kwargs)
    tokenizer.save_pretrained(hf_dir)
    texts = ["a photo of a cat", "Two Teddy Bears", "a blue circle with a green border on a red background " * 3,
             "zürich straße"]
    cpp_dir = os.path.join(a.workdir, name + ".cpp")
    if ic.run_ok(checks, f"{name} import", a.bin, "import", "--hf", hf_dir, "--out", cpp_dir):
        checks.check(f"{name} tokenizer.model copied",
                     open(os.path.join(cpp_dir, "tokenizer.model"), "rb").read() == open(tok_model, "rb").read())
        out = os.path.join(a.workdir, name + ".out.safetensors")
        if ic.run_ok(checks, f"{name} embed --texts", a.bin, "embed", "--model", cpp_dir, "--texts", *texts, "--out",
                     out, "--device", "cpu"):
            got = load_file(out)
            want_ids = torch.tensor(tokenizer(texts, padding="max_length", truncation=True, max_length=16)["input_ids"])
            same = torch.equal(got["input_ids"], want_ids)
            checks.check(f"{name} token ids equal transformers'", same,
                         "" if same else f"\n{got['input_ids']}\n{want_ids}")
            with torch.no_grad():
                want = model.text_model(input_ids=want_ids).pooler_output
            checks.close(f"{name} text_embeds", got["text_embeds"], want / want.norm(dim=-1, keepdim=True))
    checks.finish()


if __name__ == "__main__":
    main()
