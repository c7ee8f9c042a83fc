#include "train/model.hpp"

#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "common/error.hpp"
#include "common/logging.hpp"
#include "train/bench.hpp"

namespace siglip2 {

NamedTensors TrainingModel::parameters() const {
  NamedTensors out;
  for (const auto& p : towers->named_parameters()) out.emplace_back(p.key(), p.value());
  if (decoder)
    for (const auto& p : decoder->named_parameters()) out.emplace_back("text_decoder." + p.key(), p.value());
  if (self_distillation_heads)
    for (const auto& p : self_distillation_heads->named_parameters())
      out.emplace_back("self_distillation." + p.key(), p.value());
  return out;
}

NamedTensors TrainingModel::teacher_tensors() const {
  NamedTensors out;
  if (!teacher) return out;
  out = teacher->named_parameters();
  out.emplace_back("self_distillation.center_global", self_distillation->center_global);
  out.emplace_back("self_distillation.center_patch", self_distillation->center_patch);
  return out;
}

StepModules TrainingModel::step_modules() {
  StepModules m{towers.get(), decoder ? decoder.get() : nullptr};
  if (self_distillation && self_distillation_heads && teacher) {
    m.self_distillation = self_distillation.get();
    m.self_distillation_heads = self_distillation_heads.get();
    m.teacher = teacher.get();
  }
  return m;
}

NamedTensors TrainingModel::start_self_distillation(const RunConfig& config, uint64_t seed) {
  const c10::Device device = towers->logit_scale.device();
  torch::manual_seed(seed + 80);
  self_distillation_heads = SelfDistillationHeads(config.model.vision, config.loss.self_distillation);
  self_distillation_heads->to(device);
  self_distillation = std::make_unique<SelfDistillation>(config.loss.self_distillation);
  self_distillation->center_global = self_distillation->center_global.to(device);
  self_distillation->center_patch = self_distillation->center_patch.to(device);
  teacher = std::make_unique<EmaTeacher>(*towers->vision_model, *self_distillation_heads, config.model,
                                         config.loss.self_distillation);
  teacher->vision->to(device);
  teacher->heads->to(device);
  NamedTensors heads;
  for (const auto& p : self_distillation_heads->named_parameters())
    heads.emplace_back("self_distillation." + p.key(), p.value());
  return heads;
}

TrainingDevice choose_training_device(const TrainConfig& train, int local_rank) {
  const bool cuda_ok = torch::cuda::is_available();
  if (train.device == "cuda" && !cuda_ok)
    throw ConfigError("train.device: cuda, but this process sees no GPU (or the build has no CUDA)");
  const bool cuda = train.device == "cuda" || (train.device == "auto" && cuda_ok);
  if (cuda && local_rank >= static_cast<int>(torch::cuda::device_count()))
    throw ConfigError(fmt::format("local rank {} has no GPU: {} visible", local_rank, torch::cuda::device_count()));
  TrainingDevice d;
  d.device = cuda ? c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank)) : c10::Device(c10::kCPU);
  d.bf16 = train.precision == "bf16" || (train.precision == "auto" && cuda);
  if (cuda) d.peak_flops = device_peak_flops(cuda_device_name(local_rank));
  if (cuda || d.bf16)
    log_info(fmt::format("device {}, {}", d.device.str(), d.bf16 ? "bf16 autocast, fp32 weights" : "fp32"));
  return d;
}

TrainingModel build_training_model(const RunConfig& config, bool locca, uint64_t seed, const c10::Device& device,
                                   const NamedTensors& init, const std::string& init_source) {
  TrainingModel m;
  torch::manual_seed(seed);
  m.towers = Siglip2Model(config.model);
  m.towers->reset_parameters(seed);
  {
    torch::NoGradGuard g;
    m.towers->logit_scale.fill_(config.train.logit_scale_init);
    m.towers->logit_bias.fill_(config.train.logit_bias_init);
  }
  if (!init.empty()) {
    NamedTensors towers;
    for (const auto& p : m.towers->named_parameters()) towers.emplace_back(p.key(), p.value());
    load_named(towers, std::map<std::string, at::Tensor>(init.begin(), init.end()), init_source);
  }
  m.towers->to(device);
  if (locca) {
    m.decoder = TextDecoder(config.model);
    m.decoder->to(device);
  }
  const ActivationCheckpointing recompute{config.train.checkpoint_every_n_blocks()};
  m.towers->vision_model->encoder->checkpointing = recompute;
  m.towers->text_model->encoder->checkpointing = recompute;
  if (m.decoder) m.decoder->checkpointing = recompute;
  if (recompute.every_n == 1)
    log_info("activation checkpointing: every transformer block recomputes in backward");
  else if (recompute.every_n > 1)
    log_info(fmt::format("activation checkpointing: blocks 0, {0}, {1}, ... recompute in backward", recompute.every_n,
                         2 * recompute.every_n));
  return m;
}

void load_named(const NamedTensors& dst, const std::map<std::string, at::Tensor>& src, const std::string& what) {
  torch::NoGradGuard g;
  for (const auto& [name, t] : dst) {
    auto it = src.find(name);
    if (it == src.end()) throw Error(what + ": tensor '" + name + "' is missing");
    if (!it->second.sizes().equals(t.sizes()))
      throw Error(what + ": tensor '" + name + "' has shape " + c10::str(it->second.sizes()) + ", the model " +
                  c10::str(t.sizes()));
    t.copy_(it->second);
  }
}

}  // namespace siglip2
