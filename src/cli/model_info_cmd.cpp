// `siglip2 model-info PRESET|CONFIG`: parameter counts of the two towers (and with --tensors every parameter's
// Hugging Face name and shape), read from the modules built without initialising any weight (parameter_shapes).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>
#include <string>

#include "cli/commands.hpp"
#include "cli/presets.hpp"
#include "common/config.hpp"
#include "common/error.hpp"
#include "interop/checkpoint_dir.hpp"
#include "models/config.hpp"
#include "models/siglip2.hpp"

namespace siglip2::cli {

void add_model_info_command(CLI::App& app) {
  auto target = std::make_shared<std::string>();
  auto list = std::make_shared<bool>(false);
  auto tensors = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("model-info",
                                 "print a model's parameter counts (vision, text, total; training-only parts "
                                 "excluded) and forward FLOPs per image-text pair as JSON");
  cmd->add_option("model", *target, "a preset name (see --list) or a config file with a model: section");
  cmd->add_flag("--list", *list, "list the model presets");
  cmd->add_flag("--tensors", *tensors,
                "also print every parameter as the checkpoint stores it: \"tensors\": [[HF name, shape], ...]");
  cmd->callback([target, list, tensors] {
    if (*list) {
      for (const auto& n : model_preset_names()) std::cout << n << "\n";
      return;
    }
    if (target->empty()) throw UsageError("model-info needs a preset name or a config file (or --list)");
    std::string path = resolve_model_preset(*target);
    ConfigValue tree = load_config_tree(path);
    const ConfigValue* model = tree.find("model");
    if (!model) throw ConfigError(path + ": no model: section");
    ModelConfig cfg{};
    config::ConfigReader::parse(*model, "model", cfg);
    ParameterCounts c = count_parameters(cfg);
    ForwardFlops f = forward_flops(cfg);
    nlohmann::json out = {{"name", cfg.name},
                          {"vision", c.vision},
                          {"text", c.text},
                          {"total", c.total},
                          {"forward_gflop_per_pair", f.pair() / 1e9},
                          {"vision_forward_gflop", f.vision / 1e9},
                          {"text_forward_gflop", f.text / 1e9}};
    if (*tensors) {
      nlohmann::json list_json = nlohmann::json::array();
      for (const auto& [name, shape] : expected_hf_tensors(cfg)) list_json.push_back({name, shape});
      out["tensors"] = std::move(list_json);
    }
    std::cout << out.dump() << "\n";
  });
}

}  // namespace siglip2::cli
