// `siglip2 data synth | inspect`: write the synthetic WebDataset; count what a set of shards holds.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "common/error.hpp"
#include "siglip2/build_config.hpp"

#if SIGLIP2_CONFIG_ARCHIVE && SIGLIP2_CONFIG_OPENCV && SIGLIP2_CONFIG_SENTENCEPIECE
#define SIGLIP2_DATA_PIPELINE 1
#include "data/config.hpp"
#include "data/shard_list.hpp"
#include "data/synthetic.hpp"
#include "data/webdataset.hpp"
#else
#define SIGLIP2_DATA_PIPELINE 0
#endif

namespace siglip2::cli {
namespace {

struct SynthArgs {
  std::string out;
  int64_t train_shards = 8, eval_shards = 2, per_shard = 256, seed = 0, image_size = 128, vocab_size = 512;
  bool no_tokenizer = false;
};

struct InspectArgs {
  std::vector<std::string> shards;
  int64_t max_pixels = 64 * 1024 * 1024;
};

[[noreturn]] void no_pipeline() {
  throw Error("this build has no data pipeline (it needs OpenCV, libarchive and sentencepiece; see README)");
}

#if SIGLIP2_DATA_PIPELINE
void run_synth(const SynthArgs& a) {
  SynthConfig c;
  c.out = a.out;
  c.train_shards = a.train_shards;
  c.eval_shards = a.eval_shards;
  c.per_shard = a.per_shard;
  c.seed = a.seed;
  c.image_size = a.image_size;
  c.vocab_size = a.vocab_size;
  c.tokenizer = !a.no_tokenizer;
  const SynthSummary s = write_synthetic(c);
  std::printf("train: %lld samples  %s\n", static_cast<long long>(s.train_samples), s.train_pattern.c_str());
  if (!s.eval_pattern.empty())
    std::printf("eval:  %lld samples  %s\n", static_cast<long long>(s.eval_samples), s.eval_pattern.c_str());
  if (c.tokenizer) std::printf("tokenizer: %s/tokenizer.model\n", c.out.c_str());
}

void run_inspect(const InspectArgs& a) {
  const ShardStats s = inspect_shards(expand_shard_patterns(a.shards), a.max_pixels);
  std::printf("shards          %lld\n", static_cast<long long>(s.shards));
  std::printf("samples         %lld\n", static_cast<long long>(s.samples));
  std::printf("with regions    %lld (%lld regions)\n", static_cast<long long>(s.with_regions),
              static_cast<long long>(s.regions));
  std::printf("with labels     %lld\n", static_cast<long long>(s.with_label));
  int64_t skipped = 0;
  for (const auto& [reason, n] : s.skipped)
    if (reason != skip::kBadBox && reason != skip::kUnreadableShard && reason != skip::kTruncatedShard) skipped += n;
  std::printf("skipped         %lld\n", static_cast<long long>(skipped));
  for (const auto& [reason, n] : s.skipped) std::printf("  %-18s %lld\n", reason.c_str(), static_cast<long long>(n));
}
#else
void run_synth(const SynthArgs&) {
  no_pipeline();
}
void run_inspect(const InspectArgs&) {
  no_pipeline();
}
#endif

}  // namespace

void add_data_command(CLI::App& app) {
  auto* data = app.add_subcommand("data", "synthetic shards and shard statistics");
  data->require_subcommand(1);

  auto synth = std::make_shared<SynthArgs>();
  auto* cmd = data->add_subcommand("synth",
                                   "write the synthetic WebDataset (shapes, captions, regions, eval split, tokenizer)");
  cmd->add_option("--out", synth->out, "output directory")->required();
  cmd->add_option("--train-shards", synth->train_shards, "training shards")->capture_default_str();
  cmd->add_option("--eval-shards", synth->eval_shards, "held-out shards with class labels")->capture_default_str();
  cmd->add_option("--per-shard", synth->per_shard, "samples per shard")->capture_default_str();
  cmd->add_option("--seed", synth->seed, "seed; the output is a function of it")->capture_default_str();
  cmd->add_option("--image-size", synth->image_size, "image side in pixels")->capture_default_str();
  cmd->add_option("--vocab-size", synth->vocab_size, "sentencepiece vocabulary size")->capture_default_str();
  cmd->add_flag("--no-tokenizer", synth->no_tokenizer, "do not train tokenizer.model");
  cmd->callback([synth] { run_synth(*synth); });

  auto inspect = std::make_shared<InspectArgs>();
  cmd = data->add_subcommand("inspect", "read shards and count samples, regions and skipped samples by reason");
  cmd->add_option("shards", inspect->shards, "shard files or brace patterns (data/{000000..000009}.tar)")->required();
  cmd->add_option("--max-pixels", inspect->max_pixels, "images with more pixels count as skipped")
      ->capture_default_str();
  cmd->callback([inspect] { run_inspect(*inspect); });
}

}  // namespace siglip2::cli
