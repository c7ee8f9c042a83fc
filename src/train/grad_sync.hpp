#pragma once
// Data-parallel gradient averaging that overlaps with backward, as PyTorch's DDP does: parameters
// are grouped into buckets in reverse order (the last layers' gradients are ready first); a hook
// copies each gradient into its bucket as soon as it is accumulated, and a full bucket is reduced
// asynchronously while backward goes on. finish() launches what is left, waits, and writes the
// averaged gradients back. Sharded (ZeRO stage 1, as DeepSpeed and Marian shard optimizer state):
// each bucket is reduce-scattered instead of all-reduced, and each rank gets the mean of its own
// slice of every bucket only (the slice its optimizer updates; see AdamOptimizer::shard).
#include <ATen/core/Tensor.h>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/named_tensors.hpp"
#include "train/distributed.hpp"
#include "train/gradient_buckets.hpp"

namespace siglip2 {

class AdamOptimizer;

class GradientSync {
 public:
  // `params`: the tensors to reduce, in order (all must require gradients); `group_starts` as in
  // bucket_layout ({0}: one group). `shard`: reduce-scatter (ZeRO-1) instead of all-reduce.
  GradientSync(ProcessGroup& pg, std::vector<at::Tensor> params, const std::vector<size_t>& group_starts, bool shard,
               int64_t bucket_bytes = 25 << 20, int64_t first_bucket_bytes = 1 << 20);
  // Every parameter of `params` that requires a gradient, one group, all-reduced.
  GradientSync(ProcessGroup& pg, const NamedTensors& params, int64_t bucket_bytes = 25 << 20,
               int64_t first_bucket_bytes = 1 << 20);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Call after backward on every rank. Every parameter then holds the mean of its gradient over ranks
  // (a parameter that got no gradient anywhere gets zeros); sharded, only the elements of this rank's
  // slices hold the mean, the others this rank's own gradient.
  void finish();
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  const std::vector<GradientBucket>& layout() const { return layout_; }
  bool sharded() const { return shard_; }

  // Gradient accumulation: with the hooks off, backward passes only accumulate (the micro-batches
  // before the last); turned on again for the last one, its backward launches the buckets as they fill.
  void set_hooks_enabled(bool enabled) { hooks_enabled_ = enabled; }
  // The gradient of `param` is final before the last backward (a parameter that backward will not
  // reach): its bucket slot is filled now, so the bucket can launch during that backward.
  void mark_final(const at::Tensor& param);

  void on_gradient(size_t param_index);  // called by the hooks

 private:
  struct Bucket {
    at::Tensor flat;
    at::Tensor shard;  // sharded: this rank's slice of the reduced buffer
    size_t ready = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };
  void fill(size_t bucket, size_t slot);
  void mark_ready(size_t param_index);
  void launch_ready();
  void launch(size_t bucket);

  ProcessGroup& pg_;
  bool shard_;
  std::vector<at::Tensor> params_;
  std::vector<GradientBucket> layout_;
  std::vector<ShardSlice> slices_;                // sharded: each parameter's elements this rank reduces
  std::vector<std::pair<size_t, size_t>> where_;  // param -> (bucket, slot)
  std::vector<bool> filled_;
  std::vector<Bucket> buckets_;
  size_t next_launch_ = 0;
  bool hooks_enabled_ = true;
};

// The trainer's data-parallel set-up: a GradientSync over `optimizer`'s parameters and groups (null on
// one rank); with `shard`, the optimizer is sharded to its layout and rank 0 logs its share of the moments.
std::unique_ptr<GradientSync> make_data_parallel(ProcessGroup* pg, AdamOptimizer& optimizer, bool shard);

}  // namespace siglip2
