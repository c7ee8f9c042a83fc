"""A run that cannot get data says so and ends, instead of waiting forever; SIGTERM is honoured while it waits.

  1. a shard pattern with a typo'd extension (.tra): exit 2 before training, one line naming the pattern and a
     missing file;
  2. every shard present but unreadable (directories named like shards): exit 1 once 20 opens failed, one line
     naming the source and the share of failed shards;
  3. a shard that blocks forever when opened (a named pipe without a writer, standing in for a hung mount):
     data.stall_timeout_s ends the run with exit 1 and a line saying what the worker is doing;
  4. the same with SIGTERM and no stall timeout: exit 0 within 20 s, no checkpoint (no step was taken);
  5. a pipe that delivers one shard and then blocks with its writer still open: steps are taken, then SIGTERM
     while the loader waits saves a checkpoint of the last step and exits 0 within 20 s, and a resume with the
     shards readable again continues from it;
  6. http:// shards whose server stops answering mid-shard (the connection open, no byte): SIGTERM while the
     loader waits on the server exits 0 within 20 s with a checkpoint of the last step;
  7. http:// shards whose server is gone: exit 2 before training, naming the pattern and the reason.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import faults_common as fc

DATA = """tokenizer:
  model_file: {data}/tokenizer.model
data:
  shards: ["{pattern}"]
  workers: 1
  shuffle_buffer: 8
  open_retries: 1
  retry_delay_ms: 10
{extra}"""


def config(a, checks, name, data, pattern, extra=""):
    cfg, out = fc.write_config(a, name, 40, 1000, extra=DATA.format(data=data, pattern=pattern, extra=extra),
                               vocab=512, log_every=1, synthetic=False)
    return cfg, out


def timed(a, cfg, *more, timeout=60):
    t0 = time.monotonic()
    r = fc.run(a, "train", cfg, "--set", "train.self_distillation=false", *more, timeout=timeout)
    return r, time.monotonic() - t0


def start(a, cfg, *more):
    return subprocess.Popen([a.bin, "train", cfg, "--set", "train.self_distillation=false", *more], env=fc.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def collect(p, lines, until=None, event=None):
    for line in p.stderr:
        lines.append(line)
        if until and until in line and event:
            event.set()


def terminate(p, reader):
    """SIGTERM, then up to 20 s for the exit (SIGKILL after); the seconds it took."""
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
    reader.join()
    return time.monotonic() - t0


def main():
    a = fc.parse_args()
    checks = fc.Checks("data-stall")
    data = os.path.join(a.workdir, "data")
    r = fc.run(a, "data", "synth", "--out", data, "--train-shards", "2", "--eval-shards", "1", "--per-shard", "48",
               "--seed", "0")
    if not checks.check("synthetic shards written", r.returncode == 0, r.stderr[-1500:]):
        checks.finish()

    # 1. The typo'd extension.
    cfg, _ = config(a, checks, "typo", data, f"{data}/train/{{000000..000001}}.tra")
    r, secs = timed(a, cfg)
    errors = fc.error_lines(r.stderr)
    checks.check(f"typo'd pattern: exit 2 before training, one line naming the pattern and a missing file "
                 f"({secs:.1f} s)", r.returncode == 2 and len(errors) == 1 and ".tra'" in errors[0] and
                 "000000.tra" in errors[0] and "data.shards" in errors[0] and "training " not in r.stderr,
                 r.stderr[-800:])

    # 2. Present but unreadable.
    bad = os.path.join(a.workdir, "unreadable")
    for i in range(4):
        os.makedirs(os.path.join(bad, f"{i:06d}.tar"), exist_ok=True)
    cfg, _ = config(a, checks, "unreadable", data, f"{bad}/{{000000..000003}}.tar")
    r, secs = timed(a, cfg)
    errors = fc.error_lines(r.stderr)
    checks.check(f"every shard unreadable: exit 1 with one line naming the source and the reason ({secs:.1f} s)",
                 r.returncode == 1 and errors and "data source '" + bad in errors[-1] and
                 "20 of the last 20 shards rank 0" in errors[-1] and "data.max_failed_shards" in errors[-1] and secs < 30,
                 r.stderr[-800:])

    # 3. A shard that blocks when opened, with a stall timeout.
    pipes = os.path.join(a.workdir, "pipes")
    os.makedirs(pipes, exist_ok=True)
    fifo = os.path.join(pipes, "000000.tar")
    os.mkfifo(fifo)
    cfg, out = config(a, checks, "blocked", data, fifo, extra="  stall_timeout_s: 3\n")
    r, secs = timed(a, cfg, timeout=60)
    errors = fc.error_lines(r.stderr)
    checks.check(f"a shard that blocks: data.stall_timeout_s 3 ends the run with exit 1 ({secs:.1f} s)",
                 r.returncode == 1 and errors and "data.stall_timeout_s" in errors[-1] and
                 "opening '" + fifo in errors[-1] and secs < 20, r.stderr[-800:])

    # 4. The same with SIGTERM.
    cfg, out = config(a, checks, "blocked_term", data, fifo)
    p = start(a, cfg)
    lines = []
    reader = threading.Thread(target=collect, args=(p, lines))
    reader.start()
    time.sleep(3)
    secs = terminate(p, reader)
    log = "".join(lines)
    checks.check(f"SIGTERM while a shard blocks: exit 0 in {secs:.1f} s, no checkpoint",
                 p.returncode == 0 and secs < 20 and "while waiting for data at step 0" in log and
                 not fc.listed_checkpoints(out), f"status {p.returncode}\n{log[-800:]}")

    # 5. One shard through a pipe whose writer stays open: steps, then a wait, then SIGTERM.
    os.unlink(fifo)
    os.mkfifo(fifo)
    shard = open(os.path.join(data, "train", "000000.tar"), "rb").read()
    writer_done = threading.Event()

    def write():
        with open(fifo, "wb") as f:  # blocks until the run opens the pipe
            f.write(shard)
            f.flush()
            writer_done.wait(120)  # keep the write end open: the reader blocks in read()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    cfg, out = config(a, checks, "pipe_term", data, fifo)
    p = start(a, cfg, "--set", "train.batch_size=4")
    lines, stepped = [], threading.Event()
    reader = threading.Thread(target=collect, args=(p, lines, "step 3/", stepped))
    reader.start()
    if not checks.check("steps are taken from the pipe's shard", stepped.wait(60), "".join(lines)[-800:]):
        p.kill()
        checks.finish()
    time.sleep(3)  # the 48 samples are 12 steps: by now the loader waits on the pipe
    secs = terminate(p, reader)
    writer_done.set()
    log = "".join(lines)
    saved = fc.latest_name(out)
    checks.check(f"SIGTERM while the pipe blocks mid-run: exit 0 in {secs:.1f} s with a checkpoint of the last step "
                 f"({saved})", p.returncode == 0 and secs < 20 and "while waiting for data" in log and
                 "checkpoint saved" in log and saved is not None and fc.checkpoint_problem(os.path.join(out, saved))
                 is None, f"status {p.returncode}\n{log[-1200:]}")
    if saved:
        # The pipe is replaced by the shard itself: the resume continues from the saved step.
        os.unlink(fifo)
        with open(fifo, "wb") as f:
            f.write(shard)
        r = fc.run(a, "train", cfg, "--set", "train.self_distillation=false", "--set", "train.batch_size=4",
                   "--set", "train.total_steps=16")
        step = int(saved.split("-")[1])
        checks.check(f"the resume continues from step {step}", r.returncode == 0 and
                     f"from step {step}" in r.stderr and fc.latest_name(out) == "ckpt-00000016", r.stderr[-1200:])

    # 6. URL shards from a server that stops answering mid-shard: every request for either shard sends its first
    # 40 kB (the start-up check reads that much), then nothing for 10 minutes with the connection open.
    server = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                                                            "shard_server.py"), os.path.join(data, "train"),
                               "--fault", "000000.tar=stallevery@40000:600", "--fault", "000001.tar=stallevery@40000:600"],
                              stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/{{000000..000001}}.tar"
        cfg, out = config(a, checks, "url_term", data, url)
        p = start(a, cfg, "--set", "train.batch_size=4")
        lines, stepped = [], threading.Event()
        reader = threading.Thread(target=collect, args=(p, lines, "training ", stepped))
        reader.start()
        started = stepped.wait(60)
        time.sleep(4)  # the loader now waits on the server (40 kB hold a few samples)
        secs = terminate(p, reader)
        log = "".join(lines)
        checks.check(f"SIGTERM while an http:// shard's server is silent: exit 0 in {secs:.1f} s",
                     started and p.returncode == 0 and secs < 20 and "while waiting for data" in log,
                     f"status {p.returncode}\n{log[-1200:]}")
    finally:
        server.kill()
        server.wait()

    # 7. The server is gone: the start-up check finds it (no retries, so the test is quick).
    cfg, out = config(a, checks, "url_gone", data, url, extra="  remote:\n    retries: 0\n")
    r, secs = timed(a, cfg)
    errors = fc.error_lines(r.stderr)
    checks.check(f"http:// shards whose server is gone: exit 2 before training ({secs:.1f} s)",
                 r.returncode == 2 and len(errors) == 1 and "data.shards: '" + url in errors[0] and
                 "the first 2 shards cannot be read" in errors[0] and "training " not in r.stderr, r.stderr[-800:])
    checks.finish()


if __name__ == "__main__":
    main()
