"""The sigmoid loss equals open_clip's SigLipLoss (value and gradients) on the same random embeddings."""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
from open_clip.loss import SigLipLoss
from safetensors.torch import load_file, save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    a = ap.parse_args()
    passed, failed = 0, 0
    torch.manual_seed(0)
    for n, e, log_t, bias in [(4, 8, 2.302585, -10.0), (16, 32, 1.0, -2.0), (33, 16, 3.0, 0.5)]:
        img = torch.nn.functional.normalize(torch.randn(n, e, dtype=torch.float64), dim=-1)
        txt = torch.nn.functional.normalize(torch.randn(n, e, dtype=torch.float64), dim=-1)
        s = torch.tensor([log_t], dtype=torch.float64)
        b = torch.tensor([bias], dtype=torch.float64)
        with tempfile.TemporaryDirectory() as d:
            save_file({"image_features": img, "text_features": txt, "logit_scale_log": s, "logit_bias": b},
                      os.path.join(d, "in.safetensors"))
            subprocess.run([a.tool, "openclip", os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")],
                           check=True)
            ours = load_file(os.path.join(d, "out.safetensors"))
        i, t, ls, lb = (v.clone().requires_grad_() for v in (img, txt, s, b))
        loss = SigLipLoss(rank=0, world_size=1)(i, t, ls.exp(), lb)  # open_clip takes the exponentiated scale
        loss.backward()
        checks = {"loss": (ours["loss"], loss.detach().reshape(1)), "grad_image": (ours["grad_image"], i.grad),
                  "grad_text": (ours["grad_text"], t.grad), "grad_scale_log": (ours["grad_scale_log"], ls.grad),
                  "grad_bias": (ours["grad_bias"], lb.grad)}
        worst = max((x - y).abs().max().item() / max(y.abs().max().item(), 1e-30) for x, y in checks.values())
        ok = worst <= 1e-10
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} n={n} e={e}: loss {ours['loss'].item():.10f} vs open_clip "
              f"{loss.item():.10f}, worst relative difference {worst:.2e}")
    print(f"open_clip parity: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
