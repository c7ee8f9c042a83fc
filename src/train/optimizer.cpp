#include "train/optimizer.hpp"

#include <torch/torch.h>

#include <cmath>

#include "common/error.hpp"

namespace siglip2 {

double schedule_multiplier(const ScheduleConfig& s, int64_t step, int64_t total_steps) {
  double t = static_cast<double>(step);
  double total = static_cast<double>(total_steps);
  if (s.stretch_factor != 1.0) {
    // A branch run (SigLIP 2's NaFlex stage): the schedule of a run of length T is followed up to
    // stretch_from * T, then advances stretch_factor times more slowly. total_steps is the branch's end,
    // a*T + f*(1 - a)*T, which gives T.
    const double a = s.stretch_from, f = s.stretch_factor;
    total = total / (a + f * (1.0 - a));
    if (t > a * total) t = a * total + (t - a * total) / f;
  }
  const double warmup = static_cast<double>(s.warmup_steps);
  double m = warmup > 0 ? std::min(1.0, t / warmup) : 1.0;
  if (s.type == "cosine") {
    double span = std::max(1.0, total - warmup);
    double progress = std::clamp((t - warmup) / span, 0.0, 1.0);
    m *= s.end_fraction + (1.0 - s.end_fraction) * 0.5 * (1.0 + std::cos(M_PI * progress));
  } else if (s.type == "rsqrt") {
    // Inverse square root decay after warm-up, with the warm-up length as time scale.
    double scale = std::max(1.0, warmup);
    m *= std::sqrt(scale / std::max(scale, t));
  } else if (s.type != "constant") {
    throw ConfigError("schedule.type: unknown schedule '" + s.type + "'");
  }
  return m;
}

bool decays(const std::string& name, const at::Tensor& p) {
  if (p.dim() < 2) return false;
  for (const char* skip : {"token_embedding", "position_embedding", "probe", "mask_token"})
    if (name.find(skip) != std::string::npos) return false;
  return true;
}

AdamOptimizer::AdamOptimizer(const OptimizerConfig& config, NamedTensors params) : config_(config) {
  for (const auto& pattern : config.frozen) {
    try {
      frozen_.emplace_back(pattern);
    } catch (const std::regex_error& e) {
      throw ConfigError("optimizer.frozen: '" + pattern + "' is not a valid regular expression: " + e.what());
    }
  }
  add_parameters(params);
}

void AdamOptimizer::add_parameters(const NamedTensors& params) {
  for (const auto& [name, p] : params) {
    bool frozen = false;
    for (const auto& re : frozen_) frozen = frozen || std::regex_search(name, re);
    if (frozen) {
      p.set_requires_grad(false);
      continue;
    }
    params_.emplace_back(name, p);
    exp_avg_.push_back(at::zeros_like(p));
    exp_avg_sq_.push_back(at::zeros_like(p));
    decay_.push_back(decays(name, p));
    steps_.push_back(at::full({}, static_cast<double>(step_), p.options().dtype(at::kFloat)));
  }
}

void AdamOptimizer::zero_grad() {
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad().reset();
}

OptimizerStepStats AdamOptimizer::step(double multiplier) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> grads, params;
  grads.reserve(params_.size());
  for (auto& [name, p] : params_) {
    grads.push_back(p.grad().defined() ? p.grad() : at::zeros_like(p));
    params.push_back(p);
  }
  OptimizerStepStats stats;
  if (grads.empty()) return stats;
  // Global norm in float32 even for bf16 gradients; one host sync per step.
  std::vector<at::Tensor> norms = at::_foreach_norm(grads, 2);
  at::Tensor total = at::stack(norms).to(at::kFloat).norm();
  stats.grad_norm = total.item<double>();
  if (config_.grad_clip_norm > 0 && stats.grad_norm >= config_.grad_clip_norm) {
    stats.clip_scale = config_.grad_clip_norm / stats.grad_norm;  // optax clip_by_global_norm
    at::_foreach_mul_(grads, stats.clip_scale);                   // in place: .grad is scratch after a step
  }
  ++step_;
  at::_foreach_add_(steps_, 1.0);  // the kernel reads the step count, it does not advance it
  // One fused pass per group (torch's fused AdamW kernel: moments, bias correction and the update in
  // place). big_vision's Δθ = −s·(lr·u + wd·θ) is AdamW with lr·s and weight decay wd/lr.
  const double lr = config_.lr * multiplier;
  for (bool decayed : {true, false}) {
    std::vector<at::Tensor> p, g, m, v, t;
    for (size_t i = 0; i < params.size(); ++i) {
      if (decay_[i] != decayed) continue;
      p.push_back(params[i]);
      g.push_back(grads[i]);
      m.push_back(exp_avg_[i]);
      v.push_back(exp_avg_sq_[i]);
      t.push_back(steps_[i]);
    }
    if (p.empty()) continue;
    double wd = decayed ? config_.weight_decay : 0.0;
    if (wd != 0 && config_.lr == 0) {  // decay without a learning rate: not expressible as AdamW
      at::_foreach_mul_(p, 1.0 - wd * multiplier);
      wd = 0;
    }
    at::_fused_adamw_(p, g, m, v, {}, t, lr, config_.beta1, config_.beta2, wd == 0 ? 0.0 : wd / config_.lr, config_.eps,
                      /*amsgrad=*/false, /*maximize=*/false);
  }
  return stats;
}

NamedTensors AdamOptimizer::state() const {
  NamedTensors out;
  out.emplace_back("step", at::full({1}, step_, at::kLong));
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back("exp_avg/" + params_[i].first, exp_avg_[i]);
    out.emplace_back("exp_avg_sq/" + params_[i].first, exp_avg_sq_[i]);
  }
  return out;
}

void AdamOptimizer::load_state(const std::map<std::string, at::Tensor>& state) {
  torch::NoGradGuard no_grad;
  auto it = state.find("step");
  if (it == state.end()) throw Error("optimizer state has no 'step'");
  step_ = it->second.item<int64_t>();
  for (auto& t : steps_) t.fill_(static_cast<double>(step_));
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto [prefix, dst] : {std::pair<const char*, at::Tensor*>{"exp_avg/", &exp_avg_[i]},
                               std::pair<const char*, at::Tensor*>{"exp_avg_sq/", &exp_avg_sq_[i]}}) {
      auto s = state.find(prefix + params_[i].first);
      if (s == state.end()) continue;
      if (!s->second.sizes().equals(dst->sizes()))
        throw Error("optimizer state '" + s->first + "' has shape " + c10::str(s->second.sizes()) + ", the parameter " +
                    c10::str(dst->sizes()));
      dst->copy_(s->second);
    }
  }
}

}  // namespace siglip2
