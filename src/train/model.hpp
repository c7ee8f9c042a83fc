#pragma once
// The model a run trains, assembled in one place for `siglip2 train`, `siglip2 bench` and
// `siglip2 caption`: the two towers (HF names), the LocCa decoder ("text_decoder.…") and, from the
// self-distillation phase on, its heads and mask token ("self_distillation.…"), the EMA teacher and the centres
// (DESIGN.md §3 names the checkpoint files these go to).
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/named_tensors.hpp"
#include "losses/self_distillation.hpp"
#include "models/siglip2.hpp"
#include "models/text_decoder.hpp"
#include "train/config.hpp"
#include "train/step.hpp"

namespace siglip2 {

struct TrainingModel {
  Siglip2Model towers{nullptr};
  TextDecoder decoder{nullptr};                            // null: train.locca off
  SelfDistillationHeads self_distillation_heads{nullptr};  // null until self-distillation starts
  std::unique_ptr<EmaTeacher> teacher;
  std::unique_ptr<SelfDistillation> self_distillation;

  // What the optimizer updates, under checkpoint names (model.safetensors): towers, decoder, heads.
  NamedTensors parameters() const;
  // The teacher and the two centres (teacher.safetensors); empty before self-distillation.
  NamedTensors teacher_tensors() const;
  // The modules a training step runs: the self-distillation ones once the phase has started.
  StepModules step_modules();
  // Starts the phase on the towers' device: heads and mask token drawn from `seed` + 80 (the same on every
  // rank and in every rerun), the teacher a copy of the student's vision tower and heads, centres at zero.
  // Returns the new parameters ("self_distillation.…") for the optimizer.
  NamedTensors start_self_distillation(const RunConfig& config, uint64_t seed);
};

// Where a rank trains. train.device auto: this rank's GPU (LOCAL_RANK) when CUDA is available, else the
// CPU; train.precision auto: bf16 autocast on CUDA, fp32 on the CPU. Throws ConfigError for cuda without a
// GPU, or a local rank without one.
struct TrainingDevice {
  c10::Device device{c10::kCPU};
  bool bf16 = false;
  double peak_flops = 0;  // dense bf16 peak of the GPU (0: unknown or CPU)
};
TrainingDevice choose_training_device(const TrainConfig& train, int local_rank);

// The towers with the HF initialisation drawn from `seed`, logit scale and bias from train.logit_*_init,
// then overwritten by `init` when given (train.init_from; HF names, every tower tensor required); the
// decoder when `locca`. Everything on `device`. The random draws do not depend on `init`, so a run from
// an initialisation and one from scratch draw the same decoder.
TrainingModel build_training_model(const RunConfig& config, bool locca, uint64_t seed, const c10::Device& device,
                                   const NamedTensors& init = {}, const std::string& init_source = "");

// Copies `src` into `dst` by name. Throws Error("WHAT: tensor 'NAME' is missing" / "… has shape …").
void load_named(const NamedTensors& dst, const std::map<std::string, at::Tensor>& src, const std::string& what);

}  // namespace siglip2
