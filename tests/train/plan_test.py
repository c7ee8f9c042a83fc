#!/usr/bin/env python3
"""`siglip2 plan` against what `siglip2 bench` measures on the CPU (fp32), and its own arithmetic.

For each small shape (B/16 widths with fewer blocks, a smaller image and vocabulary, so one step takes a
second or two) the planned peak of live tensors must be within 15% of the tensor peak the benchmark measures,
with and without activation checkpointing, with the LocCa decoder, self-distillation, accumulation and a
NaFlex tower, and the trained-parameter count must equal that of the model bench builds. Then: sharding
divides the optimizer state by the world size exactly (planned, and measured by `bench --shard-optimizer` on
2 and 3 Gloo ranks), and the largest micro-batch is the last that fits.
"""
import argparse
import json
import os
import subprocess
import sys

SMALL = ["--set", "model.vision.num_hidden_layers=2", "--set", "model.text.num_hidden_layers=2",
         "--set", "model.text.vocab_size=32000"]
SMALL_FIXED = SMALL + ["--set", "model.vision.image_size=128", "--set", "image.image_size=128"]
MIB = 2.0**20


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {out.returncode}: {out.stderr.strip()[-400:]}")
    return out.stdout


def plan(args, preset, extra):
    return json.loads(run([args.bin, "plan", "--preset", preset, "--json"] + extra))


def measured_vs_planned(args, preset, batch, checkpointing, objectives, extra):
    lines = run([args.bin, "bench", "--preset", preset, "--steps", "1", "--warmup", "1", "--batch", str(batch),
                 "--threads", "2", "--activation-checkpointing", checkpointing, "--objectives", objectives] + extra)
    r = json.loads(next(l for l in lines.splitlines() if l.startswith("RESULT "))[7:])
    plan_args = ["--precision", "fp32", "--batch", str(batch), "--activation-checkpointing", checkpointing,
                 "--set", "train.data=synthetic",
                 "--set", f"train.locca={'true' if 'locca' in objectives else 'false'}",
                 "--set", f"train.self_distillation={'true' if 'self_distillation' in objectives else 'false'}"]
    p = plan(args, preset, plan_args + extra)
    if p["parameters"]["trained"] != r["parameters"]:  # the modules bench builds against the plan's count
        sys.exit(f"FAIL: {preset} {objectives}: plan counts {p['parameters']['trained']} trained parameters, "
                 f"the model bench trains has {r['parameters']}")
    planned = p["bytes"]["peak"] / MIB
    ratio = planned / r["tensor_peak_mib"]
    print(f"{preset} batch {batch} {checkpointing:6s} {objectives:32s} {' '.join(e for e in extra if 'accum' in e)}: "
          f"measured peak {r['tensor_peak_mib']:7.0f} MiB, planned {planned:7.0f} MiB ({ratio:.3f})")
    return ratio


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()

    cases = [
        ("b16_256", 8, "none", "sigmoid", SMALL_FIXED),
        ("b16_256", 64, "none", "sigmoid", SMALL_FIXED),
        ("b16_256", 64, "blocks", "sigmoid", SMALL_FIXED),
        ("b16_256", 16, "none", "sigmoid,locca", SMALL_FIXED),
        ("b16_256", 16, "blocks", "sigmoid,locca", SMALL_FIXED),
        ("b16_256", 8, "none", "sigmoid,locca,self_distillation", SMALL_FIXED),
        ("b16_256", 8, "blocks", "sigmoid,self_distillation", SMALL_FIXED),
        ("b16_256", 32, "none", "sigmoid,locca", SMALL_FIXED + ["--set", "train.accumulation_steps=4"]),
        ("b16_naflex", 16, "none", "sigmoid,locca", SMALL),
        ("b16_naflex", 16, "blocks", "sigmoid", SMALL),
    ]
    failures = []
    for case in cases:
        ratio = measured_vs_planned(args, *case)
        if not 0.85 <= ratio <= 1.15:
            failures.append(f"{case[:4]}: planned/measured peak {ratio:.3f} is outside 0.85..1.15")

    # Sharding: optimizer state / W exactly; gradient buckets only with several ranks.
    whole = plan(args, "l16_256", ["--world-size", "8"])["bytes"]
    sharded = plan(args, "l16_256", ["--world-size", "8", "--shard-optimizer"])["bytes"]
    if abs(sharded["optimizer"] * 8 - whole["optimizer"]) > 1:
        failures.append(f"sharded optimizer state {sharded['optimizer']} is not 1/8 of {whole['optimizer']}")
    if whole["optimizer"] != 2 * whole["weights"]:
        failures.append("AdamW state is not two fp32 moments per parameter")
    one = plan(args, "l16_256", ["--world-size", "1"])["bytes"]
    if one["gradient_buckets"] != 0 or whole["gradient_buckets"] != whole["gradients"]:
        failures.append("gradient buckets: none on one rank, one flat copy of the gradients on several")

    # Measured: `siglip2 bench --shard-optimizer` under torchrun (Gloo) prints each rank's Adam moments: 1/W of
    # the whole (up to the padding of each gradient bucket to a multiple of W), as plan says.
    for world in (2, 3):
        for shard in (True, False):
            env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}",
                   "--no-python", args.bin, "bench", "--preset", "tiny", "--batch", "4", "--steps", "1", "--warmup",
                   "0"] + (["--shard-optimizer"] if shard else [])
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
            lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
            if out.returncode != 0 or len(lines) != 1:
                failures.append(f"bench on {world} ranks: exit {out.returncode}, {len(lines)} RESULT lines: "
                                f"{out.stderr[-600:]}")
                continue
            r = json.loads(lines[0][7:])
            planned = plan(args, "tiny", ["--world-size", str(world), "--set", "train.locca=false", "--set",
                                          "train.self_distillation=false", "--batch", str(4 * world)]
                           + (["--shard-optimizer"] if shard else []))["bytes"]["optimizer"] / MIB
            want = r["optimizer_whole_mib"] / (world if shard else 1)
            print(f"tiny on {world} ranks, {'sharded' if shard else 'whole'}: rank 0 holds "
                  f"{r['optimizer_state_mib']:.4f} MiB of Adam moments (whole {r['optimizer_whole_mib']:.4f}, "
                  f"planned {planned:.4f})")
            if not (abs(r["optimizer_state_mib"] - want) <= 0.01 * want and abs(planned - want) <= 1e-9 + 1e-6 * want
                    and r["world_size"] == world):
                failures.append(f"bench on {world} ranks ({'sharded' if shard else 'whole'}): "
                                f"{r['optimizer_state_mib']} MiB measured, {want} expected, {planned} planned")

    # The largest micro-batch fits, one more does not (80 GiB, blocks, So400m with every objective).
    base = ["--world-size", "8", "--device-memory", "80", "--reserve", "0"]
    p = plan(args, "so400m14_224", base)
    largest = p["largest_micro_batch"]["blocks"]
    # Below the per-rank batch of 4096 the micro-batch is planned as accumulation (every gradient live).
    fits = plan(args, "so400m14_224", base + ["--batch", str(16 * largest), "--accumulation-steps", "2",
                                              "--activation-checkpointing", "blocks"])
    over = plan(args, "so400m14_224", base + ["--batch", str(16 * (largest + 1)), "--accumulation-steps", "2",
                                              "--activation-checkpointing", "blocks"])
    print(f"so400m14_224 on 80 GiB, blocks: largest micro-batch {largest}: peak {fits['bytes']['peak'] / 2**30:.2f} "
          f"GiB; {largest + 1}: {over['bytes']['peak'] / 2**30:.2f} GiB")
    if not (largest > 0 and fits["bytes"]["peak"] <= 80 * 2**30 < over["bytes"]["peak"]):
        failures.append(f"largest micro-batch {largest} is not the last that fits 80 GiB")
    # The suggested accumulation fits: plan the per-rank batch in that many micro-batches.
    for preset, world in [("b16_256", 8), ("gopt16_256", 256)]:
        p = plan(args, preset, ["--world-size", str(world), "--activation-checkpointing", "blocks"])
        per_rank, micro = p["batch_per_rank"], p["largest_micro_batch"]["blocks"]
        steps = -(-per_rank // micro)
        q = plan(args, preset, ["--world-size", str(world), "--activation-checkpointing", "blocks",
                                "--accumulation-steps", str(steps)])
        if not (q["fits"] and q["bytes"]["peak"] <= q["device_bytes"] - q["reserve_bytes"]):
            failures.append(f"{preset}: the suggested accumulation_steps {steps} does not fit")
    # NaFlex presets plan without self-distillation, at the configured length with the most patches per batch.
    naflex = plan(args, "b16_naflex", [])
    longer = plan(args, "b16_naflex", ["--set", "image.naflex_sequence_lengths=[256,1024]",
                                       "--set", "image.naflex_half_batch_length=1024"])
    if naflex["objectives"]["self_distillation"] or not longer["bytes"]["activations"] > naflex["bytes"]["activations"]:
        failures.append("NaFlex: planned with self-distillation, or the longer sequence length is not planned")
    # Checkpointing keeps less than no checkpointing, and the FLOPs grow by the recomputed forward.
    none = plan(args, "b16_256", ["--activation-checkpointing", "none", "--world-size", "8"])
    blocks = plan(args, "b16_256", ["--activation-checkpointing", "blocks", "--world-size", "8"])
    if not blocks["bytes"]["activations"] < none["bytes"]["activations"]:
        failures.append("checkpointing does not reduce the planned activations")
    if not none["flops_step"] < blocks["flops_step"] < none["flops_step"] * 4 / 3 + 1:
        failures.append("checkpointing's recomputation is not between 0 and one forward of FLOPs")

    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
