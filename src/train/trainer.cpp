#include "train/trainer.hpp"

#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/logging.hpp"
#include "losses/locca.hpp"
#include "losses/self_distillation.hpp"
#include "losses/sigmoid.hpp"
#include "models/siglip2.hpp"
#include "models/text_decoder.hpp"
#include "siglip2/build_config.hpp"
#include "train/batch.hpp"
#include "train/bench.hpp"
#include "train/checkpoint.hpp"
#include "train/distributed.hpp"
#include "train/eval.hpp"
#include "data/loader.hpp"
#include "data/shard_list.hpp"
#if SIGLIP2_CONFIG_SENTENCEPIECE
#include "data/tokenizer.hpp"
#endif
#include "train/grad_sync.hpp"
#include "train/optimizer.hpp"
#include "train/step.hpp"
#include "train/tensorboard.hpp"

namespace siglip2 {
namespace {

namespace fs = std::filesystem;

std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) {
  g_stop_signal.store(sig);
}

// SIGTERM / SIGINT finish the current step, save and exit 0; the previous handlers come back after.
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal.store(0);
    old_term_ = std::signal(SIGTERM, on_stop_signal);
    old_int_ = std::signal(SIGINT, on_stop_signal);
  }
  ~StopSignals() {
    std::signal(SIGTERM, old_term_);
    std::signal(SIGINT, old_int_);
  }

 private:
  void (*old_term_)(int);
  void (*old_int_)(int);
};

int64_t progress_step(double fraction, int64_t total) {
  return static_cast<int64_t>(std::llround(fraction * static_cast<double>(total)));
}

// Everything that trains, under its checkpoint name.
struct Model {
  Siglip2Model towers{nullptr};
  TextDecoder decoder{nullptr};
  SelfDistillationHeads ssl_heads{nullptr};
  std::unique_ptr<EmaTeacher> teacher;
  std::unique_ptr<SelfDistillation> ssl;

  TensorList parameters() const {
    TensorList out;
    for (const auto& p : towers->named_parameters()) out.emplace_back(p.key(), p.value());
    if (decoder)
      for (const auto& p : decoder->named_parameters()) out.emplace_back("text_decoder." + p.key(), p.value());
    if (ssl_heads)
      for (const auto& p : ssl_heads->named_parameters()) out.emplace_back("ssl." + p.key(), p.value());
    return out;
  }
  TensorList teacher_tensors() const {
    TensorList out;
    if (!teacher) return out;
    out = teacher->named_parameters();
    out.emplace_back("ssl.center_global", ssl->center_global);
    out.emplace_back("ssl.center_patch", ssl->center_patch);
    return out;
  }
};

void load_named(const TensorList& dst, const std::map<std::string, at::Tensor>& src, const std::string& what) {
  torch::NoGradGuard g;
  for (const auto& [name, t] : dst) {
    auto it = src.find(name);
    if (it == src.end()) throw Error(what + ": tensor '" + name + "' is missing");
    if (!it->second.sizes().equals(t.sizes()))
      throw Error(what + ": tensor '" + name + "' has shape " + c10::str(it->second.sizes()) + ", the model " +
                  c10::str(t.sizes()));
    t.copy_(it->second);
  }
}

class Trainer {
 public:
  Trainer(const RunConfig& c, const TrainOptions& o) : cfg_(c), opts_(o) {}

  int run() {
    env_ = dist_env_from_environment();
    choose_device();
    if (env_.world_size > 1) {
      std::string backend = cfg_.dist.backend == "auto" ? (device_.is_cuda() ? "nccl" : "gloo") : cfg_.dist.backend;
      pg_ = ProcessGroup::create(env_, backend, std::chrono::seconds(cfg_.dist.timeout_s));
    }
    build_model();
    train_flop_per_pair_ = 3 * forward_flops(cfg_.model).pair();
    state_.world_size = env_.world_size;
    state_.phase = "pretrain";
    if (opts_.resume) restore();
    if (!source_) make_source();
    if (rank0()) tensorboard_ = std::make_unique<TensorBoardWriter>(cfg_.train.out_dir + "/tensorboard");
    make_sync();
    if (!cfg_.eval.shards.empty())  // before training starts, not at the first evaluation
      check_shard_files("eval.shards", cfg_.eval.shards, expand_braces(cfg_.eval.shards), 0.0, &cfg_.data.remote);
    StopSignals signals;
    last_saved_step_ = state_.step;
    const int64_t total = cfg_.train.total_steps;
    log_info(fmt::format("training {} for {} steps, global batch {} on {} rank(s), from step {}", cfg_.model.name,
                         total, cfg_.train.batch_size, env_.world_size, state_.step));
    auto t_last = std::chrono::steady_clock::now();
    const auto t_start = t_last;
    const int64_t start_step = state_.step;
    int64_t examples_since = 0;
    double wait_since = 0;
    tty_ = ::isatty(STDERR_FILENO) != 0;
    while (state_.step < total) {
      const int64_t step = state_.step;
      maybe_start_self_distillation(step);
      if (std::find(state_.skipped_steps.begin(), state_.skipped_steps.end(), step) != state_.skipped_steps.end()) {
        log_warn(fmt::format("step {}: skipping the batch that caused a rollback", step));
        state_.step++;
        continue;
      }
      StepResult r;
      try {
        r = train_step(step);
      } catch (const LoaderInterrupted&) {
        return stop_while_waiting_for_data();
      }
      if (!r.ok) {
        rollback(step, r.why);
        continue;
      }
      state_.step++;
      state_.examples_seen += r.examples;
      examples_since += r.examples;
      wait_since += r.data_wait_s;
      wait_total_ += r.data_wait_s;
      if (tty_ && rank0()) progress_line(r, t_start, start_step);
      if (state_.step % cfg_.train.log_every == 0 || state_.step == total) {
        auto now = std::chrono::steady_clock::now();
        double secs = std::chrono::duration<double>(now - t_last).count();
        log_step(r, examples_since / std::max(secs, 1e-9), wait_since / std::max(secs, 1e-9));
        t_last = now;
        examples_since = 0;
        wait_since = 0;
      }
      if (cfg_.eval.every > 0 && state_.step % cfg_.eval.every == 0 && state_.step < total) evaluate();
      bool phase_point = is_phase_point(state_.step);
      bool stop = stop_requested();
      if (state_.step % cfg_.train.checkpoint_every == 0 || state_.step == total || phase_point || stop)
        save(phase_point);
      if (stop) {
        log_info(fmt::format("stopped by signal at step {}; checkpoint saved", state_.step));
        return 0;
      }
    }
    log_info(fmt::format("training finished at step {}", state_.step));
    evaluate();
    return 0;
  }

 private:
  struct StepResult {
    bool ok = true;
    std::string why;
    double loss = 0, sigmoid = 0, locca = 0, ssl_gl = 0, ssl_mask = 0, grad_norm = 0, lr = 0, data_wait_s = 0;
    int64_t examples = 0;
  };

  Collectives* comm() { return pg_.get(); }
  bool rank0() const { return env_.rank == 0; }

  // train.device auto: this rank's GPU (LOCAL_RANK) when CUDA is available, else the CPU;
  // train.precision auto: bf16 autocast on CUDA, fp32 on the CPU.
  void choose_device() {
    const bool cuda_ok = torch::cuda::is_available();
    if (cfg_.train.device == "cuda" && !cuda_ok)
      throw ConfigError("train.device: cuda, but this process sees no GPU (or the build has no CUDA)");
    const bool cuda = cfg_.train.device == "cuda" || (cfg_.train.device == "auto" && cuda_ok);
    if (cuda && env_.local_rank >= static_cast<int>(torch::cuda::device_count()))
      throw ConfigError(
          fmt::format("local rank {} has no GPU: {} visible", env_.local_rank, torch::cuda::device_count()));
    device_ = cuda ? c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env_.local_rank)) : c10::Device(c10::kCPU);
    bf16_ = cfg_.train.precision == "bf16" || (cfg_.train.precision == "auto" && cuda);
    if (cuda) peak_flops_ = device_peak_flops(cuda_device_name(env_.local_rank));
    if (cuda || bf16_)
      log_info(fmt::format("device {}, {}", device_.str(), bf16_ ? "bf16 autocast, fp32 weights" : "fp32"));
  }

  void build_model() {
    torch::manual_seed(static_cast<uint64_t>(cfg_.train.seed));
    m_.towers = Siglip2Model(cfg_.model);
    m_.towers->reset_parameters(static_cast<uint64_t>(cfg_.train.seed));
    {
      torch::NoGradGuard g;
      m_.towers->logit_scale.fill_(cfg_.train.logit_scale_init);
      m_.towers->logit_bias.fill_(cfg_.train.logit_bias_init);
    }
    if (!opts_.init_tensors.empty()) {
      TensorList towers;
      for (const auto& p : m_.towers->named_parameters()) towers.emplace_back(p.key(), p.value());
      load_named(towers, std::map<std::string, at::Tensor>(opts_.init_tensors.begin(), opts_.init_tensors.end()),
                 "train.init_from " + opts_.init_source);
    }
    m_.towers->to(device_);
    if (cfg_.train.locca) {
      m_.decoder = TextDecoder(cfg_.model);
      m_.decoder->to(device_);
    }
    optimizer_ = std::make_unique<AdamOptimizer>(cfg_.optimizer, m_.parameters());
    broadcast_parameters();
  }

  void broadcast_parameters() {
    if (!pg_) return;
    torch::NoGradGuard g;
    for (auto& [name, p] : m_.parameters()) pg_->broadcast(p, 0);
  }

  void start_self_distillation_objects() {
    // New heads and mask token, seeded by the phase so every rank and every rerun draws the same.
    torch::manual_seed(static_cast<uint64_t>(cfg_.train.seed) + 80);
    m_.ssl_heads = SelfDistillationHeads(cfg_.model.vision, cfg_.loss.self_distillation);
    m_.ssl_heads->to(device_);
    m_.ssl = std::make_unique<SelfDistillation>(cfg_.loss.self_distillation);
    m_.ssl->center_global = m_.ssl->center_global.to(device_);
    m_.ssl->center_patch = m_.ssl->center_patch.to(device_);
    m_.teacher =
        std::make_unique<EmaTeacher>(*m_.towers->vision_model, *m_.ssl_heads, cfg_.model, cfg_.loss.self_distillation);
    m_.teacher->vision->to(device_);
    m_.teacher->heads->to(device_);
    TensorList heads;
    for (const auto& p : m_.ssl_heads->named_parameters()) heads.emplace_back("ssl." + p.key(), p.value());
    optimizer_->add_parameters(heads);
  }

  void maybe_start_self_distillation(int64_t step) {
    if (!cfg_.train.self_distillation || state_.self_distillation) return;
    if (step < progress_step(cfg_.train.self_distillation_start, cfg_.train.total_steps)) return;
    start_self_distillation_objects();
    state_.self_distillation = true;
    state_.phase = "self_distillation";
    state_.loss_fast = state_.loss_slow = 0;  // new loss terms: the spike detector starts again
    make_sync();
    log_info(fmt::format("step {}: self-distillation starts (EMA teacher from the student, new heads)", step));
  }

  void make_sync() {
    sync_.reset();
    if (pg_) sync_ = std::make_unique<GradientSync>(*pg_, m_.parameters());
  }

  StepResult train_step(int64_t step) {
    StepResult r;
    auto t_wait = std::chrono::steady_clock::now();
    TrainBatch batch = to_device(source_->next(step), device_);
    r.data_wait_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_wait).count();
    r.examples = batch.global_examples;
    optimizer_->zero_grad();
    StepModules mods{m_.towers.get(), m_.decoder ? m_.decoder.get() : nullptr};
    if (state_.self_distillation) {
      mods.ssl = m_.ssl.get();
      mods.ssl_heads = m_.ssl_heads.get();
      mods.teacher = m_.teacher.get();
    }
    const int64_t since = step - progress_step(cfg_.train.self_distillation_start, cfg_.train.total_steps);
    StepLosses l = training_losses(mods, batch, cfg_, since, bf16_, comm());
    at::Tensor loss = l.total;
    r.sigmoid = l.sigmoid.item<double>();
    if (l.locca.defined()) r.locca = l.locca.item<double>();
    if (l.ssl_global_local.defined()) {
      r.ssl_gl = l.ssl_global_local.item<double>();
      r.ssl_mask = l.ssl_masked.item<double>();
    }
    if (step == opts_.inject_nan_at_step) {
      opts_.inject_nan_at_step = -1;  // once
      loss = loss * std::numeric_limits<double>::quiet_NaN();
    }
    r.loss = mean_over_ranks(loss.item<double>());
    if (!std::isfinite(r.loss)) return fail(r, "loss is not finite");
    if (cfg_.train.spike_factor > 0 && step >= cfg_.train.spike_warmup && state_.loss_slow > 0 && state_.step > 0 &&
        r.loss > cfg_.train.spike_factor * state_.loss_slow)
      return fail(r, fmt::format("loss {:.4f} spiked above {} x its slow average {:.4f}", r.loss,
                                 cfg_.train.spike_factor, state_.loss_slow));
    loss.backward();
    if (sync_) sync_->finish();
    double mult = schedule_multiplier(cfg_.schedule, step, cfg_.train.total_steps);
    r.lr = cfg_.optimizer.lr * mult;
    r.grad_norm = optimizer_->step(mult).grad_norm;
    if (m_.teacher)
      m_.teacher->update(*m_.towers->vision_model, *m_.ssl_heads, cfg_.loss.self_distillation.ema_momentum);
    if (state_.loss_slow == 0) state_.loss_fast = state_.loss_slow = r.loss;  // (re)armed
    state_.loss_fast = 0.9 * state_.loss_fast + 0.1 * r.loss;
    state_.loss_slow = 0.99 * state_.loss_slow + 0.01 * r.loss;
    r.sigmoid = mean_over_ranks(r.sigmoid);
    return r;
  }

  StepResult fail(StepResult r, const std::string& why) {
    r.ok = false;
    r.why = why;
    return r;
  }

  double mean_over_ranks(double v) {
    if (!pg_) return v;
    at::Tensor t = at::full({1}, v, at::kDouble);
    pg_->all_reduce_sum(t);
    return t.item<double>() / pg_->world_size();
  }

  bool stop_requested() {
    double local = g_stop_signal.load() != 0 ? 1.0 : 0.0;
    return mean_over_ranks(local) > 0;  // one rank signalled: all stop together
  }

  bool is_phase_point(int64_t step) const {
    for (double f : cfg_.train.phase_checkpoints)
      if (step == progress_step(f, cfg_.train.total_steps)) return true;
    return false;
  }

  void rollback(int64_t step, const std::string& why) {
    if (++state_.rollbacks > cfg_.train.max_rollbacks)
      throw Error(fmt::format("step {}: {}; giving up after {} rollbacks", step, why, cfg_.train.max_rollbacks));
    int64_t rollbacks = state_.rollbacks;
    std::vector<int64_t> skipped = state_.skipped_steps;
    skipped.push_back(step);
    auto ck = load_latest_checkpoint(cfg_.train.out_dir);
    if (ck) {
      apply_checkpoint(*ck);
      log_warn(fmt::format("step {}: {}; rolled back to {} (step {}) and skipping that batch", step, why, ck->path,
                           state_.step));
    } else {
      // No checkpoint yet: start over from the initialisation.
      state_ = TrainerState{};
      state_.world_size = env_.world_size;
      state_.phase = "pretrain";
      sync_.reset();
      m_ = Model{};
      build_model();
      log_warn(fmt::format("step {}: {}; no checkpoint yet, restarting from the initialisation and skipping that batch",
                           step, why));
    }
    state_.rollbacks = rollbacks;
    state_.skipped_steps = skipped;
    last_saved_step_ = -1;  // the rollback count and the skipped step are not in any checkpoint yet
    make_sync();
  }

  void restore() {
    auto ck = load_latest_checkpoint(cfg_.train.out_dir);
    if (!ck) return;
    if (ck->state.world_size != env_.world_size)
      log_warn(
          fmt::format("{} was written by {} rank(s), resuming on {}", ck->path, ck->state.world_size, env_.world_size));
    apply_checkpoint(*ck);
    log_info(fmt::format("resumed from {} at step {}", ck->path, state_.step));
  }

  void apply_checkpoint(const LoadedCheckpoint& ck) {
    // Rebuilt from scratch so the set of parameters and optimizer slots is the checkpoint's.
    sync_.reset();
    m_ = Model{};
    build_model();
    if (ck.state.self_distillation) start_self_distillation_objects();
    load_named(m_.parameters(), ck.model, ck.path + "/model.safetensors");
    if (m_.teacher) load_named(m_.teacher_tensors(), ck.teacher, ck.path + "/teacher.safetensors");
    optimizer_->load_state(ck.optimizer);
    state_ = ck.state;
    state_.world_size = env_.world_size;
    make_source();
  }

  // The batch stream, positioned where the state says (this rank's saved loader state, if any).
  void make_source() {
    source_.reset();
    if (cfg_.train.data == "synthetic") {
      source_ = std::make_unique<SyntheticBatches>(cfg_, env_.rank, env_.world_size);
      return;
    }
    nlohmann::json mine;
    const auto& d = state_.data;
    if (d.is_object() && d.contains("ranks") && d["ranks"].size() == static_cast<size_t>(env_.world_size)) {
      mine = d["ranks"][env_.rank];
    } else if (state_.step > 0) {
      log_warn("the checkpoint's data-loader state does not fit this world size: the data stream restarts");
    }
    source_ = make_webdataset_batches(cfg_, env_.rank, env_.world_size, mine);
    // SIGTERM / SIGINT during a wait for data: one process stops at once (stop_while_waiting_for_data saves the
    // last step). With several ranks a short wait is left alone: the step finishes and all ranks save together
    // (stop_requested); only a wait of 10 s or more, a stalled source, is cut short.
    const bool alone = env_.world_size == 1;
    source_->set_interrupt(
        [alone](double waited_s) { return g_stop_signal.load() != 0 && (alone || waited_s >= 10.0); });
  }

  void evaluate() {
    if (cfg_.eval.shards.empty()) return;
#if SIGLIP2_CONFIG_SENTENCEPIECE
    if (rank0()) {
      Tokenizer tok = Tokenizer::load(cfg_.tokenizer);
      auto t0 = std::chrono::steady_clock::now();
      ZeroShotResult z = zero_shot_accuracy(*m_.towers, tok, cfg_.image, cfg_.eval);
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      log_info(
          fmt::format("step {}: zero-shot top-1 {:.2f}% top-5 {:.2f}% on {} images, {} classes (chance {:.2f}%) "
                      "[{:.1f} s]",
                      state_.step, 100 * z.top1, 100 * z.top5, z.images, z.classes, 100.0 / z.classes, secs));
      nlohmann::json j = {
          {"step", state_.step}, {"zero_shot_top1", z.top1}, {"zero_shot_top5", z.top5}, {"eval_images", z.images}};
      std::vector<std::pair<std::string, double>> scalars = {{"eval/zero_shot_top1", z.top1},
                                                             {"eval/zero_shot_top5", z.top5}};
      if (z.retrieval.pairs > 0) {
        const char* ks[3] = {"r1", "r5", "r10"};
        for (int k = 0; k < 3; ++k) {
          j[std::string("retrieval_i2t_") + ks[k]] = z.retrieval.image_to_text[k];
          j[std::string("retrieval_t2i_") + ks[k]] = z.retrieval.text_to_image[k];
          scalars.emplace_back(std::string("eval/retrieval_i2t_") + ks[k], z.retrieval.image_to_text[k]);
          scalars.emplace_back(std::string("eval/retrieval_t2i_") + ks[k], z.retrieval.text_to_image[k]);
        }
        log_info(fmt::format(
            "step {}: retrieval on {} pairs: image->text R@1/5/10 {:.1f}/{:.1f}/{:.1f}%, "
            "text->image {:.1f}/{:.1f}/{:.1f}%",
            state_.step, z.retrieval.pairs, 100 * z.retrieval.image_to_text[0], 100 * z.retrieval.image_to_text[1],
            100 * z.retrieval.image_to_text[2], 100 * z.retrieval.text_to_image[0], 100 * z.retrieval.text_to_image[1],
            100 * z.retrieval.text_to_image[2]));
      }
      if (tensorboard_) tensorboard_->scalars(state_.step, scalars);
      fs::create_directories(cfg_.train.out_dir);
      std::ofstream(fs::path(cfg_.train.out_dir) / "metrics.jsonl", std::ios::app) << j.dump() << "\n";
    }
#endif
    if (pg_) pg_->barrier();
  }

  // Every rank's loader state, gathered on all ranks (strings of different lengths, as bytes).
  nlohmann::json gather_data_states() {
    std::string mine = source_->state().dump();
    if (!pg_) return {{"ranks", {nlohmann::json::parse(mine)}}};
    at::Tensor len = at::full({1}, static_cast<int64_t>(mine.size()), at::kLong);
    at::Tensor lens = pg_->all_gather(len);
    int64_t longest = lens.max().item<int64_t>();
    at::Tensor bytes = at::zeros({longest}, at::kByte);
    std::memcpy(bytes.data_ptr(), mine.data(), mine.size());
    at::Tensor all = pg_->all_gather(bytes).view({pg_->world_size(), longest});
    nlohmann::json ranks = nlohmann::json::array();
    for (int r = 0; r < pg_->world_size(); ++r)
      ranks.push_back(nlohmann::json::parse(
          std::string(reinterpret_cast<const char*>(all[r].data_ptr()), static_cast<size_t>(lens[r].item<int64_t>()))));
    return {{"ranks", ranks}};
  }

  // SIGTERM / SIGINT while the loader waited (a stalled source): the state is that of the last step, so a
  // checkpoint resumes exactly. One process saves it if steps were taken since the last checkpoint; with
  // several ranks the others may be inside a collective and cannot join a save, so the last checkpoint stands.
  int stop_while_waiting_for_data() {
    if (state_.step == last_saved_step_) {
      log_info(fmt::format("stopped by signal while waiting for data at step {}; no step since the last checkpoint",
                           state_.step));
    } else if (env_.world_size == 1) {
      save(false);
      log_info(fmt::format("stopped by signal while waiting for data at step {}; checkpoint saved", state_.step));
    } else {
      log_warn(fmt::format("stopped by signal while waiting for data at step {}; with {} ranks no checkpoint can be "
                           "written now: the run resumes from step {}",
                           state_.step, env_.world_size, last_saved_step_));
    }
    return 0;
  }

  void save(bool phase_point) {
    last_saved_step_ = state_.step;
    state_.keep = phase_point;
    state_.data = gather_data_states();
    if (rank0()) {
      CheckpointContents c;
      c.model = m_.parameters();
      c.teacher = m_.teacher_tensors();
      c.optimizer = optimizer_->state();
      c.state = state_;
      c.config_yaml = opts_.config_yaml;
      c.tokenizer_model = opts_.tokenizer_model;
      std::string path = save_checkpoint(cfg_.train.out_dir, c, cfg_.train.keep_checkpoints);
      log_info(fmt::format("step {}: saved {}{}", state_.step, path, phase_point ? " (phase checkpoint, kept)" : ""));
    }
    if (pg_) pg_->barrier();  // nobody runs ahead of a checkpoint that may be rolled back to
  }

  // One line on a terminal, rewritten every step: step/total, %, ETA, pairs/s, loss, lr.
  void progress_line(const StepResult& r, std::chrono::steady_clock::time_point t_start, int64_t start_step) {
    const int64_t total = cfg_.train.total_steps, done = state_.step - start_step;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    double per_step = done > 0 ? secs / done : 0;
    int64_t eta = static_cast<int64_t>(per_step * (total - state_.step));
    const double pairs = per_step > 0 ? cfg_.train.batch_size / per_step : 0.0;
    const double mfu = mfu_of(pairs);
    std::string mfu_text = mfu > 0 ? fmt::format(" MFU {:.1f}%", 100 * mfu) : "";
    std::fprintf(stderr,
                 "\r%lld/%lld %5.1f%% ETA %lld:%02lld:%02lld | %.1f pairs/s %.2f TFLOP/s%s | loss %.4f | lr %.3g | "
                 "data wait %.0f%%   ",
                 static_cast<long long>(state_.step), static_cast<long long>(total), 100.0 * state_.step / total,
                 static_cast<long long>(eta / 3600), static_cast<long long>(eta / 60 % 60),
                 static_cast<long long>(eta % 60), pairs, pairs * train_flop_per_pair_ / 1e12, mfu_text.c_str(), r.loss,
                 r.lr, secs > 0 ? 100.0 * wait_total_ / secs : 0.0);
    if (state_.step == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

  // Model FLOPs utilisation of each device: global pairs/s over the ranks, against this device's peak.
  double mfu_of(double pairs_per_s) const {
    if (peak_flops_ <= 0) return 0;
    return pairs_per_s / env_.world_size * train_flop_per_pair_ / peak_flops_;
  }

  void log_step(const StepResult& r, double pairs_per_s, double data_wait) {
    if (!rank0()) return;
    const int64_t total = cfg_.train.total_steps;
    if (!tty_)
      log_info(
          fmt::format("step {}/{} ({:.1f}%) loss {:.4f} sigmoid {:.4f} locca {:.4f} ssl {:.4f}/{:.4f} lr {:.3g} "
                      "grad {:.3f} t {:.2f} b {:.2f} | {:.1f} pairs/s, {:.3f} TFLOP/s",
                      state_.step, total, 100.0 * state_.step / total, r.loss, r.sigmoid, r.locca, r.ssl_gl, r.ssl_mask,
                      r.lr, r.grad_norm, m_.towers->logit_scale.exp().item<double>(),
                      m_.towers->logit_bias.item<double>(), pairs_per_s, pairs_per_s * train_flop_per_pair_ / 1e12));
    nlohmann::json j = {{"step", state_.step},
                        {"loss", r.loss},
                        {"sigmoid", r.sigmoid},
                        {"locca", r.locca},
                        {"ssl_global_local", r.ssl_gl},
                        {"ssl_masked", r.ssl_mask},
                        {"lr", r.lr},
                        {"grad_norm", r.grad_norm},
                        {"t", m_.towers->logit_scale.exp().item<double>()},
                        {"b", m_.towers->logit_bias.item<double>()},
                        {"pairs_per_s", pairs_per_s},
                        {"tflops", pairs_per_s * train_flop_per_pair_ / 1e12},
                        {"rollbacks", state_.rollbacks},
                        {"phase", state_.phase},
                        {"data_wait", data_wait}};
    if (peak_flops_ > 0) j["mfu"] = mfu_of(pairs_per_s);
    if (tensorboard_) {
      std::vector<std::pair<std::string, double>> scalars;
      for (const char* k : {"loss", "sigmoid", "locca", "ssl_global_local", "ssl_masked", "lr", "grad_norm", "t", "b",
                            "pairs_per_s", "tflops", "data_wait"})
        scalars.emplace_back(std::string("train/") + k, j[k].get<double>());
      tensorboard_->scalars(state_.step, scalars);
    }
    fs::create_directories(cfg_.train.out_dir);
    std::ofstream(fs::path(cfg_.train.out_dir) / "metrics.jsonl", std::ios::app) << j.dump() << "\n";
  }

  RunConfig cfg_;
  TrainOptions opts_;
  DistEnv env_;
  std::shared_ptr<ProcessGroup> pg_;
  Model m_;
  std::unique_ptr<AdamOptimizer> optimizer_;
  std::unique_ptr<GradientSync> sync_;
  std::unique_ptr<BatchSource> source_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
  bool tty_ = false;
  c10::Device device_{c10::kCPU};
  bool bf16_ = false;
  double peak_flops_ = 0;  // this device's dense bf16 peak (0: unknown, no MFU)
  double wait_total_ = 0;  // seconds waited for data since this process started training
  int64_t last_saved_step_ = 0;  // the step of the newest checkpoint (or of the start)
  // Two-tower training FLOPs per pair (3 x forward), for the achieved TFLOP/s in logs and metrics.
  double train_flop_per_pair_ = 0;
  TrainerState state_;
};

}  // namespace

int train(const RunConfig& config, const TrainOptions& options) {
  Trainer t(config, options);
  return t.run();
}

}  // namespace siglip2
