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



def latest_step(out):
    name = fc.latest_name(out)
    return int(name.split("-")[-1]) if name else 0


def wait_for_save(p, out, wanted):
    """Returns once a checkpoint's temporary directory has appeared `wanted` times, or the run ended. The run
    is then at most `wanted` steps past where it started."""
    seen, current = 0, None
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


def wait_for_steps(p, out, n, then_s):
    """Returns once the run has saved `n` checkpoints past the one it started from and `then_s` more seconds
    have passed, or earlier if one more checkpoint is saved meanwhile, or the run ended. The run is then at
    most n + 1 steps past where it started, however fast or slow this machine is at the moment."""
    start = latest_step(out)
    while p.poll() is None and latest_step(out) < start + n:
        time.sleep(0.0005)
    until = time.time() + then_s
    while p.poll() is None and time.time() < until and latest_step(out) < start + n + 1:
        time.sleep(0.0005)


def plan_kills(kills, seed):
    """What each kill waits for, drawn before the run so that its length can hold them all: odd kills go
    into the 1st to 3rd checkpoint save after a start, even ones after 0 to 5 saved steps (0: during
    start-up or restore). Returns (plan, the most steps the kills can let through)."""
    rng = random.Random(seed)
    plan = [("save", rng.randint(1, 3)) if i % 2 else ("steps", rng.randint(0, 5)) for i in range(kills)]
    return plan, sum(n if kind == "save" else n + 1 for kind, n in plan)


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
    # The run is long enough for every kill whatever the timing: each kill lets through at most the steps
    # its plan allows (one more per kill with two ranks: a rank left alone may finish a save before it
    # notices), plus a few to resume to. Self-distillation (EMA teacher, new heads) starts at 20% of the
    # steps, so kills land on both sides of the phase change.
    plan, most = plan_kills(a.kills, 20261130)
    steps = most + (a.kills if a.ranks > 1 else 0) + 5

    ref_cfg, ref_out = fc.write_config(a, "reference", steps, 1, sd_start=0.2, timeout=TIMEOUT_S)
    codes, run_time = run_job(a, ref_cfg, "reference")
    checks.check(f"uninterrupted run finishes ({run_time:.1f} s)", set(codes) == {0},
                 f"exit statuses {codes}; see reference.log")
    # Start-up (a rerun of the finished reference is start-up and restore only) and step times of this
    # machine place kills within start-up and within a step; they do not bound the steps a kill lets through.
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
        kind, n = plan[kills]
        if kind == "save":
            # Into a save (rank 0 writes it): wait for a temporary checkpoint directory, then kill within the
            # next few ms.
            if wait_for_save(procs[0], out, n):
                time.sleep(rng.uniform(0, 0.004))
        elif n == 0:
            wait_for_steps(procs[0], out, 0, rng.uniform(0.5 * startup, startup))  # start-up or restore
        else:
            wait_for_steps(procs[0], out, n, rng.uniform(0, step))  # somewhere in the step after the n-th
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
