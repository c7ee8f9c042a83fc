#include "train/grad_sync.hpp"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>

#include "common/logging.hpp"
#include "train/optimizer.hpp"

namespace siglip2 {
namespace {

struct Hook : torch::autograd::PostAccumulateGradHook {
  Hook(GradientSync* s, size_t i) : sync(s), index(i) {}
  void operator()(const torch::autograd::Variable&) override { sync->on_gradient(index); }
  GradientSync* sync;
  size_t index;
};

std::vector<at::Tensor> requiring_grad(const NamedTensors& params) {
  std::vector<at::Tensor> out;
  for (const auto& [name, p] : params)
    if (p.requires_grad()) out.push_back(p);
  return out;
}

}  // namespace

std::vector<GradientBucket> bucket_layout(const std::vector<at::Tensor>& params,
                                          const std::vector<size_t>& group_starts, int64_t bucket_bytes,
                                          int64_t first_bucket_bytes, int64_t pad_to) {
  std::vector<GradientBucket> out;
  int64_t cap = first_bucket_bytes, used = 0;
  for (size_t g = 0; g < group_starts.size(); ++g) {
    const size_t begin = group_starts[g], end = g + 1 < group_starts.size() ? group_starts[g + 1] : params.size();
    const size_t group_first_bucket = out.size();
    for (size_t k = end; k-- > begin;) {
      const at::Tensor& p = params[k];
      const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
      const bool fits = out.size() > group_first_bucket && used + bytes <= cap &&
                        params[out.back().params.front()].scalar_type() == p.scalar_type() &&
                        params[out.back().params.front()].device() == p.device();
      if (!fits) {
        if (!out.empty()) cap = bucket_bytes;
        out.emplace_back();
        used = 0;
      }
      GradientBucket& b = out.back();
      b.offsets.push_back(b.params.empty() ? 0 : b.offsets.back() + params[b.params.back()].numel());
      b.params.push_back(k);
      used += bytes;
    }
  }
  for (auto& b : out) {
    b.numel = b.offsets.back() + params[b.params.back()].numel();
    b.numel = (b.numel + pad_to - 1) / pad_to * pad_to;
  }
  return out;
}

std::vector<ShardSlice> shard_slices(const std::vector<at::Tensor>& params, const std::vector<GradientBucket>& layout,
                                     int rank, int world) {
  std::vector<ShardSlice> out(params.size());
  for (const auto& b : layout) {
    TORCH_CHECK(b.numel % world == 0, "shard_slices: a bucket is not padded to the world size");
    const int64_t lo = rank * (b.numel / world), hi = lo + b.numel / world;
    for (size_t slot = 0; slot < b.params.size(); ++slot) {
      const int64_t begin = b.offsets[slot], end = begin + params[b.params[slot]].numel();
      const int64_t from = std::max(begin, lo), to = std::min(end, hi);
      if (from < to) out[b.params[slot]] = {from - begin, to - from};
    }
  }
  return out;
}

GradientSync::GradientSync(ProcessGroup& pg, std::vector<at::Tensor> params, const std::vector<size_t>& group_starts,
                           bool shard, int64_t bucket_bytes, int64_t first_bucket_bytes)
    : pg_(pg), shard_(shard), params_(std::move(params)) {
  for (const auto& p : params_) TORCH_CHECK(p.requires_grad(), "GradientSync: a parameter does not require grad");
  layout_ = bucket_layout(params_, group_starts, bucket_bytes, first_bucket_bytes, shard ? pg.world_size() : 1);
  if (shard_) slices_ = shard_slices(params_, layout_, pg.rank(), pg.world_size());
  where_.resize(params_.size());
  filled_.assign(params_.size(), false);
  for (size_t bi = 0; bi < layout_.size(); ++bi) {
    const GradientBucket& l = layout_[bi];
    for (size_t slot = 0; slot < l.params.size(); ++slot) where_[l.params[slot]] = {bi, slot};
    Bucket b;
    const at::Tensor& any = params_[l.params.front()];
    b.flat = at::zeros({l.numel}, any.options().requires_grad(false));
    if (shard_) b.shard = at::zeros({l.numel / pg.world_size()}, any.options().requires_grad(false));
    buckets_.push_back(std::move(b));
  }
  for (size_t k = 0; k < params_.size(); ++k)
    torch::autograd::impl::set_post_acc_grad_hooks(params_[k], std::make_unique<Hook>(this, k));
}

GradientSync::GradientSync(ProcessGroup& pg, const NamedTensors& params, int64_t bucket_bytes,
                           int64_t first_bucket_bytes)
    : GradientSync(pg, requiring_grad(params), {0}, false, bucket_bytes, first_bucket_bytes) {}

GradientSync::~GradientSync() {
  for (auto& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void GradientSync::fill(size_t bucket, size_t slot) {
  const GradientBucket& l = layout_[bucket];
  const at::Tensor& p = params_[l.params[slot]];
  at::Tensor dst = buckets_[bucket].flat.narrow(0, l.offsets[slot], p.numel());
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
  fill(bi, slot);
  filled_[k] = true;
  ++buckets_[bi].ready;
  launch_ready();
}

void GradientSync::launch(size_t bi) {
  Bucket& b = buckets_[bi];
  if (shard_) {
    b.work = pg_.backend()._reduce_scatter_base(b.shard, b.flat);
  } else {
    std::vector<at::Tensor> v{b.flat};
    b.work = pg_.backend().allreduce(v);
  }
}

void GradientSync::launch_ready() {
  // Every rank must issue the same collectives in the same order: bucket i only after bucket i-1.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready == layout_[next_launch_].params.size())
    launch(next_launch_++);
}

void GradientSync::finish() {
  torch::NoGradGuard no_grad;
  for (; next_launch_ < buckets_.size(); ++next_launch_) {
    const GradientBucket& l = layout_[next_launch_];
    for (size_t slot = 0; slot < l.params.size(); ++slot)
      if (!filled_[l.params[slot]]) fill(next_launch_, slot);  // unused this step, or hooks were off
    launch(next_launch_);
  }
  const double inv = 1.0 / pg_.world_size();
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    Bucket& b = buckets_[bi];
    const GradientBucket& l = layout_[bi];
    pg_.wait(*b.work, shard_ ? "gradient reduce_scatter" : "gradient all_reduce");
    const at::Tensor reduced = shard_ ? b.shard : b.flat;
    reduced.mul_(inv);
    const int64_t lo = pg_.rank() * reduced.numel();  // where this rank's slice of the bucket starts
    for (size_t slot = 0; slot < l.params.size(); ++slot) {
      at::Tensor& p = params_[l.params[slot]];
      if (!shard_) {
        at::Tensor avg = reduced.narrow(0, l.offsets[slot], p.numel()).view(p.sizes());
        if (p.grad().defined())
          p.mutable_grad().copy_(avg);
        else
          p.mutable_grad() = avg.clone();
        continue;
      }
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      TORCH_CHECK(p.grad().is_contiguous(), "sharded gradient sync needs contiguous gradients");
      const ShardSlice& s = slices_[l.params[slot]];
      if (s.length > 0)
        p.mutable_grad()
            .view(-1)
            .narrow(0, s.start, s.length)
            .copy_(reduced.narrow(0, l.offsets[slot] + s.start - lo, s.length));
    }
    b.ready = 0;
    b.work.reset();
  }
  next_launch_ = 0;
  std::fill(filled_.begin(), filled_.end(), false);
}

std::unique_ptr<GradientSync> make_data_parallel(ProcessGroup* pg, AdamOptimizer& optimizer, bool shard) {
  if (!pg) {
    if (shard) log_info("train.shard_optimizer: one rank, nothing to shard (the optimizer state stays whole)");
    return nullptr;
  }
  auto sync = std::make_unique<GradientSync>(*pg, optimizer.parameter_tensors(), optimizer.group_starts(), shard);
  if (!shard) return sync;
  optimizer.shard(*pg, sync->layout());
  int64_t all = 0;
  for (const auto& p : optimizer.parameter_tensors()) all += 2 * p.numel() * static_cast<int64_t>(p.element_size());
  if (pg->rank() == 0)
    log_info(
        fmt::format("optimizer state sharded over {} ranks (ZeRO-1): {:.2f} of {:.2f} MiB of Adam moments on rank 0",
                    pg->world_size(), static_cast<double>(optimizer.state_bytes()) / 1048576.0,
                    static_cast<double>(all) / 1048576.0));
  return sync;
}

}  // namespace siglip2
