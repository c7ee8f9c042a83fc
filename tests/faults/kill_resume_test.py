"""SIGKILL `siglip2 train` at seeded random moments, half of them while a checkpoint is being written, and
resume each time with the same command. After every kill, every checkpoint that `latest` or the listing
points to must be complete and loadable; at the end the parameters, teacher and optimizer state must equal,
byte for byte, those of an uninterrupted run of the same config.

With --ranks 2 the run is a two-process Gloo job (the launcher's variables, no launcher). Each kill takes
either both ranks (a lost node), or rank 0 (which writes the checkpoints), or rank 1; the rank left must
then exit non-zero on its own (ALONE_LIMIT_S), and the whole job is resumed."""
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


TIMEOUT_S = 10  # dist.timeout_s of the two-rank runs
# A survivor must give up on its own within dist.timeout_s once training runs; a rank 1 whose rank 0 died
# before it opened the rendezvous store tries to connect for dist.timeout_s, backs off and tries once
# more (c10d's TCPStore), so up to about twice that.
ALONE_LIMIT_S = 2 * TIMEOUT_S + 15


def add_args(ap):
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--ranks", type=int, default=1, choices=(1, 2))


def start(a, cfg, log):
    """The training job: one process, or one per rank started with the variables a launcher would set."""
    if a.ranks == 1:
        return [subprocess.Popen([a.bin, "train", cfg], env=fc.env(), stdout=log, stderr=subprocess.STDOUT)]
    port = str(fc.free_port())
    return [subprocess.Popen([a.bin, "train", cfg], stdout=log, stderr=subprocess.STDOUT,
                             env=fc.env(RANK=str(r), WORLD_SIZE=str(a.ranks), LOCAL_RANK=str(r),
                                        MASTER_ADDR="127.0.0.1", MASTER_PORT=port)) for r in range(a.ranks)]


def run_job(a, cfg, name):
    """Runs the job to its end; returns (exit statuses, seconds)."""
    t0 = time.time()
    with open(os.path.join(a.workdir, name + ".log"), "w") as log:
        procs = start(a, cfg, log)
        codes = [p.wait(timeout=300) for p in procs]
    return codes, time.time() - t0


def main():
    a = fc.parse_args(add_args)
    checks = fc.Checks("kill-resume" if a.ranks == 1 else f"kill-resume-{a.ranks}-ranks")
    rng = random.Random(20261127)
    # Room for every kill (each lets a few steps through, more when a loaded machine makes the measured step
    # time a poor guide; two-rank steps vary most); self-distillation (EMA teacher, new heads) starts at 20%
    # of the steps, so kills land on both sides of the phase change.
    steps = (5 if a.ranks == 1 else 10) * a.kills

    ref_cfg, ref_out = fc.write_config(a, "reference", steps, 1, sd_start=0.2, timeout=TIMEOUT_S)
    codes, run_time = run_job(a, ref_cfg, "reference")
    checks.check(f"uninterrupted run finishes ({run_time:.1f} s)", set(codes) == {0},
                 f"exit statuses {codes}; see reference.log")
    # Kill delays in units of this machine's start-up and step times, so that the kills always land before
    # the end: a rerun of the finished reference is start-up and restore only.
    _, startup = run_job(a, ref_cfg, "reference-rerun")
    step = max(run_time - startup, 0.1) / steps

    cfg, out = fc.write_config(a, "killed", steps, 1, sd_start=0.2, timeout=TIMEOUT_S)
    kills = in_save = verified = starts = 0
    victims = {"all": 0, "rank 0": 0, "rank 1": 0}
    problems, hung = [], []
    longest_alone = 0.0
    while kills < a.kills and starts < 3 * a.kills:
        starts += 1
        log = open(os.path.join(a.workdir, f"attempt-{starts:02d}.log"), "w")
        procs = start(a, cfg, log)
        if kills % 2:
            # Into a save (rank 0 writes it): wait for a temporary checkpoint directory, then kill within the
            # next few ms.
            if wait_for_save(procs[0], out, rng):
                time.sleep(rng.uniform(0, 0.004))
        else:
            time.sleep(rng.uniform(0.5 * startup, startup + 8 * step))  # from start-up to a few steps in
        victim = "all" if a.ranks == 1 else rng.choice(list(victims))
        targets = procs if victim == "all" else [procs[int(victim[-1])]]
        killed_at = None
        if all(p.poll() is None for p in procs):
            for p in targets:
                p.kill()
            killed_at = time.time()
            kills += 1
            victims[victim] += 1
        for p in procs:
            try:
                p.wait(timeout=ALONE_LIMIT_S)  # a rank left alone must give up on its own
            except subprocess.TimeoutExpired:
                hung.append(f"attempt {starts}: rank {procs.index(p)} still running {ALONE_LIMIT_S} s after "
                            f"{victim} was killed")
                p.kill()
                p.wait()
        if killed_at is not None and victim != "all":
            longest_alone = max(longest_alone, time.time() - killed_at)
        log.close()
        if all(p.returncode == 0 for p in procs):
            break  # the run got to the end before the kill: nothing left to kill
        in_save += any(n.endswith(f".tmp-{procs[0].pid}") for n in fc.leftovers(out))
        bad, n = fc.run_dir_problems(out)
        verified += n
        problems += [f"after kill {kills}: {b}" for b in bad]
    who = "" if a.ranks == 1 else " (" + ", ".join(f"{k}: {v}" for k, v in victims.items()) + ")"
    checks.check(f"{kills} SIGKILLs landed{who}, {in_save} inside a checkpoint save",
                 kills >= a.kills and in_save >= a.kills // 4, f"{kills} kills, {in_save} in a save")
    if a.ranks > 1:
        checks.check(f"after every kill of one rank, the other exited on its own (longest {longest_alone:.1f} s; "
                     f"dist.timeout_s {TIMEOUT_S}, limit {ALONE_LIMIT_S} s)", not hung, "; ".join(hung))
    checks.check(f"after every kill, every listed checkpoint is complete and loadable ({verified} verified)",
                 not problems and verified > 0, "; ".join(problems[:10]))

    codes, _ = run_job(a, cfg, "last-resume")
    checks.check("the last resume finishes", set(codes) == {0} and fc.latest_name(out) == f"ckpt-{steps:08d}",
                 f"exit statuses {codes}; see last-resume.log")
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
