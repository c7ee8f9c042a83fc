#pragma once
// The ACID stage's selection step (SigLIP 2 §2.5; recipe.md §6.3; docs/recipe.md "ACID"): each step the
// trainer draws this rank's share of the super-batch, this class scores it with the learner and the
// reference model and returns the examples JEST's joint sampler (losses/acid.hpp) selects; the trainer
// then takes an ordinary sigmoid-loss step on them.
//
// Selection is per rank: rank r selects train.batch_size / W pairs from its own train.batch_size /
// ((1 − acid.filter_ratio) W), with the learnability of pairs within that share. Nothing crosses ranks
// (no examples move; every rank trains an equal share, as the sigmoid loss's exchange needs); one process
// and W ranks select alike only when W = 1.
//
// Draws: chunk q of step s on rank r uses uniforms from (train.seed, s, r, q) alone, so a resumed run
// selects what the uninterrupted one selects without any state in the checkpoint.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/named_tensors.hpp"
#include "data/batch.hpp"
#include "train/config.hpp"

namespace siglip2 {

struct Siglip2ModelImpl;

// The examples `idx` of `batch`, in that order (every per-example tensor indexed; keys too). For the
// ACID stage's batches: the LocCa targets and self-distillation views, which it does not use, must be absent.
Batch select_examples(const Batch& batch, const std::vector<int64_t>& idx);

// The uniforms in (0, 1) of JEST's chunk `chunk` at step `step` on rank `rank` (float64 [n]): a function of
// these and train.seed alone (data/rng.hpp's generator, the same on every platform).
at::Tensor acid_uniforms(uint64_t seed, int64_t step, int64_t rank, int64_t chunk, int64_t n);

// What scoring holds per rank beyond the models, in bytes: the four L2-normalised embedding matrices of the
// `super` pairs (float32; the learner's and the reference's widths) and the learner's and the reference's row
// and column blocks of one chunk of ceil(select / chunks) pairs (float32 [chunk, super] each); the
// |SB| x |SB| matrix is never held (losses/acid.hpp).
int64_t acid_scoring_bytes(int64_t super, int64_t select, int64_t chunks, int64_t learner_width,
                           int64_t reference_width);

struct AcidStepSelection {
  std::vector<int64_t> chosen;  // super-batch indices, in the order drawn
  Batch batch;                  // the selected examples (on the super-batch's device), in super-batch order
  // Scalars (float64, CPU) under their metric names: "acid_learnability_selected", "acid_learnability_rejected"
  // (means of S_ii), then per data source k "acid_selected_share_k" and "acid_super_batch_share_k" (fractions).
  NamedTensors metrics;
};

class AcidSelection {
 public:
  // `reference`: the read-only reference model (moved to `device`, eval mode, never updated). Its image size
  // may differ from the run's (the run's pixels are resized for it); its text input must be the run's token
  // ids (the caller checks tokenizers). `sources`: the number of data sources (data.shards patterns).
  AcidSelection(const RunConfig& config, std::shared_ptr<Siglip2ModelImpl> reference, const c10::Device& device,
                bool bf16, int rank, int world_size, int64_t sources);
  // Scores `super_batch` (this rank's, on the host; its tower inputs go to the device one micro-batch-sized
  // chunk at a time, once for both models) and selects. The selected batch stays on the host, pinned when
  // the super-batch was. Throws siglip2::Error when the super-batch holds fewer pairs than the batch (the
  // data ran out); a shorter super-batch than configured is selected from with a warning.
  AcidStepSelection select(Siglip2ModelImpl& learner, const Batch& super_batch, int64_t step) const;
  // acid_scoring_bytes for this rank, for a learner of embedding width `learner_width`.
  int64_t scoring_bytes(int64_t learner_width) const;
  // The scoring's FLOPs per selected pair: both models' forward on super / batch pairs (forward_flops).
  double scoring_flop_per_pair() const;
  int64_t super_batch_per_rank() const { return super_; }
  int64_t batch_per_rank() const { return select_; }

 private:
  RunConfig config_;
  std::shared_ptr<Siglip2ModelImpl> reference_;
  c10::Device device_;
  bool bf16_;
  int rank_;
  int64_t super_, select_, chunk_examples_, sources_;
};

}  // namespace siglip2
