"""docs/errors.md, executed: every row of its tables names a bad input (built here under the row's id), the
command that meets it, the exit status and the message. This script parses the tables, builds each input,
runs each command in a scratch directory and checks status and message, so that the catalogue and the
binary cannot drift apart. A row without a builder, or a builder without a row, is a failure too.

Message column: for a non-zero status, the one `error: ` line the command prints must match it whole; for
status 0, some line of the output must. `…` in a message stands for any text."""
import argparse
import io
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor

import torch
from safetensors.torch import load_file, save_file

BUILDERS = {}


def builder(*ids):
    def register(f):
        for i in ids:
            BUILDERS[i] = f
        return f

    return register


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


# ---- configs -------------------------------------------------------------------------------------------

CONFIG_FILES = {
    "config-unknown-key": ("typo.yaml", "base: base.yaml\noptimiser:\n  lr: 0.1\n"),
    "config-unknown-key-far": ("far.yaml", "base: base.yaml\nschedule:\n  zzz: 1\n"),
    "config-wrong-type": ("lots.yaml", "base: base.yaml\ntrain:\n  batch_size: lots\n"),
    "config-quoted-number": ("quoted.yaml", "base: base.yaml\noptimizer:\n  lr: \"0.1\"\n"),
    "config-out-of-range": ("beta.yaml", "base: base.yaml\noptimizer:\n  beta2: 1.5\n"),
    "config-not-a-choice": ("linear.yaml", "base: base.yaml\nschedule:\n  type: linear\n"),
    "config-missing-required": ("no_steps.yaml", "base: tiny.yaml\n"),
    "config-cross-field": ("heads.yaml", "base: base.yaml\nmodel:\n  vision:\n    num_attention_heads: 3\n"),
    "config-duplicate-key": ("dup.yaml", "base: base.yaml\ntrain:\n  total_steps: 5\n  total_steps: 6\n"),
    "config-base-cycle": ("cycle_a.yaml", "base: cycle_b.yaml\n"),
    "config-missing-base": ("orphan.yaml", "base: nowhere.yaml\n"),
    "config-yaml-syntax": ("syntax.yaml", "base: base.yaml\ntrain: [1, 2\n"),
    "config-alias-cycle": ("alias.yaml", "a: &x {l: *x}\no: *x\n"),
    "config-alias-bomb": ("bomb.yaml", "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 6))),
    "config-boolean": ("yes.yaml", "base: base.yaml\nmodel:\n  vision:\n    naflex: yes\n"),
    "config-fractional-int": ("half.yaml", "base: base.yaml\ntrain:\n  total_steps: 2.5\n"),
    "config-not-a-map": ("list.yaml", "- 1\n- 2\n"),
    "data-shards-missing": ("tra.yaml", "base: base.yaml\ntokenizer:\n  model_file: none.model\ndata:\n"
                            "  shards: [\"train/{000000..000007}.tra\"]\n"),
    "config-warmup-too-long": ("short.yaml", "base: base.yaml\ntrain:\n  total_steps: 10\nschedule:\n"
                               "  warmup_steps: 20\n"),
    "config-misspelt-required-section": ("trian.yaml", "trian:\n  total_steps: 10\n"),
    "config-trainer-sets-key": ("per_rank.yaml", "base: base.yaml\ndata:\n  batch_size: 8\n"),
    "config-acid-sigmoid-only": ("acid.yaml", "base: base.yaml\nacid:\n  reference: ref\n"),
    "config-acid-reference-missing": ("acid_missing.yaml", "base: base.yaml\ntrain:\n  locca: false\n"
                                      "  self_distillation: false\nacid:\n  reference: nowhere\n"),
    "config-image-not-model": ("naflex_image.yaml", "base: base.yaml\nimage:\n  naflex: true\n"),
    "config-every-n-unused": ("every3.yaml", "base: base.yaml\ntrain:\n  activation_checkpointing: blocks\n"
                              "  activation_checkpointing_every_n: 3\n"),
    "config-accumulation-over-batch": ("micro.yaml", "base: base.yaml\ntrain:\n  batch_size: 4\n"
                                       "  accumulation_steps: 8\n"),
    "data-shards-url-refused": ("url.yaml", "base: base.yaml\ntokenizer:\n  model_file: none.model\ndata:\n"
                                "  shards: [\"http://127.0.0.1:9/train/{000000..000007}.tar\"]\n"
                                "  remote:\n    retries: 0\n"),
}


@builder(*CONFIG_FILES)
def config_file(w, row_id):
    name, text = CONFIG_FILES[row_id]
    write(os.path.join(w, name), text)
    if row_id == "config-base-cycle":
        write(os.path.join(w, "cycle_b.yaml"), "base: cycle_a.yaml\n")


NO_INPUT = ["config-missing-file", "config-bad-set", "config-set-unknown", "cli-no-command", "cli-unknown-command",
            "cli-unknown-flag", "cli-missing-option", "cli-bad-choice", "cli-launcher-variables", "embed-nothing",
            "model-dir-missing", "data-no-shards", "data-bad-pattern", "export-exists"]


@builder(*NO_INPUT)
def nothing(w, row_id):
    pass


# ---- embed --inputs -----------------------------------------------------------------------------------


def naflex_inputs(shapes, masks):
    """tiny_naflex: 64 positions of 8 x 8 x 3 patches; masks given row by row."""
    return {"pixel_values": torch.zeros(len(shapes), 64, 192), "spatial_shapes": torch.tensor(shapes),
            "pixel_attention_mask": torch.tensor(masks, dtype=torch.int32)}


def mask_row(ones, gap_at=None):
    row = [1] * ones + [0] * (64 - ones)
    if gap_at is not None:
        row.insert(gap_at, 0)
        row.pop()
    return row


INPUTS = {
    "inputs-ids-width": ("ids10.safetensors", lambda: {"input_ids": torch.full((2, 10), 5, dtype=torch.int64)}),
    "inputs-grid-too-big": ("big.safetensors", lambda: naflex_inputs([(9, 9)], [mask_row(64)])),
    "inputs-mask-empty": ("empty.safetensors", lambda: naflex_inputs([(2, 2)], [mask_row(0)])),
    "inputs-mask-gap": ("gap.safetensors", lambda: naflex_inputs([(2, 2)], [mask_row(4, gap_at=2)])),
    "inputs-mask-count": ("count.safetensors", lambda: naflex_inputs([(2, 2), (2, 3)], [mask_row(4), mask_row(5)])),
}


@builder(*INPUTS)
def embed_inputs(w, row_id):
    name, make = INPUTS[row_id]
    save_file(make(), os.path.join(w, name))


# ---- safetensors ---------------------------------------------------------------------------------------


def raw_safetensors(header, data=b"", length=None):
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def model_dir_with(w, name, blob):
    d = os.path.join(w, name)
    shutil.copytree(os.path.join(w, "model"), d)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(blob)


ST = {
    "st-header-beyond-file": raw_safetensors({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                                             b"\0" * 4, length=4096),
    "st-header-absurd": struct.pack("<Q", 1 << 40) + b"{}",
    "st-header-not-json": struct.pack("<Q", 8) + b"{nope!!}",
    "st-overlap": raw_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),
    "st-hole": raw_safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8),
    "st-absurd-shape": raw_safetensors({"a": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 4]}},
                                       b"\0" * 4),
    "st-size-mismatch": raw_safetensors({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}, b"\0" * 12),
    "st-unknown-dtype": raw_safetensors({"a": {"dtype": "F8", "shape": [1], "data_offsets": [0, 1]}}, b"\0"),
    "st-too-short": b"\1\0\0",
    "st-header-deep": struct.pack("<Q", 200024) + b'{"__metadata__":' + b"[" * 100000 + b"]" * 100000 + b"}" + b" " * 7,
}


@builder(*ST)
def hostile_safetensors(w, row_id):
    model_dir_with(w, row_id + ".model", ST[row_id])


@builder("st-truncated")
def truncated_safetensors(w, row_id):
    data = open(os.path.join(w, "model", "model.safetensors"), "rb").read()
    model_dir_with(w, row_id + ".model", data[:-100])


# ---- Hugging Face directories --------------------------------------------------------------------------


def hf_variant(w, name, tensors=None, config=None):
    d = os.path.join(w, name)
    shutil.copytree(os.path.join(w, "good.hf"), d)
    if tensors:
        p = os.path.join(d, "model.safetensors")
        t = load_file(p)
        tensors(t)
        save_file(t, p, metadata={"format": "pt"})
    if config:
        p = os.path.join(d, "config.json")
        c = json.load(open(p))
        config(c)
        json.dump(c, open(p, "w"))
    return d


@builder("hf-missing-tensor")
def hf_missing(w, row_id):
    hf_variant(w, "missing.hf", tensors=lambda t: t.pop("vision_model.encoder.layers.0.mlp.fc2.bias"))


@builder("hf-wrong-shape")
def hf_shape(w, row_id):
    hf_variant(w, "shape.hf", tensors=lambda t: t.update({"text_model.head.weight": torch.zeros(63, 64)}))


@builder("hf-unexpected-tensor")
def hf_extra(w, row_id):
    hf_variant(w, "extra.hf", tensors=lambda t: t.update({"vision_model.encoder.layers.7.mlp.fc1.weight":
                                                              torch.zeros(2, 2)}))


@builder("hf-integer-tensor")
def hf_int(w, row_id):
    hf_variant(w, "int.hf", tensors=lambda t: t.update({"logit_bias": torch.zeros(1, dtype=torch.int32)}))


@builder("hf-not-siglip")
def hf_clip(w, row_id):
    hf_variant(w, "clip.hf", config=lambda c: c.update(model_type="clip"))


@builder("hf-activation")
def hf_act(w, row_id):
    hf_variant(w, "relu.hf", config=lambda c: c["vision_config"].update(hidden_act="relu"))


@builder("hf-config-disagrees")
def hf_layers(w, row_id):
    hf_variant(w, "layers.hf", config=lambda c: c["text_config"].update(num_hidden_layers=3))


@builder("hf-no-config")
def hf_no_config(w, row_id):
    os.remove(os.path.join(hf_variant(w, "noconfig.hf"), "config.json"))


@builder("hf-config-not-json")
def hf_bad_json(w, row_id):
    write(os.path.join(hf_variant(w, "badjson.hf"), "config.json"), "{\"model_type\": \"siglip\",")


def hf_json_file(w, name, file, edit):
    d = hf_variant(w, name)
    p = os.path.join(d, file)
    c = json.load(open(p)) if os.path.exists(p) else {}
    edit(c)
    json.dump(c, open(p, "w"))


@builder("hf-tokenizer-config")
def hf_tokenizer_keys(w, row_id):
    hf_json_file(w, "tok.hf", "tokenizer_config.json", lambda c: c.update(
        pad_token="<pad>", added_tokens_decoder={"pad": {"content": "<pad>", "special": True}}))


@builder("hf-tokenizer-wrong-type")
def hf_tokenizer_class(w, row_id):
    hf_json_file(w, "tokclass.hf", "tokenizer_config.json", lambda c: c.update(tokenizer_class=3))


@builder("hf-preprocessor-not-square")
def hf_preprocessor_size(w, row_id):
    hf_json_file(w, "size.hf", "preprocessor_config.json", lambda c: c.update(size={"height": 32, "width": 48}))


@builder("hf-config-deep")
def hf_deep(w, row_id):
    write(os.path.join(hf_variant(w, "deep.hf"), "config.json"), '{"model_type": ' + "[" * 300000 + "]" * 300000 + "}")


@builder("hf-pickle-only")
def hf_pickle(w, row_id):
    d = hf_variant(w, "pickle.hf")
    os.rename(os.path.join(d, "model.safetensors"), os.path.join(d, "pytorch_model.bin"))


# ---- model directories, images, shards -----------------------------------------------------------------


@builder("model-config-typo")
def model_typo(w, row_id):
    d = os.path.join(w, "typo.model")
    shutil.copytree(os.path.join(w, "model"), d)
    p = os.path.join(d, "config.yaml")
    write(p, open(p).read().replace("hidden_size:", "hiden_size:", 1))


@builder("image-corrupt")
def corrupt_image(w, row_id):
    with open(os.path.join(w, "broken.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 10)


@builder("image-missing")
def no_image(w, row_id):
    pass


def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def png(w, h):
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = b"".join(b"\0" + b"\x80\x40\x20" * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


GOOD = [("a.png", png(8, 8)), ("a.txt", b"a red square")]
SHARDS = {
    "shard-truncated": ("truncated.tar", lambda: tar_bytes(GOOD + [("b.png", png(8, 8)), ("b.txt", b"x" * 600)])[:1200]),
    "shard-not-a-tar": ("garbage.tar", lambda: b"this is not a tar file\n" * 100),
    "shard-undecodable-image": ("undecodable.tar", lambda: tar_bytes(GOOD + [("b.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40),
                                                                           ("b.txt", b"a shape")])),
    "shard-no-caption": ("nocaption.tar", lambda: tar_bytes(GOOD + [("b.png", png(8, 8))])),
    "shard-bad-json": ("badjson.tar", lambda: tar_bytes(GOOD + [("b.png", png(8, 8)), ("b.txt", b"x"),
                                                              ("b.json", b"{not json")])),
    "shard-huge-image": ("huge.tar", lambda: tar_bytes(GOOD + [("b.png", png(8, 8)[:16] + struct.pack(">II", 100000,
                                                                                                    100000)
                                                                + png(8, 8)[24:]), ("b.txt", b"x")])),
}


@builder(*SHARDS)
def shard(w, row_id):
    name, make = SHARDS[row_id]
    with open(os.path.join(w, name), "wb") as f:
        f.write(make())


# ---- the document --------------------------------------------------------------------------------------


def split_row(line):
    cells, cur, i = [], "", 0
    body = line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:]
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] == "|":
            cur += "|"
            i += 2
            continue
        if body[i] == "|":
            cells.append(cur.strip())
            cur = ""
        else:
            cur += body[i]
        i += 1
    cells.append(cur.strip())
    return cells


def code(cell):
    """The first `code span` of a cell (words after it are a comment), or the cell."""
    m = re.match(r"`([^`]*)`", cell)
    return m.group(1) if m else cell


def parse_rows(doc):
    rows, header = [], None
    for line in open(doc, encoding="utf-8"):
        if not line.startswith("|"):
            header = None
            continue
        cells = split_row(line)
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        if {"id", "command", "exit", "message"} <= set(header):
            r = dict(zip(header, cells))
            rows.append({"id": code(r["id"]), "command": code(r["command"]), "exit": int(r["exit"]),
                         "message": code(r["message"])})
    return rows


def pattern(message):
    return re.compile(".*".join(re.escape(p) for p in message.split("…")))


def run_row(bin_, w, row):
    words = shlex.split(row["command"])
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                                  "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS")}
    env.update(OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    assert words[0] == "siglip2", row["command"]
    return subprocess.run([bin_, *words[1:]], cwd=w, env=env, capture_output=True, text=True, timeout=60)


def judge(row, r):
    pat = pattern(row["message"])
    if row["exit"] != 0:
        errors = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
        found = errors[0] if len(errors) == 1 else None
        return r.returncode == row["exit"] and found is not None and pat.fullmatch(found) is not None
    lines = (r.stdout + r.stderr).splitlines()
    return r.returncode == 0 and any(pat.fullmatch(l) for l in lines)


def setup(bin_, models, w):
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    shutil.copy(os.path.join(models, "tiny.yaml"), w)
    shutil.copy(os.path.join(models, "tiny_naflex.yaml"), w)
    write(os.path.join(w, "base.yaml"), "base: tiny.yaml\ntrain:\n  total_steps: 10\nschedule:\n  warmup_steps: 2\n")
    for cmd in (["import", "--init", "random", "--config", "base.yaml", "--out", "model"],
                ["import", "--init", "random", "--config", "tiny_naflex.yaml", "--out", "naflex.model"],
                ["export", "model", "--format", "hf", "--out", "good.hf"]):
        r = subprocess.run([bin_, *cmd], cwd=w, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            sys.exit(f"set-up failed: siglip2 {' '.join(cmd)}\n{r.stderr}")
    os.makedirs(os.path.join(w, "taken"))
    write(os.path.join(w, "taken", "keep.txt"), "mine\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--doc", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--dump", action="store_true", help="print what each row's command prints now")
    a = ap.parse_args()
    bin_, w = os.path.abspath(a.bin), os.path.abspath(a.workdir)
    setup(bin_, os.path.abspath(a.models), w)
    rows = parse_rows(a.doc)
    failures, passed = [], 0
    ids = [r["id"] for r in rows]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        failures.append(f"{dup}: more than one row")
    for orphan in sorted(set(BUILDERS) - set(ids)):
        failures.append(f"{orphan}: an input is built for it, but docs/errors.md has no row")
    runnable = []
    for row in rows:
        if row["id"] not in BUILDERS:
            failures.append(f"{row['id']}: no builder for this row's input")
            continue
        BUILDERS[row["id"]](w, row["id"])
        runnable.append(row)
    # The commands only read their inputs (outputs go to names no row shares), so they run side by side.
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(lambda row: run_row(bin_, w, row), runnable))
    for row, r in zip(runnable, results):
        if a.dump:
            errors = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
            print(f"{row['id']}\t{r.returncode}\t{errors or (r.stdout + r.stderr).splitlines()[-3:]}")
        if judge(row, r):
            passed += 1
        else:
            failures.append(f"{row['id']}: `{row['command']}` exited {r.returncode}, expected {row['exit']} and "
                            f"`{row['message']}`\n  stdout: {r.stdout[-600:]}\n  stderr: {r.stderr[-600:]}")
    for f in failures:
        print("FAIL " + f)
    print(f"errors catalogue: {passed} passed, {len(failures)} failed ({len(rows)} rows)")
    return 1 if failures or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
