#pragma once
// Model presets are the YAML files in configs/models/; commands accept a preset name or a path.
#include <string>
#include <vector>

namespace siglip2::cli {

// The configs/ folder: $SIGLIP2_CONFIGS, else next to or above the executable (build/siglip2 ->
// configs/), else the source tree the binary was built from.
std::string configs_dir();

// A path that exists is returned as is; otherwise NAME resolves to configs/models/NAME.yaml.
// Unknown names are a ConfigError listing the presets.
std::string resolve_model_preset(const std::string& name_or_path);

std::vector<std::string> model_preset_names();

}  // namespace siglip2::cli
