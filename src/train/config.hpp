#pragma once
// The run config: what `siglip2 train CONFIG` reads. Defaults are the SigLIP 2 recipe
// (spec: recipe.md §6.1); recipes in configs/recipes/ override them per run.
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "data/config.hpp"
#include "losses/locca.hpp"
#include "losses/self_distillation.hpp"
#include "losses/sigmoid.hpp"
#include "models/config.hpp"
#include "train/eval.hpp"

namespace siglip2 {

struct OptimizerConfig {
  std::string name = "adam";
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.95;  // SigLIP 1 found 0.95 stabilises large-batch training
  double eps = 1e-8;
  double weight_decay = 1e-4;       // decoupled, big_vision style: not multiplied by lr
  double grad_clip_norm = 1.0;      // global norm; 0 disables clipping
  std::vector<std::string> frozen;  // regular expressions over parameter names

  template <class V>
  void visit(V& v) {
    using config::at_least;
    using config::in_range;
    v("name", name, "optimizer: adam (decoupled weight decay, big_vision semantics)", config::one_of({"adam"}));
    v("lr", lr, "peak learning rate", at_least(0.0));
    v("beta1", beta1, "Adam beta1", in_range(0.0, 1.0));
    v("beta2", beta2, "Adam beta2", in_range(0.0, 1.0));
    v("eps", eps, "Adam epsilon", at_least(0.0));
    v("weight_decay", weight_decay, "decoupled weight decay on weight matrices only", at_least(0.0));
    v("grad_clip_norm", grad_clip_norm, "clip gradients to this global norm (0 = off)", at_least(0.0));
    v("frozen", frozen, "regular expressions: matching parameters are not trained (e.g. '^vision_model\\.')");
  }
};

struct ScheduleConfig {
  std::string type = "cosine";
  int64_t warmup_steps = 20000;
  double end_fraction = 0.0;    // learning rate at the end, as a fraction of the peak
  double stretch_from = 0.9;    // with stretch_factor != 1: where the schedule starts to run slower
  double stretch_factor = 1.0;  // SigLIP 2's NaFlex branch: 3.75 (the last 10% takes 3.75 times the steps)

  template <class V>
  void visit(V& v) {
    v("type", type, "learning-rate decay after warmup: cosine, rsqrt or constant",
      config::one_of({"cosine", "rsqrt", "constant"}));
    v("warmup_steps", warmup_steps, "linear warmup from 0", config::at_least<int64_t>(0));
    v("end_fraction", end_fraction, "final learning rate as a fraction of the peak", config::in_range(0.0, 1.0));
    v("stretch_from", stretch_from,
      "with stretch_factor: fraction of the original schedule after which it is stretched (NaFlex branch: 0.9)",
      config::in_range(0.0, 1.0));
    v("stretch_factor", stretch_factor,
      "stretch the schedule after stretch_from by this factor (1 = off; NaFlex branch: 3.75); train.total_steps "
      "is then the stretched end",
      config::at_least(1.0));
  }
};

struct DistConfig {
  std::string backend = "auto";
  int64_t timeout_s = 600;

  template <class V>
  void visit(V& v) {
    v("backend", backend, "collective backend: auto (nccl on CUDA, gloo on CPU), gloo or nccl",
      config::one_of({"auto", "gloo", "nccl"}));
    v("timeout_s", timeout_s, "seconds before a collective or the rendezvous gives up",
      config::greater_than<int64_t>(0));
  }
};

struct TrainConfig {
  std::string out_dir = "runs/default";
  int64_t batch_size = 32768;  // global, over all ranks
  int64_t total_steps = 0;     // required: 40B examples / 32k batch = 1.22M steps in the paper
  int64_t seed = 0;
  std::string device = "auto";
  std::string precision = "auto";
  int64_t log_every = 50;
  int64_t checkpoint_every = 1000;
  int64_t keep_checkpoints = 3;
  std::string data = "webdataset";       // webdataset: the data: section; synthetic: random tensors (benchmarks, tests)
  double self_distillation_start = 0.8;  // SigLIP 2: from 80% of training
  std::vector<double> phase_checkpoints = {0.8, 0.9, 0.95};  // kept for the NaFlex (90%) and resolution (95%) branches
  bool locca = true;
  bool self_distillation = true;
  double spike_factor = 3.0;   // roll back when the loss exceeds this times its slow average (0 = off)
  int64_t spike_warmup = 100;  // steps before the spike detector arms
  int64_t max_rollbacks = 5;
  double logit_scale_init = 2.302585092994046;  // log 10 (SigLIP)
  double logit_bias_init = -10.0;               // SigLIP at 32k batch; about -log(batch) suits small batches
  int64_t accumulation_steps = 1;               // micro-batches per step (GradCache: every negative kept)
  std::string init_from;  // fine-tuning: the towers start from this model (hf:DIR, a model directory or a checkpoint)
  std::string activation_checkpointing = "none";  // none | blocks | every_n (models/activation_checkpointing.hpp)
  int64_t activation_checkpointing_every_n = 0;   // N of every_n; 0: not set
  bool shard_optimizer = false;                   // ZeRO-1 over the ranks (train/optimizer.hpp)

  // What the batch settings leave wrong on `world` ranks ("" = nothing): the global batch must split
  // evenly over ranks, and each rank's share into accumulation_steps non-empty micro-batches.
  std::string check_world_size(int64_t world) const {
    if (batch_size % world != 0)
      return "train.batch_size " + std::to_string(batch_size) + " is not divisible by the world size " +
             std::to_string(world);
    if (accumulation_steps > batch_size / world)
      return "train.accumulation_steps: " + std::to_string(accumulation_steps) +
             " micro-batches of a per-rank batch of " + std::to_string(batch_size / world) + " (train.batch_size " +
             std::to_string(batch_size) + " over " + std::to_string(world) +
             " rank(s)) would leave some empty; use at most " + std::to_string(batch_size / world);
    return "";
  }

  // Which blocks recompute in backward: every_n 0 (none), 1 (blocks) or N.
  int64_t checkpoint_every_n_blocks() const {
    if (activation_checkpointing == "blocks") return 1;
    if (activation_checkpointing == "every_n") return activation_checkpointing_every_n;
    return 0;
  }

  template <class V>
  void visit(V& v) {
    using config::greater_than;
    v("out_dir", out_dir, "run directory: checkpoints, metrics, resolved config", config::not_empty());
    v("batch_size", batch_size, "global batch size (all ranks together)", greater_than<int64_t>(0));
    v.required("total_steps", total_steps, "number of optimizer steps", greater_than<int64_t>(0));
    v("seed", seed, "seed for initialisation, data order and augmentation");
    v("device", device, "auto, cpu or cuda", config::one_of({"auto", "cpu", "cuda"}));
    v("precision", precision, "auto (bf16 on CUDA, fp32 on CPU), fp32 or bf16",
      config::one_of({"auto", "fp32", "bf16"}));
    v("log_every", log_every, "steps between log lines", greater_than<int64_t>(0));
    v("checkpoint_every", checkpoint_every, "steps between checkpoints", greater_than<int64_t>(0));
    v("keep_checkpoints", keep_checkpoints, "newest checkpoints kept (phase checkpoints are always kept)",
      greater_than<int64_t>(0));
    v("data", data, "where batches come from: webdataset (the data: section) or synthetic (random tensors)",
      config::one_of({"webdataset", "synthetic"}));
    v("self_distillation_start", self_distillation_start, "fraction of training where self-distillation starts",
      config::in_range(0.0, 1.0));
    v("phase_checkpoints", phase_checkpoints, "fractions of training at which a checkpoint is written and kept",
      config::each(config::in_range(0.0, 1.0)));
    v("locca", locca, "train the LocCa decoder (captioning, referring expressions, grounded captioning)");
    v("self_distillation", self_distillation, "add the self-distillation losses from self_distillation_start");
    v("spike_factor", spike_factor, "roll back when the loss exceeds this many times its slow average (0 = off)",
      config::at_least(0.0));
    v("spike_warmup", spike_warmup, "steps before the loss-spike detector arms", config::at_least<int64_t>(0));
    v("max_rollbacks", max_rollbacks, "give up after this many rollbacks in one run", config::at_least<int64_t>(0));
    v("logit_scale_init", logit_scale_init, "initial log temperature of a run from scratch (SigLIP: log 10)");
    v("accumulation_steps", accumulation_steps,
      "micro-batches per optimizer step and rank: embeddings cached as open_clip's --accum-freq does, so the "
      "sigmoid loss keeps every negative of the global batch (towers run forward twice)",
      config::greater_than<int64_t>(0));
    v("init_from", init_from,
      "fine-tuning: start the towers from a Hugging Face directory (hf:DIR), a model directory, a checkpoint or "
      "a run directory (its latest); the decoder and heads start fresh; empty: from scratch");
    v("logit_bias_init", logit_bias_init,
      "initial logit bias of a run from scratch (SigLIP: -10 at batch 32k; about -log(batch) for small batches)");
    v("activation_checkpointing", activation_checkpointing,
      "recompute transformer blocks (vision, text, decoder) in backward instead of storing their activations: "
      "none, blocks (every block) or every_n (blocks 0, N, 2N, ...); gradients are unchanged",
      config::one_of({"none", "blocks", "every_n"}));
    v("shard_optimizer", shard_optimizer,
      "ZeRO stage 1: each rank keeps the Adam moments of 1/W of the parameters; gradients are reduce-scattered "
      "and parameters all-gathered after each step (no effect on one rank)");
    v("activation_checkpointing_every_n", activation_checkpointing_every_n,
      "N of activation_checkpointing: every_n, required there and only there (1 is the same as blocks)",
      config::at_least<int64_t>(0));
  }
};

// The ACID stage, the recipe's last for B-sized models (SigLIP 2 §2.5, recipe.md §6.3; docs/recipe.md): with
// `reference` set, every step draws a super-batch of train.batch_size / (1 − filter_ratio) pairs, scores it
// with the learner and the reference model (learnability: the difference of their sigmoid losses) and
// trains on the train.batch_size pairs JEST's joint sampler selects (losses/acid.hpp), sigmoid loss only.
// Selection is per rank: each rank selects its share of the batch from its share of the super-batch.
struct AcidConfig {
  std::string reference;      // hf:DIR, a model directory, a checkpoint or a run directory; "" = off
  double filter_ratio = 0.5;  // SigLIP 2: 0.5 for B/16 (super-batch 64k), 0.75 for B/32 (128k)
  int64_t chunks = 16;        // JEST's default

  bool on() const { return !reference.empty(); }
  // Pairs drawn per step for a batch of `batch` pairs: round(batch / (1 − filter_ratio)).
  int64_t super_batch_size(int64_t batch) const {
    return static_cast<int64_t>(std::llround(static_cast<double>(batch) / (1.0 - filter_ratio)));
  }

  template <class V>
  void visit(V& v) {
    v("reference", reference,
      "the ACID stage: the reference model scoring each super-batch with the learner (hf:DIR, a model "
      "directory, a checkpoint or a run directory); read-only; empty: no selection");
    v("filter_ratio", filter_ratio,
      "share of each super-batch left out: it holds train.batch_size / (1 - filter_ratio) pairs (SigLIP 2: 0.5 "
      "for B/16, 0.75 for B/32)",
      config::in_range(0.0, 0.99));
    v("chunks", chunks, "JEST's joint sampling draws the batch in this many chunks (each rank's share)",
      config::greater_than<int64_t>(0));
  }
};

struct LossConfig {
  SigmoidLossConfig sigmoid;
  LoccaLossConfig locca;
  SelfDistillationConfig self_distillation;

  template <class V>
  void visit(V& v) {
    v("sigmoid", sigmoid, "image-text sigmoid loss");
    v("locca", locca, "LocCa decoder losses (captioning, referring expressions, grounded captioning)");
    v("self_distillation", self_distillation, "global-local and masked-prediction losses (from 80% of training)");
  }
};

inline std::string fmt_ratio(double r) {
  std::ostringstream o;
  o << r;
  return o.str();
}

// What the image and tokenizer sections must agree on with the model ("" = consistent): the image
// section says how images are preprocessed, the model what its towers take.
inline std::string inputs_match_model(const ModelConfig& model, const ImageConfig& image,
                                      const TokenizerConfig& tokenizer) {
  if (image.naflex != model.vision.naflex)
    return image.naflex ? "image.naflex is true but the model has a fixed-resolution vision tower"
                        : "image.naflex is false but the model has a NaFlex vision tower";
  if (!model.vision.naflex && image.image_size != model.vision.image_size)
    return "image.image_size (" + std::to_string(image.image_size) + ") differs from model.vision.image_size (" +
           std::to_string(model.vision.image_size) + ")";
  if (model.vision.naflex && image.patch_size != model.vision.patch_size)
    return "image.patch_size (" + std::to_string(image.patch_size) + ") differs from model.vision.patch_size (" +
           std::to_string(model.vision.patch_size) + ")";
  if (tokenizer.length > model.text.max_position_embeddings)
    return "tokenizer.length (" + std::to_string(tokenizer.length) + ") exceeds model.text.max_position_embeddings (" +
           std::to_string(model.text.max_position_embeddings) + ")";
  if (tokenizer.pad_id >= model.text.vocab_size || tokenizer.eos_id >= model.text.vocab_size)
    return "tokenizer.pad_id and tokenizer.eos_id must be below model.text.vocab_size";
  return "";
}

struct RunConfig {
  ModelConfig model;
  ImageConfig image;
  TokenizerConfig tokenizer;
  LoaderConfig data;
  EvalConfig eval;
  LossConfig loss;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  TrainConfig train;
  DistConfig dist;
  AcidConfig acid;

  // Pairs the data stream gives per step over all ranks: the batch, or ACID's super-batch.
  int64_t drawn_batch_size() const { return acid.on() ? acid.super_batch_size(train.batch_size) : train.batch_size; }
  // What the batch settings leave wrong on `world` ranks ("" = nothing): TrainConfig's rules, and ACID's
  // super-batch and chunks per rank.
  std::string check_world_size(int64_t world) const {
    if (std::string why = train.check_world_size(world); !why.empty()) return why;
    if (!acid.on()) return "";
    const int64_t super = drawn_batch_size();
    if (super % world != 0)
      return "acid.filter_ratio: the super-batch of " + std::to_string(super) + " pairs (train.batch_size " +
             std::to_string(train.batch_size) + " / (1 - " + fmt_ratio(acid.filter_ratio) +
             ")) is not divisible by the world size " + std::to_string(world);
    if (acid.chunks > train.batch_size / world)
      return "acid.chunks: " + std::to_string(acid.chunks) + " chunks of a per-rank batch of " +
             std::to_string(train.batch_size / world) + " pairs; use at most " +
             std::to_string(train.batch_size / world);
    return "";
  }

  template <class V>
  void visit(V& v) {
    v("model", model, "the two towers (presets in configs/models/)");
    v("image", image, "image preprocessing");
    v("tokenizer", tokenizer, "text tokenization");
    InTrainingRun<LoaderConfig> training_data{data};
    v("data", training_data,
      "training shards and loader (the trainer sets batch_size, locca, self_distillation and "
      "locca_targets.{length, parallel_probability} from train, model and loss)");
    v("eval", eval, "zero-shot evaluation on held-out labelled shards");
    v("loss", loss, "training objectives");
    v("optimizer", optimizer, "optimizer");
    v("schedule", schedule, "learning-rate schedule");
    v("train", train, "training loop");
    v("dist", dist, "distributed communication");
    v("acid", acid, "the ACID stage: learnability-based batch selection with a reference model (B/16, B/32)");
  }
  std::string check() const {
    if (std::string why = inputs_match_model(model, image, tokenizer); !why.empty()) return why;
    if (schedule.warmup_steps > train.total_steps)
      return "schedule.warmup_steps (" + std::to_string(schedule.warmup_steps) + ") exceeds train.total_steps (" +
             std::to_string(train.total_steps) + ")";
    if (train.accumulation_steps > train.batch_size)
      return "train.accumulation_steps (" + std::to_string(train.accumulation_steps) + ") exceeds train.batch_size (" +
             std::to_string(train.batch_size) + "): a micro-batch would be empty";
    if (train.activation_checkpointing == "every_n" && train.activation_checkpointing_every_n == 0)
      return "train.activation_checkpointing_every_n: required with activation_checkpointing: every_n (the N of "
             "blocks 0, N, 2N, ... that are recomputed)";
    if (train.activation_checkpointing != "every_n" && train.activation_checkpointing_every_n != 0)
      return "train.activation_checkpointing_every_n: applies only with activation_checkpointing: every_n (it is " +
             train.activation_checkpointing + ")";
    if (model.vision.naflex && train.self_distillation)
      return "train.self_distillation: a NaFlex tower is trained without the self-distillation losses (SigLIP 2's "
             "NaFlex branch); set it to false";
    if (acid.on()) {
      if (model.vision.naflex)
        return "acid.reference: the ACID stage trains fixed-resolution models (SigLIP 2 §2.5: B/16 and B/32), "
               "not a NaFlex tower";
      if (train.locca || train.self_distillation)
        return std::string("train.") + (train.locca ? "locca" : "self_distillation") +
               ": the ACID stage trains the sigmoid loss only (SigLIP 2 §2.5); set train.locca and "
               "train.self_distillation to false";
      if (acid.super_batch_size(train.batch_size) <= train.batch_size)
        return "acid.filter_ratio: " + fmt_ratio(acid.filter_ratio) + " leaves nothing to select from (super-batch " +
               std::to_string(acid.super_batch_size(train.batch_size)) + " for a batch of " +
               std::to_string(train.batch_size) + ")";
    }
    return "";
  }
};

// The config.yaml of a training checkpoint (caption, adapt-resolution). Checkpoints written before the
// data section refused the loader keys the trainer sets still name them; they are dropped here, since
// the trainer sets them from the other sections anyway. Their `data.ssl` section is now
// `data.self_distillation_views`.
inline RunConfig load_checkpoint_config(const std::string& path) {
  ConfigValue tree = load_config_tree(path);
  if (ConfigValue* data = tree.find("data"); data && data->kind == ConfigValue::Kind::Map) {
    for (const char* key : {"batch_size", "locca", "ssl_views"}) data->erase(key);
    if (const ConfigValue* views = data->find("ssl"); views && !data->find("self_distillation_views")) {
      ConfigValue moved = *views;
      const SourceLoc loc = *data->key_loc("ssl");
      data->erase("ssl");
      data->set("self_distillation_views", std::move(moved), loc);
    }
    if (ConfigValue* t = data->find("locca_targets"); t && t->kind == ConfigValue::Kind::Map)
      for (const char* key : {"length", "parallel_probability"}) t->erase(key);
  }
  return config::from_tree<RunConfig>(tree);
}

}  // namespace siglip2
