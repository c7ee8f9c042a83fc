#!/usr/bin/env python3
"""The PyTorch-eager reference for `siglip2 bench`: the same training step on the `transformers` model.

Same arguments and the same final `RESULT {json}` line as `siglip2 bench`, with impl "pytorch":
    python3 bench/reference_pytorch.py --preset b16_256 --batch 8 --steps 5 --threads 2
One step: forward of both towers on random synthetic tensors, the sigmoid loss computed here from the
model's embeddings and its logit_scale/logit_bias, backward, global-norm clipping at 1.0, torch.optim.AdamW
(betas (0.9, 0.95), lr 1e-3, weight decay 1e-4 on weight matrices) in its default implementation.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count  # noqa: E402

import hf_configs  # noqa: E402

# Dense bf16 peak FLOP/s by device name (spec: peers_and_targets.md §3.1).
PEAK_FLOPS = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}

# The same decay mask as the C++ optimizer: matrices, except embedding and position tables and the MAP probe.
NO_DECAY = ("token_embedding", "position_embedding", "probe", "mask_token")


class UsageError(Exception):
    pass


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="a name in configs/models (e.g. b16_256)")
    src.add_argument("--config", help="a YAML file with a model: section (base: inheritance allowed)")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--objectives", default="sigmoid")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave PyTorch's default)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key, e.g. model.vision.image_size=384 (repeatable)")
    ap.add_argument("--peak-tflops", type=float, default=0.0,
                    help="device peak for MFU in TFLOP/s (default: from the GPU's name; none on CPU)")
    ap.add_argument("--activation-checkpointing", default="none",
                    help="none or blocks: transformers' gradient checkpointing of every encoder layer "
                         "(torch.utils.checkpoint, use_reentrant=True, as siglip2's)")
    a = ap.parse_args(argv)
    if a.activation_checkpointing not in ("none", "blocks"):
        raise UsageError(f"--activation-checkpointing {a.activation_checkpointing}: the PyTorch reference "
                         "supports none and blocks")
    if a.objectives.replace(" ", "") != "sigmoid":
        raise UsageError(f"--objectives {a.objectives}: the PyTorch reference supports only 'sigmoid'")
    if a.batch < 1 or a.steps < 1 or a.warmup < 0 or a.threads < 0 or a.peak_tflops < 0:
        raise UsageError("--batch and --steps must be at least 1, --warmup, --threads and --peak-tflops at least 0")
    if a.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: PyTorch sees no CUDA device")
    return a


def load_model_section(a):
    path = hf_configs.preset_path(a.preset) if a.preset else a.config
    if not os.path.isfile(path):
        what = f"preset '{a.preset}'" if a.preset else "--config"
        raise UsageError(f"{what}: {path} not found")
    config = hf_configs.resolve(path)
    for item in a.set:
        apply_override(config, item)
    model = config.get("model")
    if not isinstance(model, dict):
        raise UsageError(f"{path}: no model: section")
    name = a.preset or os.path.splitext(os.path.basename(path))[0]
    return name, model


def apply_override(config, item):
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UsageError(f"--set {item}: expected KEY=VALUE")
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise UsageError(f"--set {item}: {p} is not a section")
    node[leaf] = yaml.safe_load(value)


def synthetic_inputs(model_section, config, batch, device):
    """Random pixels in [-1, 1] and token ids in [0, vocab), shaped as the model expects."""
    v, t = config.vision_config, config.text_config
    inputs = {"input_ids": torch.randint(0, t.vocab_size, (batch, t.max_position_embeddings), device=device)}
    if hf_configs.is_naflex(model_section):
        n, p = v.num_patches, v.patch_size
        h = math.isqrt(n)
        w = n // h  # the largest near-square grid that fits; square when n is a square
        mask = torch.zeros(batch, n, dtype=torch.long, device=device)
        mask[:, : h * w] = 1
        inputs["pixel_values"] = torch.rand(batch, n, 3 * p * p, device=device) * 2 - 1
        inputs["pixel_attention_mask"] = mask
        inputs["spatial_shapes"] = torch.tensor([[h, w]] * batch, dtype=torch.long, device=device)
    else:
        s = v.image_size
        inputs["pixel_values"] = torch.rand(batch, 3, s, s, device=device) * 2 - 1
    return inputs


def sigmoid_loss(model, out):
    img = F.normalize(out.image_embeds.float(), dim=-1)
    txt = F.normalize(out.text_embeds.float(), dim=-1)
    logits = img @ txt.t() * model.logit_scale.float().exp() + model.logit_bias.float()
    z = 2 * torch.eye(logits.shape[0], device=logits.device) - 1
    return -F.logsigmoid(z * logits).sum() / logits.shape[0]


def param_groups(model):
    decay, rest = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and not any(s in name for s in NO_DECAY) else rest).append(p)
    return [{"params": decay, "weight_decay": 1e-4}, {"params": rest, "weight_decay": 0.0}]


def forward_flops(model, inputs, autocast):
    """FLOPs of one forward of the two towers. PyTorch's counter has no formula for the CPU SDPA kernel."""
    def cpu_sdpa(q, k, v, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(q, k, v)

    counter = FlopCounterMode(display=False,
                              custom_mapping={torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa})
    with counter, torch.no_grad(), autocast():
        model(**inputs)
    return counter.get_total_flops()


def run(a):
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    name, section = load_model_section(a)
    config, cls = hf_configs.hf_config(section)
    with device:
        model = cls(config)
    model.train()
    if a.activation_checkpointing == "blocks":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    inputs = synthetic_inputs(section, config, a.batch, device)
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}  # storage -> bytes of the tensors the forward saves for backward (not the parameters)

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in param_storages:
            saved[ptr] = t.untyped_storage().nbytes()
        return t
    optimizer = torch.optim.AdamW(param_groups(model), lr=1e-3, betas=(0.9, 0.95))
    use_bf16 = a.precision == "bf16"

    def autocast():
        return torch.autocast(a.device, dtype=torch.bfloat16, enabled=use_bf16)

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    fwd_flop = forward_flops(model, inputs, autocast) / a.batch
    times = {"forward": [], "backward": [], "optimizer": [], "step": []}
    for i in range(a.warmup + a.steps):
        if i == a.warmup and a.device == "cuda":
            torch.cuda.reset_peak_memory_stats()  # peak over the timed steps, as siglip2 bench reports it
        sync()
        t0 = time.perf_counter()
        with autocast():
            out = model(**inputs)
            loss = sigmoid_loss(model, out)
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        t3 = time.perf_counter()
        if i >= a.warmup:
            for k, dt in (("forward", t1 - t0), ("backward", t2 - t1), ("optimizer", t3 - t2), ("step", t3 - t0)):
                times[k].append(dt * 1e3)
    last_loss = loss.item()

    if a.device == "cuda":
        device_name = torch.cuda.get_device_name()
        peak_mem = torch.cuda.max_memory_allocated() / 2**20
        peak_flops = next((v for k, v in PEAK_FLOPS.items() if k in device_name), 0.0)
    else:
        device_name = "cpu"
        peak_mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        peak_flops = 0.0
    if a.peak_tflops:
        peak_flops = a.peak_tflops * 1e12
    # The activations, in one more forward after the timed steps and the peak's reading (the Python hook
    # would slow the timed ones).
    with autocast(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = sigmoid_loss(model, model(**inputs))
    activation_mib = sum(saved.values()) / 2**20
    del loss
    ms = {k: statistics.fmean(v) for k, v in times.items()}
    pairs_per_s = a.batch * 1e3 / ms["step"]
    train_flop = 3 * fwd_flop
    mfu = pairs_per_s * train_flop / peak_flops if peak_flops else None

    print(f"pytorch reference | {name} | {device_name} {a.precision} | threads {torch.get_num_threads()} | "
          f"batch {a.batch} | {a.steps} steps after {a.warmup} warm-up | loss {last_loss:.4f}")
    print(f"  {'phase':<10}{'ms/step':>10}{'share':>8}")
    for k in ("forward", "backward", "optimizer"):
        print(f"  {k:<10}{ms[k]:>10.2f}{ms[k] / ms['step']:>8.1%}")
    print(f"  {'comm':<10}{0.0:>10.2f}{0.0:>8.1%}")
    print(f"  {'step':<10}{ms['step']:>10.2f}")
    print(f"  pairs/s {pairs_per_s:.2f} | train {train_flop / 1e9:.2f} GFLOP/pair (forward {fwd_flop / 1e9:.2f}) | "
          f"peak memory {peak_mem:.0f} MiB | activations {activation_mib:.0f} MiB saved for backward "
          f"(checkpointing {a.activation_checkpointing}) | MFU {'-' if mfu is None else f'{mfu:.1%}'}")
    result = {"impl": "pytorch", "model": name, "objectives": "sigmoid", "device": device_name,
              "precision": a.precision, "threads": torch.get_num_threads(), "batch": a.batch, "steps": a.steps,
              "pairs_per_s": round(pairs_per_s, 4), "step_ms": round(ms["step"], 4),
              "forward_ms": round(ms["forward"], 4), "backward_ms": round(ms["backward"], 4),
              "optimizer_ms": round(ms["optimizer"], 4), "comm_ms": 0.0, "peak_mem_mib": round(peak_mem, 1),
              "activation_mib": round(activation_mib, 1),
              "activation_checkpointing": a.activation_checkpointing,
              "train_gflop_per_pair": round(train_flop / 1e9, 6), "mfu": None if mfu is None else round(mfu, 5)}
    print("RESULT " + json.dumps(result), flush=True)


def main(argv=None):
    try:
        a = parse_args(argv)
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()  # small presets trip config warnings about default token ids
        run(a)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
