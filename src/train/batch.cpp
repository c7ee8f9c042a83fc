#include "train/batch.hpp"

#include <torch/torch.h>

#include "common/error.hpp"
#include "siglip2/build_config.hpp"
#if SIGLIP2_CONFIG_ARCHIVE && SIGLIP2_CONFIG_OPENCV && SIGLIP2_CONFIG_SENTENCEPIECE
#define SIGLIP2_DATA_PIPELINE 1
#include "data/loader.hpp"
#include "data/shard_list.hpp"
#include "data/tokenizer.hpp"
#else
#define SIGLIP2_DATA_PIPELINE 0
#endif
#include "losses/self_distillation.hpp"

namespace siglip2 {

namespace {

at::Tensor moved(const at::Tensor& t, const c10::Device& device) {
  return t.defined() ? t.to(device, /*non_blocking=*/t.is_pinned()) : t;
}

}  // namespace

TrainBatch to_device(TrainBatch b, const c10::Device& device) {
  if (device.is_cpu()) return b;
  b.images.pixel_values = moved(b.images.pixel_values, device);
  b.images.pixel_attention_mask = moved(b.images.pixel_attention_mask, device);
  b.images.spatial_shapes = moved(b.images.spatial_shapes, device);
  b.input_ids = moved(b.input_ids, device);
  for (auto& t : b.locca) t = {moved(t.targets, device), moved(t.loss_mask, device), moved(t.parallel, device)};
  b.ssl_locals = moved(b.ssl_locals, device);
  b.ssl_mask = moved(b.ssl_mask, device);
  return b;
}

SyntheticBatches::SyntheticBatches(const RunConfig& config, int rank, int world)
    : config_(config), rank_(rank), world_(world) {
  if (config.train.batch_size % world != 0)
    throw ConfigError("train.batch_size " + std::to_string(config.train.batch_size) +
                      " is not divisible by the world size " + std::to_string(world));
  if (config.model.vision.naflex && config.train.self_distillation)
    throw ConfigError(
        "train.self_distillation: the self-distillation losses need a fixed-resolution tower (NaFlex "
        "runs are trained without them, as in SigLIP 2)");
}

TrainBatch SyntheticBatches::next(int64_t step) {
  const auto& v = config_.model.vision;
  const int64_t n = config_.train.batch_size, b = n / world_;
  const int64_t len = config_.model.text.max_position_embeddings, vocab = config_.model.text.vocab_size;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(config_.train.seed) * 1000003ULL +
                                                      static_cast<uint64_t>(step));
  auto slice = [&](const at::Tensor& t) { return t.narrow(0, rank_ * b, b).contiguous(); };
  TrainBatch out;
  out.global_examples = n;
  if (v.naflex) {
    // Square images whose patch grid fills the whole sequence: no padding.
    int64_t side = 1;
    while ((side + 1) * (side + 1) <= v.num_patches) ++side;
    const int64_t seq = side * side, width = v.patch_size * v.patch_size * v.num_channels;
    out.images.pixel_values = slice(at::empty({n, seq, width}).uniform_(-1, 1, gen));
    out.images.pixel_attention_mask = at::ones({b, seq}, at::kLong);
    out.images.spatial_shapes = at::full({b, 2}, side, at::kLong);
  } else {
    out.images.pixel_values = slice(at::empty({n, v.num_channels, v.image_size, v.image_size}).uniform_(-1, 1, gen));
  }
  out.input_ids = slice(at::randint(2, vocab, {n, len}, gen, at::TensorOptions().dtype(at::kLong)));
  const int64_t dlen = config_.model.decoder.max_length;
  for (int task = 0; task < 3; ++task) {
    DecoderTask t;
    t.targets = slice(at::randint(2, vocab, {n, dlen}, gen, at::TensorOptions().dtype(at::kLong)));
    // A prefix of 2 tokens and a random amount of padding are not counted.
    at::Tensor lengths = at::randint(3, dlen + 1, {n, 1}, gen, at::TensorOptions().dtype(at::kLong));
    at::Tensor pos = at::arange(dlen, at::kLong).unsqueeze(0);
    t.loss_mask = slice((pos >= 2) & (pos < lengths));
    if (task == 0) t.parallel = slice(at::empty({n}).uniform_(0, 1, gen) < config_.loss.locca.parallel_probability);
    out.locca.push_back(t);
  }
  if (v.naflex) return out;
  const int64_t grid = v.image_size / v.patch_size;
  const int64_t local = std::max<int64_t>(v.patch_size, (grid / 2) * v.patch_size);
  out.ssl_locals = slice(at::empty({n * 8, v.num_channels, local, local})
                             .uniform_(-1, 1, gen)
                             .view({n, 8, v.num_channels, local, local}))
                       .view({b * 8, v.num_channels, local, local});
  out.ssl_mask = slice(random_patch_mask(n, grid * grid, config_.loss.self_distillation.mask_ratio, gen));
  return out;
}

#if SIGLIP2_DATA_PIPELINE
namespace {

DecoderTask to_task(const DecoderTargets& t) {
  return {t.targets, t.loss_mask, t.parallel};
}

class WebDatasetBatches final : public BatchSource {
 public:
  WebDatasetBatches(const RunConfig& c, int rank, int world, const nlohmann::json& resume)
      : config_(c), rank_(rank), tokenizer_(Tokenizer::load(c.tokenizer)) {
    if (c.train.batch_size % world != 0)
      throw ConfigError("train.batch_size " + std::to_string(c.train.batch_size) +
                        " is not divisible by the world size " + std::to_string(world));
    if (c.data.shards.empty()) throw ConfigError("data.shards: no training shards given");
    LoaderConfig lc = c.data;
    lc.batch_size = c.train.batch_size / world;
    lc.locca = c.train.locca;
    lc.ssl_views = c.train.self_distillation;
    lc.locca_targets.length = c.model.decoder.max_length;
    lc.locca_targets.parallel_probability = c.loss.locca.parallel_probability;
    lc.seed = c.train.seed + lc.seed;
    world_ = world;
    std::optional<LoaderState> state;
    if (resume.is_object() && resume.contains("loader"))
      state = loader_state_from_json(resume["loader"].get<std::string>());
    loader_ = std::make_unique<DataLoader>(lc, c.image, tokenizer_, rank, world, state ? &*state : nullptr);
  }

  TrainBatch next(int64_t step) override {
    std::optional<Batch> b = loader_->next();
    if (!b) throw Error("the training data ran out at step " + std::to_string(step) + " (data.epochs is finite)");
    TrainBatch out;
    // NaFlex batches of the longest sequences are half size (image.naflex_half_batch_length), on every rank.
    out.global_examples = b->pixel_values.size(0) * world_;
    out.images.pixel_values = b->pixel_values;
    out.images.pixel_attention_mask = b->pixel_attention_mask;
    out.images.spatial_shapes = b->spatial_shapes;
    out.input_ids = b->input_ids;
    if (b->locca) out.locca = {to_task(b->locca->caption), to_task(b->locca->referring), to_task(b->locca->grounded)};
    out.ssl_locals = b->local_views;
    if (config_.train.self_distillation && !config_.model.vision.naflex) {
      const int64_t grid = config_.model.vision.image_size / config_.model.vision.patch_size;
      auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(config_.train.seed) * 7919ULL +
                                                          static_cast<uint64_t>(step) * 131ULL + rank_);
      out.ssl_mask =
          random_patch_mask(b->pixel_values.size(0), grid * grid, config_.loss.self_distillation.mask_ratio, gen);
    }
    return out;
  }

  nlohmann::json state() const override { return {{"loader", loader_state_to_json(loader_->state())}}; }
  void set_interrupt(std::function<bool(double)> interrupted) override { loader_->set_interrupt(std::move(interrupted)); }
  void restore(const nlohmann::json&) override {}  // the state is taken at construction

 private:
  RunConfig config_;
  int rank_;
  Tokenizer tokenizer_;
  int64_t world_ = 1;
  std::unique_ptr<DataLoader> loader_;
};

}  // namespace

std::unique_ptr<BatchSource> make_webdataset_batches(const RunConfig& c, int rank, int world,
                                                     const nlohmann::json& resume) {
  for (const auto& pattern : c.data.shards)  // before anything is loaded: a typo'd pattern is a config error
    check_shard_files("data.shards", pattern, expand_braces(pattern), c.data.max_failed_shards, &c.data.remote);
  return std::make_unique<WebDatasetBatches>(c, rank, world, resume);
}
#else
std::unique_ptr<BatchSource> make_webdataset_batches(const RunConfig&, int, int, const nlohmann::json&) {
  throw ConfigError("train.data: webdataset needs a build with OpenCV, libarchive and sentencepiece");
}
#endif

}  // namespace siglip2
