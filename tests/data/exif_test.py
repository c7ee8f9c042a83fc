#!/usr/bin/env python3
"""EXIF orientation: images are turned upright as transformers' pipelines see them (load_image, which applies
PIL's ImageOps.exif_transpose), for all eight orientation tags.

    python3 tests/data/exif_test.py --tool build/tests/data/preprocess_tool --bin build/siglip2 --workdir DIR

1. The pixels src/data decodes (decode_image) equal np.asarray(load_image(path)) for every tag, and differ
   from the stored pixels for every tag but 1 (so the check can fail).
2. NaFlex: the patch grid of a tall photo is transposed for tags 5-8, as the HF processor's.
3. `siglip2 embed --images` on tiny random Siglip2Model (NaFlex) and SiglipModel (fixed) checkpoints equals
   the processor + model on load_image's image, for every tag.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

import transformers

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from interop_common import Checks  # noqa: E402
from transformers import (Siglip2Config, Siglip2ImageProcessor, Siglip2Model, SiglipConfig, SiglipImageProcessor,
                          SiglipModel)
from transformers.image_utils import load_image



def photo(height, width):
    """A smooth, asymmetric picture (JPEG keeps it well), so that every orientation looks different."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0)
    g = 255 * y / height
    b = 255 * (x / width) ** 2
    return np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8)


def write_jpegs(workdir, pixels):
    paths = []
    for tag in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = tag
        path = os.path.join(workdir, f"orientation{tag}.jpg")
        Image.fromarray(pixels).save(path, quality=95, exif=exif)
        paths.append(path)
    return paths


def tiny(naflex):
    torch.manual_seed(3 + naflex)
    text = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=8)
    if naflex:
        vision = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, patch_size=8,
                      num_patches=64)
        return Siglip2Model(Siglip2Config(text_config=text, vision_config=vision)).eval(), \
            Siglip2ImageProcessor(patch_size=8, max_num_patches=64)
    vision = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, patch_size=8,
                  image_size=32)
    return SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).eval(), \
        SiglipImageProcessor(size={"height": 32, "width": 32})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir")
    a = ap.parse_args()
    w = a.workdir or tempfile.mkdtemp(prefix="siglip2_exif_")
    os.makedirs(w, exist_ok=True)
    print(f"transformers {transformers.__version__}")
    torch.set_num_threads(1)
    checks = Checks()
    stored = photo(72, 40)  # tall
    paths = write_jpegs(w, stored)
    stored_decoded = np.asarray(Image.open(paths[0]).convert("RGB"))

    # 1 and 2: decoded pixels and NaFlex grids, through the preprocessing tool.
    processor = Siglip2ImageProcessor(patch_size=8, max_num_patches=64)
    for tag, path in enumerate(paths, start=1):
        out = os.path.join(w, f"orientation{tag}.safetensors")
        subprocess.run([a.tool, "naflex", path, "8", "64", out], check=True)
        got = load_file(out)
        ours = got["image"].numpy()
        theirs = np.asarray(load_image(path).convert("RGB"))
        same = ours.shape == theirs.shape and int(np.abs(ours.astype(int) - theirs.astype(int)).max()) == 0
        moved = tag == 1 or ours.shape != stored_decoded.shape or not np.array_equal(ours, stored_decoded)
        shape = tuple(got["spatial_shapes"][0].tolist())
        want = tuple(processor(images=[load_image(path)], return_tensors="pt")["spatial_shapes"][0].tolist())
        checks.check(f"tag {tag}: decoded pixels equal load_image's ({theirs.shape[0]}x{theirs.shape[1]}), "
                     f"NaFlex grid {shape} equals the processor's",
                     same and moved and shape == want and (shape[0] < shape[1]) == (tag >= 5),
                     f"pixels equal {same}, differ from the stored ones {moved}, grid {shape} vs {want}")

    # 3: whole models.
    for naflex in (True, False):
        model, proc = tiny(naflex)
        hf_dir = os.path.join(w, "naflex.hf" if naflex else "fixed.hf")
        model.save_pretrained(hf_dir)
        proc.save_pretrained(hf_dir)
        out = os.path.join(w, f"embeds_{naflex}.safetensors")
        subprocess.run([a.bin, "-q", "embed", "--model", hf_dir, "--images", *paths, "--out", out, "--device", "cpu"],
                       check=True)
        got = load_file(out)["image_embeds"]
        with torch.no_grad():
            inputs = proc(images=[load_image(p) for p in paths], return_tensors="pt")
            want = model.get_image_features(**inputs)
            want = torch.nn.functional.normalize(getattr(want, "pooler_output", want), dim=-1)
        err = float((got - want).abs().max())
        spread = float((want[1:] - want[:1]).abs().max())
        checks.check(f"{'NaFlex' if naflex else 'fixed'}: embed --images of the eight orientations equals the "
                     "processor + model on load_image (1e-5)", err <= 1e-5 and spread > 1e-3,
                     f"max error {err:.2e}; orientations differ from each other by up to {spread:.2e}")
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
