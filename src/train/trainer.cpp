#include "train/trainer.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <limits>
#include <memory>

#include "common/error.hpp"
#include "common/logging.hpp"
#include "data/loader.hpp"
#include "train/acid_stage.hpp"
#include "train/batch.hpp"
#include "train/checkpointer.hpp"
#include "train/distributed.hpp"
#include "train/eval.hpp"
#include "train/grad_sync.hpp"
#include "train/model.hpp"
#include "train/optimizer.hpp"
#include "train/step.hpp"
#include "train/stop_signal.hpp"
#include "train/training_log.hpp"

namespace siglip2 {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Where a run starts from, in order of precedence:
//   1. the newest complete checkpoint in train.out_dir (RUN/latest first), unless --no-resume: model,
//      teacher, optimizer, trainer state and every rank's loader position come from it;
//   2. else train.init_from: the towers' tensors, read by `siglip2 train` (options.init_tensors), over
//      the initialisation of (3), so that the decoder and heads are drawn the same either way;
//   3. else the initialisation drawn from train.seed.
// A rollback (NaN or spike) goes back to (1), or to (2)/(3) when no checkpoint exists yet, and skips the
// batch that failed. The loop below leaves each cadence to its component: TrainingLog (log lines,
// metrics), Checkpointer (saves), evaluate() (eval.every).
class Trainer {
 public:
  Trainer(const RunConfig& c, const TrainOptions& o) : cfg_(c), opts_(o) {}

  int run() {
    env_ = dist_env_from_environment();
    dev_ = choose_training_device(cfg_.train, env_.local_rank);
    pg_ = training_process_group(env_, cfg_.dist.backend, cfg_.dist.timeout_s, dev_.device);
    if (std::string why = cfg_.check_world_size(env_.world_size); !why.empty()) throw ConfigError(why);
    checkpointer_ = std::make_unique<Checkpointer>(cfg_, opts_, pg_.get());
    start_from_initialisation();
    if (opts_.resume) resume_from_latest();
    if (!source_) make_source();
    make_sync();
    make_acid();
    check_evaluation_inputs(cfg_);  // not hours later, at the first evaluation
    StopSignals signals;
    checkpointer_->last_saved_step = state_.step;
    const int64_t total = cfg_.train.total_steps;
    log_info(fmt::format(
        "training {} for {} steps, global batch {} on {} rank(s) ({} micro-batch(es) each), from "
        "step {}",
        cfg_.model.name, total, cfg_.train.batch_size, env_.world_size, cfg_.train.accumulation_steps, state_.step));
    log_ = std::make_unique<TrainingLog>(cfg_, rank0(), env_.world_size, dev_.peak_flops, state_.step,
                                         acid_ ? acid_->scoring_flop_per_pair() : 0.0);
    while (state_.step < total) {
      const int64_t step = state_.step;
      maybe_start_self_distillation(step);
      if (std::find(state_.skipped_steps.begin(), state_.skipped_steps.end(), step) != state_.skipped_steps.end()) {
        log_warn(fmt::format("step {}: skipping the batch that caused a rollback", step));
        try {
          (void)source_->next(step);  // drawn and dropped: the stream goes on with the next step's batch
        } catch (const LoaderInterrupted&) {
          checkpointer_->stopped_while_waiting(m_, *optimizer_, state_, *source_);
          return 0;
        }
        state_.step++;
        continue;
      }
      StepResult r;
      try {
        r = train_step(step);
      } catch (const LoaderInterrupted&) {
        checkpointer_->stopped_while_waiting(m_, *optimizer_, state_, *source_);
        return 0;
      }
      if (!r.ok) {
        rollback(step, r.why);
        continue;
      }
      state_.step++;
      state_.examples_seen += r.report.examples;
      r.report.phase = state_.phase;
      r.report.rollbacks = state_.rollbacks;
      log_->step(r.report);
      if (cfg_.eval.every > 0 && state_.step % cfg_.eval.every == 0 && state_.step < total) evaluate();
      const bool stop = stop_requested();
      if (checkpointer_->due(state_.step, stop)) checkpointer_->save(m_, *optimizer_, state_, *source_);
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
    StepReport report;
  };

  bool rank0() const { return env_.rank == 0; }

  // The model, optimizer and gradient buckets from (2)/(3) above; every rank starts from rank 0's tensors.
  void build_model() {
    sync_.reset();
    m_ = TrainingModel{};  // the old tensors go before the new ones are drawn
    m_ = build_training_model(cfg_, cfg_.train.locca, static_cast<uint64_t>(cfg_.train.seed), dev_.device,
                              opts_.init_tensors, "train.init_from " + opts_.init_source);
    optimizer_.reset();  // the old moments go before new ones are made
    optimizer_ = std::make_unique<AdamOptimizer>(cfg_.optimizer, m_.parameters(), pg_ && cfg_.train.shard_optimizer);
    if (pg_) {
      torch::NoGradGuard g;
      for (auto& [name, p] : m_.parameters()) pg_->broadcast(p, 0);
    }
  }

  void start_from_initialisation() {
    state_ = TrainerState{};
    state_.world_size = env_.world_size;
    state_.batch_size = cfg_.train.batch_size;
    set_acid_state();
    state_.phase = cfg_.acid.on() ? "acid" : "pretrain";
    build_model();
    if (!opts_.init_source.empty())
      log_info(fmt::format("the towers start from {} (train.init_from)", opts_.init_source));
  }

  void resume_from_latest() {
    auto ck = load_latest_checkpoint(cfg_.train.out_dir);
    if (!ck) return;
    check_resumable(*ck, cfg_.train.batch_size, cfg_.acid.on() ? cfg_.drawn_batch_size() : 0,
                    opts_.allow_batch_size_change, env_.world_size);
    apply_checkpoint(*ck);
    log_info(fmt::format("resumed from {} at step {}", ck->path, state_.step));
    // The selections from here on: said when they are made differently from the checkpoint's.
    const TrainerState& was = ck->state;
    if (cfg_.acid.on() && !was.acid_reference.empty() && was.acid_reference != opts_.reference_source)
      log_warn(fmt::format("acid.reference: {} was trained with the reference {}; this run scores with {}", ck->path,
                           was.acid_reference, opts_.reference_source));
    if (cfg_.acid.on() && was.acid_chunks > 0 && was.acid_chunks != cfg_.acid.chunks)
      log_warn(fmt::format("acid.chunks: {} was trained with {} chunks; this run selects in {}", ck->path,
                           was.acid_chunks, cfg_.acid.chunks));
  }

  // Rebuilt from the initialisation first, so that the set of parameters and optimizer slots is the
  // checkpoint's; then every tensor and the state are the checkpoint's.
  void apply_checkpoint(const LoadedCheckpoint& ck) {
    build_model();
    if (ck.state.self_distillation) start_self_distillation_objects();
    load_named(m_.parameters(), ck.model, ck.path + "/model.safetensors");
    if (m_.teacher) load_named(m_.teacher_tensors(), ck.teacher, ck.path + "/teacher.safetensors");
    optimizer_->load_state(ck.optimizer);
    state_ = ck.state;
    state_.world_size = env_.world_size;
    state_.batch_size = cfg_.train.batch_size;
    set_acid_state();
    if (cfg_.acid.on()) state_.phase = "acid";
    make_source();
  }

  // What the checkpoints say of the ACID stage: its super-batch, reference and chunks (this run's).
  void set_acid_state() {
    state_.acid_super_batch = cfg_.acid.on() ? cfg_.drawn_batch_size() : 0;
    state_.acid_reference = cfg_.acid.on() ? opts_.reference_source : "";
    state_.acid_chunks = cfg_.acid.on() ? cfg_.acid.chunks : 0;
  }

  void start_self_distillation_objects() {
    optimizer_->add_parameters(m_.start_self_distillation(cfg_, static_cast<uint64_t>(cfg_.train.seed)));
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
    sync_.reset();  // its hooks go before new ones are set
    sync_ = make_data_parallel(pg_.get(), *optimizer_, cfg_.train.shard_optimizer);
  }

  StepResult train_step(int64_t step) {
    StepResult r;
    const auto t_wait = Clock::now();
    const bool accumulate = cfg_.train.accumulation_steps > 1;
    Batch batch = source_->next(step);
    r.report.data_wait_s = seconds_since(t_wait);
    NamedTensors selection_metrics;
    optimizer_->zero_grad();  // the gradients of the step before are freed before the selection's forwards
    if (acid_) {              // this rank's super-batch: train on what the learner and the reference select
      const auto t_select = Clock::now();
      AcidStepSelection s = acid_->select(*m_.towers, batch, step);
      batch = std::move(s.batch);
      selection_metrics = std::move(s.metrics);
      selection_metrics.emplace_back("acid_selection_s", at::scalar_tensor(seconds_since(t_select), at::kDouble));
    }
    if (!accumulate) batch = to_device(std::move(batch), dev_.device);  // else one micro-batch at a time
    // Every rank's batch has this size (NaFlex's half-size batches are half size on every rank).
    r.report.examples = batch.pixel_values.size(0) * env_.world_size;
    const int64_t since = step - progress_step(cfg_.train.self_distillation_start, cfg_.train.total_steps);
    // Accumulation runs backward as it goes (the checks below then only decide whether the step is
    // applied); without it, the checks come before the one backward.
    StepLosses l;
    if (accumulate) {
      l = accumulate_gradients(m_.step_modules(), batch, cfg_.train.accumulation_steps, cfg_, since, dev_.bf16,
                               dev_.device, pg_.get(), sync_.get(), [&](int64_t micro_batch) {
                                 if (step == opts_.sigkill_in_step && micro_batch == 0) std::raise(SIGKILL);
                               });  // gradients averaged over ranks already
    } else {
      l = training_losses(m_.step_modules(), batch, cfg_, since, dev_.bf16, pg_.get());
    }
    for (auto& [name, value] : selection_metrics) l.terms.emplace_back(name, value.to(l.total.options()));
    at::Tensor loss = l.total;
    if (step == opts_.inject_nan_at_step) {
      opts_.inject_nan_at_step = -1;  // once
      loss = loss * std::numeric_limits<double>::quiet_NaN();
    }
    auto means = mean_losses_over_ranks(loss, l, pg_.get());  // global: what logs and the spike detector see
    r.report.loss = means[0].second;
    r.report.terms.assign(means.begin() + 1, means.end());
    r.why = state_.loss_problem(r.report.loss, step, cfg_.train.spike_factor, cfg_.train.spike_warmup);
    if (!r.why.empty()) return fail(r, r.why);
    if (!accumulate) {
      loss.backward();
      if (step == opts_.sigkill_in_step) std::raise(SIGKILL);
      if (sync_) sync_->finish();
    }
    const double mult = schedule_multiplier(cfg_.schedule, step, cfg_.train.total_steps);
    r.report.lr = cfg_.optimizer.lr * mult;
    r.report.grad_norm = optimizer_->step(mult).grad_norm;
    if (m_.teacher)
      m_.teacher->update(*m_.towers->vision_model, *m_.self_distillation_heads,
                         cfg_.loss.self_distillation.ema_momentum);
    state_.track_loss(r.report.loss);
    r.report.step = step + 1;
    if (rank0() && log_->due(r.report.step)) {  // read back only when logged: a GPU keeps its queue otherwise
      r.report.t = m_.towers->logit_scale.exp().item<double>();
      r.report.b = m_.towers->logit_bias.item<double>();
    }
    return r;
  }

  static StepResult fail(StepResult r, const std::string& why) {
    r.ok = false;
    r.why = why;
    return r;
  }

  bool stop_requested() {  // one rank signalled: all stop together
    at::Tensor any = at::full({1}, stop_signal_received() ? 1.0 : 0.0, at::kDouble);
    if (pg_) pg_->all_reduce_sum(any);
    return any.item<double>() > 0;
  }

  void rollback(int64_t step, const std::string& why) {
    if (++state_.rollbacks > cfg_.train.max_rollbacks)
      throw Error(fmt::format("step {}: {}; giving up after {} rollbacks", step, why, cfg_.train.max_rollbacks));
    const int64_t rollbacks = state_.rollbacks;
    std::vector<int64_t> skipped = state_.skipped_steps;
    skipped.push_back(step);
    auto ck = load_latest_checkpoint(cfg_.train.out_dir);
    if (ck) {
      apply_checkpoint(*ck);
      log_warn(fmt::format("step {}: {}; rolled back to {} (step {}) and skipping that batch", step, why, ck->path,
                           state_.step));
    } else {
      start_from_initialisation();
      make_source();  // the stream from its start too, so the steps before the failed one see their batches again
      log_warn(fmt::format("step {}: {}; no checkpoint yet, restarting from the initialisation and skipping that batch",
                           step, why));
    }
    state_.rollbacks = rollbacks;
    state_.skipped_steps = skipped;
    checkpointer_->last_saved_step = -1;  // the rollback count and the skipped step are in no checkpoint yet
    make_sync();
  }

  // The ACID stage's selection (acid.reference): the reference model goes to this rank's device once.
  void make_acid() {
    if (!cfg_.acid.on() || acid_) return;
    const int64_t sources = cfg_.train.data == "synthetic" ? 1 : static_cast<int64_t>(cfg_.data.shards.size());
    acid_ = std::make_unique<AcidSelection>(cfg_, opts_.reference, dev_.device, dev_.bf16, env_.rank, env_.world_size,
                                            sources);
    log_info(fmt::format(
        "ACID: reference {}; each rank selects {} of its {} pairs per step (filter ratio {}, {} chunks); scoring "
        "holds {:.1f} MiB per rank beyond the models and the forwards' working memory",
        opts_.reference_source, acid_->batch_per_rank(), acid_->super_batch_per_rank(), cfg_.acid.filter_ratio,
        cfg_.acid.chunks, static_cast<double>(acid_->scoring_bytes(cfg_.model.vision.hidden_size)) / (1 << 20)));
  }

  void make_source() {
    source_.reset();  // a loader's threads and open shards go first
    const int64_t views_from =
        state_.self_distillation ? 0 : progress_step(cfg_.train.self_distillation_start, cfg_.train.total_steps);
    source_ = make_batch_source(cfg_, env_.rank, env_.world_size, state_.data, state_.step, views_from);
  }

  void evaluate() {
    if (cfg_.eval.shards.empty()) return;
    evaluate_zero_shot(cfg_, *m_.towers, rank0() ? log_.get() : nullptr, state_.step);
    if (pg_) pg_->barrier();
  }

  RunConfig cfg_;
  TrainOptions opts_;
  DistEnv env_;
  TrainingDevice dev_;
  std::shared_ptr<ProcessGroup> pg_;
  TrainingModel m_;
  std::unique_ptr<AdamOptimizer> optimizer_;
  std::unique_ptr<GradientSync> sync_;
  std::unique_ptr<BatchSource> source_;
  std::unique_ptr<AcidSelection> acid_;  // the ACID stage only
  std::unique_ptr<Checkpointer> checkpointer_;
  std::unique_ptr<TrainingLog> log_;
  TrainerState state_;
};

}  // namespace

int train(const RunConfig& config, const TrainOptions& options) {
  Trainer t(config, options);
  return t.run();
}

}  // namespace siglip2
