#pragma once
// The forward half of a training step, shared by the trainer and `siglip2 bench`: the towers (and the
// decoder and self-distillation heads) under bf16 autocast when asked, then the losses in fp32.
#include <ATen/core/Tensor.h>

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/named_tensors.hpp"
#include "train/batch.hpp"
#include "train/config.hpp"

namespace siglip2 {

class Collectives;
struct Siglip2ModelImpl;
struct TextDecoderImpl;
struct SelfDistillationHeadsImpl;
class SelfDistillation;
class EmaTeacher;
class GradientSync;

struct StepModules {
  Siglip2ModelImpl* towers = nullptr;
  TextDecoderImpl* decoder = nullptr;  // null: no LocCa loss
  // All three set: the self-distillation losses (from 80% of training).
  SelfDistillation* self_distillation = nullptr;
  SelfDistillationHeadsImpl* self_distillation_heads = nullptr;
  EmaTeacher* teacher = nullptr;
};

struct StepLosses {
  at::Tensor total;  // what backward starts from (fp32 scalar)
  // Each term as an fp32 scalar under its metric name, in order: "sigmoid", "locca" (train.locca),
  // "global_local" and "masked" (self-distillation, before their weights); a term that is off is
  // absent. Values are this rank's: the trainer averages them over ranks for its logs.
  NamedTensors terms;
};

// The total (`total`, which may differ from l.total by an injected fault) and every term of `l`, averaged
// over ranks in one collective: ("loss", mean), then the terms in order. What logs and the spike
// detector see is the global loss, not this rank's. `comm` null: this process's values.
std::vector<std::pair<std::string, double>> mean_losses_over_ranks(const at::Tensor& total, const StepLosses& l,
                                                                   Collectives* comm);

// The step at `fraction` of a run of `total` steps, round(fraction × total): where the recipe's phases
// by progress start (self-distillation at 80%, phase checkpoints).
int64_t progress_step(double fraction, int64_t total);

// A model whose pooled embeddings pooled_embeddings() computes; `image_size` > 0 and different from the
// pixels' side: they are resized to it first (bilinear, antialiased; fixed resolution only).
struct EmbeddingModel {
  Siglip2ModelImpl* model = nullptr;
  int64_t image_size = 0;
};

// The pooled image and text embeddings of `parts` (float32 [n, E] each over all parts, not normalised) for
// every model of `models`, without gradients: each part's tower inputs go to `device` once and through every
// model, under bf16 autocast when `bf16`. GradCache's cached embeddings (accumulate_gradients) and ACID's
// scoring (train/acid_stage.hpp) both run this.
std::vector<std::pair<at::Tensor, at::Tensor>> pooled_embeddings(const std::vector<EmbeddingModel>& models,
                                                                 const std::vector<Batch>& parts, bool bf16,
                                                                 const c10::Device& device);

// `self_distillation_step`: steps since self-distillation started (the teacher temperature's warm-up).
StepLosses training_losses(const StepModules& m, const Batch& batch, const RunConfig& config,
                           int64_t self_distillation_step, bool bf16, Collectives* comm);

// The gradients of one optimizer step taken over `micro_batches` micro-batches of this rank's `batch`
// (GradCache, as open_clip's --accum-freq), so that the sigmoid loss keeps every negative of the
// global batch:
//   1. a no-grad forward of the towers per micro-batch caches the image and text embeddings;
//   2. the sigmoid loss of the whole global batch over the cached embeddings (all micro-batches, all
//      ranks) gives their gradients, and logit_scale's and logit_bias's;
//   3. per micro-batch, the towers again with gradients, backward from the cached embeddings' gradients
//      plus that micro-batch's LocCa and self-distillation losses normalised by the whole batch (LocCa:
//      the batch's counted tokens; self-distillation: its rows). The teacher centres are updated once,
//      from the whole batch, after the last micro-batch.
// The summed gradients are left in .grad: the gradients of training_losses(batch).total, up to rounding.
// `sync` (null for one process) only launches its reductions during the last micro-batch's backward,
// and is finished here (the gradients are then averaged over ranks). `batch` may live on the host: each micro-batch is
// moved to `device` when used. `after_micro_batch(i)` runs after micro-batch i's backward. Returns the losses, detached
// (the terms as training_losses names them). The towers must have no dropout: step 3 recomputes step 1's embeddings and
// relies on getting the same values.
StepLosses accumulate_gradients(const StepModules& m, const Batch& batch, int64_t micro_batches,
                                const RunConfig& config, int64_t self_distillation_step, bool bf16,
                                const c10::Device& device, Collectives* comm, GradientSync* sync,
                                const std::function<void(int64_t)>& after_micro_batch = {});

}  // namespace siglip2
