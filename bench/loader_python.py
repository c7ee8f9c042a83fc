#!/usr/bin/env python3
"""The Python loader people use for CLIP/SigLIP training, timed like `siglip2 data bench`.

The `webdataset` package reads the shards (split over DataLoader workers, shuffle buffer), PIL decodes,
torchvision transforms, a torch DataLoader with num_workers = --threads collates batches of 64:

    fixed:  Resize((S, S), bilinear), ToTensor, Normalize(0.5, 0.5)          -> [B, 3, S, S]
    naflex: aspect-preserving size under the patch budget (the Hugging Face binary search), bilinear
            resize, ToTensor, Normalize(0.5, 0.5), patchify [n, 3*P*P] and zero-pad -> [B, max_patches, 3*P*P]
            plus the attention mask [B, max_patches] and spatial shapes [B, 2]

PIL resizes always antialias (torchvision ignores antialias=False for PIL input), as the C++ loader does.
Prints the same RESULT line as `siglip2 data bench`, with impl "python":

    python3 bench/loader_python.py 'data/photos/{000000..000003}.tar' --mode fixed --threads 2 --images 1024

Needs: pip install --no-deps webdataset braceexpand
"""
import argparse
import json
import math
import time

import torch
import torchvision.transforms as T
import webdataset as wds

BILINEAR = T.InterpolationMode.BILINEAR


def naflex_size(height, width, patch, max_patches):
    """(height, width), multiples of `patch`, at most `max_patches` patches, aspect ratio kept."""

    def scaled(scale, size):
        return max(patch, math.ceil(size * scale / patch) * patch)

    low, high = 1e-6, 100.0
    while high - low >= 1e-5:
        scale = (low + high) / 2
        if (scaled(scale, height) / patch) * (scaled(scale, width) / patch) <= max_patches:
            low = scale
        else:
            high = scale
    return scaled(low, height), scaled(low, width)


class Naflex:
    def __init__(self, patch, max_patches):
        self.patch, self.max_patches = patch, max_patches
        self.to_tensor = T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])

    def __call__(self, image):
        p = self.patch
        height, width = naflex_size(image.height, image.width, p, self.max_patches)
        pixels = self.to_tensor(image.resize((width, height), T.functional.pil_modes_mapping[BILINEAR]))
        rows, cols = height // p, width // p
        patches = pixels.reshape(3, rows, p, cols, p).permute(1, 3, 2, 4, 0).reshape(rows * cols, p * p * 3)
        padded = torch.zeros(self.max_patches, p * p * 3)
        padded[: rows * cols] = patches
        mask = torch.zeros(self.max_patches, dtype=torch.int32)
        mask[: rows * cols] = 1
        return padded, mask, torch.tensor([rows, cols])


def dataset(args):
    if args.mode == "fixed":
        image = T.Compose([T.Resize((args.image_size, args.image_size), interpolation=BILINEAR), T.ToTensor(),
                           T.Normalize([0.5] * 3, [0.5] * 3)])
    else:
        image = Naflex(args.patch_size, args.max_patches)
    return (wds.WebDataset(args.shards, shardshuffle=False, workersplitter=wds.split_by_worker)
            .repeat()  # epochs without end, as the C++ loader with epochs: 0
            .shuffle(args.shuffle_buffer)
            .decode("pil")
            .to_tuple("jpg;jpeg;png;webp", "txt")
            .map_tuple(image, lambda caption: caption))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards", help="brace pattern, at least --threads shards")
    parser.add_argument("--mode", choices=["fixed", "naflex"], default="fixed")
    parser.add_argument("--threads", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--images", type=int, default=1024, help="images to time (whole batches)")
    parser.add_argument("--warmup", type=int, default=0, help="batches taken before timing (default: 2 per worker)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--max-patches", type=int, default=256)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--shuffle-buffer", type=int, default=1000)
    args = parser.parse_args()

    loader = torch.utils.data.DataLoader(dataset(args), batch_size=args.batch_size, num_workers=args.threads)
    batches = iter(loader)
    warmup = args.warmup or 2 * args.threads
    for _ in range(warmup):
        next(batches)
    start = time.perf_counter()
    images = 0
    while images < args.images:
        batch = next(batches)
        images += len(batch[1])
    seconds = time.perf_counter() - start

    per_s = images / seconds
    shape = tuple(batch[0].shape) if args.mode == "fixed" else tuple(batch[0][0].shape)
    print(f"mode            {args.mode} (batch {shape})")
    print(f"threads         {args.threads}")
    print(f"images          {images} in {seconds:.2f} s (after {warmup} warm-up batches of {args.batch_size})")
    print(f"images/s        {per_s:.1f}")
    print(f"images/s/thread {per_s / args.threads:.1f}")
    result = {"impl": "python", "mode": args.mode, "threads": args.threads, "images": images, "images_per_s": per_s,
              "images_per_s_per_thread": per_s / args.threads, "skipped": 0}
    print("RESULT " + json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
