#include "train/acid_stage.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>

#include "common/error.hpp"
#include "common/logging.hpp"
#include "data/rng.hpp"
#include "losses/acid.hpp"
#include "models/siglip2.hpp"
#include "train/batch.hpp"
#include "train/step.hpp"

namespace siglip2 {

namespace {

constexpr uint64_t kAcidTag = 0xAC1D;

at::Tensor rows_of(const at::Tensor& t, const at::Tensor& idx) {
  if (!t.defined()) return t;
  at::Tensor out = t.index_select(0, idx.to(t.device()));
  return t.is_pinned() ? out.pin_memory() : out;  // host-to-device copies of the selection stay asynchronous
}

}  // namespace

at::Tensor acid_uniforms(uint64_t seed, int64_t step, int64_t rank, int64_t chunk, int64_t n) {
  DataRng rng(mix_seed(
      {seed, kAcidTag, static_cast<uint64_t>(step), static_cast<uint64_t>(rank), static_cast<uint64_t>(chunk)}));
  at::Tensor u = at::empty({n}, at::kDouble);
  double* p = u.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) p[i] = (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53;  // in (0, 1)
  return u;
}

Batch select_examples(const Batch& batch, const std::vector<int64_t>& idx) {
  TORCH_CHECK(!batch.locca && !batch.local_views.defined() && !batch.bool_masked_pos.defined(),
              "select_examples: a batch with LocCa targets or self-distillation views");
  const at::Tensor i = at::tensor(idx, at::kLong);
  Batch out;
  for (int64_t k : idx)
    if (!batch.keys.empty()) out.keys.push_back(batch.keys.at(static_cast<size_t>(k)));
  out.pixel_values = rows_of(batch.pixel_values, i);
  out.pixel_attention_mask = rows_of(batch.pixel_attention_mask, i);
  out.spatial_shapes = rows_of(batch.spatial_shapes, i);
  out.input_ids = rows_of(batch.input_ids, i);
  out.labels = rows_of(batch.labels, i);
  out.source = rows_of(batch.source, i);
  return out;
}

AcidSelection::AcidSelection(const RunConfig& config, std::shared_ptr<Siglip2ModelImpl> reference,
                             const c10::Device& device, bool bf16, int rank, int world_size, int64_t sources)
    : config_(config),
      reference_(std::move(reference)),
      device_(device),
      bf16_(bf16),
      rank_(rank),
      super_(config.drawn_batch_size() / world_size),
      select_(config.train.batch_size / world_size),
      chunk_examples_((config.train.batch_size / world_size + config.train.accumulation_steps - 1) /
                      config.train.accumulation_steps),
      sources_(std::max<int64_t>(1, sources)) {
  if (!reference_) throw Error("acid.reference: no reference model was loaded");
  reference_->to(device_);
  reference_->eval();
  for (auto& p : reference_->parameters()) p.set_requires_grad(false);
}

int64_t acid_scoring_bytes(int64_t super, int64_t select, int64_t chunks, int64_t learner_width,
                           int64_t reference_width) {
  const int64_t chunk = (select + chunks - 1) / chunks;
  return 4 * super * 2 * (learner_width + reference_width) + 4 * 2 * 2 * chunk * super;
}

double AcidSelection::scoring_flop_per_pair() const {
  return static_cast<double>(super_) / static_cast<double>(select_) *
         (forward_flops(config_.model).pair() + forward_flops(reference_->config).pair());
}

int64_t AcidSelection::scoring_bytes(int64_t learner_width) const {
  return acid_scoring_bytes(super_, select_, config_.acid.chunks, learner_width, reference_->config.vision.hidden_size);
}

AcidStepSelection AcidSelection::select(Siglip2ModelImpl& learner, const Batch& super_batch, int64_t step) const {
  torch::NoGradGuard no_grad;
  const int64_t n = super_batch.pixel_values.size(0);
  if (n < select_)
    throw Error(
        fmt::format("the training data ran out at step {}: an ACID super-batch of {} pairs on rank {}, fewer "
                    "than the {} to select (data.epochs is finite)",
                    step, n, rank_, select_));
  if (n < super_)
    log_warn(
        fmt::format("step {}: the data gave {} of the super-batch's {} pairs on rank {} (the end of finite "
                    "data); {} of them are selected",
                    step, n, super_, rank_, select_));
  const int64_t take = select_;
  const auto embeddings =
      pooled_embeddings({{&learner, 0}, {reference_.get(), reference_->config.vision.image_size}},
                        split_batch(super_batch, (n + chunk_examples_ - 1) / chunk_examples_), bf16_, device_);
  const Learnability s{{l2_normalize(embeddings[0].first), l2_normalize(embeddings[0].second),
                        learner.logit_scale.detach(), learner.logit_bias.detach()},
                       {l2_normalize(embeddings[1].first), l2_normalize(embeddings[1].second),
                        reference_->logit_scale.detach(), reference_->logit_bias.detach()}};
  const auto seed = static_cast<uint64_t>(config_.train.seed);
  auto uniform = [&](int64_t chunk, int64_t size) { return acid_uniforms(seed, step, rank_, chunk, size); };
  JointSelection sel = jest_joint_sample(s, take, std::min(config_.acid.chunks, take), uniform);
  std::vector<int64_t> chosen = sel.chosen;
  std::sort(chosen.begin(), chosen.end());
  AcidStepSelection out;
  out.chosen = sel.chosen;
  out.batch = select_examples(super_batch, chosen);
  out.metrics.emplace_back("acid_learnability_selected", at::scalar_tensor(sel.mean_selected, at::kDouble));
  out.metrics.emplace_back("acid_learnability_rejected", at::scalar_tensor(sel.mean_rejected, at::kDouble));
  const at::Tensor all = super_batch.source.defined() ? super_batch.source.to(at::kCPU) : at::zeros({n}, at::kLong);
  const at::Tensor picked = all.index_select(0, at::tensor(chosen, at::kLong));
  for (int64_t k = 0; k < sources_; ++k) {
    out.metrics.emplace_back("acid_selected_share_" + std::to_string(k), (picked == k).to(at::kDouble).mean());
    out.metrics.emplace_back("acid_super_batch_share_" + std::to_string(k), (all == k).to(at::kDouble).mean());
  }
  return out;
}

}  // namespace siglip2
