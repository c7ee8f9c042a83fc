#include "train/optimizer.hpp"

#include <torch/torch.h>

#include <cmath>

#include "common/error.hpp"
#include "train/distributed.hpp"

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

AdamOptimizer::AdamOptimizer(const OptimizerConfig& config, NamedTensors params, bool will_shard)
    : config_(config), will_shard_(will_shard) {
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
  group_starts_.push_back(params_.size());
  for (const auto& [name, p] : params) {
    bool frozen = false;
    for (const auto& re : frozen_) frozen = frozen || std::regex_search(name, re);
    if (frozen) {
      p.set_requires_grad(false);
      continue;
    }
    params_.emplace_back(name, p);
    exp_avg_.push_back(will_shard_ ? at::Tensor() : at::zeros_like(p));
    exp_avg_sq_.push_back(will_shard_ ? at::Tensor() : at::zeros_like(p));
    loaded_.emplace_back();
    decay_.push_back(decays(name, p));
    steps_.push_back(at::full({}, static_cast<double>(step_), p.options().dtype(at::kFloat)));
    slices_.push_back({0, p.numel(), false});
  }
  if (group_starts_.back() == params_.size()) group_starts_.pop_back();  // nothing trainable was added
}

std::vector<at::Tensor> AdamOptimizer::parameter_tensors() const {
  std::vector<at::Tensor> out;
  for (const auto& [name, p] : params_) out.push_back(p);
  return out;
}

void AdamOptimizer::shard(ProcessGroup& pg, const std::vector<GradientBucket>& layout) {
  torch::NoGradGuard no_grad;
  // Checked on every rank alike (a rank that throws alone would leave the others in a collective).
  for (const auto& [name, p] : params_) {
    if (!p.is_contiguous()) throw Error("optimizer: sharding needs contiguous parameters; '" + name + "' is not");
    if (p.scalar_type() != params_.front().second.scalar_type() || p.device() != params_.front().second.device())
      throw Error("optimizer: sharding needs every parameter in one dtype and on one device; '" + name + "' is not");
  }
  const std::vector<ShardSlice> mine = shard_slices(parameter_tensors(), layout, pg.rank(), pg.world_size());
  for (size_t i = 0; i < params_.size(); ++i) {
    Slice& s = slices_[i];
    if (s.sliced && s.start == mine[i].start && s.length == mine[i].length) continue;
    if (s.sliced)
      throw Error("optimizer: the moments of '" + params_[i].first +
                  "' are sharded differently; a layout may only add parameters");
    const at::Tensor& p = params_[i].second;
    const at::Tensor* loaded[] = {&loaded_[i].first, &loaded_[i].second};
    at::Tensor* moments[] = {&exp_avg_[i], &exp_avg_sq_[i]};
    for (int k = 0; k < 2; ++k) {
      at::Tensor& m = *moments[k];
      const at::Tensor& whole = m.defined() ? m : *loaded[k];  // allocated whole, loaded, or neither (zeros)
      m = whole.defined()
              ? whole.reshape(-1).narrow(0, mine[i].start, mine[i].length).to(p.device(), p.scalar_type(), false, true)
              : at::zeros({mine[i].length}, p.options().requires_grad(false));
    }
    loaded_[i] = {};
    s = {mine[i].start, mine[i].length, true};
  }
  pg_ = &pg;
  layout_ = layout;
}

int64_t AdamOptimizer::state_bytes() const {
  int64_t bytes = 0;
  for (size_t i = 0; i < params_.size(); ++i)
    for (const at::Tensor* m : {&exp_avg_[i], &exp_avg_sq_[i]})
      if (m->defined()) bytes += m->numel() * static_cast<int64_t>(m->element_size());
  return bytes;
}

// Every rank's updated slices to every rank: one all-gather of this rank's share of every bucket.
void AdamOptimizer::gather_parameters() {
  const int world = pg_->world_size();
  const int64_t rank = pg_->rank();
  int64_t total = 0;
  for (const auto& b : layout_) total += b.numel / world;
  const at::Tensor& any = params_.front().second;
  at::Tensor mine = at::zeros({total}, any.options().requires_grad(false));
  int64_t at_offset = 0;
  for (const auto& b : layout_) {
    const int64_t share = b.numel / world, lo = rank * share;
    for (size_t slot = 0; slot < b.params.size(); ++slot) {
      const Slice& s = slices_[b.params[slot]];
      if (s.length > 0)
        mine.narrow(0, at_offset + b.offsets[slot] + s.start - lo, s.length)
            .copy_(params_[b.params[slot]].second.view(-1).narrow(0, s.start, s.length));
    }
    at_offset += share;
  }
  const at::Tensor all = pg_->all_gather(mine).view({world, total});
  at_offset = 0;
  for (const auto& b : layout_) {
    const int64_t share = b.numel / world;
    const at::Tensor flat = all.narrow(1, at_offset, share).reshape(-1);  // rank-major: the bucket's order
    for (size_t slot = 0; slot < b.params.size(); ++slot) {
      at::Tensor& p = params_[b.params[slot]].second;
      p.view(-1).copy_(flat.narrow(0, b.offsets[slot], p.numel()));
    }
    at_offset += share;
  }
}

void AdamOptimizer::zero_grad() {
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad().reset();
}

OptimizerStepStats AdamOptimizer::step(double multiplier) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> grads, params;
  std::vector<size_t> index;  // which parameter each entry is
  grads.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = params_[i].second;
    at::Tensor g = p.grad().defined() ? p.grad() : at::zeros_like(p);
    TORCH_CHECK(exp_avg_[i].defined(), "optimizer: '", params_[i].first, "' has no moments yet: call shard()");
    if (pg_) {  // sharded: this rank's slice only
      const Slice& s = slices_[i];
      TORCH_CHECK(s.sliced, "optimizer: '", params_[i].first, "' was added after shard(); call shard() again");
      if (s.length == 0) continue;
      g = g.reshape(-1).narrow(0, s.start, s.length);
      grads.push_back(g);
      params.push_back(p.view(-1).narrow(0, s.start, s.length));
    } else {
      grads.push_back(g);
      params.push_back(p);
    }
    index.push_back(i);
  }
  OptimizerStepStats stats;
  if (!pg_ && grads.empty()) return stats;
  // Global norm in float32 even for bf16 gradients; one host sync per step. Sharded: the squares of
  // every rank's slices, summed over ranks (each element is in exactly one slice).
  at::Tensor total;
  if (pg_) {
    at::Tensor squares = at::zeros({1}, at::kDouble);
    if (!grads.empty())
      squares += at::stack(at::_foreach_norm(grads, 2)).to(at::kFloat).pow(2).sum().to(at::kCPU, at::kDouble);
    pg_->all_reduce_sum(squares);
    total = squares.sqrt();
  } else {
    std::vector<at::Tensor> norms = at::_foreach_norm(grads, 2);
    total = at::stack(norms).to(at::kFloat).norm();
  }
  stats.grad_norm = total.item<double>();
  if (config_.grad_clip_norm > 0 && stats.grad_norm >= config_.grad_clip_norm) {
    stats.clip_scale = config_.grad_clip_norm / stats.grad_norm;     // optax clip_by_global_norm
    if (!grads.empty()) at::_foreach_mul_(grads, stats.clip_scale);  // in place: .grad is scratch after a step
  }
  ++step_;
  at::_foreach_add_(steps_, 1.0);  // the kernel reads the step count, it does not advance it
  // One fused pass per group (torch's fused AdamW kernel: moments, bias correction and the update in
  // place). big_vision's Δθ = −s·(lr·u + wd·θ) is AdamW with lr·s and weight decay wd/lr.
  const double lr = config_.lr * multiplier;
  for (bool decayed : {true, false}) {
    std::vector<at::Tensor> p, g, m, v, t;
    for (size_t j = 0; j < params.size(); ++j) {
      const size_t i = index[j];
      if (decay_[i] != decayed) continue;
      p.push_back(params[j]);
      g.push_back(grads[j]);
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
  if (pg_) gather_parameters();
  return stats;
}

NamedTensors AdamOptimizer::state() const {
  NamedTensors out;
  out.emplace_back("step", at::full({1}, step_, at::kLong));
  for (size_t i = 0; i < params_.size(); ++i) {
    const Slice& s = slices_[i];
    if (s.sliced && s.length == 0) continue;
    const std::string suffix = s.sliced ? "@" + std::to_string(s.start) : "";
    out.emplace_back("exp_avg/" + params_[i].first + suffix, exp_avg_[i]);
    out.emplace_back("exp_avg_sq/" + params_[i].first + suffix, exp_avg_sq_[i]);
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
    const Slice& slice = slices_[i];
    for (auto [prefix, dst] : {std::pair<const char*, at::Tensor*>{"exp_avg/", &exp_avg_[i]},
                               std::pair<const char*, at::Tensor*>{"exp_avg_sq/", &exp_avg_sq_[i]}}) {
      auto s = state.find(prefix + params_[i].first);
      if (s == state.end()) continue;
      if (!s->second.sizes().equals(params_[i].second.sizes()))
        throw Error("optimizer state '" + s->first + "' has shape " + c10::str(s->second.sizes()) + ", the parameter " +
                    c10::str(params_[i].second.sizes()));
      if (slice.sliced)
        dst->copy_(s->second.reshape(-1).narrow(0, slice.start, slice.length));
      else if (!dst->defined())  // will_shard: kept (on the host) until shard() takes its slice
        (dst == &exp_avg_[i] ? loaded_[i].first : loaded_[i].second) = s->second;
      else
        dst->copy_(s->second);
    }
  }
}

}  // namespace siglip2
