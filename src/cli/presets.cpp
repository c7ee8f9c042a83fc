#include "cli/presets.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "common/error.hpp"

namespace siglip2::cli {

namespace fs = std::filesystem;

std::string configs_dir() {
  if (const char* env = std::getenv("SIGLIP2_CONFIGS"); env && *env) return env;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path dir : {exe.parent_path() / "configs", exe.parent_path().parent_path() / "configs"})
      if (fs::is_directory(dir / "models")) return dir.string();
  }
  return std::string(SIGLIP2_SOURCE_DIR) + "/configs";
}

std::vector<std::string> model_preset_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(configs_dir()) / "models", ec))
    if (e.path().extension() == ".yaml") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string resolve_model_preset(const std::string& name_or_path) {
  if (fs::exists(name_or_path)) return name_or_path;
  fs::path preset = fs::path(configs_dir()) / "models" / (name_or_path + ".yaml");
  if (fs::exists(preset)) return preset.string();
  std::string list;
  for (const auto& n : model_preset_names()) list += (list.empty() ? "" : ", ") + n;
  throw ConfigError("'" + name_or_path + "' is neither a file nor a model preset (presets: " + list + ")");
}

}  // namespace siglip2::cli
