// `siglip2 bench`: training-step throughput on synthetic tensors (no data loading), time per phase,
// peak memory and MFU; the last line is `RESULT {json}` for bench/compare.sh.
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/model_source.hpp"
#include "cli/presets.hpp"
#include "cli/validators.hpp"
#include "common/config.hpp"
#include "common/error.hpp"
#include "models/siglip2.hpp"
#include "train/bench.hpp"
#include "train/config.hpp"

namespace siglip2::cli {

namespace {

struct BenchArgs {
  std::string preset, config;
  std::vector<std::string> overrides;
  BenchOptions o;
  std::string objectives = "sigmoid";
  std::string activation_checkpointing;  // "" : as the config says
  int64_t accumulation_steps = 0;        // 0: as the config says
  int threads = 0;
  double peak_tflops = 0;
  std::string reference;  // --objectives acid: the reference's model preset or config ("" = the benchmarked model)
};

// The table, then `RESULT {json}` (the line bench/compare.sh reads).
void print_bench_result(const BenchArgs& a, const std::string& name, const RunConfig& cfg, const BenchResult& r) {
  const int threads = at::get_num_threads();
  std::cout << fmt::format("model {} ({}), batch {}{}, {} timed steps after {} warm-up, {} {}, {} CPU thread(s)\n",
                           name, cfg.model.name, r.batch,
                           r.world_size > 1 ? fmt::format(" per rank on {} ranks", r.world_size) : "", r.steps,
                           a.o.warmup, r.device_name, a.o.precision, threads);
  std::cout << fmt::format("objectives: sigmoid{}{}{}\n", a.o.locca ? " + locca" : "",
                           a.o.self_distillation ? " + self-distillation" : "",
                           a.o.acid ? fmt::format(" on the pairs ACID selects from {} (reference {}, {} chunks)",
                                                  r.super_batch, a.o.reference.name, cfg.acid.chunks)
                                    : "");
  std::cout << fmt::format("  pairs/s        {:10.2f}{}\n", r.pairs_per_s, r.world_size > 1 ? " (all ranks)" : "");
  std::cout << fmt::format("  step           {:10.2f} ms\n", r.step_ms);
  if (a.o.acid)
    std::cout << fmt::format(
        "    selection    {:10.2f} ms (learner + reference forward on {} pairs, JEST sampling): {:.3f} ms per "
        "selected pair, {:.2f} GFLOP per scored pair\n",
        r.selection_ms, r.super_batch, r.selection_ms / static_cast<double>(r.batch), r.score_flop_per_pair / 1e9);
  const int64_t micro_batches = cfg.train.accumulation_steps;
  if (micro_batches > 1) {
    std::cout << fmt::format("    fwd + bwd    {:10.2f} ms ({} micro-batches; the towers run forward twice)\n",
                             r.forward_ms, micro_batches);
  } else {
    std::cout << fmt::format("    forward      {:10.2f} ms\n", r.forward_ms);
    std::cout << fmt::format("    backward     {:10.2f} ms\n", r.backward_ms);
  }
  std::cout << fmt::format("    optimizer    {:10.2f} ms\n", r.optimizer_ms);
  if (r.world_size > 1)
    std::cout << fmt::format("    comm         {:10.2f} ms (gradient reductions still running after the backward{})\n",
                             r.comm_ms, micro_batches > 1 ? "; accumulated: inside fwd + bwd" : "");
  else
    std::cout << fmt::format("    comm         {:10.2f} ms (single process)\n", r.comm_ms);
  std::cout << fmt::format(
      "  optimizer state{:10.1f} MiB per rank (Adam moments; {})\n", r.optimizer_state_mib,
      a.o.shard_optimizer && r.world_size > 1
          ? fmt::format("sharded over {} ranks, whole {:.1f} MiB", r.world_size, r.optimizer_whole_mib)
          : "whole");
  std::cout << fmt::format("  peak memory    {:10.1f} MiB{}\n", r.peak_mem_mib,
                           a.o.device == "cuda" ? " (allocated)" : " (resident, whole process)");
  std::cout << fmt::format(
      "  tensors        {:10.1f} MiB at a step's start (weights, optimizer state), peak {:.1f} MiB\n",
      r.tensor_base_mib, r.tensor_peak_mib);
  const std::string checkpointing = cfg.train.activation_checkpointing == "every_n"
                                        ? "every_n:" + std::to_string(cfg.train.activation_checkpointing_every_n)
                                        : cfg.train.activation_checkpointing;
  if (micro_batches > 1)
    std::cout << fmt::format(
        "  activations           n/a (accumulated: see the tensor peak; activation checkpointing: {})\n",
        checkpointing);
  else
    std::cout << fmt::format(
        "  activations    {:10.1f} MiB held from forward to backward (activation checkpointing: {})\n",
        r.activation_mib, checkpointing);
  std::cout << fmt::format("  train GFLOP/pair {:8.2f} (3 x forward, two towers{})\n", r.train_flop_per_pair / 1e9,
                           a.o.acid ? ", and the scoring per selected pair" : "");
  std::cout << fmt::format("  achieved       {:10.2f} TFLOP/s\n", r.pairs_per_s * r.train_flop_per_pair / 1e12);
  if (r.peak_flops > 0)
    std::cout << fmt::format("  MFU            {:10.1f} % of {:.1f} TFLOP/s\n", 100 * r.mfu(), r.peak_flops / 1e12);
  else
    std::cout << "  MFU                   n/a (no peak known for this device; --peak-tflops sets one)\n";
  nlohmann::json j = {{"impl", "siglip2"},
                      {"model", name},
                      {"device", r.device_name},
                      {"precision", a.o.precision},
                      {"threads", threads},
                      {"batch", r.batch},
                      {"steps", r.steps},
                      {"objectives", a.objectives},
                      {"pairs_per_s", r.pairs_per_s},
                      {"step_ms", r.step_ms},
                      {"forward_ms", micro_batches > 1 ? nlohmann::json() : nlohmann::json(r.forward_ms)},
                      {"forward_backward_ms", r.forward_ms + r.backward_ms},
                      {"backward_ms", micro_batches > 1 ? nlohmann::json() : nlohmann::json(r.backward_ms)},
                      {"optimizer_ms", r.optimizer_ms},
                      {"comm_ms", r.comm_ms},
                      {"world_size", r.world_size},
                      {"shard_optimizer", a.o.shard_optimizer && r.world_size > 1},
                      {"optimizer_state_mib", r.optimizer_state_mib},
                      {"optimizer_whole_mib", r.optimizer_whole_mib},
                      {"peak_mem_mib", r.peak_mem_mib},
                      {"tensor_base_mib", r.tensor_base_mib},
                      {"tensor_peak_mib", r.tensor_peak_mib},
                      {"activation_mib", micro_batches > 1 ? nlohmann::json() : nlohmann::json(r.activation_mib)},
                      {"activation_checkpointing", checkpointing},
                      {"accumulation_steps", micro_batches},
                      {"train_gflop_per_pair", r.train_flop_per_pair / 1e9},
                      {"parameters", r.parameters},
                      {"acid_super_batch", a.o.acid ? nlohmann::json(r.super_batch) : nlohmann::json()},
                      {"acid_selection_ms", a.o.acid ? nlohmann::json(r.selection_ms) : nlohmann::json()},
                      {"acid_reference", a.o.acid ? nlohmann::json(a.o.reference.name) : nlohmann::json()},
                      {"mfu", r.peak_flops > 0 ? nlohmann::json(r.mfu()) : nlohmann::json()}};
  std::cout << "RESULT " << j.dump() << std::endl;
}

void run_bench(BenchArgs& a) {
  if (a.preset.empty() == a.config.empty()) throw UsageError("bench needs --preset NAME or --config FILE");
  std::stringstream list(a.objectives);
  for (std::string item; std::getline(list, item, ',');) {
    if (item == "sigmoid") continue;
    if (item == "locca") {
      a.o.locca = true;
    } else if (item == "self_distillation") {
      a.o.self_distillation = true;
    } else if (item == "acid") {
      a.o.acid = true;
    } else {
      throw UsageError("--objectives: unknown objective '" + item + "' (sigmoid, locca, self_distillation, acid)");
    }
  }
  if (a.threads > 0) at::set_num_threads(a.threads);
  a.o.peak_flops = a.peak_tflops * 1e12;
  std::string path = a.config.empty() ? resolve_model_preset(a.preset) : a.config;
  // A benchmark never trains to the end: the run keys a model-only file lacks get neutral values.
  std::vector<std::string> overrides = {"train.batch_size=" + std::to_string(a.o.batch), "train.total_steps=1000000",
                                        "schedule.warmup_steps=0", "train.self_distillation=false"};
  overrides.insert(overrides.end(), a.overrides.begin(), a.overrides.end());
  if (!a.activation_checkpointing.empty()) {
    const auto ac = activation_checkpointing_overrides(a.activation_checkpointing);
    overrides.insert(overrides.end(), ac.begin(), ac.end());
  }
  RunConfig cfg = config::load<RunConfig>(path, overrides);
  if (a.accumulation_steps > 0) cfg.train.accumulation_steps = a.accumulation_steps;  // checked with --batch
  if (a.o.self_distillation && cfg.model.vision.naflex)
    throw UsageError("--objectives self_distillation: needs a fixed-resolution model");
  if (a.o.acid && (a.o.locca || a.o.self_distillation))
    throw UsageError("--objectives acid: the ACID stage trains the sigmoid loss only (no locca, self_distillation)");
  if (a.o.acid && cfg.model.vision.naflex)
    throw UsageError("--objectives acid: needs a fixed-resolution model (SigLIP 2's ACID stage: B/16 and B/32)");
  const std::string name = a.preset.empty() ? cfg.model.name : a.preset;
  if (!a.reference.empty() && !a.o.acid) throw UsageError("--reference: only with --objectives acid");
  if (a.o.acid) a.o.reference = a.reference.empty() ? cfg.model : acid_reference_shape("--reference", a.reference);

  BenchResult r = run_training_benchmark(cfg, a.o);
  if (r.rank == 0) print_bench_result(a, name, cfg, r);  // under a launcher: one report
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand(
      "bench", "time full training steps on synthetic tensors: pairs/s, time per phase, peak memory, MFU");
  auto* preset = cmd->add_option("--preset", args->preset, "a model preset (see 'siglip2 model-info --list')");
  auto* config = cmd->add_option("--config", args->config, "a config file with a model: section");
  preset->excludes(config);
  cmd->add_option("--set", args->overrides, "override a config key (repeatable)");
  cmd->add_option("--batch", args->o.batch, "pairs per step")->check(positive);
  cmd->add_option("--steps", args->o.steps, "timed steps")->check(positive);
  cmd->add_option("--warmup", args->o.warmup, "untimed steps first")->check(non_negative);
  cmd->add_option("--device", args->o.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--precision", args->o.precision, "fp32, or bf16 autocast with fp32 weights")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->add_option("--objectives", args->objectives,
                  "comma-separated: sigmoid (always), locca, self_distillation (fixed resolution only); or acid: "
                  "the ACID stage, scoring batch / (1 - acid.filter_ratio) pairs with the learner and --reference "
                  "and training on the batch selected");
  cmd->add_option("--reference", args->reference,
                  "--objectives acid: the reference model's preset or config file (default: the benchmarked model)");
  cmd->add_option("--activation-checkpointing", args->activation_checkpointing,
                  "none, blocks or every_n:N (sets train.activation_checkpointing and its every_n)");
  cmd->add_option("--accumulation-steps", args->accumulation_steps,
                  "micro-batches per step (sets train.accumulation_steps; GradCache, every negative kept)")
      ->check(positive);
  cmd->add_flag("--shard-optimizer", args->o.shard_optimizer,
                "under torchrun or srun: shard the Adam moments over the ranks (ZeRO-1, train.shard_optimizer) and "
                "report each rank's share");
  cmd->add_option("--threads", args->threads, "intra-op CPU threads (0: LibTorch's default)")->check(non_negative);
  cmd->add_option("--peak-tflops", args->peak_tflops,
                  "device peak for MFU in TFLOP/s (default: from the GPU's name; none on CPU)")
      ->check(non_negative);
  cmd->add_option("--profile", args->o.profile,
                  "write a Chrome trace (chrome://tracing, Perfetto) of the timed steps to this file");
  cmd->callback([args] { run_bench(*args); });
}

}  // namespace siglip2::cli
