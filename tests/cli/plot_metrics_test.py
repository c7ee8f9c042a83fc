"""scripts/plot_metrics.py: the figures it writes for a known metrics.jsonl, and its bad-input errors."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

failures = []
passed = 0

TRAIN_KEYS = ["loss", "sigmoid", "locca", "global_local", "masked", "lr", "grad_norm", "t", "b",
              "pairs_per_s", "rollbacks", "data_wait", "mfu"]
# figure -> panels in it; each panel is 500 x 350 px, three to a row.
EXPECTED = {
    "losses": ["loss", "sigmoid", "locca", "global_local", "masked"],
    "lr": ["lr"],
    "temperature_bias": ["t", "b"],
    "grad_norm": ["grad_norm"],
    "throughput": ["pairs_per_s", "data_wait", "mfu"],
    "evaluation": ["zero_shot_top1", "zero_shot_top5", "eval_images", "retrieval_i2t_r1"],
    "other": ["rollbacks"],
}


def check(name, cond, detail=""):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(name)
        print(f"FAIL {name}\n{detail}")


def run(script, *args):
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=120)


def train_line(step):
    r = {k: round(0.1 * (i + 1) + step / 1000, 6) for i, k in enumerate(TRAIN_KEYS)}
    r.update(step=step, rollbacks=0, phase="pretrain" if step < 40 else "self_distillation")
    return r


def eval_line(step):
    return {"step": step, "zero_shot_top1": step / 100, "zero_shot_top5": step / 50, "eval_images": 1000,
            "retrieval_i2t_r1": step / 200}


def write(path, records, tail=""):
    with open(path, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records) + tail)


def expected_size(panels):
    cols = min(panels, 3)
    rows = (panels + cols - 1) // cols
    return 350 * rows, 500 * cols


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    a = ap.parse_args()
    script = os.path.join(a.source, "scripts", "plot_metrics.py")
    sys.path.insert(0, os.path.dirname(script))
    import matplotlib.image
    import plot_metrics

    records = [train_line(s) for s in range(10, 60, 10)] + [eval_line(25), eval_line(50)]
    with tempfile.TemporaryDirectory() as d:
        run_dir = os.path.join(d, "run")
        os.makedirs(run_dir)
        metrics = os.path.join(run_dir, "metrics.jsonl")
        write(metrics, records)

        # The parsing the figures are drawn from: every numeric key against step, in its group.
        curves = plot_metrics.series(plot_metrics.read_records(metrics))
        check("zero-shot series", curves.get("zero_shot_top1") == ([25, 50], [0.25, 0.5]), str(curves))
        check("loss series", curves.get("loss") == ([10, 20, 30, 40, 50], [0.11, 0.12, 0.13, 0.14, 0.15]),
              str(curves.get("loss")))
        check("no series for step or phase", "step" not in curves and "phase" not in curves, str(list(curves)))
        groups = {k: v for k, v in plot_metrics.grouped(curves).items() if v}
        check("groups", groups == EXPECTED, str(groups))
        check("phase change", plot_metrics.phase_changes(records) == [(40, "self_distillation")])

        # A run directory: metrics.jsonl inside it, figures in plots/ beside it, listed on stdout.
        r = run(script, run_dir)
        out_dir = os.path.join(run_dir, "plots")
        want = [os.path.join(out_dir, f"{name}.png") for name in EXPECTED]
        check("run dir exits 0", r.returncode == 0, r.stderr)
        check("prints the files written", r.stdout.split() == want, r.stdout)
        for name, panels in EXPECTED.items():
            png = os.path.join(out_dir, f"{name}.png")
            if not os.path.isfile(png):
                check(f"{name}.png written", False)
                continue
            image = matplotlib.image.imread(png)
            check(f"{name}.png size", image.shape[:2] == expected_size(len(panels)),
                  f"{image.shape} vs {expected_size(len(panels))}")
            blue = ((abs(image[..., 0] - 0x1F / 255) < 0.05) & (abs(image[..., 1] - 0x77 / 255) < 0.05)
                    & (abs(image[..., 2] - 0xB4 / 255) < 0.05)).sum()
            check(f"{name}.png has curves", blue > 50 * len(panels), f"{blue} curve pixels")

        # A crash mid-write leaves a cut-short last line: skipped with a warning, the rest plotted.
        cut = os.path.join(d, "cut.jsonl")
        write(cut, [eval_line(25), eval_line(50)], tail='{"step": 60, "zero_sh')
        r = run(script, cut, "--out", os.path.join(d, "cut_plots"))
        check("cut last line exits 0", r.returncode == 0, r.stderr)
        check("cut last line warns", f"{cut}:3:" in r.stderr and r.stderr.startswith("warning:"), r.stderr)
        check("cut last line plots the rest", r.stdout.split() == [os.path.join(d, "cut_plots", "evaluation.png")],
              r.stdout)

        def one_line_error(name, result, has):
            lines = [l for l in result.stderr.splitlines() if l.strip()]
            check(name, result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ")
                  and has in lines[0] and not result.stdout, f"status {result.returncode}\n{result.stderr}")

        bad = os.path.join(d, "bad.jsonl")
        write(bad, records[:2], tail="not json\n" + json.dumps(records[2]) + "\n")
        one_line_error("bad line", run(script, bad), f"{bad}:3: not valid JSON")
        write(bad, records[:2], tail="not json\n")
        one_line_error("bad last line that is complete", run(script, bad), f"{bad}:3: not valid JSON")
        write(bad, records[:1], tail="[1, 2]\n")
        one_line_error("not an object", run(script, bad), f"{bad}:2: expected a JSON object")
        missing = os.path.join(d, "missing", "metrics.jsonl")
        one_line_error("missing file", run(script, missing), f"{missing}: no such file")
        write(bad, [])
        one_line_error("empty file", run(script, bad), f"{bad}: no metrics")

    print(f"plot_metrics: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
