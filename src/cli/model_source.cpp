#include "cli/model_source.hpp"

#include <filesystem>

#include "cli/presets.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/logging.hpp"
#include "interop/hf_import.hpp"
#include "train/checkpoint.hpp"

namespace siglip2::cli {

namespace {

namespace fs = std::filesystem;

struct Source {
  std::vector<std::string> dirs;  // candidates, in order (a run directory: its checkpoints, newest first)
  bool hf = false;
};

Source resolve(const std::string& key, std::string dir) {
  Source s;
  s.hf = dir.rfind("hf:", 0) == 0;
  if (s.hf) dir = dir.substr(3);
  if (!fs::is_directory(dir)) throw ConfigError(key + ": " + dir + " is not a directory");
  if (s.hf && !is_hf_dir(dir)) throw ConfigError(key + ": " + dir + " has no Hugging Face config.json");
  if (fs::exists(fs::path(dir) / "latest")) {
    s.dirs = list_checkpoints(dir);
    if (s.dirs.empty()) throw ConfigError(key + ": " + dir + " has no checkpoint");
  } else {
    s.dirs = {dir};
  }
  return s;
}

}  // namespace

ModelBundle load_model_source(const std::string& key, const std::string& value) {
  const Source s = resolve(key, value);
  std::string why;
  for (const std::string& dir : s.dirs) {
    try {
      return load_any_model(dir);
    } catch (const Error& e) {
      why = e.what();
      if (s.dirs.size() > 1) log_warn(key + ": " + dir + " cannot be read (" + why + "); trying an older checkpoint");
    }
  }
  throw ConfigError(key + ": " + why);
}

ModelConfig model_source_shape(const std::string& key, const std::string& value) {
  const Source s = resolve(key, value);
  const fs::path dir = s.dirs.front();
  try {
    if (fs::exists(dir / "config.yaml")) return load_bundle_config(dir.string()).model;
    if (fs::exists(dir / "config.json"))
      return model_config_from_hf_json(read_file((dir / "config.json").string()), (dir / "config.json").string());
  } catch (const Error& e) {
    throw ConfigError(key + ": " + e.what());
  }
  throw ConfigError(key + ": " + dir.string() + " has neither config.yaml nor config.json");
}

void check_acid_reference_shape(const std::string& what, const ModelConfig& reference) {
  if (reference.vision.naflex)
    throw ConfigError(what + " has a NaFlex vision tower; the ACID reference scores fixed-resolution pixels");
}

ModelConfig acid_reference_shape(const std::string& option, const std::string& preset_or_file) {
  ModelConfig m = load_bundle_config_file(resolve_model_preset(preset_or_file)).model;
  check_acid_reference_shape(option + " " + preset_or_file, m);
  return m;
}

}  // namespace siglip2::cli
