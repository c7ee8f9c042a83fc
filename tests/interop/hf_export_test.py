"""Random siglip2-cpp models (`siglip2 import --init random`, then every tensor perturbed) -> `siglip2 export
--format hf` -> transformers AutoModel.from_pretrained: no missing, unexpected or mismatched keys, the right
classes, and the same embeddings as `siglip2 embed` within 1e-5 (fp32, eager and sdpa). Also --vision-only,
--dtype bfloat16, the image processor and tokenizer files, and `embed --images/--texts` and `zero-shot`
against the transformers processors on the exported directory."""
import json
import os
import random

import numpy as np
import sentencepiece as spm
import torch
import transformers
from PIL import Image, ImageDraw
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import interop_common as ic

SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# (name, config file or YAML text, --set overrides, image inputs, with tokenizer)
CASES = [
    ("fixed-w48-p8-i32-proj48", """
model:
  name: export-fixed
  vision: {hidden_size: 48, intermediate_size: 100, num_hidden_layers: 2, num_attention_heads: 4, patch_size: 8,
           image_size: 32}
  text: {vocab_size: 512, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2,
         max_position_embeddings: 16, projection_size: 48}
image: {image_size: 32, resample: bicubic}
tokenizer: {length: 16}
""", [], dict(batch=3), True),
    ("naflex-w32-p4-n16", """
model:
  name: export-naflex
  vision: {hidden_size: 32, intermediate_size: 90, num_hidden_layers: 3, num_attention_heads: 2, patch_size: 4,
           naflex: true, num_patches: 16}
  text: {vocab_size: 512, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
         max_position_embeddings: 16, projection_size: 32}
image: {naflex: true, patch_size: 4, max_num_patches: 24}
tokenizer: {length: 16}
""", [], dict(shapes=[(4, 4), (2, 6), (6, 4), (1, 3)], max_patches=24), True),
    ("preset-tiny", os.path.join(SOURCE, "configs", "models", "tiny.yaml"), [], dict(batch=2), False),
    ("preset-tiny-naflex", os.path.join(SOURCE, "configs", "models", "tiny_naflex.yaml"),
     ["model.vision.num_hidden_layers=1"], dict(shapes=[(8, 8), (4, 16), (3, 5)], max_patches=64), False),
]

TEXTS = ["a photo of a cat", "two teddy bears", "a blue circle with a green border on a red background",
         "a dog"]
MIXED_CASE_TEXTS = ["Two Teddy Bears", "A Photo Of A CAT"]


def train_tokenizer(workdir):
    words = "a photo of the cat dog bear two teddy bears red blue green circle on background with border".split()
    rng = random.Random(0)
    corpus = os.path.join(workdir, "corpus.txt")
    with open(corpus, "w") as f:
        for _ in range(400):
            f.write(" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) + "\n")
    prefix = os.path.join(workdir, "gemma")
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=prefix, model_type="bpe", vocab_size=400, hard_vocab_limit=False, minloglevel=2,
        byte_fallback=True, normalization_rule_name="identity", add_dummy_prefix=False, remove_extra_whitespaces=False,
        split_digits=True, allow_whitespace_only_pieces=True, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>")
    return prefix + ".model"


def make_images(workdir):
    """The transformers integration-test picture (blue ellipse, green outline, red background) at three sizes."""
    paths = []
    for w, h in ((40, 40), (96, 30), (23, 57)):
        img = Image.new("RGB", (w, h), color="red")
        draw = ImageDraw.Draw(img)
        cx, cy = w // 2, h // 2
        r = min(cx, cy) // 8 * 7
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill="blue", outline="green", width=max(1, w // 20))
        p = os.path.join(workdir, f"ellipse_{w}x{h}.png")
        img.save(p)
        paths.append(p)
    return paths


def perturb_dir(model_dir, seed):
    """Noise on every tensor of a model directory, so no tensor keeps its all-ones/zeros initial value."""
    path = os.path.join(model_dir, "model.safetensors")
    tensors = load_file(path)
    g = torch.Generator().manual_seed(seed)
    for k in sorted(tensors):
        tensors[k] = tensors[k] + torch.randn(tensors[k].shape, generator=g) * (0.5 if k.startswith("logit") else 0.05)
    tensors["logit_bias"] = tensors["logit_bias"] + 8.0  # logits near 0, so sigmoid probabilities are informative
    save_file(tensors, path, metadata={"format": "pt"})
    return tensors


def loading_info_clean(info):
    return not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"))


def main():
    a = ic.parse_args()
    checks = ic.Checks()
    torch.set_num_threads(1)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    tok_model = train_tokenizer(a.workdir)
    images = make_images(a.workdir)

    for idx, (name, config, overrides, spec, with_tokenizer) in enumerate(CASES):
        if config.lstrip().startswith("model:"):
            path = os.path.join(a.workdir, name + ".yaml")
            with open(path, "w") as f:
                f.write(config)
            config = path
        cpp_dir = os.path.join(a.workdir, name + ".cpp")
        cmd = ["import", "--init", "random", "--config", config, "--seed", str(idx), "--out", cpp_dir]
        for o in overrides:
            cmd += ["--set", o]
        if with_tokenizer:
            cmd += ["--tokenizer", tok_model]
        if not ic.run_ok(checks, f"{name} import --init random", a.bin, *cmd):
            continue
        ours_tensors = perturb_dir(cpp_dir, seed=50 + idx)
        with open(os.path.join(cpp_dir, "config.yaml")) as f:
            naflex = "naflex: true" in f.read().split("image:")[0]
        vision_size = None

        hf_dir = os.path.join(a.workdir, name + ".hf")
        if not ic.run_ok(checks, f"{name} export", a.bin, "export", cpp_dir, "--format", "hf", "--out", hf_dir):
            continue
        with open(os.path.join(hf_dir, "config.json")) as f:
            raw = f.read()
        cfg = json.loads(raw)
        checks.check(f"{name} config.json floats have a decimal point",
                     '"layer_norm_eps": 1e-06' in raw and '"initializer_factor": 1.0' in raw and
                     '"attention_dropout": 0.0' in raw and cfg["torch_dtype"] == "float32")
        with safe_open(os.path.join(hf_dir, "model.safetensors"), "pt") as f:
            checks.check(f"{name} model.safetensors metadata format pt", f.metadata() == {"format": "pt"},
                         str(f.metadata()))
        exported = load_file(os.path.join(hf_dir, "model.safetensors"))
        checks.check(f"{name} exported tensors equal the model's",
                     set(exported) == set(ours_tensors) and all(torch.equal(exported[k], ours_tensors[k])
                                                                for k in exported))

        want_cls = "Siglip2Model" if naflex else "SiglipModel"
        models = {}
        for impl in ("eager", "sdpa"):
            model, info = transformers.AutoModel.from_pretrained(hf_dir, output_loading_info=True,
                                                                 attn_implementation=impl)
            models[impl] = model.eval()
            checks.check(f"{name} AutoModel ({impl}) loads {want_cls} with no missing/unexpected/mismatched keys",
                         type(model).__name__ == want_cls and loading_info_clean(info),
                         f"{type(model).__name__} {info}")
        hf_cfg = models["eager"].config
        vision_size = hf_cfg.vision_config.patch_size

        if naflex:
            v = ic.naflex_inputs(spec["shapes"], spec["max_patches"], vision_size, 3, seed=300 + idx)
        else:
            v = ic.fixed_inputs(spec["batch"], hf_cfg.vision_config.image_size, 3, seed=300 + idx)
        pad = 0
        ids = ic.text_inputs(4, hf_cfg.text_config.max_position_embeddings, hf_cfg.text_config.vocab_size, pad,
                             seed=400 + idx)
        inputs = os.path.join(a.workdir, name + ".inputs.safetensors")
        ic.save_inputs(inputs, v, ids)
        out = os.path.join(a.workdir, name + ".out.safetensors")
        if ic.run_ok(checks, f"{name} embed", a.bin, "embed", "--model", cpp_dir, "--inputs", inputs, "--out", out,
                     "--features", "--device", "cpu"):
            got = load_file(out)
            for impl, model in models.items():
                ic.compare_outputs(checks, f"{name} vs {impl}", got, ic.hf_reference(model, v, ids), v)

        # The image processor transformers builds from preprocessor_config.json.
        proc = transformers.AutoImageProcessor.from_pretrained(hf_dir)
        if naflex:
            ok = "Siglip2ImageProcessor" in type(proc).__name__ and proc.max_num_patches == spec["max_patches"] and \
                proc.patch_size == vision_size and int(proc.resample) == 2
        else:
            size = hf_cfg.vision_config.image_size
            ok = "SiglipImageProcessor" in type(proc).__name__ and proc.size["height"] == size and \
                proc.size["width"] == size and int(proc.resample) == (3 if idx == 0 else 2)
        checks.check(f"{name} AutoImageProcessor", ok, f"{type(proc).__name__} {proc.to_dict()}")

        # Image files: our decode + preprocessing + model against the transformers processor + model.
        out_img = os.path.join(a.workdir, name + ".images.safetensors")
        if ic.run_ok(checks, f"{name} embed --images", a.bin, "embed", "--model", hf_dir, "--images", *images,
                     "--out", out_img, "--device", "cpu"):
            batch = proc(images=[Image.open(p).convert("RGB") for p in images], return_tensors="pt")
            with torch.no_grad():
                feats = models["eager"].vision_model(**{k: batch[k] for k in batch}).pooler_output
            checks.close(f"{name} embed --images vs transformers processor", load_file(out_img)["image_embeds"],
                         feats / feats.norm(dim=-1, keepdim=True))

        if with_tokenizer:
            names = set(os.listdir(hf_dir))
            checks.check(f"{name} tokenizer files", {"tokenizer.model", "tokenizer_config.json",
                                                     "special_tokens_map.json"} <= names, str(sorted(names)))
            tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
            length = hf_cfg.text_config.max_position_embeddings
            out_txt = os.path.join(a.workdir, name + ".texts.safetensors")
            if ic.run_ok(checks, f"{name} embed --texts", a.bin, "embed", "--model", cpp_dir, "--texts", *TEXTS,
                         "--out", out_txt, "--device", "cpu"):
                want = torch.tensor(tokenizer(TEXTS, padding="max_length", truncation=True, max_length=length)[
                    "input_ids"])
                got = load_file(out_txt)["input_ids"]
                checks.check(f"{name} AutoTokenizer ({type(tokenizer).__name__}) ids equal ours", torch.equal(got, want),
                             "" if torch.equal(got, want) else f"\n{got}\n{want}")
            # Mixed case: ours lowercases (as big_vision and Siglip2Tokenizer do); report what transformers does.
            out_mc = os.path.join(a.workdir, name + ".mixed.safetensors")
            if ic.run_ok(checks, f"{name} embed --texts (mixed case)", a.bin, "embed", "--model", cpp_dir, "--texts",
                         *MIXED_CASE_TEXTS, "--out", out_mc, "--device", "cpu"):
                want = torch.tensor(tokenizer(MIXED_CASE_TEXTS, padding="max_length", truncation=True,
                                              max_length=length)["input_ids"])
                same = torch.equal(load_file(out_mc)["input_ids"], want)
                print(f"info {name}: {type(tokenizer).__name__} {'lowercases' if same else 'does NOT lowercase'} "
                      f"mixed-case text as siglip2-cpp does")

            # zero-shot against transformers: sigmoid(logits) per label, highest first.
            r = ic.run(a.bin, "zero-shot", "--model", hf_dir, "--image", images[1], "--labels", *TEXTS, "--device",
                       "cpu")
            if checks.check(f"{name} zero-shot runs", r.returncode == 0, r.stderr[-2000:]):
                rows = [line.split("  ", 1) for line in r.stdout.strip().splitlines()]
                probs = {label: float(p) for p, label in rows}
                batch = proc(images=[Image.open(images[1]).convert("RGB")], return_tensors="pt")
                tok = tokenizer(TEXTS, padding="max_length", truncation=True, max_length=length, return_tensors="pt")
                with torch.no_grad():
                    logits = models["eager"](input_ids=tok["input_ids"], **batch).logits_per_image[0]
                want = torch.sigmoid(logits)
                order = [TEXTS[i] for i in torch.argsort(want, descending=True, stable=True).tolist()]
                diff = max(abs(probs[t] - want[i].item()) for i, t in enumerate(TEXTS))
                checks.check(f"{name} zero-shot probabilities (printed to 4 decimals) and order",
                             diff <= 6e-5 and [l for _, l in rows] == order,
                             f"max diff {diff:.1e}; {r.stdout.strip()!r}; want order {order}")

        # --vision-only: SiglipVisionModel / Siglip2VisionModel with the same pooled output.
        vo_dir = os.path.join(a.workdir, name + ".vision.hf")
        if ic.run_ok(checks, f"{name} export --vision-only", a.bin, "export", cpp_dir, "--format", "hf", "--out",
                     vo_dir, "--vision-only"):
            want_cls = "Siglip2VisionModel" if naflex else "SiglipVisionModel"
            vm, info = transformers.AutoModel.from_pretrained(vo_dir, output_loading_info=True)
            checks.check(f"{name} vision-only loads {want_cls} cleanly",
                         type(vm).__name__ == want_cls and loading_info_clean(info), f"{type(vm).__name__} {info}")
            checks.check(f"{name} vision-only has only vision_model.* tensors",
                         all(k.startswith("vision_model.") for k in load_file(os.path.join(vo_dir, "model.safetensors"))))
            with torch.no_grad():
                pooled = vm.eval()(**v).pooler_output
            checks.close(f"{name} vision-only pooler_output vs our image_features", load_file(out)["image_features"],
                         pooled)

        # --dtype bfloat16: bf16 tensors that transformers loads.
        bf_dir = os.path.join(a.workdir, name + ".bf16.hf")
        if ic.run_ok(checks, f"{name} export --dtype bfloat16", a.bin, "export", cpp_dir, "--format", "hf", "--out",
                     bf_dir, "--dtype", "bfloat16"):
            stored = load_file(os.path.join(bf_dir, "model.safetensors"))
            checks.check(f"{name} bf16 tensors are the rounded float32 ones",
                         all(t.dtype == torch.bfloat16 and torch.equal(t, ours_tensors[k].to(torch.bfloat16))
                             for k, t in stored.items()))
            bm, info = transformers.AutoModel.from_pretrained(bf_dir, output_loading_info=True)
            checks.check(f"{name} bf16 export loads cleanly (dtype {bm.dtype})", loading_info_clean(info), str(info))
            with torch.no_grad():
                bo = bm.float().eval()(input_ids=ids, **v)
            checks.close(f"{name} bf16 image_embeds near float32", bo.image_embeds, load_file(out)["image_embeds"],
                         tol=5e-2)

    # An existing output is kept unless --overwrite; with it, replaced.
    cpp_dir = os.path.join(a.workdir, CASES[2][0] + ".cpp")
    target = os.path.join(a.workdir, CASES[2][0] + ".hf")
    before = open(os.path.join(target, "config.json")).read()
    r = ic.run(a.bin, "export", cpp_dir, "--out", target)
    checks.check("export refuses to replace an existing directory",
                 r.returncode == 1 and "--overwrite" in r.stderr and
                 open(os.path.join(target, "config.json")).read() == before, r.stderr)
    ic.run_ok(checks, "export --overwrite replaces it", a.bin, "export", cpp_dir, "--out", target, "--overwrite",
              "--vision-only")
    checks.check("the replaced directory is the new export",
                 json.load(open(os.path.join(target, "config.json")))["model_type"] == "siglip_vision_model")
    leftovers = [f for f in os.listdir(a.workdir) if ".tmp-" in f or ".old-" in f]
    checks.check("no temporary directories left behind", not leftovers, str(leftovers))
    checks.finish()


if __name__ == "__main__":
    main()
