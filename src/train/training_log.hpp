#pragma once
// What a training run reports, and when (docs/training.md, "Observability"). On a terminal: one progress
// line, rewritten every step (step/total, %, ETA, pairs/s, TFLOP/s, MFU, loss, lr, data wait). Every
// train.log_every steps and at the last step: a log line (when not on a terminal), a row of
// RUN/metrics.jsonl and TensorBoard scalars under "train/". Evaluations: log lines, a metrics row and
// scalars under "eval/". Only the writer (rank 0) writes; the losses it is given are averages over ranks, the
// data wait is rank 0's.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "train/config.hpp"

namespace siglip2 {

struct ZeroShotResult;
class TensorBoardWriter;

struct StepReport {
  int64_t step = 0;  // optimizer steps done, this one included
  double loss = 0, lr = 0, grad_norm = 0;
  double t = 0, b = 0;  // exp(logit_scale) and logit_bias after the step
  // The loss terms under their metric names (StepLosses::terms), averaged over ranks.
  std::vector<std::pair<std::string, double>> terms;
  int64_t examples = 0;    // pairs in this step over all ranks
  double data_wait_s = 0;  // seconds this rank waited for the batch
  std::string phase;       // TrainerState::phase
  int64_t rollbacks = 0;
};

class TrainingLog {
 public:
  // `peak_flops`: this device's dense bf16 peak (0: unknown, no MFU). `start_step`: where this process
  // started (ETA and rates count from there). `extra_flop_per_pair`: FLOPs per trained pair beyond the
  // towers' 3 forwards (the ACID stage's scoring of its super-batch).
  TrainingLog(const RunConfig& config, bool writer, int world_size, double peak_flops, int64_t start_step,
              double extra_flop_per_pair = 0);
  ~TrainingLog();
  // Whether step `step` gets a log line and a metrics row.
  bool due(int64_t step) const;
  void step(const StepReport& r);
  void evaluation(int64_t step, const ZeroShotResult& z, double seconds);

 private:
  double mfu(double pairs_per_s) const;
  void progress_line(const StepReport& r);
  void write_row(const StepReport& r, double pairs_per_s, double data_wait);
  void append_metrics(const std::string& json_line);

  RunConfig config_;
  bool writer_, tty_;
  int world_size_;
  double peak_flops_;
  double flop_per_pair_;  // two-tower training FLOPs per pair (3 x forward, + ACID's scoring), for TFLOP/s and MFU
  int64_t start_step_;
  std::chrono::steady_clock::time_point start_, last_;
  int64_t examples_since_ = 0;
  double wait_since_ = 0, wait_total_ = 0;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
};

}  // namespace siglip2
