"""`siglip2 data synth` writes shards that `siglip2 data inspect` reads back; bad input exits non-zero."""
import os
import subprocess
import sys
import tempfile

BIN = os.environ["SIGLIP2_BIN"]


def run(*args, ok=True):
    p = subprocess.run([BIN, *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        sys.exit(f"{args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def counts(text):
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-1].isdigit():
            out[" ".join(parts[:-1])] = int(parts[-1])
        elif len(parts) >= 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def main():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "synth")
        p = run("data", "synth", "--out", out, "--train-shards", "2", "--eval-shards", "1", "--per-shard", "10",
                "--seed", "3", "--image-size", "48", "--vocab-size", "300")
        assert "train: 20 samples" in p.stdout, p.stdout
        for f in ["train/000000.tar", "train/000001.tar", "eval/000000.tar", "tokenizer.model", "classnames.txt",
                  "templates.txt", "info.json"]:
            assert os.path.exists(os.path.join(out, f)), f
        p = run("data", "inspect", os.path.join(out, "train/{000000..000001}.tar"))
        c = counts(p.stdout)
        assert c.get("shards") == 2 and c.get("samples") == 20 and c.get("skipped") == 0, p.stdout
        assert c.get("with regions") == 20 or p.stdout.find("with regions    20") >= 0, p.stdout
        p = run("data", "inspect", os.path.join(out, "eval/000000.tar"))
        assert counts(p.stdout).get("with labels") == 10, p.stdout
        # A missing shard is counted, not fatal; a malformed pattern is an error line and exit 1.
        p = run("data", "inspect", os.path.join(out, "nothing.tar"))
        assert "unreadable_shard" in p.stdout, p.stdout
        p = run("data", "inspect", os.path.join(out, "train/{000000..000001.tar"), ok=False)
        assert p.returncode == 1 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr, p.stderr
        p = run("data", "synth", ok=False)
        assert p.returncode == 2, p.returncode
    print("ok")


if __name__ == "__main__":
    main()
