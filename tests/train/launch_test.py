"""Starts `siglip2 comm-check` as a multi-process job the way users do, and checks it ran.

torchrun: python -m torch.distributed.run --standalone --nproc-per-node N --no-python siglip2 ...
slurm:    N processes with the variables srun sets (SLURM_PROCID, SLURM_NTASKS, SLURM_JOB_NODELIST, ...)
"""
import argparse
import os
import socket
import subprocess
import sys


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--launcher", choices=["torchrun", "slurm"], required=True)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=300)
    a = ap.parse_args()
    cmd = [a.bin, "comm-check", "--backend", "gloo", "--timeout-s", "60", "--size-mb", "4"]
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo")
    if a.launcher == "torchrun":
        procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                   f"--nproc-per-node={a.nproc}", "--no-python"] + cmd,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    else:
        port = str(free_port())
        procs = []
        for r in range(a.nproc):
            e = dict(env, SLURM_PROCID=str(r), SLURM_NTASKS=str(a.nproc), SLURM_LOCALID=str(r),
                     SLURM_JOB_NODELIST="localhost", MASTER_PORT=port)
            for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"):
                e.pop(k, None)
            procs.append(subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs, codes = [], []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=a.timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            print(f"FAIL: {a.launcher} job did not finish in {a.timeout} s")
            return 1
        outputs.append(out)
        codes.append(p.returncode)
    text = "\n".join(outputs)
    print(text)
    want = f"comm-check: ok | backend gloo | world {a.nproc} | launcher {a.launcher}"
    if any(codes) or want not in text:
        print(f"FAIL: exit codes {codes}; expected a line containing '{want}'")
        return 1
    print(f"{a.launcher} x{a.nproc}: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
