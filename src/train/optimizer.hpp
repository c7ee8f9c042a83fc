#pragma once
// Adam with big_vision semantics (spec: recipe.md §6.1): clip by global norm, scale_by_adam, then
//   Δθ = −s(t) · (lr · adam_update + wd · θ)      (wd only on weight matrices; not multiplied by lr)
// where s(t) is the schedule multiplier (warm-up, then cosine / rsqrt / constant).
#include <ATen/core/Tensor.h>

#include <map>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "common/named_tensors.hpp"
#include "train/config.hpp"
#include "train/gradient_buckets.hpp"

namespace siglip2 {

class ProcessGroup;

// The schedule multiplier s(step) in [0, 1] for step = 0, 1, … (the first update uses step 0).
double schedule_multiplier(const ScheduleConfig& schedule, int64_t step, int64_t total_steps);

// big_vision's default decay mask: Dense/Conv kernels (every matrix, the patch embedding included),
// not biases, norms, embedding tables, position tables, the MAP probe, the mask token, t or b.
bool decays(const std::string& name, const at::Tensor& param);

struct OptimizerStepStats {
  double grad_norm = 0;  // global norm before clipping
  double clip_scale = 1;
};

class AdamOptimizer {
 public:
  // `will_shard`: moments are not allocated until shard() gives their slices (nor when state is loaded:
  // it is kept until then), so that a model that fits only sharded never holds them whole.
  AdamOptimizer(const OptimizerConfig& config, NamedTensors params, bool will_shard = false);
  // Parameters added later (the self-distillation heads at 80%) start with fresh moments.
  void add_parameters(const NamedTensors& params);
  // Applies one update from the current .grad() of every trainable parameter; missing grads count as 0.
  OptimizerStepStats step(double multiplier);
  void zero_grad();
  int64_t steps() const { return step_; }
  const NamedTensors& trainable() const { return params_; }
  // Moments as "exp_avg/<name>", "exp_avg_sq/<name>", plus "step": what optimizer.safetensors holds.
  NamedTensors state() const;
  // Restores moments by name (full tensors, as load_checkpoint assembles them from unsharded or sharded
  // checkpoints alike); names absent from `state` (new parameters) keep zero moments.
  void load_state(const std::map<std::string, at::Tensor>& state);

  // The trainable parameters in order, and where each add_parameters call's began: GradientSync's groups.
  std::vector<at::Tensor> parameter_tensors() const;
  const std::vector<size_t>& group_starts() const { return group_starts_; }

  // ZeRO stage 1 over `pg`'s ranks (DeepSpeed's optimizer-state partitioning; Marian's sharded
  // optimizer): from now on this rank keeps Adam moments only for its slice of each bucket of `layout`
  // (what GradientSync with shard = true reduces for it), about 1/W of them. step() then reads only those
  // elements of .grad, takes the global gradient norm over every rank's slices (one all-reduce), updates
  // its slices in place with the same fused AdamW, and all-gathers the parameters (one all-gather). Call
  // again after add_parameters (the new parameters' moments are then sliced; the others keep theirs).
  // state() is then this rank's slices, "exp_avg/NAME@START" (1-D), and "step".
  void shard(ProcessGroup& pg, const std::vector<GradientBucket>& layout);
  bool sharded() const { return pg_ != nullptr; }
  int64_t state_bytes() const;  // Adam moments held by this process

 private:
  struct Slice {
    int64_t start = 0, length = 0;
    bool sliced = false;  // moments hold [start, start + length) of the flattened parameter, else all of it
  };
  void gather_parameters();
  OptimizerConfig config_;
  std::vector<std::regex> frozen_;
  NamedTensors params_;  // trainable ones only
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;
  std::vector<bool> decay_;
  std::vector<at::Tensor> steps_;  // the fused kernel's per-tensor step counters (all equal step_)
  int64_t step_ = 0;
  std::vector<size_t> group_starts_;
  ProcessGroup* pg_ = nullptr;  // set by shard()
  std::vector<GradientBucket> layout_;
  std::vector<Slice> slices_;
  bool will_shard_ = false;
  std::vector<std::pair<at::Tensor, at::Tensor>> loaded_;  // will_shard: loaded moments until shard()
};

}  // namespace siglip2
