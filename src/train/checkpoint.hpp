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
  std::string config_hash;
  nlohmann::json data;  // loader state per rank

  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j, const std::string& what);
};

struct CheckpointContents {
  NamedTensors model, teacher, optimizer;
  TrainerState state;
  std::string config_yaml;
  std::string tokenizer_model;  // path of a sentencepiece model to copy in, or ""
};

// Writes RUN/ckpt-<step> and points RUN/latest at it. Then deletes all but the newest `keep_last`
// checkpoints that are not phase checkpoints. Returns the checkpoint's path.
std::string save_checkpoint(const std::string& run_dir, const CheckpointContents& c, int64_t keep_last);

struct LoadedCheckpoint {
  std::string path;
  TrainerState state;
  std::map<std::string, at::Tensor> model, teacher, optimizer;
};

// The newest checkpoint that reads back completely: RUN/latest first, then the others by step,
// newest first. A damaged one is reported (logged) and skipped. nullopt when there is none.
std::optional<LoadedCheckpoint> load_latest_checkpoint(const std::string& run_dir);

// Reads and validates one checkpoint directory; throws siglip2::Error naming the file and problem.
LoadedCheckpoint load_checkpoint(const std::string& dir);

std::vector<std::string> list_checkpoints(const std::string& run_dir);  // newest first

}  // namespace siglip2
