// `siglip2 plan`: memory per rank, FLOPs per step and the largest batch that fits a device, for a run config
// or a model preset, before renting a cluster (train/memory_plan.hpp says what is counted and how).
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/model_source.hpp"
#include "cli/presets.hpp"
#include "cli/validators.hpp"
#include "common/config.hpp"
#include "common/error.hpp"
#include "train/config.hpp"
#include "train/memory_plan.hpp"

namespace siglip2::cli {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

struct PlanArgs {
  std::string config, preset;
  std::vector<std::string> overrides;
  int64_t world_size = 1;
  int64_t batch = 0;               // global; 0: the config's
  int64_t accumulation_steps = 0;  // 0: the config's
  std::string activation_checkpointing;
  bool shard_optimizer = false;
  std::string precision = "bf16";
  double device_gib = 80;
  double reserve_gib = 2;  // CUDA context, NCCL buffers, allocator fragmentation: not tensors the plan counts
  bool world_size_given = false;
  bool json = false;
  std::string reference;  // the ACID stage's reference: a preset or config file ("" = acid.reference's own config)
};

std::string checkpointing_name(const TrainConfig& t) {
  return t.activation_checkpointing == "every_n" ? "every_n:" + std::to_string(t.activation_checkpointing_every_n)
                                                 : t.activation_checkpointing;
}

std::string millions(int64_t n) {
  return fmt::format("{:.1f} M", static_cast<double>(n) / 1e6);
}

void run_plan(const PlanArgs& a) {
  if (a.preset.empty() == a.config.empty()) throw UsageError("plan needs a config file or --preset NAME");
  const std::string path = a.config.empty() ? resolve_model_preset(a.preset) : a.config;
  if (std::filesystem::is_directory(path)) throw UsageError(path + ": a directory, not a config file");
  // A model-only file lacks the run keys: planning needs no schedule, only the batch settings.
  std::vector<std::string> overrides = {"train.total_steps=1000000", "schedule.warmup_steps=0"};
  if (a.batch > 0) overrides.push_back("train.batch_size=" + std::to_string(a.batch));
  if (a.accumulation_steps > 0) overrides.push_back("train.accumulation_steps=" + std::to_string(a.accumulation_steps));
  if (a.shard_optimizer) overrides.push_back("train.shard_optimizer=true");
  if (!a.activation_checkpointing.empty()) {
    const auto ac = activation_checkpointing_overrides(a.activation_checkpointing);
    overrides.insert(overrides.end(), ac.begin(), ac.end());
  }
  overrides.insert(overrides.end(), a.overrides.begin(), a.overrides.end());
  // A NaFlex model preset trains without self-distillation (the phase needs fixed-resolution views), as a
  // NaFlex run config must say; a model-only file says nothing, so the preset gets it said for it.
  if (!a.preset.empty()) {
    std::vector<std::string> probe = overrides;
    probe.insert(probe.begin(), "train.self_distillation=false");
    if (config::load<RunConfig>(path, probe).model.vision.naflex) overrides = probe;
  }
  const RunConfig cfg = config::load<RunConfig>(path, overrides);
  if (std::string why = cfg.check_world_size(a.world_size); !why.empty()) throw ConfigError(why);
  if (!a.reference.empty() && !cfg.acid.on()) throw UsageError("--reference: only for a config with acid.reference");

  PlanOptions o;
  o.world_size = a.world_size;
  o.bf16 = a.precision == "bf16";
  if (cfg.acid.on()) {  // --reference, else the config of the model acid.reference names (no weights read)
    if (!a.reference.empty()) {
      o.reference = acid_reference_shape("--reference", a.reference);
    } else {
      try {
        o.reference = model_source_shape("acid.reference", cfg.acid.reference);
      } catch (const ConfigError& e) {
        throw UsageError(std::string(e.what()) +
                         "; or give the reference's shape with --reference PRESET|CONFIG (e.g. so400m16_256)");
      }
      check_acid_reference_shape("acid.reference: " + cfg.acid.reference, *o.reference);
    }
  }
  const MemoryPlan p = plan_memory(cfg, o);
  if (a.reserve_gib >= a.device_gib)
    throw UsageError(
        fmt::format("--reserve {:g} GiB leaves nothing of --device-memory {:g} GiB", a.reserve_gib, a.device_gib));
  const double device = (a.device_gib - a.reserve_gib) * kGiB;  // what the plan's tensors may use
  const int64_t max_none = largest_micro_batch(cfg, o, device, 0);
  const int64_t max_blocks = largest_micro_batch(cfg, o, device, 1);
  const bool sd = cfg.train.self_distillation && !cfg.model.vision.naflex;
  auto steps_for = [&](int64_t micro) -> int64_t { return micro <= 0 ? 0 : (p.batch_per_rank + micro - 1) / micro; };

  if (a.json) {
    nlohmann::json j = {
        {"model", cfg.model.name},
        {"world_size", a.world_size},
        {"precision", a.precision},
        {"global_batch", cfg.train.batch_size},
        {"batch_per_rank", p.batch_per_rank},
        {"accumulation_steps", cfg.train.accumulation_steps},
        {"micro_batch", p.micro_batch},
        {"activation_checkpointing", checkpointing_name(cfg.train)},
        {"shard_optimizer", cfg.train.shard_optimizer},
        {"objectives", {{"locca", cfg.train.locca}, {"self_distillation", sd}, {"acid", cfg.acid.on()}}},
        {"acid_super_batch_per_rank", cfg.acid.on() ? nlohmann::json(p.acid_super_batch) : nlohmann::json()},
        {"acid_reference_parameters", cfg.acid.on() ? nlohmann::json(p.reference_params) : nlohmann::json()},
        {"parameters",
         {{"vision", p.vision_params},
          {"text", p.text_params},
          {"decoder", p.decoder_params},
          {"self_distillation_heads", p.head_params},
          {"teacher", p.teacher_params},
          {"trained", p.params()}}},
        {"bytes",
         {{"weights", p.weights},
          {"gradients", p.gradients},
          {"gradient_buckets", p.gradient_buckets},
          {"optimizer", p.optimizer},
          {"teacher", p.teacher},
          {"weight_cast", p.weight_cast},
          {"batch", p.batch},
          {"acid_reference", p.reference},
          {"acid_scoring", p.acid_scoring},
          {"activations", p.activations},
          {"activations_none", p.activations_none},
          {"activations_blocks", p.activations_blocks},
          {"peak", p.peak},
          {"peak_none", p.peak_none},
          {"peak_blocks", p.peak_blocks}}},
        {"device_bytes", a.device_gib * kGiB},
        {"reserve_bytes", a.reserve_gib * kGiB},
        {"fits", p.peak <= device},
        {"naflex_sequence_length", p.naflex_length > 0 ? nlohmann::json(p.naflex_length) : nlohmann::json()},
        {"suggested_accumulation_steps",
         {{"none", max_none > 0 ? nlohmann::json(steps_for(max_none)) : nlohmann::json()},
          {"blocks", max_blocks > 0 ? nlohmann::json(steps_for(max_blocks)) : nlohmann::json()}}},
        {"largest_micro_batch", {{"none", max_none}, {"blocks", max_blocks}}},
        {"flops_forward", p.flops_forward},
        {"flops_step", p.flops_step}};
    std::cout << j.dump() << std::endl;
    return;
  }

  std::cout << fmt::format(
      "plan: {}, {} rank(s) x {} pairs (global batch {}), {} micro-batch(es) of {}, activation checkpointing {}, "
      "optimizer state {}, {}\n",
      cfg.model.name, a.world_size, p.batch_per_rank, cfg.train.batch_size, cfg.train.accumulation_steps, p.micro_batch,
      checkpointing_name(cfg.train),
      cfg.train.shard_optimizer ? fmt::format("sharded over {} ranks", a.world_size) : "whole on every rank",
      o.bf16 ? "bf16 autocast, fp32 weights" : "fp32");
  if (!a.world_size_given) std::cout << "(no --world-size: planned for one rank; give the run's number of GPUs)\n";
  std::cout << fmt::format("objectives: sigmoid{}{}{}\n", cfg.train.locca ? " + locca" : "",
                           sd ? " + self-distillation (the phase from 80%: the largest)" : "",
                           p.naflex_length > 0 ? " (NaFlex: no self-distillation)" : "");
  if (cfg.acid.on())
    std::cout << fmt::format(
        "ACID: each rank scores {} pairs with the learner and a reference of {} parameters ({}) and trains on {}\n",
        p.acid_super_batch, millions(p.reference_params), o.reference->name, p.batch_per_rank);
  if (p.naflex_length > 0)
    std::cout << fmt::format("NaFlex: planned at {} patches per image{}\n", p.naflex_length,
                             cfg.image.naflex_sequence_lengths.empty()
                                 ? " (image.max_num_patches)"
                                 : " (of image.naflex_sequence_lengths, the most patches per batch)");
  std::cout << fmt::format("parameters trained: {} (vision {}, text {}{}{}){}\n", millions(p.params()),
                           millions(p.vision_params), millions(p.text_params),
                           p.decoder_params ? ", decoder " + millions(p.decoder_params) : "",
                           p.head_params ? ", self-distillation heads " + millions(p.head_params) : "",
                           p.teacher_params ? "; EMA teacher " + millions(p.teacher_params) : "");
  std::cout << "memory per rank                   GiB\n";
  auto row = [](const std::string& what, double bytes, const std::string& note = "") {
    std::cout << fmt::format("  {:<26}{:>9.2f}{}\n", what, bytes / kGiB, note.empty() ? "" : "   " + note);
  };
  row("weights (fp32)", p.weights);
  row("gradients", p.gradients);
  if (p.gradient_buckets > 0)
    row("gradient buckets", p.gradient_buckets,
        cfg.train.shard_optimizer ? "flat buckets + reduce-scatter output" : "flat buckets");
  row("optimizer state (AdamW)", p.optimizer,
      cfg.train.shard_optimizer ? fmt::format("1/{} of {:.2f}", a.world_size, p.optimizer * a.world_size / kGiB) : "");
  if (p.teacher > 0) row("EMA teacher", p.teacher);
  if (p.weight_cast > 0) row("bf16 weight copies", p.weight_cast, "autocast, forward to backward");
  row("batch on the device", p.batch);
  if (cfg.acid.on()) {
    row("ACID reference (fp32)", p.reference, "read-only");
    row("ACID scoring", p.acid_scoring, "embeddings and one chunk's rows and columns, before the forward");
  }
  row("activations", p.activations,
      fmt::format("kept for backward; none {:.2f}, blocks {:.2f}", p.activations_none / kGiB,
                  p.activations_blocks / kGiB));
  row("peak", p.peak, fmt::format("none {:.2f}, blocks {:.2f}", p.peak_none / kGiB, p.peak_blocks / kGiB));
  std::cout << fmt::format(
      "device memory {:g} GiB, {:g} GiB of it kept for the CUDA context and NCCL (--reserve): {}\n", a.device_gib,
      a.reserve_gib,
      p.peak <= device ? fmt::format("fits ({:.0f}% of the rest at the peak)", 100 * p.peak / device) : "does NOT fit");
  std::cout << fmt::format("largest micro-batch per rank that fits: {} without checkpointing, {} with blocks\n",
                           max_none, max_blocks);
  if (max_blocks > 0)
    std::cout << fmt::format("  {} pairs per rank: train.accumulation_steps {} (none) or {} (blocks)\n",
                             p.batch_per_rank, max_none > 0 ? std::to_string(steps_for(max_none)) : "-",
                             steps_for(max_blocks));
  std::cout << fmt::format(
      "FLOPs per step and rank: {:.3g} TFLOP (one forward of everything: {:.3g} TFLOP); "
      "all ranks: {:.3g} PFLOP\n",
      p.flops_step / 1e12, p.flops_forward / 1e12, p.flops_step * static_cast<double>(a.world_size) / 1e15);
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  auto* cmd = app.add_subcommand(
      "plan",
      "will it fit? memory per rank, FLOPs per step and the largest batch per device, before renting a cluster");
  auto* config = cmd->add_option("config", args->config, "a run config (YAML)");
  auto* preset = cmd->add_option("--preset", args->preset, "a model preset instead (see 'siglip2 model-info --list')");
  preset->excludes(config);
  cmd->add_option("--set", args->overrides, "override a config key (repeatable)");
  cmd->add_option("--reference", args->reference,
                  "the ACID stage: the reference model's preset or config file (default: the config of the model "
                  "acid.reference names)");
  cmd->add_option("--world-size", args->world_size, "ranks (GPUs) in the run (default 1)")
      ->check(positive)
      ->each([args](const std::string&) { args->world_size_given = true; });
  cmd->add_option("--batch", args->batch, "global batch (sets train.batch_size; default the config's, 32768)")
      ->check(positive);
  cmd->add_option("--accumulation-steps", args->accumulation_steps, "micro-batches per step (train.accumulation_steps)")
      ->check(positive);
  cmd->add_option("--activation-checkpointing", args->activation_checkpointing,
                  "none, blocks or every_n:N (train.activation_checkpointing)");
  cmd->add_flag("--shard-optimizer", args->shard_optimizer, "shard AdamW's state over the ranks (ZeRO-1)");
  cmd->add_option("--precision", args->precision, "bf16 (autocast, as on GPUs; default) or fp32 (as on the CPU)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->add_option("--device-memory", args->device_gib, "GiB per device (default 80, an H100)")->check(positive);
  cmd->add_option("--reserve", args->reserve_gib,
                  "GiB of each device the plan's tensors may not use: CUDA context, NCCL, fragmentation (default 2)")
      ->check(non_negative);
  cmd->add_flag("--json", args->json, "one JSON object, sizes in bytes");
  cmd->callback([args] { run_plan(*args); });
}

}  // namespace siglip2::cli
