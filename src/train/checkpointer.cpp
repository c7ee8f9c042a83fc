#include "train/checkpointer.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <csignal>
#include <cstring>
#include <functional>

#include "common/error.hpp"
#include "common/logging.hpp"
#include "train/batch.hpp"
#include "train/distributed.hpp"
#include "train/model.hpp"
#include "train/optimizer.hpp"
#include "train/step.hpp"

namespace siglip2 {

Checkpointer::Checkpointer(const RunConfig& config, const TrainOptions& options, ProcessGroup* pg)
    : config_(config), options_(options), pg_(pg) {}

bool Checkpointer::is_phase_point(int64_t step) const {
  for (double f : config_.train.phase_checkpoints)
    if (step == progress_step(f, config_.train.total_steps)) return true;
  return false;
}

bool Checkpointer::due(int64_t step, bool stop) const {
  return stop || step % config_.train.checkpoint_every == 0 || step == config_.train.total_steps ||
         is_phase_point(step);
}

namespace {

// Runs `what` on this rank and tells every rank whether it failed anywhere (one all-reduce), so that
// all ranks stop on the same error instead of waiting for a rank that has given up.
void on_every_rank(ProcessGroup& pg, const char* stage, const std::function<void()>& what) {
  std::string error;
  try {
    what();
  } catch (const std::exception& e) {
    error = e.what();
  }
  at::Tensor failed = at::full({1}, error.empty() ? 0.0 : 1.0, at::kDouble);
  pg.all_reduce_sum(failed);
  if (!error.empty()) throw Error(error);
  if (failed.item<double>() > 0)
    throw Error(fmt::format("{} failed on another rank (its log says why); the previous checkpoint stands", stage));
}

}  // namespace

void Checkpointer::save(const TrainingModel& model, const AdamOptimizer& optimizer, TrainerState& state,
                        const BatchSource& source) {
  last_saved_step = state.step;
  state.keep = is_phase_point(state.step);
  state.data = gather_data_states(source);
  const bool rank0 = !pg_ || pg_->rank() == 0;
  const std::string& run_dir = config_.train.out_dir;
  CheckpointContents c;
  auto finish = [&] {
    if (state.step == options_.sigkill_in_save_at_step) std::raise(SIGKILL);  // testing: a kill inside a save
    c.model = model.parameters();
    c.teacher = model.teacher_tensors();
    c.state = state;
    c.config_yaml = options_.config_yaml;
    c.tokenizer_model = options_.tokenizer_model;
    const std::string path = finish_checkpoint(run_dir, c, config_.train.keep_checkpoints);
    log_info(fmt::format("step {}: saved {}{}", state.step, path, state.keep ? " (phase checkpoint, kept)" : ""));
  };
  if (!optimizer.sharded()) {
    if (rank0) {
      begin_checkpoint(run_dir, state.step);
      c.optimizer = optimizer.state();
      finish();
    }
    if (pg_) pg_->barrier();  // nobody runs ahead of a checkpoint that may be rolled back to
    return;
  }
  // Sharded: rank 0 makes the temporary directory (on a filesystem every rank sees), every rank writes its
  // slices of the moments into it, rank 0 writes the rest and renames it into place; each stage's
  // failure anywhere stops every rank with it.
  on_every_rank(*pg_, "making the checkpoint's directory", [&] {
    if (rank0) begin_checkpoint(run_dir, state.step);
  });
  at::Tensor writer = at::full({1}, rank0 ? static_cast<int64_t>(::getpid()) : 0, at::kLong);
  pg_->broadcast(writer, 0);
  const std::string tmp = checkpoint_tmp_dir(run_dir, state.step, writer.item<int64_t>());
  on_every_rank(*pg_, "writing an optimizer shard",
                [&] { write_optimizer_shard(tmp, pg_->rank(), pg_->world_size(), optimizer.state()); });
  c.optimizer_shards = pg_->world_size();
  on_every_rank(*pg_, "finishing the checkpoint", [&] {
    if (rank0) finish();
  });
}

void Checkpointer::stopped_while_waiting(const TrainingModel& model, const AdamOptimizer& optimizer,
                                         TrainerState& state, const BatchSource& source) {
  const int world = pg_ ? pg_->world_size() : 1;
  if (state.step == last_saved_step) {
    log_info(fmt::format("stopped by signal while waiting for data at step {}; no step since the last checkpoint",
                         state.step));
  } else if (world == 1) {
    save(model, optimizer, state, source);
    log_info(fmt::format("stopped by signal while waiting for data at step {}; checkpoint saved", state.step));
  } else {
    log_warn(
        fmt::format("stopped by signal while waiting for data at step {}; with {} ranks no checkpoint can be "
                    "written now: the run resumes from step {}",
                    state.step, world, last_saved_step));
  }
}

// Every rank's loader state, gathered on all ranks (strings of different lengths, as bytes).
nlohmann::json Checkpointer::gather_data_states(const BatchSource& source) const {
  const std::string mine = source.state().dump();
  if (!pg_) return {{"ranks", {nlohmann::json::parse(mine)}}};
  at::Tensor len = at::full({1}, static_cast<int64_t>(mine.size()), at::kLong);
  at::Tensor lens = pg_->all_gather(len);
  const int64_t longest = lens.max().item<int64_t>();
  at::Tensor bytes = at::zeros({longest}, at::kByte);
  std::memcpy(bytes.data_ptr(), mine.data(), mine.size());
  at::Tensor all = pg_->all_gather(bytes).view({pg_->world_size(), longest});
  nlohmann::json ranks = nlohmann::json::array();
  for (int r = 0; r < pg_->world_size(); ++r)
    ranks.push_back(nlohmann::json::parse(
        std::string(reinterpret_cast<const char*>(all[r].data_ptr()), static_cast<size_t>(lens[r].item<int64_t>()))));
  return {{"ranks", ranks}};
}

}  // namespace siglip2
