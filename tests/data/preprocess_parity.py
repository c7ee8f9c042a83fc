#!/usr/bin/env python3
"""Image preprocessing (src/data/image.*) against the Hugging Face SigLIP image processors, on real photos.

    python3 tests/data/preprocess_parity.py --tool build/tests/data/preprocess_tool [--workdir DIR]

Photos: scikit-image's samples (astronaut, coffee, chelsea, rocket, camera), crops of them (very wide, very
tall), written as JPEG and PNG with PIL. For each file and each pipeline (fixed 256 bilinear, fixed 224
bicubic, NaFlex patch 16 with 256 and 1024 patches) it compares:
  ours(PIL pixels) vs fast   the preprocessing alone, on the pixels PIL decoded: must be bit-exact
  ours(file) vs fast         our decoder (OpenCV) + preprocessing: PNG bit-exact; JPEG within SLOW_FAST below
  ours(file) vs slow         against the PIL processors, within HF's own slow/fast tolerance
  decode                     our uint8 pixels vs PIL's Image.open(...).convert("RGB"): PNG exact, JPEG reported
"fast" is the torchvision processor (SiglipImageProcessor / Siglip2ImageProcessor in transformers 5, the *Fast
classes in 4.x), "slow" the PIL one (*ImageProcessorPil in 5, the unsuffixed classes in 4.x). Also checks
naflex_target_size against HF's get_image_size_for_max_num_patches on random sizes.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import transformers
from transformers.models.siglip2.image_processing_siglip2 import get_image_size_for_max_num_patches

# transformers' tests/test_image_processing_common.py, test_slow_fast_equivalence:
#   torch.allclose(slow, fast, atol=1e-1) and mean(|slow - fast|) <= 1e-3
SLOW_FAST_MAX, SLOW_FAST_MEAN = 1e-1, 1e-3
# Ours and the fast processor run the same LibTorch kernels on the same machine: equal, not just close
# (1e-6 would let x / 127.5 - 1 pass for (x - 127.5) / 127.5).
EXACT = 0.0

if int(transformers.__version__.split(".")[0]) >= 5:
    from transformers import Siglip2ImageProcessor as Siglip2Fast
    from transformers import Siglip2ImageProcessorPil as Siglip2Slow
    from transformers import SiglipImageProcessor as SiglipFast
    from transformers import SiglipImageProcessorPil as SiglipSlow
else:
    from transformers import Siglip2ImageProcessor as Siglip2Slow
    from transformers import Siglip2ImageProcessorFast as Siglip2Fast
    from transformers import SiglipImageProcessor as SiglipSlow
    from transformers import SiglipImageProcessorFast as SiglipFast

BILINEAR, BICUBIC = 2, 3  # PIL.Image.Resampling


def photos():
    import skimage.data as d

    rgb = {name: getattr(d, name)() for name in ("astronaut", "coffee", "chelsea", "rocket")}
    yield from rgb.items()
    yield "rocket_wide", rgb["rocket"][200:232, :]  # 32 x 640: NaFlex gives one row of patches
    yield "astronaut_strip", rgb["astronaut"][240:252, :]  # 12 x 512, aspect 43
    yield "coffee_tall", rgb["coffee"][:, 250:290]  # 400 x 40
    yield "camera_gray", d.camera()  # grayscale file: decoders must expand it
    yield "chelsea_small", rgb["chelsea"][100:150:3, 150:230:3]  # 17 x 27: upscaled


def write_photos(directory):
    files = []
    for name, array in photos():
        image = Image.fromarray(np.ascontiguousarray(array))
        for ext, options in ((".jpg", {"quality": 90}), (".png", {})):
            path = os.path.join(directory, name + ext)
            image.save(path, **options)
            files.append(path)
    return files


def pipelines():
    yield "fixed256_bilinear", ["fixed", "256", "bilinear"], SiglipFast, SiglipSlow, {
        "size": {"height": 256, "width": 256},
        "resample": BILINEAR,
    }
    yield "fixed224_bicubic", ["fixed", "224", "bicubic"], SiglipFast, SiglipSlow, {
        "size": {"height": 224, "width": 224},
        "resample": BICUBIC,
    }
    for n in (256, 1024):
        yield f"naflex{n}", ["naflex", "16", str(n)], Siglip2Fast, Siglip2Slow, {"patch_size": 16, "max_num_patches": n}


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}")


def run_tool_batch(tool, commands):
    """Runs the tool once over all commands (each a list of arguments); loading LibTorch is the slow part."""
    stdin = "".join(json.dumps(command) + "\n" for command in commands)
    subprocess.run([tool, "batch"], input=stdin, text=True, check=True)


def hf_outputs(processor, image):
    out = processor(image, return_tensors="pt")
    keys = ("pixel_values", "pixel_attention_mask", "spatial_shapes")
    return {k: out[k] for k in keys if k in out}


def diffs(ours, ref):
    """max and mean |ours - ref| of pixel_values; other outputs must be equal."""
    for key in ref:
        if key != "pixel_values" and not torch.equal(ours[key].to(ref[key].dtype), ref[key]):
            return float("inf"), float("inf")
        if ours[key].shape != ref[key].shape:
            return float("inf"), float("inf")
    d = (ours["pixel_values"].double() - ref["pixel_values"].double()).abs()
    return d.max().item(), d.mean().item()


def check_sizes(tool, report):
    rng = np.random.default_rng(0)
    sizes = [(int(h), int(w)) for h, w in rng.integers(1, 4000, size=(1500, 2))]
    sizes += [(int(h), int(w)) for h, w in rng.integers(1, 64, size=(300, 2))] + [(1, 5000), (5000, 1)]
    stdin = "".join(f"{h} {w}\n" for h, w in sizes)
    for patch, max_patches in ((16, 256), (16, 1024), (14, 729), (16, 576), (32, 64)):
        got = subprocess.run([tool, "sizes", str(patch), str(max_patches)], input=stdin, capture_output=True,
                             text=True, check=True).stdout.split()
        got = [(int(got[i]), int(got[i + 1])) for i in range(0, len(got), 2)]
        want = [get_image_size_for_max_num_patches(h, w, patch, max_patches) for h, w in sizes]
        bad = [(s, g, w) for s, g, w in zip(sizes, got, want) if g != w]
        report.check(not bad and len(got) == len(want),
                     f"naflex_target_size p={patch} max={max_patches}: {len(bad)} of {len(want)} differ: {bad[:3]}")
    print(f"naflex_target_size: {len(sizes)} random sizes x 5 settings compared with HF")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--workdir")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="siglip2_preprocess_parity_")
    os.makedirs(workdir, exist_ok=True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}")

    report = Report()
    check_sizes(args.tool, report)

    worst = {}  # (comparison, format) -> max, mean over all files and pipelines

    def record(key, max_diff, mean_diff):
        old = worst.get(key, (0.0, 0.0))
        worst[key] = (max(old[0], max_diff), max(old[1], mean_diff))

    # Everything our tool computes, in one run: on the file (our decoder) and on PIL's pixels.
    cases, commands = [], []
    for path in write_photos(workdir):
        name, ext = os.path.splitext(os.path.basename(path))
        pil = Image.open(path).convert("RGB")
        pil_pixels = torch.from_numpy(np.array(pil))
        pixels_file = os.path.join(workdir, f"{name}_{ext[1:]}_pil.safetensors")
        save_file({"image": pil_pixels}, pixels_file)
        for pipeline, tool_args, fast_cls, slow_cls, kwargs in pipelines():
            out = os.path.join(workdir, f"{name}_{ext[1:]}_{pipeline}")
            commands.append([tool_args[0], path, *tool_args[1:], out + ".safetensors"])
            commands.append([tool_args[0], pixels_file, *tool_args[1:], out + "_pil.safetensors"])
            cases.append((name + ext, ext[1:], pil, pil_pixels, pipeline, fast_cls, slow_cls, kwargs, out))
    run_tool_batch(args.tool, commands)

    print(f"{'file':24} {'pipeline':18} {'decode max':>10} {'fast(PIL px)':>12} {'fast(file)':>10} "
          f"{'slow max':>9} {'slow mean':>9}")
    for filename, fmt, pil, pil_pixels, pipeline, fast_cls, slow_cls, kwargs, out in cases:
        fast = hf_outputs(fast_cls(**kwargs), pil)
        slow = hf_outputs(slow_cls(**kwargs), pil)
        ours = load_file(out + ".safetensors")
        ours_pil = load_file(out + "_pil.safetensors")

        decoded = ours["image"]
        decode_max = (decoded.int() - pil_pixels.int()).abs().max().item() if decoded.shape == pil_pixels.shape else 999
        exact_max, _ = diffs(ours_pil, fast)
        file_max, file_mean = diffs(ours, fast)
        slow_max, slow_mean = diffs(ours, slow)
        hf_max, hf_mean = diffs(fast, slow)  # HF's own fast processor against its slow one
        record(("decode", fmt), decode_max, 0.0)
        record(("fast(PIL pixels)", fmt), exact_max, 0.0)
        record(("fast(file)", fmt), file_max, file_mean)
        record(("slow(file)", fmt), slow_max, slow_mean)
        record(("HF fast vs slow", fmt), hf_max, hf_mean)
        print(f"{filename:24} {pipeline:18} {decode_max:10} {exact_max:12.3g} {file_max:10.3g} "
              f"{slow_max:9.3g} {slow_mean:9.3g}")

        what = f"{filename} {pipeline}"
        report.check(exact_max <= EXACT, f"{what}: ours on PIL pixels vs fast processor max {exact_max}")
        if fmt == "png":
            report.check(decode_max == 0, f"{what}: PNG decode differs from PIL by {decode_max}")
            report.check(file_max <= EXACT, f"{what}: end to end vs fast processor max {file_max}")
        else:
            report.check(file_max <= SLOW_FAST_MAX and file_mean <= SLOW_FAST_MEAN,
                         f"{what}: JPEG end to end vs fast processor max {file_max} mean {file_mean}")
        # HF's tolerance, or no further from the slow processor than HF's fast one is: on extreme
        # resizes (400x40 -> 224x224 bicubic) HF's fast and slow processors differ by a mean of 1.0e-3.
        within = slow_max <= SLOW_FAST_MAX and slow_mean <= SLOW_FAST_MEAN
        as_hf = slow_max <= hf_max + 1e-7 and slow_mean <= hf_mean + 1e-7
        if not within and as_hf:
            print(f"  note: {what}: HF's fast processor is itself outside HF's slow/fast tolerance here "
                  f"(max {hf_max:.3g}, mean {hf_mean:.3g}); ours is no further")
        report.check(within or as_hf, f"{what}: vs slow (PIL) processor max {slow_max} mean {slow_mean}")

    print("\nworst over all files and pipelines (max abs, mean abs):")
    for (what, fmt), (max_diff, mean_diff) in sorted(worst.items()):
        print(f"  {what:18} {fmt}: max {max_diff:.3g}  mean {mean_diff:.3g}")
    print(f"tolerances: bit-exact checks max abs diff <= {EXACT}; slow/fast (HF's) max <= {SLOW_FAST_MAX}, "
          f"mean <= {SLOW_FAST_MEAN}")
    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
