#include "losses/self_distillation.hpp"

#include <torch/torch.h>

#include <cmath>

namespace siglip2 {
namespace {

// Normal(0, std) truncated at ±2 std (DINO's trunc_normal_), by inverting the CDF of a uniform draw.
void trunc_normal(at::Tensor t, double std) {
  const double lo = 0.5 * std::erfc(std::sqrt(2.0));  // Φ(-2)
  t.uniform_(lo, 1.0 - lo).mul_(2.0).sub_(1.0).erfinv_().mul_(std * std::sqrt(2.0));
}

}  // namespace

DinoHeadImpl::DinoHeadImpl(int64_t in, int64_t hidden, int64_t bottleneck, int64_t k) {
  fc1 = register_module("fc1", torch::nn::Linear(in, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, hidden));
  fc3 = register_module("fc3", torch::nn::Linear(hidden, bottleneck));
  prototypes = register_parameter("prototypes", torch::empty({k, bottleneck}));
  // DINO: truncated normal std 0.02 for the MLP, zero biases.
  torch::NoGradGuard g;
  for (auto* l : {&fc1, &fc2, &fc3}) {
    trunc_normal((*l)->weight, 0.02);
    (*l)->bias.zero_();
  }
  torch::nn::init::kaiming_uniform_(prototypes, std::sqrt(5.0));
}

at::Tensor DinoHeadImpl::forward(const at::Tensor& x) {
  at::Tensor z = fc3(at::gelu(fc2(at::gelu(fc1(x)))));
  z = z / z.norm(2, -1, true).clamp_min(1e-6);
  at::Tensor p = prototypes / prototypes.norm(2, -1, true).clamp_min(1e-6);
  return at::matmul(z, p.t());
}

SelfDistillationHeadsImpl::SelfDistillationHeadsImpl(const VisionConfig& v, const SelfDistillationConfig& c) {
  global_head = register_module("global_head", DinoHead(v.hidden_size, c.head_hidden, c.head_bottleneck, c.prototypes));
  patch_head = register_module("patch_head", DinoHead(v.hidden_size, c.head_hidden, c.head_bottleneck, c.prototypes));
  mask_token = register_parameter("mask_token", torch::zeros({v.hidden_size}));
  torch::NoGradGuard g;
  trunc_normal(mask_token, 0.02);
}

EmaTeacher::EmaTeacher(VisionTransformerImpl& student, SelfDistillationHeadsImpl& student_heads,
                       const ModelConfig& model, const SelfDistillationConfig& c) {
  vision = VisionTransformer(model.vision);
  heads = SelfDistillationHeads(model.vision, c);
  torch::NoGradGuard g;
  auto copy = [](torch::nn::Module& dst, torch::nn::Module& src) {
    auto s = src.named_parameters();
    for (auto& p : dst.named_parameters()) {
      p.value().copy_(s[p.key()]);
      p.value().set_requires_grad(false);
    }
  };
  copy(*vision, student);
  copy(*heads, student_heads);
  vision->to(student.post_layernorm->weight.device());
  heads->to(student.post_layernorm->weight.device());
  vision->eval();
}

void EmaTeacher::update(VisionTransformerImpl& student, SelfDistillationHeadsImpl& student_heads, double m) {
  torch::NoGradGuard g;
  auto ema = [m](torch::nn::Module& dst, torch::nn::Module& src) {
    std::vector<at::Tensor> t, s;
    auto sp = src.named_parameters();
    for (auto& p : dst.named_parameters()) {
      t.push_back(p.value());
      s.push_back(sp[p.key()].detach());
    }
    at::_foreach_lerp_(t, s, 1.0 - m);  // t + (1 - m)(s - t) = m t + (1 - m) s
  };
  ema(*vision, student);
  ema(*heads, student_heads);
}

NamedTensors EmaTeacher::named_parameters() const {
  NamedTensors out;
  for (const auto& p : vision->named_parameters()) out.emplace_back("vision_model." + p.key(), p.value());
  for (const auto& p : heads->named_parameters()) out.emplace_back("self_distillation." + p.key(), p.value());
  return out;
}

at::Tensor dino_cross_entropy(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                              const at::Tensor& student_to_teacher, const at::Tensor& center, double student_temp,
                              double teacher_temp) {
  // In at least float32: bf16 probabilities over 65k prototypes are too coarse.
  const auto acc = at::promote_types(student_logits.scalar_type(), at::kFloat);
  at::Tensor t = at::softmax((teacher_logits.detach().to(acc) - center.to(acc)) / teacher_temp, -1);
  at::Tensor target = student_to_teacher.defined() ? t.index_select(0, student_to_teacher) : t;
  at::Tensor log_s = at::log_softmax(student_logits.to(acc) / student_temp, -1);
  return -(target * log_s).sum(-1).mean();
}

SelfDistillation::SelfDistillation(const SelfDistillationConfig& c) : config_(c) {
  center_global = at::zeros({c.prototypes});
  center_patch = at::zeros({c.prototypes});
}

double SelfDistillation::teacher_temperature(int64_t step) const {
  if (config_.teacher_temperature_warmup <= 0 || step >= config_.teacher_temperature_warmup)
    return config_.teacher_temperature;
  double f = static_cast<double>(step) / static_cast<double>(config_.teacher_temperature_warmup);
  return config_.teacher_temperature_start + f * (config_.teacher_temperature - config_.teacher_temperature_start);
}

void SelfDistillation::update_center(at::Tensor& center, const at::Tensor& row_sum, int64_t rows, Collectives* comm) {
  torch::NoGradGuard g;
  // The batch mean over all ranks, so every rank keeps the same centre.
  at::Tensor stats =
      at::cat({row_sum.to(center.scalar_type()), at::full({1}, static_cast<double>(rows), center.options())});
  if (comm && comm->world_size() > 1) comm->all_reduce_sum(stats);
  at::Tensor mean = stats.narrow(0, 0, center.size(0)) / stats[center.size(0)];
  center.mul_(config_.center_momentum).add_(mean.to(center.device()), 1.0 - config_.center_momentum);
}

void SelfDistillation::update_centers(const TeacherLogitSums& sums, Collectives* comm) {
  TORCH_CHECK(sums.global.defined() && sums.patch.defined(), "update_centers: no teacher logits were summed");
  update_center(center_global, sums.global, sums.global_rows, comm);
  update_center(center_patch, sums.patch, sums.patch_rows, comm);
}

at::Tensor SelfDistillation::weighted_total(const at::Tensor& global_local, const at::Tensor& masked) const {
  return config_.size_factor * (config_.global_local_weight * global_local + config_.masked_weight * masked);
}

SelfDistillationLosses SelfDistillation::forward(VisionTransformerImpl& student, SelfDistillationHeadsImpl& heads,
                                                 EmaTeacher& teacher, const at::Tensor& pixel_values,
                                                 const at::Tensor& local_views, const at::Tensor& bool_masked_pos,
                                                 int64_t step, Collectives* comm, TeacherLogitSums* deferred_centers) {
  const int64_t b = pixel_values.size(0);
  TORCH_CHECK(local_views.size(0) % b == 0,
              "local_views must hold the same number of crops for every image of pixel_values");
  const int64_t crops = local_views.size(0) / b;
  const double tt = teacher_temperature(step), ts = config_.student_temperature;
  if (center_global.device() != pixel_values.device()) {
    center_global = center_global.to(pixel_values.device());
    center_patch = center_patch.to(pixel_values.device());
  }

  at::Tensor t_global, t_patch, masked_index;
  {
    torch::NoGradGuard g;
    VisionOutput t = teacher.vision->forward({pixel_values, {}, {}});
    t_global = teacher.heads->global_head(t.pooler_output);
    masked_index = bool_masked_pos.reshape(-1).nonzero().squeeze(1).to(pixel_values.device());
    t_patch = teacher.heads->patch_head(
        t.last_hidden_state.reshape({-1, t.last_hidden_state.size(2)}).index_select(0, masked_index));
  }

  VisionInput local_in{local_views, {}, {}};
  local_in.resize_positions = true;
  at::Tensor s_local = heads.global_head(student.forward(local_in).pooler_output);
  at::Tensor crop_owner =
      at::arange(b, at::TensorOptions().dtype(at::kLong).device(pixel_values.device())).repeat_interleave(crops);
  SelfDistillationLosses out;
  out.global_local = dino_cross_entropy(s_local, t_global, crop_owner, center_global, ts, tt);

  VisionInput masked_in{pixel_values, {}, {}};
  masked_in.bool_masked_pos = bool_masked_pos.to(pixel_values.device());
  masked_in.mask_token = heads.mask_token;
  VisionOutput s = student.forward(masked_in);
  at::Tensor s_patch =
      heads.patch_head(s.last_hidden_state.reshape({-1, s.last_hidden_state.size(2)}).index_select(0, masked_index));
  out.masked = dino_cross_entropy(s_patch, t_patch, {}, center_patch, ts, tt);

  out.global_local_rows = s_local.size(0);
  out.masked_rows = s_patch.size(0);
  {
    torch::NoGradGuard g;
    at::Tensor global_sum = t_global.detach().to(center_global.scalar_type()).sum(0);
    at::Tensor patch_sum = t_patch.detach().to(center_patch.scalar_type()).sum(0);
    if (deferred_centers) {
      TeacherLogitSums& d = *deferred_centers;
      d.global = d.global.defined() ? d.global + global_sum : global_sum;
      d.patch = d.patch.defined() ? d.patch + patch_sum : patch_sum;
      d.global_rows += t_global.size(0);
      d.patch_rows += t_patch.size(0);
    } else {
      update_center(center_global, global_sum, t_global.size(0), comm);
      update_center(center_patch, patch_sum, t_patch.size(0), comm);
    }
  }
  out.total = weighted_total(out.global_local, out.masked);
  return out;
}

}  // namespace siglip2
