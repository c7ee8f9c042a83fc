#pragma once
// What one training step consumes on one rank, and where it comes from.
#include <ATen/core/Tensor.h>
#include <functional>
#include <nlohmann/json.hpp>

#include <memory>
#include <vector>

#include "losses/locca.hpp"
#include "models/siglip2.hpp"
#include "train/config.hpp"

namespace siglip2 {

struct TrainBatch {
  VisionInput images;              // this rank's images
  at::Tensor input_ids;            // [b, L]
  std::vector<DecoderTask> locca;  // captioning, referring expression, grounded captioning
  at::Tensor ssl_locals;           // [b * crops, 3, h, w] local crops for self-distillation
  at::Tensor ssl_mask;             // [b, S] patches the student sees masked
  int64_t global_examples = 0;
};

// The batch on `device` (a no-op on the CPU); copies from pinned memory do not block the host.
TrainBatch to_device(TrainBatch batch, const c10::Device& device);

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // The batch of optimizer step `step` (a pure function of the step and the saved state).
  virtual TrainBatch next(int64_t step) = 0;
  virtual nlohmann::json state() const = 0;
  virtual void restore(const nlohmann::json& state) = 0;
  // A stop request to honour while waiting for data, given the seconds waited (next() then throws
  // LoaderInterrupted); sources that never wait ignore it.
  virtual void set_interrupt(std::function<bool(double)>) {}
};

// Random tensors of the right shapes and value ranges, drawn per step from (seed, step) for the
// global batch and sliced per rank, so W ranks see exactly what one process sees. For benchmarks and
// for the trainer's equivalence and resume tests; it has nothing to learn.
class SyntheticBatches final : public BatchSource {
 public:
  SyntheticBatches(const RunConfig& config, int rank, int world_size);
  TrainBatch next(int64_t step) override;
  nlohmann::json state() const override { return nlohmann::json::object(); }
  void restore(const nlohmann::json&) override {}

 private:
  RunConfig config_;
  int rank_, world_;
};

// Batches from WebDataset shards through the data loader (src/data/loader.hpp): this rank's share of
// the global batch; the loader's state goes into checkpoints for an exact resume.
std::unique_ptr<BatchSource> make_webdataset_batches(const RunConfig& config, int rank, int world_size,
                                                     const nlohmann::json& resume_state);

}  // namespace siglip2
