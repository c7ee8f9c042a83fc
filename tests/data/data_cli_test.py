"""`siglip2 data synth` writes shards that `siglip2 data inspect` reads back and draws as a contact sheet;
`siglip2 data bench` times the loader; bad input exits non-zero."""
import json
import os
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib

BIN = os.environ["SIGLIP2_BIN"]


def run(*args, ok=True):
    p = subprocess.run([BIN, *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        sys.exit(f"{args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def counts(text):
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-1].isdigit():
            out[" ".join(parts[:-1])] = int(parts[-1])
        elif len(parts) >= 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def read_png(path):
    """(width, height, rows of RGB bytes) of an 8-bit RGB, non-interlaced PNG (what OpenCV writes)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, interlace) == (8, 2, 0), (depth, colour, interlace)
        elif kind == b"IDAT":
            idat += body
    raw, stride = zlib.decompress(idat), width * 3
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b, c = prev[i], prev[i - 3] if i >= 3 else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, rows


def check_sheet(out, tmp):
    """7 samples in 4 columns: a 4 x 2 grid of 176 x 218 px cells (thumbnail 160 + 2 x 8 margin, three
    14 px caption lines); the first sample's first region box is drawn in magenta where its box says."""
    sheet = os.path.join(tmp, "sheet.png")
    p = run("data", "inspect", os.path.join(out, "train/{000000..000001}.tar"), "--sheet", sheet, "--count", "7",
            "--columns", "4")
    assert "7 samples, 4 x 2 cells of 176 x 218 px" in p.stdout, p.stdout
    width, height, rows = read_png(sheet)
    assert (width, height) == (4 * 176, 2 * 218), (width, height)
    pixel = lambda x, y: tuple(rows[y][3 * x:3 * x + 3])

    with tarfile.open(os.path.join(out, "train/000000.tar")) as tar:
        first = tar.getmembers()[0].name.split(".")[0]
        box = json.load(tar.extractfile(first + ".json"))["regions"][0]["box"]
    # The 48 px square image fills the 160 px thumbnail square at (8, 8) of cell 0.
    x0, y0 = 8 + round(box[0] * 160), 8 + round(box[1] * 160)
    x1, y1 = 8 + round(box[2] * 160) - 1, 8 + round(box[3] * 160) - 1
    xm, ym = (x0 + x1) // 2, (y0 + y1) // 2
    magenta = (255, 0, 255)
    for name, points in [("top", [(xm, y0 + d) for d in (-1, 0, 1)]), ("bottom", [(xm, y1 + d) for d in (-1, 0, 1)]),
                         ("left", [(x0 + d, ym) for d in (-1, 0, 1)]), ("right", [(x1 + d, ym) for d in (-1, 0, 1)])]:
        assert magenta in [pixel(x, y) for x, y in points], (name, box, [pixel(x, y) for x, y in points])
    assert pixel(xm, ym) != magenta, "the box is filled"
    # The eighth cell is empty: white.
    assert all(pixel(3 * 176 + x, 218 + y) == (255, 255, 255) for x in range(0, 176, 7) for y in range(0, 218, 7))

    p = run("data", "inspect", os.path.join(out, "train/000000.tar"), "--sheet",
            os.path.join(tmp, "missing", "sheet.png"), ok=False)
    assert p.returncode == 1 and p.stderr.startswith("error: ") and "sheet.png" in p.stderr, p.stderr


def check_bench(out):
    p = run("data", "bench", os.path.join(out, "train/{000000..000001}.tar"), "--mode", "naflex", "--threads", "2",
            "--images", "16", "--batch-size", "4", "--max-patches", "16")
    result = json.loads(p.stdout.split("RESULT ", 1)[1])
    assert result["impl"] == "siglip2" and result["mode"] == "naflex" and result["threads"] == 2, result
    assert result["images"] == 16 and result["skipped"] == 0 and result["images_per_s"] > 0, result
    assert abs(result["images_per_s_per_thread"] * 2 - result["images_per_s"]) < 1e-6 * result["images_per_s"]
    # Three shards for two threads is fine; one is not: the loader's configuration error, exit 2.
    p = run("data", "bench", os.path.join(out, "train/000000.tar"), "--threads", "2", ok=False)
    assert p.returncode == 2 and "fewer than ranks x workers" in p.stderr, p.stderr


def main():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "synth")
        p = run("data", "synth", "--out", out, "--train-shards", "2", "--eval-shards", "1", "--per-shard", "10",
                "--seed", "3", "--image-size", "48", "--vocab-size", "300")
        assert "train: 20 samples" in p.stdout, p.stdout
        for f in ["train/000000.tar", "train/000001.tar", "eval/000000.tar", "tokenizer.model", "classnames.txt",
                  "templates.txt", "info.json"]:
            assert os.path.exists(os.path.join(out, f)), f
        p = run("data", "inspect", os.path.join(out, "train/{000000..000001}.tar"))
        c = counts(p.stdout)
        assert c.get("shards") == 2 and c.get("samples") == 20 and c.get("skipped") == 0, p.stdout
        assert c.get("with regions") == 20 or p.stdout.find("with regions    20") >= 0, p.stdout
        p = run("data", "inspect", os.path.join(out, "eval/000000.tar"))
        assert counts(p.stdout).get("with labels") == 10, p.stdout
        # A missing shard is counted, not fatal, beside readable ones; nothing readable at all is exit 1
        # after the counts; a malformed pattern is an error line and exit 1.
        p = run("data", "inspect", os.path.join(out, "train/{000000..000001}.tar"), os.path.join(out, "nothing.tar"))
        assert "unreadable_shard" in p.stdout and counts(p.stdout).get("samples") == 20, p.stdout
        p = run("data", "inspect", os.path.join(out, "nothing.tar"), ok=False)
        assert p.returncode == 1 and "unreadable_shard" in p.stdout, (p.returncode, p.stdout)
        assert "error: data inspect: no sample could be read from the 1 shard(s)" in p.stderr, p.stderr
        p = run("data", "inspect", os.path.join(out, "train/{000000..000001.tar"), ok=False)
        assert p.returncode == 1 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr, p.stderr
        p = run("data", "synth", ok=False)
        assert p.returncode == 2, p.returncode
        check_sheet(out, tmp)
        check_bench(out)
    print("ok")


if __name__ == "__main__":
    main()
