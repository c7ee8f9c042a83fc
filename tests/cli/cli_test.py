"""The command line as a user meets it: help, version, exit codes, one-line errors, config show."""
import argparse
import os
import subprocess
import sys
import tempfile

failures = []
passed = 0


def run(bin_, *args, env=None):
    return subprocess.run([bin_, *args], capture_output=True, text=True, timeout=120, env=env)


def check(name, cond, detail=""):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(f"{name}: {detail}")
        print(f"FAIL {name}\n{detail}")


def expect(name, result, status, stdout_has=(), stderr_has=(), one_line_error=False):
    detail = f"status {result.returncode}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
    ok = result.returncode == status
    ok = ok and all(s in result.stdout for s in stdout_has) and all(s in result.stderr for s in stderr_has)
    if one_line_error:
        lines = [l for l in result.stderr.splitlines() if l.strip()]
        ok = ok and len(lines) == 1 and lines[0].startswith("error: ")
    check(name, ok, detail)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--source", required=True)
    a = ap.parse_args()
    b = a.bin
    sample = os.path.join(a.source, "configs", "recipes", "pretrain_b16_256.yaml")

    expect("help", run(b, "--help"), 0, stdout_has=["config", "comm-check"])
    expect("version", run(b, "--version"), 0, stdout_has=["siglip2 0.", "LibTorch 2.11"])
    expect("subcommand help", run(b, "config", "show", "--help"), 0, stdout_has=["--set"])
    expect("no subcommand", run(b), 2, one_line_error=True)
    expect("unknown subcommand", run(b, "frobnicate"), 2, stderr_has=["frobnicate"], one_line_error=True)
    expect("unknown flag", run(b, "config", "show", sample, "--nope"), 2, one_line_error=True)

    recipes = os.path.join(a.source, "configs", "recipes")
    for name in sorted(os.listdir(recipes)):
        expect(f"recipe {name} resolves", run(b, "config", "show", os.path.join(recipes, name)), 0,
               stdout_has=["model:", "train:"])
    expect("NaFlex recipe: stretched schedule, no self-distillation",
           run(b, "config", "show", os.path.join(recipes, "naflex_b16.yaml")), 0,
           stdout_has=["naflex: true", "stretch_factor: 3.75", "self_distillation: false", "total_steps: 1556396"])

    expect("more micro-batches than the batch has examples are refused", run(b, "config", "show", sample, "--set",
           "train.batch_size=4", "--set", "train.accumulation_steps=8"), 2,
           stderr_has=["train.accumulation_steps (8) exceeds train.batch_size (4)"], one_line_error=True)
    expect("gradient accumulation is accepted", run(b, "config", "show", sample, "--set",
                                                   "train.accumulation_steps=4"), 0,
           stdout_has=["accumulation_steps: 4"])

    r = run(b, "config", "show", sample)
    expect("config show", r, 0, stdout_has=["model:", "vision:", "hidden_size: 768", "optimizer:", "lr: 0.001",
                                            "beta2: 0.95", "total_steps:"])
    r2 = run(b, "config", "show", sample, "--set", "optimizer.lr=3e-4", "--set", "train.batch_size=4096")
    expect("config show --set", r2, 0, stdout_has=["lr: 0.0003", "batch_size: 4096"])

    with tempfile.TemporaryDirectory() as d:
        typo = os.path.join(d, "typo.yaml")
        with open(typo, "w") as f:
            f.write(f"base: {sample}\noptimiser:\n  lr: 0.1\n")
        expect("typo exits 2 with path, location and suggestion", run(b, "config", "show", typo), 2,
               stderr_has=[f"{typo}:2:1: optimiser: unknown key; did you mean 'optimizer'?"], one_line_error=True)
        wrong = os.path.join(d, "wrong.yaml")
        with open(wrong, "w") as f:
            f.write(f"base: {sample}\ntrain:\n  batch_size: lots\n")
        expect("wrong type exits 2", run(b, "config", "show", wrong), 2,
               stderr_has=[f"{wrong}:3:15: train.batch_size: expected an integer, got 'lots'"], one_line_error=True)
        expect("bad --set exits 2", run(b, "config", "show", sample, "--set", "optimizer.beta2=2"), 2,
               stderr_has=["--set optimizer.beta2=2: optimizer.beta2: must be in"], one_line_error=True)
        expect("missing file exits 2", run(b, "config", "show", os.path.join(d, "none.yaml")), 2,
               stderr_has=["none.yaml: config file not found"], one_line_error=True)

    keys = run(b, "config", "keys")
    expect("config keys", keys, 0, stdout_has=["optimizer.lr", "float = 0.001", "train.total_steps", "(required)"])
    # docs/configs.md quotes the whole output: it must not drift from the keys the binary reads.
    with open(os.path.join(a.source, "docs", "configs.md")) as f:
        doc = f.read()
    quoted = doc.split("Output of `build/siglip2 config keys`", 1)[-1].split("```\n", 1)[-1].split("```", 1)[0]
    global passed
    if quoted == keys.stdout:
        passed += 1
        print("ok   docs/configs.md quotes `config keys` as the binary prints it")
    else:
        missing = [l.split()[0] for l in keys.stdout.splitlines() if l.strip() and l not in quoted.splitlines()]
        failures.append("docs/configs.md key list")
        print(f"FAIL docs/configs.md key list differs from `config keys` (first lines not quoted: {missing[:5]})")

    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS")}
    env["GLOO_SOCKET_IFNAME"] = "lo"
    r = run(b, "comm-check", "--backend", "gloo", "--size-mb", "1", env=env)
    expect("comm-check single process", r, 0, stdout_has=["comm-check: ok | backend gloo | world 1 | launcher none"])
    bad_env = dict(env, RANK="3", WORLD_SIZE="2")
    expect("bad launcher variables exit 2", run(b, "comm-check", env=bad_env), 2,
           stderr_has=["rank 3 is not below world size 2"], one_line_error=True)

    print(f"cli: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
