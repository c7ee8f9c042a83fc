#pragma once
// Where the batches of a training run come from (the Batch type itself: src/data/batch.hpp).
#include <ATen/core/Tensor.h>
#include <functional>
#include <nlohmann/json.hpp>

#include <memory>
#include <vector>

#include "data/batch.hpp"
#include "train/config.hpp"

namespace siglip2 {

// The batch on `device` (a no-op on the CPU); copies from pinned memory do not block the host.
Batch to_device(Batch batch, const c10::Device& device);

// `parts` micro-batches of `batch` along its examples, in order, for gradient accumulation: sizes differ
// by at most one (the first ones larger), and there are fewer when the batch has fewer examples. Every
// per-example tensor is sliced (local crops image-major, decoder tasks, keys); slices share storage.
std::vector<Batch> split_batch(const Batch& batch, int64_t parts);

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // The batch of optimizer step `step` (a pure function of the step and the saved state).
  virtual Batch next(int64_t step) = 0;
  virtual nlohmann::json state() const = 0;
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
  Batch next(int64_t step) override;
  nlohmann::json state() const override { return nlohmann::json::object(); }

 private:
  RunConfig config_;
  int rank_, world_;
};

// This rank's batch stream for train.data: SyntheticBatches, or batches from WebDataset shards through
// the data loader (src/data/loader.hpp), this rank's share of the global batch. `saved` is
// TrainerState::data of the checkpoint resumed from (one loader state per rank, {"ranks": [...]});
// a loader state written by another world size cannot be continued: the stream restarts (with a warning
// when `step` > 0). SIGTERM / SIGINT cut a wait for data short (next() throws LoaderInterrupted): in a
// one-process run at once; with several ranks only after 10 s, a stalled source, so that a short wait
// ends in a step all ranks save together. Throws ConfigError when a shard pattern matches nothing readable.
// `views_from_step`: with train.self_distillation, the first step whose batch needs the local crops (the
// loader makes none before it: 80% of a run would otherwise pay for crops it drops).
std::unique_ptr<BatchSource> make_batch_source(const RunConfig& config, int rank, int world_size,
                                               const nlohmann::json& saved, int64_t step, int64_t views_from_step = 0);

}  // namespace siglip2
