#!/usr/bin/env python3
"""ACID's learnability and JEST joint sampler (src/losses/acid.hpp) against a reference written here from the
JEST description (NumPy, the whole |SB| x |SB| matrix): the same learnability rows and columns (1e-5), and the
same selections for the same uniforms, over seeds, sizes and chunk counts."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def normalised(rng, n, width):
    x = rng.normal(size=(n, width))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def pair_losses(m):
    """L_ij = -log sigmoid(z_ij (t x_i.y_j + b)), z = +1 on the diagonal, -1 elsewhere (float64)."""
    img, txt = np.asarray(m["image"]), np.asarray(m["text"])
    logits = np.exp(m["logit_scale"]) * img @ txt.T + m["logit_bias"]
    z = 2 * np.eye(len(img)) - 1
    return np.logaddexp(0, -z * logits)


def jest_reference(scores, select, chunks, uniforms):
    """JEST's blocked sampling: chunk 1 from softmax(S_ii), chunk k from softmax(S_ii + sum over chosen of
    S_ij + S_ji) among the pairs not chosen, without replacement (Gumbel top-k with the given uniforms)."""
    n = scores.shape[0]
    chosen = np.zeros(n, dtype=bool)
    order = []
    for q in range(chunks):
        size = select // chunks + (1 if q < select % chunks else 0)
        logits = np.diag(scores) + scores[:, chosen].sum(axis=1) + scores[chosen, :].sum(axis=0)
        key = logits - np.log(-np.log(np.asarray(uniforms[q])))
        key[chosen] = -np.inf
        picked = np.argsort(-key, kind="stable")[:size]
        order.extend(int(i) for i in picked)
        chosen[picked] = True
    return order


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    args = ap.parse_args()
    failures, cases = [], 0
    with tempfile.TemporaryDirectory() as d:
        for seed, n, select, chunks in [(0, 64, 32, 4), (1, 64, 32, 16), (2, 50, 25, 3), (3, 40, 40, 5),
                                        (4, 33, 7, 1), (5, 128, 32, 16), (6, 20, 10, 10)]:
            rng = np.random.default_rng(seed)
            learner = {"image": normalised(rng, n, 8).tolist(), "text": normalised(rng, n, 8).tolist(),
                       "logit_scale": float(np.log(10.0)), "logit_bias": -2.0}
            reference = {"image": normalised(rng, n, 12).tolist(), "text": normalised(rng, n, 12).tolist(),
                         "logit_scale": float(np.log(20.0)), "logit_bias": -5.0}
            # A reference that knows the true pairs: its own texts are near its images, so learnability varies.
            img = np.asarray(reference["image"])
            txt = img + 0.5 * normalised(rng, n, 12)
            reference["text"] = (txt / np.linalg.norm(txt, axis=1, keepdims=True)).tolist()
            uniforms = rng.uniform(1e-12, 1 - 1e-12, size=(chunks, n)).tolist()
            probe = [0, n // 2, n - 1]
            path = os.path.join(d, f"case{seed}.json")
            with open(path, "w") as f:
                json.dump({"learner": learner, "reference": reference, "select": select, "chunks": chunks,
                           "uniforms": uniforms, "probe": probe}, f)
            out = subprocess.run([args.tool, path], capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                failures.append(f"case {seed}: the tool exited {out.returncode}: {out.stderr[-300:]}")
                continue
            got = json.loads(out.stdout)
            scores = pair_losses(learner) - pair_losses(reference)
            worst = max(np.abs(np.asarray(got["rows"]) - scores[probe, :]).max(),
                        np.abs(np.asarray(got["columns"]) - scores[:, probe].T).max(),
                        np.abs(np.asarray(got["diagonal"]) - np.diag(scores)).max())
            want = jest_reference(scores, select, chunks, uniforms)
            cases += 1
            print(f"n {n:3d} select {select:3d} chunks {chunks:2d}: learnability max |diff| {worst:.2e}; "
                  f"selections {'equal' if got.get('chosen') == want else 'DIFFER'}; mean S_ii selected "
                  f"{got.get('mean_selected', float('nan')):.3f}, rejected {got.get('mean_rejected', float('nan')):.3f}")
            if worst > 1e-5:
                failures.append(f"case {seed}: learnability differs from the direct computation by {worst:.2e}")
            if got.get("chosen") != want:
                failures.append(f"case {seed}: selections differ: {got.get('chosen')} vs {want}")
            elif select < n and not got["mean_selected"] > got["mean_rejected"]:
                failures.append(f"case {seed}: the selected pairs are not the more learnable ones on average")
        # Bad sizes are refused.
        path = os.path.join(d, "bad.json")
        with open(path, "w") as f:
            json.dump({"learner": learner, "reference": reference, "select": 5, "chunks": 6, "uniforms": uniforms,
                       "probe": [0]}, f)
        got = json.loads(subprocess.run([args.tool, path], capture_output=True, text=True, timeout=60).stdout)
        if "chunks" not in got.get("error", ""):
            failures.append(f"6 chunks for 5 pairs was not refused: {got.get('error')}")
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print(f"OK: {cases} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
