"""A WebDataset shard that disappears while a run reads the data: the run keeps going, logs the shard it
skipped and counts it in the loader state of its checkpoints; a resume with the shard still gone finishes."""
import json
import os
import re
import shutil
import subprocess
import threading

import faults_common as fc

WEBDATASET = """tokenizer:
  model_file: {data}/tokenizer.model
data:
  shards: ["{data}/train/{{000000..000003}}.tar"]
  workers: 2
  shuffle_buffer: 16
  open_retries: 1
  retry_delay_ms: 10
"""
STEPS = 100  # 256 samples, 8 a step: three epochs, so the lost shard is due again twice


def skipped_shards(ckpt):
    state = json.load(open(os.path.join(ckpt, "trainer_state.json")))
    total = 0
    for rank in state["data"]["ranks"]:
        loader = json.loads(rank["loader"]) if isinstance(rank["loader"], str) else rank["loader"]
        total += sum(w["skipped"].get("unreadable_shard", 0) for w in loader["workers"])
    return total


def main():
    a = fc.parse_args()
    checks = fc.Checks("shard-loss")
    data = os.path.join(a.workdir, "data")
    shutil.rmtree(data, ignore_errors=True)
    r = fc.run(a, "data", "synth", "--out", data, "--train-shards", "4", "--eval-shards", "1", "--per-shard", "64",
               "--seed", "0")
    if not checks.check("synthetic shards written", r.returncode == 0, r.stderr[-1500:]):
        checks.finish()
    cfg, out = fc.write_config(a, "run", STEPS, 50, extra=WEBDATASET.format(data=data), vocab=512, log_every=5,
                               synthetic=False)
    lost = os.path.join(data, "train", "000002.tar")

    no_self_distillation = ["--set", "train.self_distillation=false"]  # the data path is under test, not the objectives
    p = subprocess.Popen([a.bin, "train", cfg, *no_self_distillation], env=fc.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    lines = []

    def read():
        for line in p.stderr:
            lines.append(line)
            if "step 10/" in line and os.path.exists(lost):
                os.remove(lost)  # mid-run, in the first epoch

    reader = threading.Thread(target=read)
    reader.start()
    try:
        p.wait(timeout=300)
    finally:
        p.kill()
        reader.join()
    log = "".join(lines)
    checks.check("the shard was deleted mid-run", not os.path.exists(lost) and "step 10/" in log, log[-1500:])
    checks.check("the run keeps going and finishes", p.returncode == 0 and fc.latest_name(out) == f"ckpt-{STEPS:08d}",
                 f"status {p.returncode}\n{log[-1500:]}")
    reported = re.search(r"error data: shard \S*000002\.tar: cannot open .*; skipped after 2 attempts", log)
    checks.check("the skipped shard is reported in the log", reported is not None, log[-1500:])
    final = os.path.join(out, f"ckpt-{STEPS:08d}")
    n = skipped_shards(final) if os.path.isdir(final) else 0
    checks.check(f"the loader state counts it (unreadable_shard: {n}, once per later epoch)", n >= 2, n)

    # Resume with the shard still gone: the loader rebuilds its position without it and goes on.
    r = fc.run(a, "train", cfg, *no_self_distillation, "--set", f"train.total_steps={STEPS + 40}")
    final = os.path.join(out, f"ckpt-{STEPS + 40:08d}")
    checks.check("a resume with the shard still missing finishes",
                 r.returncode == 0 and os.path.isdir(final) and skipped_shards(final) > n, r.stderr[-1500:])
    checks.finish()


if __name__ == "__main__":
    main()
