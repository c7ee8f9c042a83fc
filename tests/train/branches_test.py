"""The SigLIP 2 recipe's branches end to end, in miniature (docs/recipe.md):

1. fixed resolution: tiny pretraining (sigmoid + LocCa, self-distillation from 80%) -> the 95% checkpoint ->
   `siglip2 adapt-resolution` to another image size and patch size (PI-resize) -> training continues to the end
   with all losses -> `siglip2 export` -> transformers SiglipModel loads it with no missing or unexpected keys and
   gives the same embeddings as `siglip2 embed`;
2. NaFlex: pretraining without self-distillation -> the 90% checkpoint -> `adapt-resolution --naflex` ->
   NaFlex training on the stretched schedule -> export -> Siglip2Model, same embeddings;
3. fine-tuning: `--init-from hf:DIR` starts from the exported weights (the first checkpoint's frozen vision tower
   equals them bit for bit; the text tower moves).
"""
import json
import math
import os
import subprocess
import sys

import torch
import transformers
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
import interop_common as ic  # noqa: E402

CONFIG = """base: {models}/tiny.yaml
model:
  vision: {{num_hidden_layers: 1}}
  text: {{num_hidden_layers: 1}}
  decoder: {{max_length: 12}}
loss:
  self_distillation: {{prototypes: 64, head_hidden: 32, head_bottleneck: 16}}
schedule: {{warmup_steps: 2}}
train:
  data: synthetic
  out_dir: {out}
  batch_size: 8
  total_steps: {steps}
  log_every: 5
  checkpoint_every: 1000
  phase_checkpoints: [0.8, 0.9, 0.95]
  spike_factor: 0
"""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def run(checks, name, *args, timeout=600):
    r = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    ok = checks.check(name, r.returncode == 0,
                      "" if r.returncode == 0 else f"exit {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}")
    return r if ok else None


def ck(run_dir, step):
    return os.path.join(run_dir, f"ckpt-{step:08d}")


def state(ckpt):
    with open(os.path.join(ckpt, "trainer_state.json")) as f:
        return json.load(f)


def export_and_compare(checks, name, ckpt, workdir, cls, vision):
    hf_dir = os.path.join(workdir, name + "-hf")
    if not run(checks, f"{name}: export", "export", ckpt, "--format", "hf", "--out", hf_dir):
        return None
    model, info = cls.from_pretrained(hf_dir, output_loading_info=True)
    missing = [*info["missing_keys"], *info["unexpected_keys"], *info["mismatched_keys"]]
    checks.check(f"{name}: {cls.__name__} loads with no missing/unexpected/mismatched keys", not missing, str(missing))
    ids = ic.text_inputs(3, 64, 1024, 0, seed=5)
    inputs = os.path.join(workdir, name + ".inputs.safetensors")
    ic.save_inputs(inputs, vision, ids)
    out = os.path.join(workdir, name + ".out.safetensors")
    if run(checks, f"{name}: embed", "embed", "--model", ckpt, "--inputs", inputs, "--out", out, "--features",
           "--device", "cpu"):
        ic.compare_outputs(checks, f"{name}: siglip2 vs transformers", load_file(out),
                           ic.hf_reference(model, vision, ids), vision, keys=["image_embeds", "text_embeds"])
    return hf_dir


def main():
    global BIN
    ap = ic.argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    BIN = a.bin
    ic.shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    checks = ic.Checks()
    w = a.workdir

    # 1. Fixed-resolution branch from the 95% checkpoint: 64 px / patch 8 -> 72 px / patch 6 (grid 8 -> 12).
    run1 = os.path.join(w, "pretrain")
    cfg1 = write(os.path.join(w, "pretrain.yaml"), CONFIG.format(models=a.models, out=run1, steps=20))
    if run(checks, "pretraining with every objective", "train", cfg1):
        ck95 = ck(run1, 19)
        checks.check("95% checkpoint kept, self-distillation on", os.path.isdir(ck95) and state(ck95)[
            "self_distillation"], str(sorted(os.listdir(run1))))
        branch = os.path.join(w, "branch-72-p6")
        if run(checks, "adapt-resolution 72 px, patch 6", "adapt-resolution", ck95, "--image-size", 72,
               "--patch-size", 6, "--out", branch):
            adapted = ck(branch, 19)
            t = load_file(os.path.join(adapted, "model.safetensors"))
            checks.check("adapted patch and position shapes",
                         tuple(t["vision_model.embeddings.patch_embedding.weight"].shape) == (64, 3, 6, 6) and
                         tuple(t["vision_model.embeddings.position_embedding.weight"].shape) == (144, 64))
            teacher = load_file(os.path.join(adapted, "teacher.safetensors"))
            checks.check("teacher resized too",
                         tuple(teacher["vision_model.embeddings.position_embedding.weight"].shape) == (144, 64))
            r = run(checks, "training continues at 72 px with all losses", "train", cfg1, "--set",
                    f"train.out_dir={branch}", "--set", "model.vision.image_size=72", "--set",
                    "model.vision.patch_size=6", "--set", "image.image_size=72")
            if r:
                log = r.stderr + r.stdout
                checks.check("resumed at step 19 and finished at 20", "resumed from" in log and
                             "training finished at step 20" in log, log[-1500:])
                final = ck(branch, 20)
                checks.check("final checkpoint has the teacher (self-distillation losses on)",
                             os.path.exists(os.path.join(final, "teacher.safetensors")))
                export_and_compare(checks, "fixed-72-p6", final, w, transformers.SiglipModel,
                                   ic.fixed_inputs(3, 72, 3, seed=4))
        r = subprocess.run([BIN, "adapt-resolution", ck95, "--out", os.path.join(w, "nothing")], capture_output=True,
                           text=True)
        checks.check("adapt-resolution without a change exits 2 with a message",
                     r.returncode == 2 and "needs --image-size" in r.stderr, r.stderr)

    # 2. NaFlex branch from the 90% checkpoint of a run without self-distillation; the last 10% stretched x3.75:
    # a 40-step run branches at 36 and ends at 36 + 3.75 * 4 = 51.
    run2 = os.path.join(w, "pretrain-nossl")
    cfg2 = write(os.path.join(w, "pretrain-nossl.yaml"),
                 CONFIG.format(models=a.models, out=run2, steps=40) + "  self_distillation: false\n")
    if run(checks, "pretraining without self-distillation", "train", cfg2):
        naflex = os.path.join(w, "branch-naflex")
        if run(checks, "adapt-resolution --naflex", "adapt-resolution", ck(run2, 36), "--naflex",
               "--num-patches", 64, "--out", naflex):
            r = run(checks, "NaFlex training on the stretched schedule", "train", cfg2, "--set",
                    f"train.out_dir={naflex}", "--set", "model.vision.naflex=true", "--set",
                    "model.vision.num_patches=64", "--set", "image.naflex=true", "--set", "image.patch_size=8",
                    "--set", "image.max_num_patches=64", "--set", "train.total_steps=51", "--set",
                    "schedule.stretch_factor=3.75", "--set", "schedule.stretch_from=0.9")
            if r:
                final = ck(naflex, 51)
                checks.check("NaFlex branch ran to step 51", os.path.isdir(final), str(os.listdir(naflex)))
                lines = [json.loads(line) for line in open(os.path.join(naflex, "metrics.jsonl")) if '"lr"' in line]
                # The update to step 51 used step 50: run step 36 + 14 / 3.75 of the 40-step cosine (2 warm-up).
                eff = 36 + (50 - 36) / 3.75
                want = 1e-3 * 0.5 * (1 + math.cos(math.pi * (eff - 2) / 38))
                got = lines[-1]["lr"] if lines else None
                checks.check("the last update's lr is the stretched schedule's", lines and lines[-1]["step"] == 51 and
                             abs(got - want) <= 1e-9 * want, f"{got} vs {want}")
                hf_dir = export_and_compare(checks, "naflex", final, w, transformers.Siglip2Model,
                                            ic.naflex_inputs([(8, 8), (4, 16), (5, 7)], 64, 8, 3, seed=6))

                # 3. Fine-tuning from the exported Hugging Face directory, vision tower locked.
                if hf_dir:
                    ft = os.path.join(w, "finetune")
                    r = run(checks, "fine-tune --init-from hf:DIR (locked image tower)", "train", cfg2, "--init-from",
                            "hf:" + hf_dir, "--set", f"train.out_dir={ft}", "--set", "model.vision.naflex=true",
                            "--set", "model.vision.num_patches=64", "--set", "image.naflex=true", "--set",
                            "image.patch_size=8", "--set", "image.max_num_patches=64", "--set", "train.total_steps=3",
                            "--set",
                            "train.locca=false", "--set", "optimizer.frozen=['^vision_model\\.']", "--set",
                            "optimizer.weight_decay=0", "--set", "optimizer.lr=1e-4")
                    if r:
                        start = load_file(os.path.join(final, "model.safetensors"))
                        end = load_file(os.path.join(ck(ft, 3), "model.safetensors"))
                        vis = [k for k in start if k.startswith("vision_model.")]
                        checks.check("locked vision tower unchanged, bit for bit",
                                     vis and all(torch.equal(start[k], end[k]) for k in vis))
                        moved = (start["text_model.head.weight"] - end["text_model.head.weight"]).abs().max().item()
                        checks.check("text tower fine-tuned", moved > 0, f"max change {moved:.2e}")
    r = subprocess.run([BIN, "train", cfg2, "--init-from", "hf:" + w, "--set", f"train.out_dir={w}/x"],
                       capture_output=True, text=True)
    checks.check("--init-from hf: of a directory without config.json exits 2", r.returncode == 2 and
                 "config.json" in r.stderr, r.stderr)
    checks.finish()


if __name__ == "__main__":
    main()
