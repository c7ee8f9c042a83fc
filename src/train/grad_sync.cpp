#include "train/grad_sync.hpp"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

namespace siglip2 {
namespace {

struct Hook : torch::autograd::PostAccumulateGradHook {
  Hook(GradientSync* s, size_t i) : sync(s), index(i) {}
  void operator()(const torch::autograd::Variable&) override { sync->on_gradient(index); }
  GradientSync* sync;
  size_t index;
};

}  // namespace

GradientSync::GradientSync(ProcessGroup& pg, const NamedTensors& params, int64_t bucket_bytes,
                           int64_t first_bucket_bytes)
    : pg_(pg) {
  for (const auto& [name, p] : params)
    if (p.requires_grad()) params_.push_back(p);
  where_.resize(params_.size());
  filled_.assign(params_.size(), false);
  // Reverse order, one dtype and device per bucket; the first bucket is small so communication starts early.
  int64_t cap = first_bucket_bytes, used = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    bool fits = !buckets_.empty() && used + bytes <= cap &&
                params_[buckets_.back().params.front()].scalar_type() == p.scalar_type() &&
                params_[buckets_.back().params.front()].device() == p.device();
    if (!fits) {
      if (!buckets_.empty()) cap = bucket_bytes;
      buckets_.emplace_back();
      used = 0;
    }
    Bucket& b = buckets_.back();
    where_[k] = {buckets_.size() - 1, b.params.size()};
    b.offsets.push_back(b.params.empty() ? 0 : b.offsets.back() + params_[b.params.back()].numel());
    b.params.push_back(k);
    used += bytes;
  }
  for (auto& b : buckets_) {
    const at::Tensor& last = params_[b.params.back()];
    b.flat = at::zeros({b.offsets.back() + last.numel()}, last.options().requires_grad(false));
  }
  for (size_t k = 0; k < params_.size(); ++k)
    torch::autograd::impl::set_post_acc_grad_hooks(params_[k], std::make_unique<Hook>(this, k));
}

GradientSync::~GradientSync() {
  for (auto& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void GradientSync::fill(Bucket& b, size_t slot) {
  const at::Tensor& p = params_[b.params[slot]];
  at::Tensor dst = b.flat.narrow(0, b.offsets[slot], p.numel());
  if (p.grad().defined())
    dst.copy_(p.grad().reshape(-1));
  else
    dst.zero_();
}

void GradientSync::on_gradient(size_t k) {
  if (hooks_enabled_) mark_ready(k);
}

void GradientSync::mark_final(const at::Tensor& param) {
  for (size_t k = 0; k < params_.size(); ++k)
    if (params_[k].is_same(param)) return mark_ready(k);
  TORCH_CHECK(false, "GradientSync::mark_final: not a parameter this sync reduces");
}

void GradientSync::mark_ready(size_t k) {
  if (filled_[k]) return;
  auto [bi, slot] = where_[k];
  fill(buckets_[bi], slot);
  filled_[k] = true;
  ++buckets_[bi].ready;
  launch_ready();
}

void GradientSync::launch(Bucket& b) {
  std::vector<at::Tensor> v{b.flat};
  b.work = pg_.backend().allreduce(v);
}

void GradientSync::launch_ready() {
  // Every rank must issue the same all-reduces in the same order: bucket i only after bucket i-1.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready == buckets_[next_launch_].params.size())
    launch(buckets_[next_launch_++]);
}

void GradientSync::finish() {
  torch::NoGradGuard no_grad;
  for (; next_launch_ < buckets_.size(); ++next_launch_) {
    Bucket& b = buckets_[next_launch_];
    for (size_t slot = 0; slot < b.params.size(); ++slot)
      if (!filled_[b.params[slot]]) fill(b, slot);  // unused this step, or hooks were off
    launch(b);
  }
  const double inv = 1.0 / pg_.world_size();
  for (auto& b : buckets_) {
    pg_.wait(*b.work, "gradient all_reduce");
    b.flat.mul_(inv);
    for (size_t slot = 0; slot < b.params.size(); ++slot) {
      at::Tensor& p = params_[b.params[slot]];
      at::Tensor avg = b.flat.narrow(0, b.offsets[slot], p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(avg);
      else
        p.mutable_grad() = avg.clone();
    }
    b.ready = 0;
    b.work.reset();
  }
  next_launch_ = 0;
  std::fill(filled_.begin(), filled_.end(), false);
}

}  // namespace siglip2
