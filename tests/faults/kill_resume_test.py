"""SIGKILL `siglip2 train` at seeded random moments, half of them while a checkpoint is being written, and
resume each time with the same command. After every kill, every checkpoint that `latest` or the listing
points to must be complete and loadable; at the end the parameters, teacher and optimizer state must equal,
byte for byte, those of an uninterrupted run of the same config."""
import os
import random
import subprocess
import time

import faults_common as fc



def wait_for_save(p, out, rng):
    """Returns once a checkpoint's temporary directory has appeared `rng`-many times, or the run ended."""
    wanted, seen, current = rng.randint(1, 3), 0, None
    while p.poll() is None:
        tmp = [n for n in fc.leftovers(out) if ".tmp-" in n and n.startswith(".ckpt-")]
        if tmp and tmp[0] != current:
            current, seen = tmp[0], seen + 1
            if seen >= wanted:
                return True
        elif not tmp:
            current = None
        time.sleep(0.0005)
    return False


def main():
    a = fc.parse_args(lambda ap: ap.add_argument("--kills", type=int, default=20))
    checks = fc.Checks("kill-resume")
    rng = random.Random(20261127)
    # Room for every kill (each lets a few steps through); self-distillation (EMA teacher, new heads) starts
    # at 20% of the steps, so kills land on both sides of the phase change.
    steps = 5 * a.kills

    ref_cfg, ref_out = fc.write_config(a, "reference", steps, 1, sd_start=0.2)
    t0 = time.time()
    r = fc.run(a, "train", ref_cfg)
    run_time = time.time() - t0
    checks.check(f"uninterrupted run finishes ({run_time:.1f} s)", r.returncode == 0, r.stderr[-1500:])
    # Kill delays in units of this machine's start-up and step times, so that 20 kills always land before
    # the end: a rerun of the finished reference is start-up and restore only.
    t0 = time.time()
    fc.run(a, "train", ref_cfg)
    startup = time.time() - t0
    step = max(run_time - startup, 0.1) / steps

    cfg, out = fc.write_config(a, "killed", steps, 1, sd_start=0.2)
    kills = in_save = verified = starts = 0
    problems = []
    while kills < a.kills and starts < 3 * a.kills:
        starts += 1
        log = open(os.path.join(a.workdir, f"attempt-{starts:02d}.log"), "w")
        p = subprocess.Popen([a.bin, "train", cfg], env=fc.env(), stdout=log, stderr=subprocess.STDOUT)
        if kills % 2:
            # Into a save: wait for a temporary checkpoint directory, then kill within the next few ms.
            if wait_for_save(p, out, rng):
                time.sleep(rng.uniform(0, 0.004))
        else:
            time.sleep(rng.uniform(0.5 * startup, startup + 8 * step))  # from start-up to a few steps in
        if p.poll() is None:
            p.kill()
            kills += 1
        p.wait()
        log.close()
        if p.returncode == 0:
            break  # the run got to the end before the kill: nothing left to kill
        in_save += any(n.endswith(f".tmp-{p.pid}") for n in fc.leftovers(out))
        bad, n = fc.run_dir_problems(out)
        verified += n
        problems += [f"after kill {kills}: {b}" for b in bad]
    checks.check(f"{kills} SIGKILLs landed ({in_save} inside a checkpoint save)",
                 kills >= a.kills and in_save >= a.kills // 4, f"{kills} kills, {in_save} in a save")
    checks.check(f"after every kill, every listed checkpoint is complete and loadable ({verified} verified)",
                 not problems and verified > 0, "; ".join(problems[:10]))

    r = fc.run(a, "train", cfg)
    checks.check("the last resume finishes", r.returncode == 0 and fc.latest_name(out) == f"ckpt-{steps:08d}",
                 r.stderr[-1500:])
    bad, _ = fc.run_dir_problems(out)
    checks.check("the finished run directory is clean (no temporary directories left)",
                 not bad and not fc.leftovers(out), f"{bad} {fc.leftovers(out)}")
    last = f"ckpt-{steps:08d}"
    for name in ("model.safetensors", "teacher.safetensors", "optimizer.safetensors"):
        a_file, b_file = os.path.join(ref_out, last, name), os.path.join(out, last, name)
        same = os.path.exists(b_file) and fc.same_bytes(a_file, b_file)
        checks.check(f"{name} after {kills} kills equals the uninterrupted run's, byte for byte", same)
    checks.finish()


if __name__ == "__main__":
    main()
