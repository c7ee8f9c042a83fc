"""`siglip2 model-info` equals what transformers counts, for every preset in configs/models: parameter
counts, and (--tensors) every parameter's name and shape, which is what import and export check a
checkpoint against.

Each preset becomes the transformers config it corresponds to (SiglipConfig for fixed resolution,
Siglip2Config for NaFlex) and the model is built on the meta device, so even g-opt costs no memory.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from hf_configs import hf_model, resolve  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--presets", required=True)
    a = ap.parse_args()
    passed, failed = 0, 0
    for path in sorted(glob.glob(os.path.join(a.presets, "*.yaml"))):
        name = os.path.splitext(os.path.basename(path))[0]
        ours = json.loads(subprocess.run([a.bin, "model-info", "--tensors", name], capture_output=True, text=True,
                                         check=True).stdout)
        m = hf_model(resolve(path)["model"])
        want = {"vision": sum(p.numel() for p in m.vision_model.parameters()),
                "text": sum(p.numel() for p in m.text_model.parameters()),
                "total": sum(p.numel() for p in m.parameters()),
                "tensors": sorted([n, list(p.shape)] for n, p in m.named_parameters())}
        got = {k: ours[k] for k in want}
        got["tensors"] = sorted(got["tensors"])
        if got == want:
            passed += 1
            print(f"ok   {name}: {len(got['tensors'])} tensors, {dict((k, got[k]) for k in ('vision', 'text', 'total'))}")
        else:
            failed += 1
            for k in ("vision", "text", "total"):
                if got[k] != want[k]:
                    print(f"FAIL {name}: {k} siglip2 {got[k]} vs transformers {want[k]}")
            ours_t, theirs_t = dict((n, s) for n, s in got["tensors"]), dict((n, s) for n, s in want["tensors"])
            for n in sorted(set(ours_t) | set(theirs_t)):
                if ours_t.get(n) != theirs_t.get(n):
                    print(f"FAIL {name}: {n} siglip2 {ours_t.get(n)} vs transformers {theirs_t.get(n)}")
    print(f"model-info parity: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
