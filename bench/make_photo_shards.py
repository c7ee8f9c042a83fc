#!/usr/bin/env python3
"""WebDataset shards of real photographs for the loader benchmarks (bench/loader_compare.sh).

Packs the RGB photographs that scikit-image bundles (no download), JPEG-encoded at their native size,
each with a caption, repeated to the requested number of samples:

    python3 bench/make_photo_shards.py --out data/photos --shards 4 --samples 384

writes data/photos/000000.tar ... 000003.tar (pattern data/photos/{000000..000003}.tar).
"""
import argparse
import io
import os
import tarfile

import numpy as np
import skimage.data
from PIL import Image

# (skimage.data function, caption); sizes range from 300x451 to 1411x1411.
PHOTOS = [
    ("astronaut", "an astronaut in a white spacesuit in front of an american flag"),
    ("chelsea", "a ginger tabby cat looking to the side"),
    ("coffee", "a cup of coffee on a saucer with a spoon"),
    ("rocket", "a rocket on its launch pad under a blue sky"),
    ("hubble_deep_field", "galaxies of many colours in deep space"),
    ("immunohistochemistry", "a stained tissue sample seen through a microscope"),
    ("retina", "a photograph of the retina of a human eye"),
]


def encoded_photos(quality):
    out = []
    for name, caption in PHOTOS:
        pixels = getattr(skimage.data, name)()
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise SystemExit(f"skimage.data.{name}: expected an RGB uint8 photo, got {pixels.shape} {pixels.dtype}")
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
        out.append((name, buffer.getvalue(), caption, pixels.shape))
    return out


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # the same arguments give byte-identical shards
    tar.addfile(info, io.BytesIO(data))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--shards", type=int, default=4, help="number of tar files")
    parser.add_argument("--samples", type=int, default=384, help="samples in all, photos repeated in turn")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    args = parser.parse_args()
    if args.shards < 1 or args.samples < args.shards:
        raise SystemExit("need --shards >= 1 and --samples >= --shards")

    photos = encoded_photos(args.quality)
    os.makedirs(args.out, exist_ok=True)
    per_shard = [args.samples // args.shards + (i < args.samples % args.shards) for i in range(args.shards)]
    index = 0
    for shard, count in enumerate(per_shard):
        with tarfile.open(os.path.join(args.out, f"{shard:06d}.tar"), "w", format=tarfile.USTAR_FORMAT) as tar:
            for _ in range(count):
                name, jpeg, caption, _shape = photos[index % len(photos)]
                key = f"{index:06d}"
                add(tar, f"{key}.jpg", jpeg)
                add(tar, f"{key}.txt", caption.encode())
                index += 1
    for name, jpeg, _caption, shape in photos:
        print(f"{name:22s} {shape[1]}x{shape[0]}  {len(jpeg) // 1024} KiB")
    last = args.shards - 1
    print(f"{args.samples} samples in {args.shards} shards: {args.out}/{{000000..{last:06d}}}.tar")


if __name__ == "__main__":
    main()
