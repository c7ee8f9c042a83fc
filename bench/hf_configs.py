"""Model presets (configs/models/*.yaml) as the `transformers` configs they correspond to.

Fixed-resolution presets become SiglipConfig/SiglipModel, NaFlex ones (`vision.naflex: true`)
Siglip2Config/Siglip2Model. Shared by the parity tests and the PyTorch reference benchmark.
"""
import os

import yaml
from transformers import Siglip2Config, Siglip2Model, SiglipConfig, SiglipModel

PRESETS_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "models"))


def resolve(path):
    """The YAML file with its bases merged (maps merge, the rest replaces), like the C++ loader."""
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


def preset_path(name, presets_dir=PRESETS_DIR):
    return os.path.join(presets_dir, f"{name}.yaml")


def is_naflex(model):
    return bool(model.get("vision", {}).get("naflex", False))


def hf_config(model):
    """(config, model class) for the `model:` section of a resolved preset."""
    v, t = dict(model.get("vision", {})), dict(model.get("text", {}))
    naflex = v.pop("naflex", False)
    text = dict(vocab_size=t.get("vocab_size", 256000), hidden_size=t.get("hidden_size", 768),
                intermediate_size=t.get("intermediate_size", 3072), num_hidden_layers=t.get("num_hidden_layers", 12),
                num_attention_heads=t.get("num_attention_heads", 12),
                max_position_embeddings=t.get("max_position_embeddings", 64))
    if t.get("projection_size"):
        text["projection_size"] = t["projection_size"]
    vision = dict(hidden_size=v.get("hidden_size", 768), intermediate_size=v.get("intermediate_size", 3072),
                  num_hidden_layers=v.get("num_hidden_layers", 12),
                  num_attention_heads=v.get("num_attention_heads", 12), patch_size=v.get("patch_size", 16))
    if naflex:
        vision["num_patches"] = v.get("num_patches", 256)
        return Siglip2Config(text_config=text, vision_config=vision), Siglip2Model
    vision["image_size"] = v.get("image_size", 256)
    return SiglipConfig(text_config=text, vision_config=vision), SiglipModel


def hf_model(model, device="meta"):
    """The transformers model of a `model:` section, built on `device` (meta: no memory, for counting)."""
    import torch

    cfg, cls = hf_config(model)
    with torch.device(device):
        return cls(cfg)
