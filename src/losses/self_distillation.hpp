#pragma once
// Self-distillation from 80% of training (spec: recipe.md §4, ssl_locca.md §2–3): an EMA teacher of
// the vision tower; a global-local consistency loss (SILC: the teacher sees the global view, the
// student 8 local crops) on the pooled representation, and a masked-prediction loss (TIPS: the
// student sees the global view with half its patch embeddings replaced by a mask token) on per-patch
// features. Both are DINO-style cross-entropies between the teacher's centred, sharpened prototype
// distribution and the student's.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <string>

#include "common/collectives.hpp"
#include "common/config.hpp"
#include "common/named_tensors.hpp"
#include "models/config.hpp"
#include "models/siglip2.hpp"

namespace siglip2 {

// Values the papers leave open are DINO / iBOT / SILC defaults; each is named where it is set.
struct SelfDistillationConfig {
  int64_t prototypes = 65536;               // DINO --out_dim
  int64_t head_hidden = 2048;               // DINO head: 3 layers, hidden 2048
  int64_t head_bottleneck = 256;            // DINO head bottleneck
  double student_temperature = 0.1;         // DINO
  double teacher_temperature = 0.07;        // DINO, after warm-up
  double teacher_temperature_start = 0.04;  // DINO warm-up start
  int64_t teacher_temperature_warmup = 0;   // steps after the phase starts (0 = none)
  double center_momentum = 0.9;             // DINO
  double ema_momentum = 0.996;              // DINO's base value, held fixed as SILC requires
  double mask_ratio = 0.5;                  // SigLIP 2: 50% of the patches
  double global_local_weight = 1.0;         // SigLIP 2
  double masked_weight = 0.25;              // SigLIP 2
  double size_factor = 0.25;                // SigLIP 2: B 0.25, L 0.5, So400m 1.0, g 0.5

  template <class V>
  void visit(V& v) {
    using config::greater_than;
    using config::in_range;
    v("prototypes", prototypes, "prototype count K of each head (DINO: 65536)", greater_than<int64_t>(1));
    v("head_hidden", head_hidden, "hidden width of the 3-layer head MLP (DINO: 2048)", greater_than<int64_t>(0));
    v("head_bottleneck", head_bottleneck, "bottleneck width before the prototypes (DINO: 256)",
      greater_than<int64_t>(0));
    v("student_temperature", student_temperature, "student softmax temperature (DINO: 0.1)", greater_than(0.0));
    v("teacher_temperature", teacher_temperature, "teacher softmax temperature after warm-up (DINO: 0.07)",
      greater_than(0.0));
    v("teacher_temperature_start", teacher_temperature_start, "teacher temperature at the phase start (DINO: 0.04)",
      greater_than(0.0));
    v("teacher_temperature_warmup", teacher_temperature_warmup, "steps of linear teacher-temperature warm-up",
      config::at_least<int64_t>(0));
    v("center_momentum", center_momentum, "momentum of the teacher centre (DINO: 0.9)", in_range(0.0, 1.0));
    v("ema_momentum", ema_momentum, "fixed EMA momentum of the teacher (SILC: fixed; value DINO's base 0.996)",
      in_range(0.0, 1.0));
    v("mask_ratio", mask_ratio, "fraction of student patches replaced by the mask token (SigLIP 2: 0.5)",
      in_range(0.0, 1.0));
    v("global_local_weight", global_local_weight, "weight of the global-local loss (SigLIP 2: 1)",
      config::at_least(0.0));
    v("masked_weight", masked_weight, "weight of the masked-prediction loss (SigLIP 2: 0.25)", config::at_least(0.0));
    v("size_factor", size_factor, "both weights are multiplied by this (SigLIP 2: B 0.25, L 0.5, So400m 1, g 0.5)",
      config::at_least(0.0));
  }
};

// DINO head: 3-layer MLP with GELU, L2 normalisation, then cosine similarity with K prototypes
// (DINO's weight-normalised last layer with its norm fixed to 1).
struct DinoHeadImpl : torch::nn::Module {
  DinoHeadImpl(int64_t in, int64_t hidden, int64_t bottleneck, int64_t prototypes);
  at::Tensor forward(const at::Tensor& x);  // [N, in] -> [N, K] logits in [-1, 1]
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
  at::Tensor prototypes;  // [K, bottleneck]
};
TORCH_MODULE(DinoHead);

// The student-side parameters of the phase, registered under "self_distillation.": two heads and the mask token.
struct SelfDistillationHeadsImpl : torch::nn::Module {
  SelfDistillationHeadsImpl(const VisionConfig& vision, const SelfDistillationConfig& c);
  DinoHead global_head{nullptr}, patch_head{nullptr};
  at::Tensor mask_token;  // [D]
};
TORCH_MODULE(SelfDistillationHeads);

// The teacher: EMA copies of the student's vision tower and heads. Never receives gradients.
class EmaTeacher {
 public:
  EmaTeacher(VisionTransformerImpl& student, SelfDistillationHeadsImpl& heads, const ModelConfig& model,
             const SelfDistillationConfig& c);
  // teacher = m * teacher + (1 - m) * student, parameter by parameter.
  void update(VisionTransformerImpl& student, SelfDistillationHeadsImpl& heads, double momentum);
  VisionTransformer vision{nullptr};
  SelfDistillationHeads heads{nullptr};
  NamedTensors named_parameters() const;  // "vision_model.*", "self_distillation.*"
};

// DINO cross-entropy: mean over rows of -Σ_k softmax((t - c)/τt)_k log softmax(s/τs)_k. teacher rows
// are matched to student rows by `student_to_teacher` (row i of student uses teacher row map[i]).
at::Tensor dino_cross_entropy(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                              const at::Tensor& student_to_teacher, const at::Tensor& center, double student_temp,
                              double teacher_temp);

struct SelfDistillationLosses {
  at::Tensor global_local, masked, total;  // total = size_factor * (w1 * global_local + w2 * masked)
  int64_t global_local_rows = 0;           // the rows each mean is over: local crops, masked patches
  int64_t masked_rows = 0;
};

// The teacher's logits summed over rows, for a centre update deferred to the end of an accumulated
// step (one update from the whole batch, as without accumulation). Sums are [K], float32.
struct TeacherLogitSums {
  at::Tensor global, patch;
  int64_t global_rows = 0, patch_rows = 0;
};

class SelfDistillation {
 public:
  explicit SelfDistillation(const SelfDistillationConfig& c);
  double teacher_temperature(int64_t step_in_phase) const;
  // pixel_values: the global views, [B, 3, H, W] at the tower's resolution; local_views: [B * n, 3, h, w]
  // (n local crops per image, image-major: crops of image 0 first); bool_masked_pos [B, S]: true = the
  // student sees the mask token there (src/data/patch_mask.hpp draws it).
  // The centres are updated from this batch's teacher logits (over all ranks, one collective), after
  // the losses used them; with `deferred_centers` the logits are added there instead and nothing is
  // updated until update_centers().
  SelfDistillationLosses forward(VisionTransformerImpl& student, SelfDistillationHeadsImpl& heads, EmaTeacher& teacher,
                                 const at::Tensor& pixel_values, const at::Tensor& local_views,
                                 const at::Tensor& bool_masked_pos, int64_t step_in_phase, Collectives* comm,
                                 TeacherLogitSums* deferred_centers = nullptr);
  // The centre update of forward() from logits summed over several calls (one collective with ranks).
  void update_centers(const TeacherLogitSums& sums, Collectives* comm);
  // size_factor * (global_local_weight * global_local + masked_weight * masked).
  at::Tensor weighted_total(const at::Tensor& global_local, const at::Tensor& masked) const;
  at::Tensor center_global, center_patch;  // [K] running means of the teacher's logits (saved in checkpoints)

 private:
  void update_center(at::Tensor& center, const at::Tensor& row_sum, int64_t rows, Collectives* comm);
  SelfDistillationConfig config_;
};

}  // namespace siglip2
