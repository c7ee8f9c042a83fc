#pragma once
// `siglip2 bench`: full training steps (forward, loss, backward, clipping, Adam) on synthetic tensors,
// timed per phase, with FLOPs per pair and MFU against the device's peak (spec: peers_and_targets.md §3).
#include <cstdint>
#include <string>

#include "train/config.hpp"

namespace siglip2 {

struct BenchOptions {
  int64_t batch = 32;
  int64_t steps = 10;
  int64_t warmup = 3;  // untimed steps first (allocator, kernel selection)
  std::string device = "cpu";
  std::string precision = "fp32";
  bool locca = false;
  bool self_distillation = false;
  double peak_flops = 0;  // 0: from the device name (H100/H200 989.4e12, A100 312e12), unknown: no MFU
  std::string profile;    // a Chrome trace of the timed steps (LibTorch's autograd profiler), or ""
  // The ACID stage (config acid.filter_ratio, acid.chunks): each step scores a super-batch of
  // batch / (1 - filter_ratio) pairs with the learner and a reference of this shape (randomly initialised:
  // the cost does not depend on the weights), selects `batch` and trains on them. Sigmoid loss only.
  bool acid = false;
  ModelConfig reference;
  // Under torchrun or SLURM (W > 1 processes, Gloo on CPUs, NCCL on GPUs): `batch` pairs per rank, gradients
  // averaged over the ranks after each backward (timed as comm), and with `shard_optimizer` the Adam moments
  // sharded (ZeRO-1) as train.shard_optimizer does.
  bool shard_optimizer = false;
};

struct BenchResult {
  std::string device_name;
  int rank = 0, world_size = 1;    // only rank 0 reports
  int64_t batch = 0, steps = 0;    // batch: pairs per rank
  double optimizer_state_mib = 0;  // Adam moments this rank holds after the timed steps (rank 0's)
  double optimizer_whole_mib = 0;  // the same unsharded: two fp32 moments per trained parameter
  double step_ms = 0, forward_ms = 0, backward_ms = 0, optimizer_ms = 0, comm_ms = 0;
  double selection_ms = 0;         // ACID: scoring the super-batch with both models and sampling (in step_ms)
  int64_t super_batch = 0;         // ACID: pairs scored per step
  double score_flop_per_pair = 0;  // ACID: learner + reference forward per scored pair
  double pairs_per_s = 0;
  double peak_mem_mib = 0;  // CUDA: peak allocated; CPU: peak resident set of the process
  // Tensor memory (CUDA: the caching allocator's allocated bytes; CPU: common/cpu_memory.hpp), MiB:
  double activation_mib = 0;       // held between the end of the forward and the backward: the stored activations
  double tensor_base_mib = 0;      // live when a step starts: weights, optimizer state, teacher, the batch
  double tensor_peak_mib = 0;      // most live during the timed steps
  double train_flop_per_pair = 0;  // 3 x forward, two towers only; ACID: plus the scoring per selected pair
  double peak_flops = 0;           // 0 when unknown
  int64_t parameters = 0;          // trained parameters (towers, decoder, self-distillation heads), elements
  double mfu() const { return peak_flops > 0 ? pairs_per_s * train_flop_per_pair / peak_flops : 0; }
};

// Dense bf16 peak FLOP/s of a device by name; 0 when unknown (CPUs included).
double device_peak_flops(const std::string& device_name);

// The name of CUDA device `index` ("cpu" in a build without CUDA).
std::string cuda_device_name(int index);

BenchResult run_training_benchmark(const RunConfig& config, const BenchOptions& options);

}  // namespace siglip2
