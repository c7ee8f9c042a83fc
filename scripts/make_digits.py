#!/usr/bin/env python3
"""The demo's real data: the 1,797 handwritten-digit scans that scikit-learn ships (sklearn.datasets.load_digits,
8x8 grey levels from 43 writers), made into WebDataset shards for every objective of the recipe.

    python3 scripts/make_digits.py --out runs/digits/data [--seed 0] [--size 64] [--scenes 100] [--scene-share 0.3]
    (on Debian's own Python, after scripts/setup.sh made it: .venv/bin/python instead of python3)

Writes, all a function of the seed:
  train/NNNNNN.tar   single digits (caption + one region) and, --scene-share of them, scenes of 2-4 different
                     digits in the cells of a layout (caption naming them row by row, or left to right for two;
                     a box and region caption per digit), from 1,500 scans (a random split with a fixed seed, as
                     sklearn's train_test_split makes); each drawing is distorted (rotation, shear, stretch, stroke weight) as another writer might have drawn it
  eval/000000.tar    each of the other 297 scans once, undistorted, with its class (KEY.cls): zero-shot and
                     retrieval
  scenes/000000.tar  held-out scenes built from those 297 scans, with boxes: referring-expression accuracy
  classnames.txt, templates.txt   zero-shot classes ("zero" ... "nine") and prompts
  corpus.txt         every training text, prompt and LocCa box text: `siglip2 data tokenizer` trains on it
Each digit is rendered with a random size, position, ink and paper colour, and light noise, then stored as JPEG; a
single digit fills 7/8 of its image or more; a digit of a scene fills 5/8 of its cell's side or more, anywhere in it.
"""
import argparse
import io
import json
import os
import tarfile

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEMPLATES = ["a handwritten digit {}.", "the number {}.", "a scan of a handwritten {}."]
CAPTIONS = ["a handwritten digit {w}", "the number {w}", "a scan of a handwritten {w}", "the digit {d}",
            "a {w} written by hand"]
HELD_OUT = 1500  # scans at this position or later of the shuffled order are never trained on


def colours(rng):
    """Dark ink on light paper or the reverse."""
    level = rng.integers(0, 32) if rng.random() < 0.5 else rng.integers(224, 256)
    paper = np.full(3, level)
    ink = np.full(3, 255 - level)
    return paper.astype(np.float64), ink.astype(np.float64)


def stamp(canvas, scan, box, ink, rng=None):
    """Draws the 8x8 scan (0..16) into canvas[y0:y1, x0:x1] with bilinear upsampling, blending ink by intensity.
    With `rng` (training images) the upsampled scan is first distorted as another writer might have drawn it: a
    random rotation (up to 15 degrees), shear and stretch about its centre, and a thinner or bolder stroke."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    glyph = Image.fromarray((scan * 255 / 16).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    if rng is not None:
        angle = np.deg2rad(rng.uniform(-15, 15))
        shear = rng.uniform(-0.25, 0.25)
        sx, sy = rng.uniform(0.75, 1.0, size=2)
        # Output pixel (u, v) samples the glyph at A @ (u - c, v - c) + c: the inverse of the distortion.
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        forward = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([sx, sy])
        inv = np.linalg.inv(forward)
        cx, cy = w / 2, h / 2
        off = np.array([cx, cy]) - inv @ np.array([cx, cy])
        glyph = glyph.transform((w, h), Image.AFFINE, (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1]),
                                resample=Image.BILINEAR)
        gamma = rng.uniform(0.6, 1.6)  # below 1: bolder strokes, above: thinner
        glyph = Image.fromarray((255 * (np.asarray(glyph) / 255.0) ** gamma).astype(np.uint8))
    alpha = np.asarray(glyph) / 255.0
    region = canvas[y0:y1, x0:x1]
    canvas[y0:y1, x0:x1] = region * (1 - alpha[..., None]) + ink * alpha[..., None]


def jpeg(canvas, rng):
    canvas = canvas + rng.normal(0, 3, canvas.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def single(scan, label, size, rng, distort=False):
    paper, ink = colours(rng)
    canvas = np.ones((size, size, 3)) * paper
    # A single scan fills most of its image, as a scanned digit does (MNIST centres its digits): from 7/8 of
    # the side to all of it. Placement and size vary widely in the scenes. (Drawn from 5/8 up, a tiny ViT
    # has to learn where a digit is from 1,500 scans as well as what it is: 63% zero-shot instead of 80-87%.)
    side = int(rng.integers(size * 7 // 8, size + 1))
    x0, y0 = (int(rng.integers(0, size - side + 1)) for _ in range(2))
    stamp(canvas, scan, (x0, y0, x0 + side, y0 + side), ink, rng if distort else None)
    caption = CAPTIONS[int(rng.integers(len(CAPTIONS)))].format(w=WORDS[label], d=label)
    region = {"box": [x0 / size, y0 / size, (x0 + side) / size, (y0 + side) / size],
              "caption": f"the digit {WORDS[label]}"}
    return jpeg(canvas, rng), caption, [region]


def scene(scans, labels, size, rng, distort=False):
    """2-4 different digits, one per cell, no overlaps: two digits side by side, three or four in the cells of a
    2x2 grid (three leave a random cell empty). Each digit fills 5/8 of its cell's side or more, anywhere in
    the cell. The caption names them row by row, left to right."""
    n = len(scans)
    paper, ink = colours(rng)
    canvas = np.ones((size, size, 3)) * paper
    half = size // 2
    if n == 2:
        cells = [(0, 0, half, size), (half, 0, half, size)]  # (x, y, width, height)
    else:
        grid = [(0, 0), (half, 0), (0, half), (half, half)]
        keep = sorted(rng.choice(4, size=n, replace=False))
        cells = [(*grid[k], half, half) for k in keep]
    boxes = []
    for i, (cx, cy, cw, ch) in enumerate(cells):
        side = int(rng.integers(max(8, min(cw, ch) * 5 // 8), min(cw, ch) + 1))
        x0 = cx + int(rng.integers(0, cw - side + 1))
        y0 = cy + int(rng.integers(0, ch - side + 1))
        stamp(canvas, scans[i], (x0, y0, x0 + side, y0 + side), ink, rng if distort else None)
        boxes.append([x0 / size, y0 / size, (x0 + side) / size, (y0 + side) / size])
    names = [WORDS[l] for l in labels]
    order = "from left to right" if n == 2 else "row by row"
    caption = "the digits " + ", ".join(names[:-1]) + " and " + names[-1] + " " + order
    regions = [{"box": b, "caption": f"the digit {WORDS[l]}"} for b, l in zip(boxes, labels)]
    return jpeg(canvas, rng), caption, regions


def draw_scene(pool_images, pool_labels, size, rng, distort=False):
    n = int(rng.integers(2, 5))
    labels = [int(l) for l in rng.choice(10, size=n, replace=False)]
    scans = [pool_images[rng.choice(np.flatnonzero(pool_labels == l))] for l in labels]
    return scene(scans, labels, size, rng, distort), labels


def add(tar, name, data):
    data = data.encode() if isinstance(data, str) else data
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def write_shard(path, samples):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tarfile.open(path + ".tmp", "w") as tar:
        for key, files in samples:
            for ext, data in files:
                add(tar, f"{key}.{ext}", data)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--train-shards", type=int, default=16)
    ap.add_argument("--per-shard", type=int, default=600)
    ap.add_argument("--scenes", type=int, default=100, help="held-out scenes")
    ap.add_argument("--scene-share", type=float, default=0.3, help="share of training samples that are scenes (0.5 lowered zero-shot and did not help referring)")
    a = ap.parse_args()
    digits = load_digits()
    # A random split, as sklearn's train_test_split makes (the file is ordered by writer groups); fixed seed.
    order = np.random.default_rng(20261130).permutation(len(digits.images))
    images, labels = digits.images[order], digits.target[order]
    train_images, train_labels = images[:HELD_OUT], labels[:HELD_OUT]
    test_images, test_labels = images[HELD_OUT:], labels[HELD_OUT:]
    corpus = []

    for shard in range(a.train_shards):
        rng = np.random.default_rng([a.seed, 0, shard])
        samples = []
        for i in range(a.per_shard):
            if rng.random() >= a.scene_share:
                k = int(rng.integers(len(train_images)))
                (img, caption, regions) = single(train_images[k], int(train_labels[k]), a.size, rng, True)
            else:
                (img, caption, regions), _ = draw_scene(train_images, train_labels, a.size, rng, True)
            corpus.append(caption)
            corpus.extend(r["caption"] for r in regions)
            samples.append((f"{shard:06d}_{i:06d}", [("jpg", img), ("txt", caption), ("json", json.dumps(
                {"regions": regions}))]))
        write_shard(os.path.join(a.out, "train", f"{shard:06d}.tar"), samples)

    rng = np.random.default_rng([a.seed, 1])
    samples = []
    for k in range(len(test_images)):
        img, caption, regions = single(test_images[k], int(test_labels[k]), a.size, rng)
        samples.append((f"eval_{k:06d}", [("jpg", img), ("txt", caption), ("json", json.dumps({"regions": regions})),
                                         ("cls", str(int(test_labels[k])))]))
    write_shard(os.path.join(a.out, "eval", "000000.tar"), samples)

    rng = np.random.default_rng([a.seed, 2])
    samples = []
    for k in range(a.scenes):
        (img, caption, regions), _ = draw_scene(test_images, test_labels, a.size, rng)
        samples.append((f"scene_{k:06d}", [("jpg", img), ("txt", caption), ("json", json.dumps({"regions": regions}))]))
    write_shard(os.path.join(a.out, "scenes", "000000.tar"), samples)

    with open(os.path.join(a.out, "classnames.txt"), "w") as f:
        f.write("\n".join(WORDS) + "\n")
    with open(os.path.join(a.out, "templates.txt"), "w") as f:
        f.write("\n".join(TEMPLATES) + "\n")
    corpus += [t.format(w) for t in TEMPLATES for w in WORDS]
    corpus += ["cap: aref: gcap: " + " ".join(f"{j} :" for j in range(k, k + 10)) for k in range(0, 500, 10)]
    with open(os.path.join(a.out, "corpus.txt"), "w") as f:
        f.write("\n".join(corpus) + "\n")
    print(f"train: {a.train_shards * a.per_shard} samples in {a.train_shards} shards; eval: {len(test_images)} "
          f"held-out scans; scenes: {a.scenes} held-out scenes; corpus: {len(corpus)} lines")


if __name__ == "__main__":
    main()
