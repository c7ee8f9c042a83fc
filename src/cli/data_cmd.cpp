// `siglip2 data synth | inspect | bench`: write the synthetic WebDataset; count what a set of shards holds;
// measure the loader's throughput.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/validators.hpp"
#include "common/error.hpp"
#include "common/logging.hpp"
#include "data/remote.hpp"
#include "siglip2/build_config.hpp"

#if SIGLIP2_CONFIG_DATA_PIPELINE
#include <nlohmann/json.hpp>

#include "data/config.hpp"
#include "data/contact_sheet.hpp"
#include "data/loader.hpp"
#include "data/shard_list.hpp"
#include "data/synthetic.hpp"
#include "data/tokenizer.hpp"
#include "data/webdataset.hpp"
#endif

namespace siglip2::cli {
namespace {

struct SynthArgs {
  std::string out;
  int64_t train_shards = 8, eval_shards = 2, per_shard = 256, seed = 0, image_size = 128, vocab_size = 512;
  bool no_tokenizer = false;
};

struct TokenizerArgs {
  std::string corpus, out;
  int64_t vocab_size = 512;
};

struct InspectArgs {
  std::vector<std::string> shards;
  RemoteOptions remote;
  int64_t max_pixels = 64 * 1024 * 1024;
  std::string sheet;
  int64_t count = 16, columns = 8;
};

struct DataBenchArgs {
  std::vector<std::string> shards;
  std::string mode = "fixed";
  std::string tokenizer;
  int64_t threads = 2, images = 1024, warmup = 0, batch_size = 64, image_size = 256, max_patches = 256, patch_size = 16,
          shuffle_buffer = 1000, seed = 0;
  bool fast_decode = false;
};

[[noreturn]] void no_pipeline() {
  throw Error("this build has no data pipeline (it needs OpenCV, libarchive and sentencepiece; see README)");
}

#if SIGLIP2_CONFIG_DATA_PIPELINE
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

void run_tokenizer(const TokenizerArgs& a) {
  std::ifstream in(a.corpus);
  if (!in) throw Error("tokenizer corpus '" + a.corpus + "' cannot be read");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  train_tokenizer(lines, a.out, a.vocab_size);
  std::printf("tokenizer: %s (%zu lines)\n", a.out.c_str(), lines.size());
}

void run_inspect(const InspectArgs& a) {
  const std::vector<std::string> shards = expand_shard_patterns(a.shards);
  const ShardStats s = inspect_shards(shards, a.max_pixels, a.remote);
  for (const auto& e : s.errors) log_warn("data: " + e);  // why each shard counted below was given up
  std::printf("shards          %lld\n", static_cast<long long>(s.shards));
  std::printf("samples         %lld\n", static_cast<long long>(s.samples));
  std::printf("with regions    %lld (%lld regions)\n", static_cast<long long>(s.with_regions),
              static_cast<long long>(s.regions));
  std::printf("with labels     %lld\n", static_cast<long long>(s.with_label));
  int64_t skipped = 0;
  for (const auto& [reason, n] : s.skipped)
    if (reason != skip::kBadBox && reason != skip::kUnreadableShard && reason != skip::kTruncatedShard) skipped += n;
  std::printf("skipped         %lld samples (shard-level reasons and bad boxes are counted below, not here)\n",
              static_cast<long long>(skipped));
  for (const auto& [reason, n] : s.skipped) std::printf("  %-18s %lld\n", reason.c_str(), static_cast<long long>(n));
  if (s.samples == 0 && s.shards > 0)  // a typo'd pattern or a server that is gone is a failure, not an empty count
    throw Error("data inspect: no sample could be read from the " + std::to_string(s.shards) +
                " shard(s); the warnings above say why");
  if (a.sheet.empty()) return;
  ContactSheetConfig c;
  c.count = a.count;
  c.columns = a.columns;
  c.max_pixels = a.max_pixels;
  const ContactSheetSummary sheet = write_contact_sheet(shards, a.sheet, c);
  std::printf("sheet           %s: %lld samples, %lld x %lld cells of %lld x %lld px\n", a.sheet.c_str(),
              static_cast<long long>(sheet.samples), static_cast<long long>(sheet.columns),
              static_cast<long long>(sheet.rows), static_cast<long long>(c.cell_width()),
              static_cast<long long>(c.cell_height()));
}

void run_data_bench(const DataBenchArgs& a) {
  LoaderConfig c;
  c.shards = a.shards;
  c.workers = a.threads;
  c.batch_size = a.batch_size;
  c.shuffle_buffer = a.shuffle_buffer;
  c.seed = a.seed;
  c.locca = !a.tokenizer.empty();
  c.self_distillation = a.mode == "self_distillation";
  ImageConfig image;
  image.image_size = a.image_size;
  image.naflex = a.mode == "naflex";
  image.patch_size = a.patch_size;
  image.max_num_patches = a.max_patches;
  image.fast_decode = a.fast_decode;
  std::optional<Tokenizer> tokenizer;
  if (!a.tokenizer.empty()) {
    TokenizerConfig tc;
    tc.model_file = a.tokenizer;
    tokenizer = Tokenizer::load(tc);
  }
  for (const auto& pattern : a.shards)  // a typo'd pattern stops here, not after the loader's retries
    check_shard_files("data bench", pattern, expand_braces(pattern), 0.0);
  DataLoader loader(c, image, tokenizer ? &*tokenizer : nullptr, 0, 1);
  auto next = [&loader] {
    std::optional<Batch> b = loader.next();
    if (!b) throw Error("data bench: the loader ended early");  // epochs repeat forever, so it never should
    return static_cast<int64_t>(b->keys.size());
  };
  // Warm-up: every worker has opened its shards and delivered batches before the clock starts.
  const int64_t warmup = a.warmup > 0 ? a.warmup : 2 * a.threads;
  for (int64_t i = 0; i < warmup; ++i) next();
  const auto start = std::chrono::steady_clock::now();
  int64_t images = 0;
  while (images < a.images) images += next();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const double per_s = static_cast<double>(images) / seconds;
  const double per_thread = per_s / static_cast<double>(a.threads);
  int64_t skipped = 0;
  const SkipCounts skips = loader.state().skipped();
  for (const auto& [reason, n] : skips)
    if (reason != skip::kBadBox) skipped += n;
  std::printf("mode            %s%s%s\n", a.mode.c_str(), a.fast_decode ? ", fast decode" : "",
              tokenizer ? ", tokenizer and LocCa targets" : "");
  std::printf("threads         %lld\n", static_cast<long long>(a.threads));
  std::printf("images          %lld in %.2f s (after %lld warm-up batches of %lld)\n", static_cast<long long>(images),
              seconds, static_cast<long long>(warmup), static_cast<long long>(a.batch_size));
  std::printf("images/s        %.1f\n", per_s);
  std::printf("images/s/thread %.1f\n", per_thread);
  std::printf("skipped         %lld\n", static_cast<long long>(skipped));
  for (const auto& [reason, n] : skips) std::printf("  %-18s %lld\n", reason.c_str(), static_cast<long long>(n));
  const nlohmann::json result = {
      {"impl", "siglip2"}, {"mode", a.mode},        {"fast_decode", a.fast_decode},          {"threads", a.threads},
      {"images", images},  {"images_per_s", per_s}, {"images_per_s_per_thread", per_thread}, {"skipped", skipped}};
  std::printf("RESULT %s\n", result.dump().c_str());
}
#else
void run_synth(const SynthArgs&) {
  no_pipeline();
}
void run_tokenizer(const TokenizerArgs&) {
  no_pipeline();
}
void run_inspect(const InspectArgs& a) {
  if (!a.sheet.empty() && !SIGLIP2_CONFIG_OPENCV) throw UsageError("data inspect --sheet: this build has no OpenCV");
  no_pipeline();
}
void run_data_bench(const DataBenchArgs&) {
  no_pipeline();
}
#endif

}  // namespace

void add_data_command(CLI::App& app) {
  auto* data = app.add_subcommand("data", "synthetic shards, shard statistics, loader throughput");
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

  auto tokenizer = std::make_shared<TokenizerArgs>();
  cmd = data->add_subcommand("tokenizer",
                             "train a sentencepiece tokenizer with Gemma's settings on a text file (one text a line)");
  cmd->add_option("--corpus", tokenizer->corpus,
                  "UTF-8 text file, one text per line (lowercased for training, as tokenizer.lowercase: unicode "
                  "lowercases every text the model is given)")
      ->required();
  cmd->add_option("--out", tokenizer->out, "output model file (NAME.model)")->required();
  cmd->add_option("--vocab-size", tokenizer->vocab_size, "vocabulary size")->capture_default_str();
  cmd->callback([tokenizer] { run_tokenizer(*tokenizer); });

  auto inspect = std::make_shared<InspectArgs>();
  cmd = data->add_subcommand(
      "inspect", "read shards and count samples, regions and skipped samples by reason; --sheet draws them");
  cmd->add_option(
         "shards", inspect->shards,
         "shard files, pipe:COMMAND or http(s):// / s3:// URLs, with brace patterns (data/{000000..000009}.tar)")
      ->required();
  cmd->add_option("--max-pixels", inspect->max_pixels, "images with more pixels count as skipped")
      ->capture_default_str();
  cmd->add_option("--read-timeout-s", inspect->remote.read_timeout_s,
                  "URL shards: seconds without a byte before a request is dropped and retried (data.remote)")
      ->check(positive)
      ->capture_default_str();
  cmd->add_option("--retries", inspect->remote.retries,
                  "URL shards: failed requests in a row before a shard is given up (data.remote)")
      ->check(non_negative)
      ->capture_default_str();
  cmd->add_option("--sheet", inspect->sheet, "also write a contact sheet PNG: thumbnails, captions, region boxes");
  cmd->add_option("--count", inspect->count, "--sheet: samples drawn (the first usable ones)")
      ->check(positive)
      ->capture_default_str();
  cmd->add_option("--columns", inspect->columns, "--sheet: thumbnails per row at most")
      ->check(positive)
      ->capture_default_str();
  cmd->callback([inspect] { run_inspect(*inspect); });

  auto bench = std::make_shared<DataBenchArgs>();
  cmd = data->add_subcommand("bench", "loader throughput: decode and transform with N threads, images per second");
  cmd->add_option("shards", bench->shards, "shard patterns, one per source; each needs at least --threads shards")
      ->required();
  cmd->add_option("--mode", bench->mode,
                  "fixed (square resize), naflex (patchified) or self_distillation (fixed + local views)")
      ->check(CLI::IsMember({"fixed", "naflex", "self_distillation"}))
      ->capture_default_str();
  cmd->add_option("--threads", bench->threads, "loader threads")->check(positive)->capture_default_str();
  cmd->add_option("--images", bench->images, "images to time (whole batches)")->check(positive)->capture_default_str();
  cmd->add_option("--warmup", bench->warmup, "batches taken before timing (default: 2 per thread)");
  cmd->add_option("--batch-size", bench->batch_size, "images per batch")->check(positive)->capture_default_str();
  cmd->add_option("--image-size", bench->image_size, "fixed and self_distillation: square side in pixels")
      ->check(positive)
      ->capture_default_str();
  cmd->add_option("--max-patches", bench->max_patches, "naflex: patches per image at most")
      ->check(positive)
      ->capture_default_str();
  cmd->add_option("--patch-size", bench->patch_size, "patch side in pixels")->check(positive)->capture_default_str();
  cmd->add_option("--shuffle-buffer", bench->shuffle_buffer, "samples in each thread's shuffle buffer")
      ->capture_default_str();
  cmd->add_option("--seed", bench->seed, "loader seed")->capture_default_str();
  cmd->add_option("--tokenizer", bench->tokenizer,
                  "sentencepiece model: also tokenise captions and build LocCa targets (default: images only)");
  cmd->add_flag("--fast-decode", bench->fast_decode,
                "image.fast_decode: decode large JPEGs at 1/2, 1/4 or 1/8 scale (not bit-exact with HF)");
  cmd->callback([bench] { run_data_bench(*bench); });
}

}  // namespace siglip2::cli
