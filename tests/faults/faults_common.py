"""What the fault-injection scripts share: arguments, a tiny run config, the environment of a one-thread CPU
run, and a strict check that a checkpoint directory is complete and loadable."""
import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

from safetensors import safe_open

TINY = """base: {models}/tiny.yaml
model:
  text:
    vocab_size: {vocab}
  decoder:
    max_length: 12
loss:
  self_distillation:
    prototypes: 64
    head_hidden: 32
    head_bottleneck: 16
schedule:
  warmup_steps: 2
train:
{data}  out_dir: {out}
  batch_size: 8
  total_steps: {steps}
  log_every: {log_every}
  checkpoint_every: {every}
  keep_checkpoints: 3
  self_distillation_start: {sd_start}
  phase_checkpoints: [{sd_start}]
dist:
  timeout_s: {timeout}
"""

CHECKPOINT_FILES = ("model.safetensors", "optimizer.safetensors", "trainer_state.json", "config.yaml")


class Checks:
    def __init__(self, suite):
        self.suite, self.passed, self.failed = suite, 0, []

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed.append(name)
            print(f"FAIL {name}: {detail}", flush=True)
        return ok

    def finish(self):
        print(f"{self.suite}: {self.passed} passed, {len(self.failed)} failed", flush=True)
        sys.exit(1 if self.failed else 0)


def parse_args(extra=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--workdir", default="")
    if extra:
        extra(ap)
    a = ap.parse_args()
    a.bin, a.models = os.path.abspath(a.bin), os.path.abspath(a.models)
    if a.workdir:
        shutil.rmtree(a.workdir, ignore_errors=True)  # a rerun starts from nothing, not from the last run's state
        os.makedirs(a.workdir)
    else:
        a.workdir = tempfile.mkdtemp(prefix="siglip2_faults_")
    return a


def write_config(a, name, steps, every, timeout=600, extra="", vocab=1024, log_every=1, synthetic=True,
                 sd_start=0.5):
    """A tiny-model run config; `extra` adds top-level sections (tokenizer:, data: ...)."""
    out = os.path.join(a.workdir, name)
    path = out + ".yaml"
    data = "  data: synthetic\n" if synthetic else ""
    with open(path, "w") as f:
        f.write(TINY.format(models=a.models, out=out, steps=steps, every=every, timeout=timeout, vocab=vocab,
                            data=data, log_every=log_every, sd_start=sd_start) + extra)
    return path, out


def env(**more):
    e = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS"):
        e.pop(k, None)
    e.update(more)
    return e


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(a, *args, timeout=300, **kw):
    return subprocess.run([a.bin, *args], env=env(), capture_output=True, text=True, timeout=timeout, **kw)


def error_lines(text):
    return [l for l in text.splitlines() if l.startswith("error: ")]


def safetensors_problem(path):
    """None if the file is a complete safetensors file whose every tensor reads back, else why not."""
    size = os.path.getsize(path)
    if size < 8:
        return f"{size} bytes"
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if 8 + n > size:
            return f"header of {n} bytes in a file of {size}"
        header = json.loads(f.read(n))
    end = max([t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"] or [0])
    if 8 + n + end != size:
        return f"tensors end at byte {8 + n + end}, the file has {size}"
    try:
        with safe_open(path, "pt") as f:
            for k in f.keys():
                f.get_tensor(k)
    except Exception as e:  # noqa: BLE001 - any failure to read is the answer
        return str(e)
    return None


def checkpoint_problem(d):
    """None if the checkpoint directory is complete and loadable, else what is wrong with it."""
    for name in CHECKPOINT_FILES:
        if not os.path.isfile(os.path.join(d, name)):
            return f"{name} is missing"
    try:
        state = json.load(open(os.path.join(d, "trainer_state.json")))
    except ValueError as e:
        return f"trainer_state.json: {e}"
    if f"ckpt-{state.get('step', -1):08d}" != os.path.basename(d):
        return f"trainer_state.json says step {state.get('step')}"
    files = ["model.safetensors", "optimizer.safetensors"]
    if state.get("self_distillation"):
        files.append("teacher.safetensors")
    for name in files:
        p = os.path.join(d, name)
        if not os.path.isfile(p):
            return f"{name} is missing"
        why = safetensors_problem(p)
        if why:
            return f"{name}: {why}"
    return None


def listed_checkpoints(out):
    if not os.path.isdir(out):
        return []
    return sorted(n for n in os.listdir(out) if n.startswith("ckpt-"))


def latest_name(out):
    p = os.path.join(out, "latest")
    return open(p).read().strip() if os.path.exists(p) else None


def run_dir_problems(out):
    """Every checkpoint that `latest` or the listing points to must be complete; returns (problems, verified)."""
    problems, verified = [], 0
    latest = latest_name(out)
    names = listed_checkpoints(out)
    if latest is not None and latest not in names:
        problems.append(f"latest names {latest}, which does not exist")
    for n in names:
        why = checkpoint_problem(os.path.join(out, n))
        if why:
            problems.append(f"{n}: {why}")
        else:
            verified += 1
    return problems, verified


def leftovers(out):
    if not os.path.isdir(out):
        return []
    return [n for n in os.listdir(out) if n.startswith(".ckpt-") or n.startswith("latest.tmp")]


def same_bytes(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()
