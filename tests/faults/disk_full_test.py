"""A disk that fills up while a checkpoint is written (a file-size limit, RLIMIT_FSIZE, with SIGXFSZ ignored,
so that writes fail with EFBIG the way they fail with ENOSPC): the run prints one error line and exits 1;
the previous checkpoint stays `latest`, complete, and resumes to the same result as an uninterrupted run."""
import os
import resource
import signal
import subprocess
import time

import faults_common as fc

STEPS, EVERY = 16, 4
LIMIT = 3 << 20  # the tiny model's parameters fit (2.2 MB), its optimizer state (4.4 MB) does not


def limited():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def main():
    a = fc.parse_args()
    checks = fc.Checks("disk-full")
    ref_cfg, ref_out = fc.write_config(a, "reference", STEPS, EVERY)
    r = fc.run(a, "train", ref_cfg)
    checks.check("uninterrupted run finishes", r.returncode == 0, r.stderr[-1500:])

    # A first checkpoint, then SIGTERM: the run saves where it is and exits 0.
    cfg, out = fc.write_config(a, "full", STEPS, EVERY)
    p = subprocess.Popen([a.bin, "train", cfg], env=fc.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    while p.poll() is None and not fc.latest_name(out):
        time.sleep(0.002)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    before = fc.latest_name(out)
    checks.check(f"a first checkpoint ({before})", p.returncode == 0 and before and before < f"ckpt-{STEPS:08d}",
                 f"status {p.returncode}, latest {before}\n{err[-1500:]}")

    r = subprocess.run([a.bin, "train", cfg], env=fc.env(), capture_output=True, text=True, timeout=300,
                       preexec_fn=limited)
    errors = fc.error_lines(r.stderr)
    checks.check("a save on a full disk: exit status 1 and one error line naming the file and the cause",
                 r.returncode == 1 and len(errors) == 1 and "cannot write" in errors[0]
                 and "File too large" in errors[0] and ".safetensors" in errors[0],
                 f"status {r.returncode}: {r.stderr[-1500:]}")
    checks.check("latest still names the previous checkpoint", fc.latest_name(out) == before,
                 f"{fc.latest_name(out)} != {before}")
    bad, verified = fc.run_dir_problems(out)
    checks.check(f"every listed checkpoint is complete ({verified} verified)", not bad and verified >= 1, bad)
    checks.check("the failed save left no partial files behind", not fc.leftovers(out), fc.leftovers(out))

    r = fc.run(a, "train", cfg)
    checks.check("with space again, the same command resumes from the previous checkpoint and finishes",
                 r.returncode == 0 and f"resumed from {os.path.join(out, before)}" in r.stderr, r.stderr[-1500:])
    last = f"ckpt-{STEPS:08d}"
    for name in ("model.safetensors", "optimizer.safetensors"):
        same = os.path.exists(os.path.join(out, last, name)) and fc.same_bytes(
            os.path.join(ref_out, last, name), os.path.join(out, last, name))
        checks.check(f"{name} equals the uninterrupted run's, byte for byte", same)
    checks.finish()


if __name__ == "__main__":
    main()
