"""`siglip2 model-info` equals what transformers counts, for every preset in configs/models.

Each preset becomes the transformers config it corresponds to (SiglipConfig for fixed resolution,
Siglip2Config for NaFlex) and the model is built on the meta device, so even g-opt costs no memory.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

import torch
import yaml
from transformers import Siglip2Config, Siglip2Model, SiglipConfig, SiglipModel


def resolve(path):
    """The preset with its bases merged (maps merge, the rest replaces), like the C++ loader."""
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    merged = {}
    bases = doc.pop("base", [])
    for b in [bases] if isinstance(bases, str) else bases:
        merge(merged, resolve(os.path.join(os.path.dirname(path), b)))
    merge(merged, doc)
    return merged


def merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = v


def hf_model(model):
    v, t = dict(model.get("vision", {})), dict(model.get("text", {}))
    naflex = v.pop("naflex", False)
    text = dict(vocab_size=t.get("vocab_size", 256000), hidden_size=t.get("hidden_size", 768),
                intermediate_size=t.get("intermediate_size", 3072), num_hidden_layers=t.get("num_hidden_layers", 12),
                num_attention_heads=t.get("num_attention_heads", 12),
                max_position_embeddings=t.get("max_position_embeddings", 64))
    if t.get("projection_size"):
        text["projection_size"] = t["projection_size"]
    vision = dict(hidden_size=v.get("hidden_size", 768), intermediate_size=v.get("intermediate_size", 3072),
                  num_hidden_layers=v.get("num_hidden_layers", 12), num_attention_heads=v.get("num_attention_heads", 12),
                  patch_size=v.get("patch_size", 16))
    if naflex:
        vision["num_patches"] = v.get("num_patches", 256)
        cfg, cls = Siglip2Config(text_config=text, vision_config=vision), Siglip2Model
    else:
        vision["image_size"] = v.get("image_size", 256)
        cfg, cls = SiglipConfig(text_config=text, vision_config=vision), SiglipModel
    with torch.device("meta"):
        return cls(cfg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--presets", required=True)
    a = ap.parse_args()
    passed, failed = 0, 0
    for path in sorted(glob.glob(os.path.join(a.presets, "*.yaml"))):
        name = os.path.splitext(os.path.basename(path))[0]
        ours = json.loads(subprocess.run([a.bin, "model-info", name], capture_output=True, text=True,
                                         check=True).stdout)
        m = hf_model(resolve(path)["model"])
        want = {"vision": sum(p.numel() for p in m.vision_model.parameters()),
                "text": sum(p.numel() for p in m.text_model.parameters()),
                "total": sum(p.numel() for p in m.parameters())}
        got = {k: ours[k] for k in want}
        if got == want:
            passed += 1
            print(f"ok   {name}: {got}")
        else:
            failed += 1
            print(f"FAIL {name}: siglip2 {got} vs transformers {want}")
    print(f"model-info parity: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
