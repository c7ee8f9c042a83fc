#pragma once
// Data-parallel gradient averaging that overlaps with backward, as PyTorch's DDP does: parameters
// are grouped into buckets in reverse order (the last layers' gradients are ready first); a hook
// copies each gradient into its bucket as soon as it is accumulated, and a full bucket is all-reduced
// asynchronously while backward goes on. finish() launches what is left, waits, and writes the
// averaged gradients back.
#include <ATen/core/Tensor.h>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/named_tensors.hpp"
#include "train/distributed.hpp"

namespace siglip2 {

class GradientSync {
 public:
  GradientSync(ProcessGroup& pg, const NamedTensors& params, int64_t bucket_bytes = 25 << 20,
               int64_t first_bucket_bytes = 1 << 20);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Call after backward on every rank: every parameter then holds the mean of its gradient over
  // ranks (a parameter that got no gradient anywhere gets zeros).
  void finish();
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }

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
    std::vector<size_t> params;
    std::vector<int64_t> offsets;
    size_t ready = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };
  void fill(Bucket& b, size_t slot);
  void mark_ready(size_t param_index);
  void launch_ready();
  void launch(Bucket& b);

  ProcessGroup& pg_;
  std::vector<at::Tensor> params_;
  std::vector<std::pair<size_t, size_t>> where_;  // param -> (bucket, slot)
  std::vector<bool> filled_;
  std::vector<Bucket> buckets_;
  size_t next_launch_ = 0;
  bool hooks_enabled_ = true;
};

}  // namespace siglip2
