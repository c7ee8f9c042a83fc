"""Bad inputs fail with one clear line naming the problem, exit status 1, and nothing written: HF checkpoints
with a missing, misshapen or unexpected tensor, broken shard indexes, unsupported configs, pickle-only
directories; model directories with bad weights; embed inputs of the wrong shape; texts without a tokenizer."""
import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file
from transformers import Siglip2Config, Siglip2Model, SiglipVisionConfig, SiglipVisionModel

import interop_common as ic


def make_hf(workdir):
    torch.manual_seed(0)
    model = Siglip2Model(Siglip2Config(text_config=ic.text_config(32, 2, 1),
                                       vision_config=ic.vision_config(32, 2, 1, 4, num_patches=16)))
    good = os.path.join(workdir, "good.hf")
    model.save_pretrained(good)
    return good


def variant(workdir, good, name, edit_tensors=None, edit_config=None):
    d = os.path.join(workdir, name)
    shutil.copytree(good, d)
    if edit_tensors:
        path = os.path.join(d, "model.safetensors")
        t = load_file(path)
        edit_tensors(t)
        save_file(t, path, metadata={"format": "pt"})
    if edit_config:
        path = os.path.join(d, "config.json")
        c = json.load(open(path))
        edit_config(c)
        json.dump(c, open(path, "w"))
    return d


def expect_failure(checks, a, name, args, must_contain, status=1, out_dir=None):
    r = ic.run(a.bin, *args)
    lines = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
    ok = r.returncode == status and len(lines) == 1 and all(s in lines[0] for s in must_contain)
    if out_dir is not None:
        parent = os.path.dirname(out_dir)
        stray = [f for f in os.listdir(parent) if f.startswith("." + os.path.basename(out_dir))]
        ok = ok and not os.path.exists(out_dir) and not stray
    checks.check(name, ok, f"exit {r.returncode}: {r.stderr.strip()[-1500:]}")


def main():
    a = ic.parse_args()
    checks = ic.Checks()
    w = a.workdir
    good = make_hf(w)
    out = os.path.join(w, "out")

    def drop(t):
        del t["vision_model.encoder.layers.0.mlp.fc2.bias"]

    def reshape(t):
        t["text_model.head.weight"] = torch.zeros(31, 32)

    def extra(t):
        t["vision_model.encoder.layers.7.mlp.fc1.weight"] = torch.zeros(2, 2)

    def integer(t):
        t["logit_bias"] = torch.zeros(1, dtype=torch.int32)

    cases = [
        ("missing tensor", variant(w, good, "missing.hf", drop), ["vision_model.encoder.layers.0.mlp.fc2.bias", "missing"]),
        ("wrong shape", variant(w, good, "shape.hf", reshape), ["text_model.head.weight", "[31, 32]", "[32, 32]"]),
        ("unexpected tensor", variant(w, good, "extra.hf", extra), ["vision_model.encoder.layers.7.mlp.fc1.weight",
                                                                     "unexpected"]),
        ("integer tensor", variant(w, good, "int.hf", integer), ["logit_bias", "I32"]),
        ("unsupported activation", variant(w, good, "act.hf", edit_config=lambda c: c["vision_config"].update(
            hidden_act="relu")), ["hidden_act", "relu"]),
        ("not a SigLIP model", variant(w, good, "clip.hf", edit_config=lambda c: c.update(model_type="clip")),
         ["model_type", "clip"]),
        ("num_patches not square", variant(w, good, "square.hf", edit_config=lambda c: c["vision_config"].update(
            num_patches=15)), ["num_patches", "square"]),
        ("config disagrees with weights", variant(w, good, "layers.hf", edit_config=lambda c: c["text_config"].update(
            num_hidden_layers=2)), ["text_model.encoder.layers.1.", "missing"]),
    ]
    for name, d, words in cases:
        expect_failure(checks, a, f"import: {name}", ["import", "--hf", d, "--out", out], words, out_dir=out)
        expect_failure(checks, a, f"embed on the HF dir: {name}",
                       ["embed", "--model", d, "--texts", "x", "--out", os.path.join(w, "e.safetensors")], words)

    # position_ids buffers of old checkpoints are ignored.
    pos = variant(w, good, "position_ids.hf",
                  lambda t: t.update({"text_model.embeddings.position_ids": torch.arange(16)[None]}))
    ic.run_ok(checks, "import ignores *.position_ids", a.bin, "import", "--hf", pos, "--out", os.path.join(w, "pos"))

    # Broken directories.
    no_config = variant(w, good, "noconfig.hf")
    os.remove(os.path.join(no_config, "config.json"))
    expect_failure(checks, a, "import: no config.json", ["import", "--hf", no_config, "--out", out], ["config.json"],
                   out_dir=out)
    pickle = variant(w, good, "pickle.hf")
    os.rename(os.path.join(pickle, "model.safetensors"), os.path.join(pickle, "pytorch_model.bin"))
    expect_failure(checks, a, "import: pickle weights only", ["import", "--hf", pickle, "--out", out],
                   ["pytorch_model.bin", "safetensors"], out_dir=out)
    truncated = variant(w, good, "truncated.hf")
    path = os.path.join(truncated, "model.safetensors")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-100])
    expect_failure(checks, a, "import: truncated safetensors", ["import", "--hf", truncated, "--out", out],
                   ["model.safetensors"], out_dir=out)

    torch.manual_seed(1)
    sharded = os.path.join(w, "sharded.hf")
    Siglip2Model(Siglip2Config(text_config=ic.text_config(32, 2, 1),
                               vision_config=ic.vision_config(32, 2, 1, 4, num_patches=16))).save_pretrained(
        sharded, max_shard_size="20KB")
    lost = os.path.join(w, "lost_shard.hf")
    shutil.copytree(sharded, lost)
    index = json.load(open(os.path.join(lost, "model.safetensors.index.json")))
    shard = index["weight_map"]["logit_scale"]
    os.remove(os.path.join(lost, shard))
    expect_failure(checks, a, "import: a shard is missing", ["import", "--hf", lost, "--out", out], [shard],
                   out_dir=out)
    wrong = os.path.join(w, "wrong_index.hf")
    shutil.copytree(sharded, wrong)
    idx_path = os.path.join(wrong, "model.safetensors.index.json")
    index = json.load(open(idx_path))
    other = next(f for f in set(index["weight_map"].values()) if f != index["weight_map"]["logit_scale"])
    index["weight_map"]["logit_scale"] = other
    json.dump(index, open(idx_path, "w"))
    expect_failure(checks, a, "import: index names the wrong shard", ["import", "--hf", wrong, "--out", out],
                   ["logit_scale", other], out_dir=out)

    torch.manual_seed(2)
    vision_only = os.path.join(w, "vision_only.hf")
    SiglipVisionModel(SiglipVisionConfig(**ic.vision_config(32, 2, 1, 4, image_size=16))).save_pretrained(vision_only)
    expect_failure(checks, a, "import: vision-only checkpoint", ["import", "--hf", vision_only, "--out", out],
                   ["vision-only", "siglip_vision_model"], out_dir=out)

    # An existing output directory is never replaced without --overwrite.
    existing = os.path.join(w, "existing")
    os.makedirs(existing)
    open(os.path.join(existing, "keep.txt"), "w").write("mine")
    expect_failure(checks, a, "import: output exists", ["import", "--hf", good, "--out", existing], ["--overwrite"])
    checks.check("import: existing output untouched", os.listdir(existing) == ["keep.txt"], str(os.listdir(existing)))

    # A model directory with bad weights: embed and export name the tensor and write nothing.
    cpp = os.path.join(w, "good.cpp")
    if ic.run_ok(checks, "import the good checkpoint", a.bin, "import", "--hf", good, "--out", cpp):
        bad = os.path.join(w, "bad.cpp")
        shutil.copytree(cpp, bad)
        t = load_file(os.path.join(bad, "model.safetensors"))
        t["vision_model.head.probe"] = torch.zeros(1, 2, 32)
        save_file(t, os.path.join(bad, "model.safetensors"), metadata={"format": "pt"})
        res = os.path.join(w, "embeds.safetensors")
        inputs = os.path.join(w, "inputs.safetensors")
        ic.save_inputs(inputs, ic.naflex_inputs([(4, 4)], 16, 4, 3, 0), ic.text_inputs(1, 16, 99, 0, 0))
        expect_failure(checks, a, "embed: model dir with a misshapen tensor",
                       ["embed", "--model", bad, "--inputs", inputs, "--out", res], ["vision_model.head.probe", "[1, 2, 32]"])
        checks.check("embed: nothing written", not os.path.exists(res))
        hf_out = os.path.join(w, "bad_export")
        expect_failure(checks, a, "export: model dir with a misshapen tensor",
                       ["export", bad, "--format", "hf", "--out", hf_out], ["vision_model.head.probe"], out_dir=hf_out)

        # Texts need a tokenizer model, and the message says so.
        expect_failure(checks, a, "embed --texts without a tokenizer",
                       ["embed", "--model", cpp, "--texts", "a cat", "--out", res], ["has no tokenizer model"])
        expect_failure(checks, a, "embed --texts on an HF dir without a tokenizer",
                       ["embed", "--model", good, "--texts", "a cat", "--out", res], ["has no tokenizer model"])
        # Inputs of the wrong shape name the tensor and the shape wanted.
        fixed = os.path.join(w, "fixed_inputs.safetensors")
        ic.save_inputs(fixed, ic.fixed_inputs(1, 16, 3, 0), None)
        expect_failure(checks, a, "embed --inputs: fixed-resolution pixels for a NaFlex model",
                       ["embed", "--model", cpp, "--inputs", fixed, "--out", res], ["pixel_values", "[B, S, 48]"])
        no_shapes = os.path.join(w, "no_shapes.safetensors")
        save_file({"pixel_values": torch.zeros(1, 16, 48)}, no_shapes)
        expect_failure(checks, a, "embed --inputs: NaFlex without spatial_shapes",
                       ["embed", "--model", cpp, "--inputs", no_shapes, "--out", res], ["spatial_shapes"])
        big_ids = os.path.join(w, "big_ids.safetensors")
        save_file({"input_ids": torch.full((1, 16), 99, dtype=torch.int64)}, big_ids)
        expect_failure(checks, a, "embed --inputs: token id outside the vocabulary",
                       ["embed", "--model", cpp, "--inputs", big_ids, "--out", res], ["input_ids", "99"])
        odd = os.path.join(w, "odd.safetensors")
        save_file({"pixels": torch.zeros(1)}, odd)
        expect_failure(checks, a, "embed --inputs: unknown tensor",
                       ["embed", "--model", cpp, "--inputs", odd, "--out", res], ["pixels"])
        expect_failure(checks, a, "embed: nothing to embed", ["embed", "--model", cpp, "--out", res], ["nothing"],
                       status=2)
        expect_failure(checks, a, "embed: missing model dir",
                       ["embed", "--model", os.path.join(w, "nope"), "--texts", "x", "--out", res], ["nope"])
        broken_yaml = os.path.join(w, "typo.cpp")
        shutil.copytree(cpp, broken_yaml)
        yaml_path = os.path.join(broken_yaml, "config.yaml")
        text = open(yaml_path).read()
        open(yaml_path, "w").write(text.replace("max_num_patches:", "max_num_patchs:"))
        expect_failure(checks, a, "embed: config.yaml with a typo (config error, status 2)",
                       ["embed", "--model", broken_yaml, "--inputs", inputs, "--out", res], ["max_num_patchs"],
                       status=2)
    checks.finish()


if __name__ == "__main__":
    main()
