#pragma once
// When and what a training run saves (DESIGN.md §3; the file format is checkpoint.hpp): every
// train.checkpoint_every steps, at the last step, at each of train.phase_checkpoints (kept by retention)
// and when the run is stopped. Every rank contributes its loader state; rank 0 writes.
#include <cstdint>

#include "train/checkpoint.hpp"
#include "train/config.hpp"
#include "train/trainer.hpp"

namespace siglip2 {

class AdamOptimizer;
class BatchSource;
class ProcessGroup;
struct TrainingModel;

class Checkpointer {
 public:
  // `pg`: null in a one-process run.
  Checkpointer(const RunConfig& config, const TrainOptions& options, ProcessGroup* pg);
  // Whether the state after `step` steps is saved (`stop`: the run is stopping).
  bool due(int64_t step, bool stop) const;
  // Saves the state after state.step steps; a collective: every rank calls it. Sets state.keep (phase
  // points) and state.data (every rank's loader state), then waits until rank 0 has written it.
  void save(const TrainingModel& model, const AdamOptimizer& optimizer, TrainerState& state, const BatchSource& source);
  // SIGTERM / SIGINT while the loader waited (a stalled source): the state is that of the last step, so a
  // checkpoint resumes exactly. One process saves it if steps were taken since the last checkpoint; with
  // several ranks the others may be inside a collective and cannot join a save, so the last one stands.
  void stopped_while_waiting(const TrainingModel& model, const AdamOptimizer& optimizer, TrainerState& state,
                             const BatchSource& source);
  // The step of the newest checkpoint this process wrote or resumed from; -1 when a rollback has left
  // state that is in no checkpoint yet.
  int64_t last_saved_step = 0;

 private:
  bool is_phase_point(int64_t step) const;
  nlohmann::json gather_data_states(const BatchSource& source) const;

  const RunConfig& config_;
  const TrainOptions& options_;
  ProcessGroup* pg_;
};

}  // namespace siglip2
