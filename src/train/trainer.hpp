#pragma once
// The training loop of `siglip2 train`: sigmoid + LocCa from the start, self-distillation from 80%,
// data-parallel over the launcher's ranks, checkpoints that survive crashes, exact resume, SIGTERM
// handling and rollback on NaN or loss spikes.
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/named_tensors.hpp"
#include "train/config.hpp"

namespace siglip2 {

struct Siglip2ModelImpl;

struct TrainOptions {
  bool resume = true;                    // continue from RUN/latest when there is one
  bool allow_batch_size_change = false;  // resume a checkpoint trained with another train.batch_size
  std::string config_yaml;               // the resolved config, written into every checkpoint
  std::string tokenizer_model;           // copied into checkpoints when set
  // train.init_from, read by the caller: the towers' tensors (HF names) a run from scratch starts with.
  NamedTensors init_tensors;
  std::string init_source;
  // acid.reference, read by the caller: the ACID stage's reference model (read-only; moved to the device).
  std::shared_ptr<Siglip2ModelImpl> reference;
  std::string reference_source;
  // Testing hooks: make the loss of this step NaN once (rollback test); SIGKILL this process after the
  // first micro-batch's backward of this step (a kill inside an accumulated step).
  int64_t inject_nan_at_step = -1;
  int64_t sigkill_in_step = -1;
  int64_t sigkill_in_save_at_step = -1;  // rank 0, after the optimizer shards are written, before the rest
};

// Returns the process exit status (0: finished or stopped cleanly by a signal).
int train(const RunConfig& config, const TrainOptions& options);

}  // namespace siglip2
