"""A rank of a two-process Gloo run that dies (SIGKILL) or stalls (SIGSTOP) mid-training: the surviving rank
must stop within dist.timeout_s, never hang, with exit status 1 and one error line that names itself, the
failed operation and the timeout. Under torchrun the launcher must end the job with a non-zero status,
naming the rank that died."""
import os
import subprocess
import sys
import threading
import time

import faults_common as fc

TIMEOUT_S = 15  # dist.timeout_s of these runs
SLACK_S = 10  # time allowed beyond it for the error to reach the exit


class Job:
    """Processes whose output is read as it comes, so that a test can wait for a line."""

    def __init__(self, cmds_and_envs):
        self.procs, self.out, self.threads = [], [], []
        for cmd, env in cmds_and_envs:
            p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            self.procs.append(p)
            self.out.append([])
            t = threading.Thread(target=self._read, args=(p, self.out[-1]))
            t.start()
            self.threads.append(t)

    @staticmethod
    def _read(p, sink):
        for line in p.stdout:
            sink.append(line)

    def text(self, i=0):
        return "".join(self.out[i])

    def wait_for(self, needle, limit=120):
        end = time.time() + limit
        while time.time() < end:
            if any(needle in self.text(i) for i in range(len(self.procs))):
                return True
            if all(p.poll() is not None for p in self.procs):
                return False
            time.sleep(0.05)
        return False

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for t in self.threads:
            t.join()


def direct_job(a, cfg):
    """Two ranks started with the variables a launcher sets, without a launcher that could clean up."""
    port = str(fc.free_port())
    return Job([([a.bin, "train", cfg], fc.env(RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r),
                                              MASTER_ADDR="127.0.0.1", MASTER_PORT=port)) for r in range(2)])


def survivor_case(checks, a, cfg, name, victim, sig, want_in_error, at_least=0.0):
    job = direct_job(a, cfg)
    try:
        started = job.wait_for("step 3/")
        survivor = 1 - victim
        os.kill(job.procs[victim].pid, sig)
        t0 = time.time()
        try:
            job.procs[survivor].wait(timeout=TIMEOUT_S + SLACK_S)
        except subprocess.TimeoutExpired:
            pass
        took = time.time() - t0
        code = job.procs[survivor].poll()
    finally:
        job.close()
    errors = fc.error_lines(job.text(survivor))
    clear = len(errors) == 1 and f"rank {survivor} of 2: " in errors[0] and "another rank died" in errors[0] \
        and f"(dist.timeout_s {TIMEOUT_S})" in errors[0] and any(w in errors[0] for w in want_in_error)
    ok = started and code == 1 and clear and took >= at_least
    checks.check(f"{name}: rank {survivor} exits 1 in {took:.1f} s (dist.timeout_s {TIMEOUT_S}) with one error line",
                 ok, f"started {started}, status {code}, errors {errors}\n{job.text(survivor)[-1500:]}")
    if errors:
        print(f"     {errors[0]}")


def main():
    a = fc.parse_args()
    checks = fc.Checks("rank-death")
    cfg, _ = fc.write_config(a, "two", 100000, 100000, timeout=TIMEOUT_S)

    survivor_case(checks, a, cfg, "rank 1 killed", 1, 9, ["Connection reset", "Connection closed", "Timed out"])
    survivor_case(checks, a, cfg, "rank 0 (the store's host) killed", 0, 9,
                  ["Connection reset", "Connection closed", "Timed out"])
    # A stalled peer keeps its connections open: only the timeout ends the wait (Gloo words it either way).
    survivor_case(checks, a, cfg, "rank 1 stopped (SIGSTOP)", 1, 19, ["Timed out", "timeout"], at_least=TIMEOUT_S - 1)

    # Rank 0 never comes up: rank 1 gives up on the rendezvous with one line (c10d's message without its
    # backtrace). c10d's client tries for dist.timeout_s, backs off and tries again.
    lone_cfg, _ = fc.write_config(a, "lone", 100000, 100000, timeout=2)
    port = str(fc.free_port())
    t0 = time.time()
    r = subprocess.run([a.bin, "train", lone_cfg], capture_output=True, text=True, timeout=120,
                       env=fc.env(RANK="1", WORLD_SIZE="2", LOCAL_RANK="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
    took = time.time() - t0
    errors = fc.error_lines(r.stderr)
    want = f"error: rendezvous at 127.0.0.1:{port} failed for rank 1: The client socket has timed out after 2000ms"
    checks.check(f"rank 0 never starts: rank 1 exits 1 in {took:.1f} s (dist.timeout_s 2) with one error line",
                 r.returncode == 1 and len(errors) == 1 and errors[0].startswith(want) and "\n" not in errors[0],
                 f"status {r.returncode}, errors {errors}\n{r.stderr[-1500:]}")
    if errors:
        print(f"     {errors[0]}")

    # Under torchrun: the launcher notices the dead rank and ends the job.
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--no-python",
                a.bin, "train", cfg]
    job = Job([(launcher, fc.env())])
    try:
        started = job.wait_for("step 3/")
        ranks = {}
        for pid in subprocess.run(["pgrep", "-P", str(job.procs[0].pid)], capture_output=True,
                                  text=True).stdout.split():
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
            ranks[env.get(b"RANK", b"?").decode()] = int(pid)
        os.kill(ranks["1"], 9)
        t0 = time.time()
        try:
            job.procs[0].wait(timeout=TIMEOUT_S + SLACK_S + 30)  # torchrun's own grace period for the others
        except subprocess.TimeoutExpired:
            pass
        took, code = time.time() - t0, job.procs[0].poll()
    finally:
        job.close()
    text = job.text()
    checks.check(f"torchrun: rank 1 killed, the job ends with status {code} in {took:.1f} s, naming rank 1",
                 started and code not in (0, None) and "exitcode  : -9" in text and "rank      : 1" in text,
                 f"started {started}, ranks {ranks}\n{text[-2000:]}")
    checks.finish()


if __name__ == "__main__":
    main()
