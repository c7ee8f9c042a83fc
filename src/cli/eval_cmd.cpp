// `siglip2 eval --model DIR CONFIG`: zero-shot classification of a model (a checkpoint, a model
// directory or a Hugging Face directory) on the eval: section of a run config.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "common/config.hpp"
#include "common/error.hpp"
#include "interop/checkpoint_dir.hpp"
#include "siglip2/build_config.hpp"
#include "train/config.hpp"
#include "train/eval.hpp"
#include "data/shard_list.hpp"
#if SIGLIP2_CONFIG_SENTENCEPIECE
#include "data/tokenizer.hpp"
#endif

namespace siglip2::cli {

void add_eval_command(CLI::App& app) {
  struct Args {
    std::string model, config;
    std::vector<std::string> overrides;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "eval",
      "zero-shot classification accuracy and image-text retrieval recall of a model on a config's eval: section");
  cmd->add_option("--model", args->model, "checkpoint, model directory or Hugging Face directory")->required();
  cmd->add_option("config", args->config, "run config with an eval: section")->required();
  cmd->add_option("--set", args->overrides, "override a key: --set eval.shards=... (repeatable)")
      ->allow_extra_args(false);
  cmd->callback([args] {
    RunConfig cfg = config::load<RunConfig>(args->config, args->overrides);
    if (cfg.eval.shards.empty()) throw ConfigError(args->config + ": eval.shards is empty: nothing to evaluate on");
    check_shard_files("eval.shards", cfg.eval.shards, expand_braces(cfg.eval.shards), 0.0, &cfg.data.remote);
#if SIGLIP2_CONFIG_SENTENCEPIECE
    ModelBundle bundle = load_any_model(args->model);
    TokenizerConfig tc = bundle.config.tokenizer;
    tc.model_file = require_tokenizer(bundle);
    Tokenizer tok = Tokenizer::load(tc);
    ZeroShotResult z = zero_shot_accuracy(*bundle.model, tok, bundle.config.image, cfg.eval);
    nlohmann::json out = {{"model", args->model}, {"images", z.images}, {"classes", z.classes},
                          {"top1", z.top1},       {"top5", z.top5},     {"chance_top1", 1.0 / z.classes}};
    if (z.retrieval.pairs > 0) {
      const auto& rr = z.retrieval;
      out["retrieval"] = {
          {"pairs", rr.pairs},
          {"distinct_texts", rr.texts},
          {"image_to_text", {{"r1", rr.image_to_text[0]}, {"r5", rr.image_to_text[1]}, {"r10", rr.image_to_text[2]}}},
          {"text_to_image", {{"r1", rr.text_to_image[0]}, {"r5", rr.text_to_image[1]}, {"r10", rr.text_to_image[2]}}}};
    }
    std::cout << out.dump() << "\n";
#else
    throw Error("eval needs a build with sentencepiece");
#endif
  });
}

}  // namespace siglip2::cli
