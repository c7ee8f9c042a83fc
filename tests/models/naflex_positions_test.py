#!/usr/bin/env python3
"""NaFlex position embeddings resized to every patch grid shape (src/models/resize.cpp, linear_resize_weights).

    python3 tests/models/naflex_positions_test.py --tool build/tests/models/positions_tool --bin build/siglip2
        --workdir DIR [--device cpu|cuda]

1. Every grid with h*w <= 64 from a learned 8x8 table, and a sample of grids up to 256 patches from a 16x16
   table (one patch wide, one patch tall, upsampling past the learned grid, identity), against a NumPy
   reference written here from the definition of antialiased bilinear resizing (PIL's triangle filter,
   widened by the scale when shrinking, half-pixel centres, weights normalised per output).
2. The same grids against transformers' Siglip2VisionEmbeddings.resize_positional_embeddings.
3. Whole images: a 512x8 PNG (a 64x1 grid) and a 16x8 PNG with --max-num-patches 2 (a 2x1 grid) through
   `siglip2 embed` on a tiny random Siglip2Model equal transformers' processor + model.
"""
import argparse
import itertools
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import transformers

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from interop_common import Checks  # noqa: E402
from transformers import Siglip2Config, Siglip2ImageProcessor, Siglip2Model
from transformers.models.siglip2.modeling_siglip2 import Siglip2VisionEmbeddings



def axis_weights(n_in, n_out):
    """[n_out, n_in]: output i = sum_j w[i, j] * input j, from the definition."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    w = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale - 0.5
        for j in range(n_in):
            w[i, j] = max(0.0, 1.0 - abs(j - centre) / support)
        w[i] /= w[i].sum()
    return w


def reference(table, h, w):
    """table [side, side, D] float64 -> [h*w, D]."""
    side = table.shape[0]
    out = np.einsum("ia,jb,abd->ijd", axis_weights(side, h), axis_weights(side, w), table)
    return out.reshape(h * w, -1)


def grids_small():
    return [(h, w) for h in range(1, 65) for w in range(1, 65) if h * w <= 64]


def grids_large(rng):
    chosen = {(16, 16), (20, 12), (32, 8), (8, 32), (17, 15), (128, 2), (3, 85), (15, 17)}
    for n in (2, 3, 9, 16, 31, 64, 100, 255, 256):
        chosen |= {(n, 1), (1, n)}
    while len(chosen) < 80:
        h = rng.randint(1, 256)
        w = rng.randint(1, 256 // h)
        chosen.add((h, w))
    return sorted(chosen)


def run_tool(args, table, grids, name):
    inp = os.path.join(args.workdir, name + ".in.safetensors")
    out = os.path.join(args.workdir, name + ".out.safetensors")
    save_file({"position_embedding": torch.from_numpy(table.reshape(-1, table.shape[-1])).float().contiguous(),
               "spatial_shapes": torch.tensor(grids, dtype=torch.int64)}, inp)
    subprocess.run([args.tool, inp, out, args.device], check=True)
    return load_file(out)


def transformers_positions(table, grids):
    t = torch.from_numpy(table).float()
    shapes = torch.tensor(grids, dtype=torch.int64)
    length = int(shapes.prod(-1).max())
    resized = Siglip2VisionEmbeddings.resize_positional_embeddings(t, shapes, length)
    return [resized[i, : h * w].double().numpy() for i, (h, w) in enumerate(grids)]


def sweep(checks, args, side, grids, seed):
    table = np.random.default_rng(seed).standard_normal((side, side, 6))
    got = run_tool(args, table.astype(np.float32).astype(np.float64), grids, f"side{side}")
    table32 = table.astype(np.float32).astype(np.float64)  # what the tool was given
    worst, bad = 0.0, []
    for h, w in grids:
        err = float(np.abs(got[f"{h}x{w}"].double().numpy() - reference(table32, h, w)).max())
        worst = max(worst, err)
        if err > 1e-5:
            bad.append((h, w, round(err, 4)))
    checks.check(f"{len(grids)} grids from a {side}x{side} table equal the NumPy definition (1e-5)", not bad,
                 f"worst {worst:.2e}" + (f"; wrong: {bad[:12]}" if bad else ""))
    hf = transformers_positions(table32, grids)
    worst_hf = max(float(np.abs(got[f"{h}x{w}"].double().numpy() - r).max()) for (h, w), r in zip(grids, hf))
    checks.check(f"the same {len(grids)} grids equal transformers' resize_positional_embeddings (1e-5)",
                 worst_hf <= 1e-5, f"worst {worst_hf:.2e}")
    return got, table32


def whole_images(checks, args):
    torch.manual_seed(0)
    text = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=8)
    vision = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, patch_size=8,
                  num_patches=64)
    model = Siglip2Model(Siglip2Config(text_config=text, vision_config=vision)).eval()
    with torch.no_grad():  # a position table far from constant, so that a wrong resize shows
        model.vision_model.embeddings.position_embedding.weight.normal_(0, 1)
    hf_dir = os.path.join(args.workdir, "tiny_naflex.hf")
    model.save_pretrained(hf_dir)
    Siglip2ImageProcessor(patch_size=8, max_num_patches=64).save_pretrained(hf_dir)
    rng = np.random.default_rng(1)
    for (height, width), max_patches, grid in (((512, 8), 64, (64, 1)), ((16, 8), 2, (2, 1)), ((8, 512), 64, (1, 64)),
                                               ((40, 24), 64, (10, 6))):
        png = os.path.join(args.workdir, f"strip_{height}x{width}.png")
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(png)
        out = os.path.join(args.workdir, f"strip_{height}x{width}.out.safetensors")
        subprocess.run([args.bin, "embed", "--model", hf_dir, "--images", png, "--max-num-patches", str(max_patches),
                        "--features", "--out", out, "--device", "cpu"], check=True, stdout=subprocess.DEVNULL)
        got = load_file(out)
        processor = Siglip2ImageProcessor(patch_size=8, max_num_patches=max_patches)
        inputs = processor(images=[Image.open(png).convert("RGB")], return_tensors="pt")
        shape = tuple(inputs["spatial_shapes"][0].tolist())
        with torch.no_grad():
            out_hf = model.vision_model(**inputs)
            embeds = model.get_image_features(**inputs)
        embeds = getattr(embeds, "pooler_output", embeds)
        n = shape[0] * shape[1]
        err_embeds = float((got["image_embeds"][0] - torch.nn.functional.normalize(embeds, dim=-1)[0]).abs().max())
        err_hidden = float((got["image_last_hidden_state"][0, :n] - out_hf.last_hidden_state[0, :n]).abs().max())
        same_layout = (torch.equal(got["spatial_shapes"], inputs["spatial_shapes"].long()) and
                       torch.equal(got["pixel_attention_mask"].long(), inputs["pixel_attention_mask"].long()))
        checks.check(f"{height}x{width} PNG: embed --features writes the processor's spatial_shapes and "
                     "pixel_attention_mask", same_layout)
        checks.check(f"{height}x{width} PNG (grid {shape}, max {max_patches} patches): embed equals transformers "
                     "(image_embeds and the valid rows of image_last_hidden_state, 1e-5)",
                     shape == grid and err_embeds <= 1e-5 and err_hidden <= 1e-5,
                     f"grid {shape}, image_embeds {err_embeds:.2e}, last_hidden_state {err_hidden:.2e}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--bin")
    parser.add_argument("--workdir")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="siglip2_positions_")
    os.makedirs(args.workdir, exist_ok=True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, device {args.device}")
    torch.set_num_threads(1)
    checks = Checks()

    got, table = sweep(checks, args, 8, grids_small(), seed=0)
    # The hand-computed case: a table of row indices, 8x8 -> 2x1 gives [1.893, 5.107].
    rows = np.repeat(np.arange(8.0)[:, None, None], 8, axis=1).repeat(6, axis=2)
    by_hand = run_tool(args, rows, [(2, 1)], "rows")["2x1"][:, 0].double().numpy()
    checks.check("row indices 8x8 -> 2x1 give (0.875 + 2*0.875 + 3*0.625 + 4*0.375 + 5*0.125) / 3.5 and its mirror",
                 np.allclose(by_hand, [6.625 / 3.5, 7 - 6.625 / 3.5], atol=1e-6), f"{by_hand}")
    sweep(checks, args, 16, grids_large(random.Random(0)), seed=1)
    if args.bin:
        whole_images(checks, args)
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
