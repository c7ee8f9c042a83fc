#include "train/batch.hpp"

#include <torch/torch.h>

#include "common/error.hpp"
#include "losses/self_distillation.hpp"

namespace siglip2 {

SyntheticBatches::SyntheticBatches(const RunConfig& config, int rank, int world)
    : config_(config), rank_(rank), world_(world) {
  if (config.train.batch_size % world != 0)
    throw ConfigError("train.batch_size " + std::to_string(config.train.batch_size) +
                      " is not divisible by the world size " + std::to_string(world));
  if (config.model.vision.naflex) throw ConfigError("train.data: synthetic batches are fixed-resolution only");
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
  out.images.pixel_values = slice(at::empty({n, v.num_channels, v.image_size, v.image_size}).uniform_(-1, 1, gen));
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
  const int64_t grid = v.image_size / v.patch_size;
  const int64_t local = std::max<int64_t>(v.patch_size, (grid / 2) * v.patch_size);
  out.ssl_locals = slice(at::empty({n * 8, v.num_channels, local, local})
                             .uniform_(-1, 1, gen)
                             .view({n, 8, v.num_channels, local, local}))
                       .view({b * 8, v.num_channels, local, local});
  out.ssl_mask = slice(random_patch_mask(n, grid * grid, config_.loss.self_distillation.mask_ratio, gen));
  return out;
}

}  // namespace siglip2
