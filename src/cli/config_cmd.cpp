#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "common/config.hpp"
#include "train/config.hpp"

namespace siglip2::cli {

void add_config_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("config", "show and check run configs");
  cmd->require_subcommand(1);

  struct ShowArgs {
    std::string file;
    std::vector<std::string> overrides;
  };
  auto args = std::make_shared<ShowArgs>();
  auto* show = cmd->add_subcommand(
      "show", "resolve a config (bases, --set overrides, defaults), validate it and print it as YAML");
  show->add_option("file", args->file, "run config (YAML)")->required();
  show->add_option("--set", args->overrides, "override a key: --set optimizer.lr=3e-4 (repeatable)")
      ->allow_extra_args(false);
  show->callback([args] {
    RunConfig cfg = config::load<RunConfig>(args->file, args->overrides);
    std::cout << config::dump(cfg);
  });

  auto* keys = cmd->add_subcommand("keys", "list every config key with its type, default and meaning");
  keys->callback([] {
    auto list = config::list_keys<RunConfig>();
    size_t width = 0;
    for (const auto& k : list) width = std::max(width, k.path.size());
    for (const auto& k : list) {
      std::string pad(width - k.path.size() + 2, ' ');
      if (k.type == "section") {
        std::cout << k.path << pad << "# " << k.doc << "\n";
      } else {
        std::cout << k.path << pad << k.type << (k.required ? " (required)" : " = " + k.default_value) << "  # "
                  << k.doc << "\n";
      }
    }
  });
}

}  // namespace siglip2::cli
