#pragma once
// Training checkpoints (DESIGN.md §3): RUN/ckpt-<step>/ holds model.safetensors (HF names plus
// training-only "text_decoder." and "self_distillation." tensors), teacher.safetensors (during self-distillation),
// optimizer.safetensors, trainer_state.json and the resolved config.yaml. A checkpoint is written
// into a temporary directory, synced and renamed; RUN/latest names the newest complete one and is
// replaced atomically. A crash at any moment leaves the previous checkpoint intact.
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/named_tensors.hpp"

namespace siglip2 {

// Everything a restart needs besides tensors (Marian's TrainingState).
struct TrainerState {
  int64_t step = 0;  // optimizer steps done
  int64_t examples_seen = 0;
  bool self_distillation = false;       // the 80% phase has started
  bool keep = false;                    // a phase checkpoint: never deleted by retention
  std::string phase;                    // "pretrain", "self_distillation", ... for logs
  double loss_fast = 0, loss_slow = 0;  // moving averages for the spike detector
  int64_t rollbacks = 0;
  std::vector<int64_t> skipped_steps;  // batches skipped after a rollback
  int world_size = 1;
  int64_t batch_size = 0;        // the global batch (train.batch_size); 0 in checkpoints written before it was kept
  int64_t acid_super_batch = 0;  // the ACID stage's global super-batch (RunConfig::drawn_batch_size); 0: no ACID
  std::string acid_reference;    // the ACID stage: the reference's directory as resolved (a run's checkpoint)
  int64_t acid_chunks = 0;
  std::string config_hash;
  nlohmann::json data;  // loader state per rank

  // The loss-spike and NaN detector (train.spike_factor, train.spike_warmup): why this step's global
  // loss must be rolled back, or "". track_loss() then adds an accepted step's loss to the averages.
  std::string loss_problem(double loss, int64_t at_step, double spike_factor, int64_t spike_warmup) const;
  void track_loss(double loss);

  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j, const std::string& what);
};

struct CheckpointContents {
  NamedTensors model, teacher, optimizer;
  // > 0: the optimizer state was written by that many ranks (write_optimizer_shard), each its slices;
  // optimizer.json lists the files instead of one optimizer.safetensors.
  int optimizer_shards = 0;
  TrainerState state;
  std::string config_yaml;
  std::string tokenizer_model;  // path of a sentencepiece model to copy in, or ""
};

// Writes RUN/ckpt-<step> and points RUN/latest at it. Then deletes all but the newest `keep_last`
// checkpoints that are not phase checkpoints. Returns the checkpoint's path.
std::string save_checkpoint(const std::string& run_dir, const CheckpointContents& c, int64_t keep_last);

// save_checkpoint in steps, for optimizer state that every rank writes (ZeRO-1): rank 0 begins (the
// temporary directory, named after rank 0's process), every rank writes its shard into it, then rank 0
// finishes (the other files, optimizer.json, the atomic rename). A kill at any point leaves the previous
// checkpoint as it was; leftovers are removed by the next save.
// `writer_pid`: rank 0's process id (the directory is named after the process that renames it).
std::string checkpoint_tmp_dir(const std::string& run_dir, int64_t step, int64_t writer_pid);
void begin_checkpoint(const std::string& run_dir, int64_t step);
void write_optimizer_shard(const std::string& tmp_dir, int rank, int world, const NamedTensors& state);
std::string finish_checkpoint(const std::string& run_dir, const CheckpointContents& c, int64_t keep_last);

struct LoadedCheckpoint {
  std::string path;
  TrainerState state;
  std::map<std::string, at::Tensor> model, teacher, optimizer;
};

// The newest checkpoint that reads back completely: RUN/latest first, then the others by step,
// newest first. A damaged one is reported (logged) and skipped. nullopt when there is none.
std::optional<LoadedCheckpoint> load_latest_checkpoint(const std::string& run_dir);

// Reads and validates one checkpoint directory; throws siglip2::Error naming the file and problem.
// Sharded optimizer state is assembled into full tensors ("exp_avg/NAME", shaped as the parameter), each
// element covered exactly once, so that any number of ranks, sharded or not, can resume from it.
LoadedCheckpoint load_checkpoint(const std::string& dir);

std::vector<std::string> list_checkpoints(const std::string& run_dir);  // newest first

// Before a run resumes from `ck`: a ConfigError when it was trained with another global batch or ACID
// super-batch (`acid_super_batch`, 0 without the ACID stage), unless `allow_batch_change`; a warning when it
// was written by another number of ranks.
void check_resumable(const LoadedCheckpoint& ck, int64_t batch_size, int64_t acid_super_batch, bool allow_batch_change,
                     int world_size);

}  // namespace siglip2
