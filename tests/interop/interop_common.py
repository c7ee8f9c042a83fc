"""Helpers shared by the interop parity scripts: running the binary, tiny random transformers models,
processor-free inputs, and comparisons that count passes and failures."""
import argparse
import os
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file

TOL = 1e-5


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}{(': ' + detail) if detail else ''}")
        else:
            self.failed += 1
            print(f"FAIL {name}{(': ' + detail) if detail else ''}")
        return ok

    def close(self, name, got, want, tol=TOL):
        if got is None or want is None or tuple(got.shape) != tuple(want.shape):
            return self.check(name, False, f"shapes {None if got is None else tuple(got.shape)} vs "
                                           f"{None if want is None else tuple(want.shape)}")
        diff = (got.double() - want.double()).abs().max().item() if got.numel() else 0.0
        return self.check(name, diff <= tol, f"max abs diff {diff:.2e} (tol {tol:.0e}) {tuple(got.shape)}")

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("SIGLIP2_BIN"))
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    if not a.bin:
        ap.error("--bin (or SIGLIP2_BIN) is required")
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    return a


def run(bin_, *args, timeout=600):
    r = subprocess.run([bin_, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    return r


def run_ok(checks, name, bin_, *args):
    r = run(bin_, *args)
    checks.check(name, r.returncode == 0, "" if r.returncode == 0 else
                 f"exit {r.returncode}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-3000:]}")
    return r.returncode == 0


def text_config(width, heads, depth, vocab=99, positions=16, projection=None):
    c = dict(vocab_size=vocab, hidden_size=width, intermediate_size=2 * width + 5, num_hidden_layers=depth,
             num_attention_heads=heads, max_position_embeddings=positions)
    if projection is not None:
        c["projection_size"] = projection
    return c


def vision_config(width, heads, depth, patch, image_size=None, num_patches=None):
    c = dict(hidden_size=width, intermediate_size=3 * width - 7, num_hidden_layers=depth,
             num_attention_heads=heads, patch_size=patch)
    if image_size is not None:
        c["image_size"] = image_size
    if num_patches is not None:
        c["num_patches"] = num_patches
    return c


def perturb_(model, seed):
    """transformers initialises biases to zero, LayerNorms to 1/0 and the logit scale/bias to 0; add noise to
    every tensor so that a tensor loaded into the wrong place cannot go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if name.startswith("logit_") else 0.05
            p.add_(torch.randn(p.shape, generator=g) * scale)
        if hasattr(model, "logit_scale"):
            model.logit_scale.add_(2.0)  # exp ~ 7: logits of a useful size


def naflex_inputs(shapes, max_patches, patch, channels, seed):
    g = torch.Generator().manual_seed(seed)
    b = len(shapes)
    pv = torch.zeros(b, max_patches, channels * patch * patch)
    mask = torch.zeros(b, max_patches, dtype=torch.int32)
    for i, (h, w) in enumerate(shapes):
        pv[i, : h * w] = torch.rand(h * w, channels * patch * patch, generator=g) * 2 - 1
        mask[i, : h * w] = 1
    return dict(pixel_values=pv, pixel_attention_mask=mask, spatial_shapes=torch.tensor(shapes, dtype=torch.int64))


def fixed_inputs(batch, size, channels, seed):
    g = torch.Generator().manual_seed(seed)
    return dict(pixel_values=torch.rand(batch, channels, size, size, generator=g) * 2 - 1)


def text_inputs(batch, length, vocab, pad, seed):
    """Right-padded random ids: text i has i + 1 real tokens (one fills the whole length)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((batch, length), pad, dtype=torch.int64)
    for i in range(batch):
        n = length if i == batch - 1 else min(length, i + 1)
        ids[i, :n] = torch.randint(2, vocab, (n,), generator=g)
    return ids


def save_inputs(path, vision, input_ids):
    t = dict(vision)
    if input_ids is not None:
        t["input_ids"] = input_ids
    save_file({k: v.contiguous() for k, v in t.items()}, path)


@torch.no_grad()
def hf_reference(model, vision, input_ids):
    """What `siglip2 embed --features` writes, computed by transformers."""
    model.eval()
    out = model(input_ids=input_ids, **vision)
    vo = model.vision_model(**vision)
    to = model.text_model(input_ids=input_ids)
    return dict(image_embeds=out.image_embeds, text_embeds=out.text_embeds, logits_per_image=out.logits_per_image,
                image_features=vo.pooler_output, image_last_hidden_state=vo.last_hidden_state,
                text_features=to.pooler_output, text_last_hidden_state=to.last_hidden_state)


def valid_rows(hidden, vision):
    """last_hidden_state at real patches only (padded rows carry no meaning)."""
    mask = vision.get("pixel_attention_mask")
    if mask is None:
        return hidden
    return hidden[mask.bool()]


def compare_outputs(checks, name, got, want, vision, keys=None):
    for key in keys or want:
        g, w = got.get(key), want[key]
        if key == "image_last_hidden_state" and g is not None:
            g, w = valid_rows(g, vision), valid_rows(w, vision)
        checks.close(f"{name} {key}", g, w)


def load_outputs(path):
    return load_file(path)
