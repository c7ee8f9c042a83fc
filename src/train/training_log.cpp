#include "train/training_log.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/logging.hpp"
#include "models/siglip2.hpp"
#include "train/eval.hpp"
#include "train/tensorboard.hpp"

namespace siglip2 {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

TrainingLog::TrainingLog(const RunConfig& config, bool writer, int world_size, double peak_flops, int64_t start_step,
                         double extra_flop_per_pair)
    : config_(config),
      writer_(writer),
      tty_(::isatty(STDERR_FILENO) != 0),
      world_size_(world_size),
      peak_flops_(peak_flops),
      flop_per_pair_(3 * forward_flops(config.model).pair() + extra_flop_per_pair),
      start_step_(start_step),
      start_(Clock::now()),
      last_(start_) {
  if (writer_) tensorboard_ = std::make_unique<TensorBoardWriter>(config_.train.out_dir + "/tensorboard");
}

TrainingLog::~TrainingLog() = default;

bool TrainingLog::due(int64_t step) const {
  return step % config_.train.log_every == 0 || step == config_.train.total_steps;
}

void TrainingLog::step(const StepReport& r) {
  examples_since_ += r.examples;
  wait_since_ += r.data_wait_s;
  wait_total_ += r.data_wait_s;
  if (tty_ && writer_) progress_line(r);
  if (!due(r.step)) return;
  const auto now = Clock::now();
  const double secs = std::max(std::chrono::duration<double>(now - last_).count(), 1e-9);
  write_row(r, examples_since_ / secs, wait_since_ / secs);
  last_ = now;
  examples_since_ = 0;
  wait_since_ = 0;
}

// Model FLOPs utilisation of each device: global pairs/s over the ranks, against this device's peak.
double TrainingLog::mfu(double pairs_per_s) const {
  return peak_flops_ > 0 ? pairs_per_s / world_size_ * flop_per_pair_ / peak_flops_ : 0;
}

void TrainingLog::progress_line(const StepReport& r) {
  const int64_t total = config_.train.total_steps, done = r.step - start_step_;
  const double secs = std::chrono::duration<double>(Clock::now() - start_).count();
  const double per_step = done > 0 ? secs / done : 0;
  const auto eta = static_cast<long long>(per_step * (total - r.step));
  const double pairs = per_step > 0 ? config_.train.batch_size / per_step : 0.0;
  const std::string mfu_text = mfu(pairs) > 0 ? fmt::format(" MFU {:.1f}%", 100 * mfu(pairs)) : "";
  std::fprintf(stderr,
               "\r%lld/%lld %5.1f%% ETA %lld:%02lld:%02lld | %.1f pairs/s %.2f TFLOP/s%s | loss %.4f | lr %.3g | "
               "data wait %.0f%%   ",
               static_cast<long long>(r.step), static_cast<long long>(total), 100.0 * r.step / total, eta / 3600,
               eta / 60 % 60, eta % 60, pairs, pairs * flop_per_pair_ / 1e12, mfu_text.c_str(), r.loss, r.lr,
               secs > 0 ? 100.0 * wait_total_ / secs : 0.0);
  if (r.step == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

void TrainingLog::write_row(const StepReport& r, double pairs_per_s, double data_wait) {
  if (!writer_) return;
  const int64_t total = config_.train.total_steps;
  const double tflops = pairs_per_s * flop_per_pair_ / 1e12;
  if (!tty_) {
    std::string terms;
    for (const auto& [name, value] : r.terms) terms += fmt::format(" {} {:.4f}", name, value);
    log_info(fmt::format(
        "step {}/{} ({:.1f}%) loss {:.4f}{} lr {:.3g} grad {:.3f} t {:.2f} b {:.2f} | {:.1f} "
        "pairs/s, {:.3f} TFLOP/s",
        r.step, total, 100.0 * r.step / total, r.loss, terms, r.lr, r.grad_norm, r.t, r.b, pairs_per_s, tflops));
  }
  std::vector<std::pair<std::string, double>> scalars = {{"loss", r.loss}};
  scalars.insert(scalars.end(), r.terms.begin(), r.terms.end());
  for (const auto& kv : std::vector<std::pair<std::string, double>>{{"lr", r.lr},
                                                                    {"grad_norm", r.grad_norm},
                                                                    {"t", r.t},
                                                                    {"b", r.b},
                                                                    {"pairs_per_s", pairs_per_s},
                                                                    {"tflops", tflops},
                                                                    {"data_wait", data_wait}})
    scalars.push_back(kv);
  nlohmann::ordered_json j = {{"step", r.step}};
  for (const auto& [k, v] : scalars) j[k] = v;
  j["rollbacks"] = r.rollbacks;
  j["phase"] = r.phase;
  if (peak_flops_ > 0) j["mfu"] = mfu(pairs_per_s);
  for (auto& kv : scalars) kv.first = "train/" + kv.first;
  tensorboard_->scalars(r.step, scalars);
  append_metrics(j.dump());
}

void TrainingLog::evaluation(int64_t step, const ZeroShotResult& z, double seconds) {
  if (!writer_) return;
  log_info(
      fmt::format("step {}: zero-shot top-1 {:.2f}% top-5 {:.2f}% on {} images, {} classes (chance {:.2f}%) "
                  "[{:.1f} s]",
                  step, 100 * z.top1, 100 * z.top5, z.images, z.classes, 100.0 / z.classes, seconds));
  nlohmann::ordered_json j = {
      {"step", step}, {"zero_shot_top1", z.top1}, {"zero_shot_top5", z.top5}, {"eval_images", z.images}};
  std::vector<std::pair<std::string, double>> scalars = {{"eval/zero_shot_top1", z.top1},
                                                         {"eval/zero_shot_top5", z.top5}};
  if (z.retrieval.pairs > 0) {
    const RetrievalResult& rr = z.retrieval;
    const char* ks[3] = {"r1", "r5", "r10"};
    for (const char* way : {"i2t", "t2i"})
      for (int k = 0; k < 3; ++k) {
        const std::string key = fmt::format("retrieval_{}_{}", way, ks[k]);
        const double v = way[0] == 'i' ? rr.image_to_text[k] : rr.text_to_image[k];
        j[key] = v;
        scalars.emplace_back("eval/" + key, v);
      }
    log_info(
        fmt::format("step {}: retrieval on {} pairs: image->text R@1/5/10 {:.1f}/{:.1f}/{:.1f}%, "
                    "text->image {:.1f}/{:.1f}/{:.1f}%",
                    step, rr.pairs, 100 * rr.image_to_text[0], 100 * rr.image_to_text[1], 100 * rr.image_to_text[2],
                    100 * rr.text_to_image[0], 100 * rr.text_to_image[1], 100 * rr.text_to_image[2]));
  }
  tensorboard_->scalars(step, scalars);
  append_metrics(j.dump());
}

void TrainingLog::append_metrics(const std::string& json_line) {
  fs::create_directories(config_.train.out_dir);
  std::ofstream(fs::path(config_.train.out_dir) / "metrics.jsonl", std::ios::app) << json_line << "\n";
}

}  // namespace siglip2
