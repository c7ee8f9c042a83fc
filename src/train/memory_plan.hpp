#pragma once
// `siglip2 plan`: will a run fit? Memory per rank and FLOPs per step for a run config, a world size and a
// precision, from the model's parameter shapes and a count of the tensors autograd keeps for backward; no
// weight is allocated, so every released size (B, L, So400m, g-opt) plans in well under a second.
//
// Memory (bytes per rank):
// - weights, gradients (4 bytes per trained parameter: towers, LocCa decoder, self-distillation heads);
// - gradient buckets (W > 1): GradientSync's flat buffers, another 4 bytes per parameter, plus the
//   reduce-scatter output (4/W) when the optimizer state is sharded;
// - optimizer state: AdamW's two moments, 8 bytes per parameter, or 8/W with train.shard_optimizer;
// - EMA teacher (self-distillation): a copy of the vision tower and heads, 4 bytes per parameter;
// - the batch on the device (NaFlex: at the sequence length with the most patches per batch);
// - activations: what the forward keeps for the backward, per token of each encoder block (pre-LN, counted
//   from the saved tensors: block input, LN outputs, q, k, v, attention output and its copy, residual, MLP
//   hidden before and after GELU: 9d + 2m values; the attention kernels keep their output and a log-sum-exp,
//   not the probabilities), with activation checkpointing only each checkpointed block's input; outside the
//   blocks embeddings, final LayerNorm and heads, the LocCa cross-entropy's logits chunk and the
//   self-distillation heads' prototype rows. bf16 autocast (GPUs) keeps matmul outputs in bf16, LayerNorm
//   inputs in fp32, and a bf16 copy of the weights of the matrix products.
// The peak is taken over the step as the backward runs: activations are freed block by block while
// gradients appear (first touch of a parameter allocates its gradient), a checkpointed block's
// activations exist again while it is recomputed, and gradient buffers of the block being differentiated
// come on top. Checked against the measured tensor peak of `siglip2 bench` on the CPU (fp32) by
// tests/train/plan_test.py; bf16 figures are estimates until a GPU run measures them.
//
// FLOPs: 2 per multiply-add of the matrix products (forward_flops' convention), forward, backward (2x the
// forward) and the recomputations: activation checkpointing runs each checkpointed block's forward again,
// accumulation runs the towers' forward once more without gradients (GradCache). The ACID stage adds the
// learner's and the reference's forward on its super-batch (no gradients, chunks of a micro-batch: they keep
// no activations, and the gradients of the step before are freed first).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "train/config.hpp"

namespace siglip2 {

struct PlanOptions {
  int64_t world_size = 1;
  bool bf16 = false;              // bf16 autocast with fp32 weights (the trainer's choice on GPUs)
  int64_t batch_per_rank = 0;     // 0: train.batch_size / world_size
  bool self_distillation = true;  // plan the self-distillation phase when train.self_distillation is on
  // The ACID stage (acid.reference set): the reference model's shape; unset: the stage is not planned.
  std::optional<ModelConfig> reference;
};

struct MemoryPlan {
  // Trained parameters (elements): towers, decoder, self-distillation heads; teacher parameters.
  int64_t vision_params = 0, text_params = 0, decoder_params = 0, head_params = 0, teacher_params = 0;
  int64_t params() const { return vision_params + text_params + decoder_params + head_params; }

  int64_t batch_per_rank = 0, micro_batch = 0;  // micro_batch: per forward (batch_per_rank / accumulation)
  int64_t naflex_length = 0;  // NaFlex: the planned sequence length (the most patches per batch); else 0
  // Bytes per rank.
  double weights = 0, gradients = 0, gradient_buckets = 0, optimizer = 0, teacher = 0, batch = 0;
  double weight_cast = 0;  // bf16 copies of the weights autocast keeps from forward to backward
  // The ACID stage: the reference's weights (fp32, kept), what scoring the super-batch holds
  // (acid_scoring_bytes, while the selection runs, before the step's forward; the peak also counts a chunk's
  // inputs, one block's working set and the learner's bf16 weight copies then) and the pairs it scores.
  double reference = 0, acid_scoring = 0;
  int64_t reference_params = 0, acid_super_batch = 0;
  double activations = 0;                 // kept from the forward to the backward, with this config's checkpointing
  double activations_none = 0;            // the same without checkpointing
  double activations_blocks = 0;          // the same with every block checkpointed
  double peak = 0;                        // the largest total of live tensors over one step
  double peak_none = 0, peak_blocks = 0;  // the peak without / with every block checkpointed
  double persistent() const { return weights + gradient_buckets + optimizer + teacher + batch + reference; }

  // FLOPs per rank per step.
  double flops_forward = 0;  // one forward of everything that runs (towers, decoder, teacher, students, heads)
  double flops_step = 0;     // forward + backward + recomputation
};

// Throws ConfigError when the batch does not split over the ranks and micro-batches.
MemoryPlan plan_memory(const RunConfig& config, const PlanOptions& options);

// The largest per-rank micro-batch (pairs per forward) whose peak fits `device_bytes` with `every_n` (0: none,
// 1: blocks); below the per-rank batch it is planned as accumulation (every gradient live). 0 when not even
// one pair fits. NaFlex: at the sequence length with the most patches per batch.
int64_t largest_micro_batch(const RunConfig& config, const PlanOptions& options, double device_bytes, int64_t every_n);

}  // namespace siglip2
