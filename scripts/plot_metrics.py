#!/usr/bin/env python3
"""Training curves from a run's metrics.jsonl, as PNG files (one figure per group, one panel per metric).

    python3 scripts/plot_metrics.py runs/NAME                # reads runs/NAME/metrics.jsonl
    python3 scripts/plot_metrics.py runs/NAME/metrics.jsonl --out plots

Every numeric key other than `step` is plotted against `step`, so keys added later need no change here:
known keys go to their group (losses, lr, temperature and bias, grad norm, throughput, evaluation), the
rest to `other`; a change of `phase` is marked in every panel. Prints the files written, one per line.
Bad input exits 2 with one line naming the file and line; a last line cut short by a crash mid-write is
skipped with a warning.
"""
import argparse
import json
import math
import os
import sys

# (file name, title, does this key belong here?) in the order the figures are written; first match wins.
GROUPS = [
    ("losses", "losses", lambda k: k in ("loss", "sigmoid", "locca", "global_local", "masked") or k.startswith("ssl_") or "loss" in k),
    ("lr", "learning rate", lambda k: k == "lr" or k.startswith("lr_")),
    ("temperature_bias", "temperature t and bias b", lambda k: k in ("t", "b", "logit_scale", "logit_bias")),
    ("grad_norm", "gradient norm", lambda k: k == "grad_norm" or k.startswith("grad_")),
    ("throughput", "throughput and data wait",
     lambda k: k in ("pairs_per_s", "data_wait", "mfu") or k.endswith("_per_s") or "wait" in k),
    ("evaluation", "evaluation",
     lambda k: k.startswith(("zero_shot", "retrieval", "eval_", "val_", "linear_probe"))),
    ("acid", "ACID selection (learnability, share per source)", lambda k: k.startswith("acid_")),
    ("other", "other metrics", lambda k: True),
]
# Panels in this order within a group; other keys follow in the order they first appear.
ORDER = ["loss", "sigmoid", "locca", "global_local", "masked", "t", "b", "pairs_per_s", "data_wait", "mfu",
         "zero_shot_top1", "zero_shot_top5"]
PANEL_W, PANEL_H, DPI, COLUMNS = 5.0, 3.5, 100, 3  # each panel is 500 x 350 px


class InputError(Exception):
    pass


def metrics_path(arg):
    path = os.path.join(arg, "metrics.jsonl") if os.path.isdir(arg) else arg
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    return path


def read_records(path):
    """The JSON objects of the file, in order; a cut-short last line is dropped with a warning."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines) and not text.endswith("\n"):
                print(f"warning: {path}:{number}: last line is cut short (a crash mid-write?); skipped",
                      file=sys.stderr)
                continue
            raise InputError(f"{path}:{number}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    if not records:
        raise InputError(f"{path}: no metrics in the file")
    return records


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def series(records):
    """{key: ([steps], [values])} for every numeric key, from the lines that have a numeric step."""
    out = {}
    for r in records:
        step = r.get("step")
        if not is_number(step):
            continue
        for k, v in r.items():
            if k != "step" and is_number(v):
                xs, ys = out.setdefault(k, ([], []))
                xs.append(step)
                ys.append(v)
    return out


def grouped(curves):
    groups = {name: [] for name, _, _ in GROUPS}
    for key in sorted(curves, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER)):
        name = next(name for name, _, belongs in GROUPS if belongs(key))
        groups[name].append(key)
    return groups


def phase_changes(records):
    """Steps where the training phase (a string such as 'pretrain') changes, with the new phase."""
    changes, last = [], None
    for r in records:
        phase = r.get("phase")
        if isinstance(phase, str) and is_number(r.get("step")):
            if last is not None and phase != last:
                changes.append((r["step"], phase))
            last = phase
    return changes


def plot_group(plt, title, keys, curves, phases, path):
    cols = min(len(keys), COLUMNS)
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_W * cols, PANEL_H * rows), dpi=DPI, squeeze=False)
    for ax, key in zip(axes.flat, keys):
        xs, ys = curves[key]
        ax.plot(xs, ys, marker="o" if len(xs) <= 50 else None, markersize=3, linewidth=1.2)
        for step, phase in phases:
            ax.axvline(step, color="gray", linestyle="--", linewidth=0.8)
            ax.annotate(phase, (step, 1), xycoords=("data", "axes fraction"), fontsize=7, color="gray",
                        rotation=90, ha="right", va="top")
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a run directory (with metrics.jsonl) or a metrics.jsonl file")
    ap.add_argument("--out", help="directory for the PNG files (default: plots/ beside metrics.jsonl)")
    a = ap.parse_args(argv)
    try:
        path = metrics_path(a.run)
        records = read_records(path)
        curves = series(records)
        if not curves:
            raise InputError(f"{path}: no line has a numeric 'step' and another numeric key")
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        out = a.out or os.path.join(os.path.dirname(os.path.abspath(path)), "plots")
        os.makedirs(out, exist_ok=True)
        groups = grouped(curves)
        for name, title, _ in GROUPS:
            if groups[name]:
                png = os.path.join(out, f"{name}.png")
                plot_group(plt, title, groups[name], curves, phase_changes(records), png)
                print(png)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e.filename or a.run}: {e.strerror}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
