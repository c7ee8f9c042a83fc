// `siglip2 import`: a Hugging Face checkpoint (SiglipModel / Siglip2Model) into a siglip2-cpp model
// directory, or (--init random) a freshly initialised model directory, which is how a run from scratch starts.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "common/error.hpp"
#include "common/logging.hpp"
#include "interop/checkpoint_dir.hpp"
#include "interop/hf_import.hpp"

namespace siglip2::cli {
namespace {

struct ImportArgs {
  std::string hf_dir;
  std::string init;
  std::string config_file;
  std::vector<std::string> overrides;
  uint64_t seed = 0;
  std::string out;
  std::string tokenizer;
  bool overwrite = false;
};

// A tokenizer named by the config file itself: relative to the config file, else to the working directory.
std::string tokenizer_from_config(const std::string& config_file, const std::string& model_file) {
  namespace fs = std::filesystem;
  if (model_file.empty()) return "";
  fs::path p(model_file);
  if (p.is_relative() && fs::exists(fs::path(config_file).parent_path() / p))
    p = fs::path(config_file).parent_path() / p;
  if (!fs::exists(p))
    throw Error("tokenizer.model_file '" + model_file + "' named by '" + config_file + "' does not exist");
  return p.string();
}

void run_import(const ImportArgs& a) {
  if (a.hf_dir.empty() == a.init.empty()) throw UsageError("import: pass either --hf DIR or --init random");
  if (!a.hf_dir.empty()) {
    if (!a.config_file.empty() || !a.overrides.empty()) throw UsageError("import: --config and --set go with --init");
    import_hf(a.hf_dir, a.out, a.tokenizer, a.overwrite);
    return;
  }
  if (a.config_file.empty())
    throw UsageError("import --init random needs --config FILE (e.g. configs/models/tiny.yaml)");
  ModelBundleConfig cfg = load_bundle_config_file(a.config_file, a.overrides);
  std::string problem = cfg.check();
  if (!problem.empty()) throw ConfigError(a.config_file + ": " + problem);
  std::string tokenizer =
      a.tokenizer.empty() ? tokenizer_from_config(a.config_file, cfg.tokenizer.model_file) : a.tokenizer;
  init_model_dir(a.out, cfg, a.seed, tokenizer, a.overwrite);
  log_info("initialised model '" + cfg.model.name + "' (seed " + std::to_string(a.seed) + ") in '" + a.out + "'");
}

}  // namespace

void add_import_command(CLI::App& app) {
  auto args = std::make_shared<ImportArgs>();
  auto* cmd = app.add_subcommand(
      "import",
      "write a siglip2-cpp model directory from a Hugging Face checkpoint (--hf), or a freshly initialised one "
      "(--init random --config FILE)");
  auto* hf = cmd->add_option("--hf", args->hf_dir, "Hugging Face directory (config.json, model.safetensors, ...)");
  auto* init = cmd->add_option("--init", args->init, "'random': a new model initialised as for training from scratch")
                   ->check(CLI::IsMember({"random"}));
  hf->excludes(init);
  cmd->add_option("--config", args->config_file, "with --init: model config (model:, image:, tokenizer: sections)");
  cmd->add_option("--set", args->overrides, "with --init: override a key, --set model.vision.num_hidden_layers=2")
      ->allow_extra_args(false);
  cmd->add_option("--seed", args->seed, "with --init: initialisation seed");
  cmd->add_option("--out", args->out, "output model directory")->required();
  cmd->add_option("--tokenizer", args->tokenizer, "sentencepiece model to store with the model (tokenizer.model)");
  cmd->add_flag("--overwrite", args->overwrite, "replace an existing output directory");
  cmd->callback([args] { run_import(*args); });
}

}  // namespace siglip2::cli
