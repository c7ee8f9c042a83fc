#include "train/batch.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>

#include "common/error.hpp"
#include "siglip2/build_config.hpp"
#if SIGLIP2_CONFIG_DATA_PIPELINE
#include "data/loader.hpp"
#include "data/shard_list.hpp"
#include "data/tokenizer.hpp"
#endif
#include "common/logging.hpp"
#include "data/patch_mask.hpp"
#include "train/stop_signal.hpp"

namespace siglip2 {

namespace {

at::Tensor moved(const at::Tensor& t, const c10::Device& device) {
  return t.defined() ? t.to(device, /*non_blocking=*/t.is_pinned()) : t;
}

}  // namespace

Batch to_device(Batch b, const c10::Device& device) {
  if (device.is_cpu()) return b;
  for (at::Tensor* t : {&b.pixel_values, &b.pixel_attention_mask, &b.spatial_shapes, &b.input_ids, &b.labels, &b.source,
                        &b.local_views, &b.bool_masked_pos})
    *t = moved(*t, device);
  if (b.locca)
    for (DecoderTask* t : {&b.locca->caption, &b.locca->referring, &b.locca->grounded})
      *t = {moved(t->targets, device), moved(t->loss_mask, device), moved(t->parallel, device)};
  return b;
}

std::vector<Batch> split_batch(const Batch& batch, int64_t parts) {
  TORCH_CHECK(parts > 0, "split_batch: parts must be positive");
  const int64_t n = batch.pixel_values.size(0);
  parts = std::min(parts, n);
  const int64_t crops = batch.local_views.defined() ? batch.local_views.size(0) / n : 0;
  auto rows = [](const at::Tensor& t, int64_t begin, int64_t size) {
    return t.defined() ? t.narrow(0, begin, size) : t;
  };
  std::vector<Batch> out;
  for (int64_t i = 0, begin = 0; i < parts; ++i) {
    const int64_t size = n / parts + (i < n % parts ? 1 : 0);
    Batch m;
    if (!batch.keys.empty()) m.keys.assign(batch.keys.begin() + begin, batch.keys.begin() + begin + size);
    m.pixel_values = rows(batch.pixel_values, begin, size);
    m.pixel_attention_mask = rows(batch.pixel_attention_mask, begin, size);
    m.spatial_shapes = rows(batch.spatial_shapes, begin, size);
    m.input_ids = rows(batch.input_ids, begin, size);
    m.labels = rows(batch.labels, begin, size);
    m.source = rows(batch.source, begin, size);
    m.local_views = rows(batch.local_views, begin * crops, size * crops);
    m.bool_masked_pos = rows(batch.bool_masked_pos, begin, size);
    if (batch.locca) {
      m.locca.emplace();
      const LoccaTargets& l = *batch.locca;
      for (auto [dst, src] : {std::pair{&m.locca->caption, &l.caption}, std::pair{&m.locca->referring, &l.referring},
                              std::pair{&m.locca->grounded, &l.grounded}})
        *dst = {rows(src->targets, begin, size), rows(src->loss_mask, begin, size), rows(src->parallel, begin, size)};
    }
    out.push_back(std::move(m));
    begin += size;
  }
  return out;
}

SyntheticBatches::SyntheticBatches(const RunConfig& config, int rank, int world)
    : config_(config), rank_(rank), world_(world) {
  if (std::string why = config.check_world_size(world); !why.empty()) throw ConfigError(why);
  if (config.model.vision.naflex && config.train.self_distillation)
    throw ConfigError(
        "train.self_distillation: the self-distillation losses need a fixed-resolution tower (NaFlex "
        "runs are trained without them, as in SigLIP 2)");
}

Batch SyntheticBatches::next(int64_t step) {
  const auto& v = config_.model.vision;
  const int64_t n = config_.drawn_batch_size(), b = n / world_;
  const int64_t len = config_.model.text.max_position_embeddings, vocab = config_.model.text.vocab_size;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(config_.train.seed) * 1000003ULL +
                                                      static_cast<uint64_t>(step));
  auto slice = [&](const at::Tensor& t) { return t.narrow(0, rank_ * b, b).contiguous(); };
  Batch out;
  if (v.naflex) {
    // Square images whose patch grid fills the whole sequence: no padding.
    int64_t side = 1;
    while ((side + 1) * (side + 1) <= v.num_patches) ++side;
    const int64_t seq = side * side, width = v.patch_size * v.patch_size * v.num_channels;
    out.pixel_values = slice(at::empty({n, seq, width}).uniform_(-1, 1, gen));
    out.pixel_attention_mask = at::ones({b, seq}, at::kLong);
    out.spatial_shapes = at::full({b, 2}, side, at::kLong);
  } else {
    out.pixel_values = slice(at::empty({n, v.num_channels, v.image_size, v.image_size}).uniform_(-1, 1, gen));
  }
  out.input_ids = slice(at::randint(2, vocab, {n, len}, gen, at::TensorOptions().dtype(at::kLong)));
  out.source = at::zeros({b}, at::kLong);
  const int64_t dlen = config_.model.decoder.max_length;
  out.locca.emplace();
  for (DecoderTask* task : {&out.locca->caption, &out.locca->referring, &out.locca->grounded}) {
    DecoderTask& t = *task;
    t.targets = slice(at::randint(2, vocab, {n, dlen}, gen, at::TensorOptions().dtype(at::kLong)));
    // A prefix of 2 tokens and a random amount of padding are not counted.
    at::Tensor lengths = at::randint(3, dlen + 1, {n, 1}, gen, at::TensorOptions().dtype(at::kLong));
    at::Tensor pos = at::arange(dlen, at::kLong).unsqueeze(0);
    t.loss_mask = slice((pos >= 2) & (pos < lengths));
    if (task == &out.locca->caption)
      t.parallel = slice(at::empty({n}).uniform_(0, 1, gen) < config_.loss.locca.parallel_probability);
  }
  if (!config_.train.locca) out.locca.reset();  // drawn all the same: the other tensors do not depend on it
  if (v.naflex || !config_.train.self_distillation) return out;
  const int64_t grid = v.image_size / v.patch_size;
  const int64_t local = std::max<int64_t>(v.patch_size, (grid / 2) * v.patch_size);
  out.local_views = slice(at::empty({n * 8, v.num_channels, local, local})
                              .uniform_(-1, 1, gen)
                              .view({n, 8, v.num_channels, local, local}))
                        .view({b * 8, v.num_channels, local, local});
  out.bool_masked_pos = slice(random_patch_mask(n, grid * grid, config_.loss.self_distillation.mask_ratio, gen));
  return out;
}

#if SIGLIP2_CONFIG_DATA_PIPELINE
namespace {

class WebDatasetBatches final : public BatchSource {
 public:
  // `resume`: this rank's saved state; `handover`: every rank's, from a run with another number of ranks.
  WebDatasetBatches(const RunConfig& c, int rank, int world, const nlohmann::json& resume,
                    const std::vector<LoaderState>& handover, int64_t step, int64_t views_from_step)
      : config_(c), rank_(rank), tokenizer_(Tokenizer::load(c.tokenizer)), views_from_step_(views_from_step) {
    if (std::string why = c.check_world_size(world); !why.empty()) throw ConfigError(why);
    if (c.data.shards.empty()) throw ConfigError("data.shards: no training shards given");
    LoaderConfig lc = c.data;
    lc.batch_size = c.drawn_batch_size() / world;  // ACID: this rank's super-batch
    lc.locca = c.train.locca;
    lc.self_distillation = c.train.self_distillation;
    lc.locca_targets.length = c.model.decoder.max_length;
    lc.locca_targets.parallel_probability = c.loss.locca.parallel_probability;
    lc.seed = c.train.seed + lc.seed;
    std::optional<LoaderState> state;
    if (resume.is_object() && resume.contains("loader"))
      state = loader_state_from_json(resume["loader"].get<std::string>());
    if (!handover.empty()) {
      try {
        state = hand_over_loader_state(handover, lc, rank, world);
      } catch (const Error& e) {  // e.g. a state from a version without reading positions
        log_warn(std::string(e.what()) + "; the data stream restarts");
      }
    }
    if (!handover.empty() && state) {
      int64_t shards = 0, partial = 0, samples = 0;
      for (const auto& w : state->workers)
        for (const auto& p : w.source_position)
          for (size_t i = 0; i < p.handover_shards.size(); ++i) {
            if (p.handover_single[i] != 0)
              ++samples;
            else
              ++(p.handover_offsets[i] > 0 ? partial : shards);
          }
      log_info(
          fmt::format("data: the stream of {} rank(s) continues on {}: what the old ranks had not given out of "
                      "their epoch is dealt anew, none of it repeated; this rank reads {} whole shard(s), {} "
                      "shard(s) from where they were left and {} buffered sample(s) first",
                      handover.size(), world, shards, partial, samples));
    }
    // One batch per step from here (more after a rollback), so batch `handed + (s - step)` or a later one is
    // step s's: crops from the batch of step views_from_step on cover every step that uses them.
    const int64_t handed = state ? state->batches : 0;
    lc.self_distillation_from_batch = handed + std::max<int64_t>(0, views_from_step - step);
    loader_ = std::make_unique<DataLoader>(lc, c.image, tokenizer_, rank, world, state ? &*state : nullptr);
  }

  Batch next(int64_t step) override {
    std::optional<Batch> b = loader_->next();
    if (!b) throw Error("the training data ran out at step " + std::to_string(step) + " (data.epochs is finite)");
    if (config_.train.self_distillation && step >= views_from_step_ && !b->local_views.defined())
      throw Error("internal: the data loader's batch of step " + std::to_string(step) +
                  " has no self-distillation crops (self_distillation_from_batch was set past it)");
    if (b->local_views.defined() && !config_.model.vision.naflex) {  // the phase's batches only, as the crops
      const int64_t grid = config_.model.vision.image_size / config_.model.vision.patch_size;
      auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(config_.train.seed) * 7919ULL +
                                                          static_cast<uint64_t>(step) * 131ULL + rank_);
      b->bool_masked_pos =
          random_patch_mask(b->pixel_values.size(0), grid * grid, config_.loss.self_distillation.mask_ratio, gen);
    }
    return std::move(*b);
  }

  nlohmann::json state() const override { return {{"loader", loader_state_to_json(loader_->state())}}; }
  void set_interrupt(std::function<bool(double)> interrupted) override {
    loader_->set_interrupt(std::move(interrupted));
  }

 private:
  RunConfig config_;
  int rank_;
  Tokenizer tokenizer_;
  int64_t views_from_step_;
  std::unique_ptr<DataLoader> loader_;
};

}  // namespace
#endif

std::unique_ptr<BatchSource> make_batch_source(const RunConfig& c, int rank, int world, const nlohmann::json& saved,
                                               int64_t step, int64_t views_from_step) {
  if (c.train.data == "synthetic") return std::make_unique<SyntheticBatches>(c, rank, world);
#if SIGLIP2_CONFIG_DATA_PIPELINE
  nlohmann::json mine;
  std::vector<LoaderState> handover;
  const bool has_states = saved.is_object() && saved.contains("ranks") && saved["ranks"].is_array() &&
                          !saved["ranks"].empty() &&
                          std::all_of(saved["ranks"].begin(), saved["ranks"].end(),
                                      [](const nlohmann::json& r) { return r.is_object() && r.contains("loader"); });
  if (has_states) {
    std::vector<LoaderState> states;
    for (const auto& r : saved["ranks"]) states.push_back(loader_state_from_json(r["loader"].get<std::string>()));
    // The same layout resumes this rank's own state; another number of ranks or of loader workers hands the
    // stream over.
    const bool same = states.size() == static_cast<size_t>(world) &&
                      std::all_of(states.begin(), states.end(), [&](const LoaderState& st) {
                        return static_cast<int64_t>(st.workers.size()) == c.data.workers;
                      });
    if (same)
      mine = saved["ranks"][rank];
    else
      handover = std::move(states);
  } else if (step > 0) {
    log_warn("the checkpoint has no data-loader state: the data stream restarts");
  }
  for (const auto& pattern : c.data.shards)  // before anything is loaded: a typo'd pattern is a config error
    check_shard_files("data.shards", pattern, expand_braces(pattern), c.data.max_failed_shards, &c.data.remote);
  auto source = std::make_unique<WebDatasetBatches>(c, rank, world, mine, handover, step, views_from_step);
  const bool alone = world == 1;
  source->set_interrupt([alone](double waited_s) { return stop_signal_received() && (alone || waited_s >= 10.0); });
  return source;
#else
  (void)saved;
  (void)step;
  (void)views_from_step;
  throw ConfigError("train.data: webdataset needs a build with OpenCV, libarchive and sentencepiece");
#endif
}

}  // namespace siglip2
