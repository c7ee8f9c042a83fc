#include "data/tokenizer_files.hpp"

#include <filesystem>

namespace siglip2 {

std::vector<std::pair<std::string, std::string>> tokenizer_companions(const std::string& tokenizer_model) {
  if (tokenizer_model.empty()) return {};
  const std::filesystem::path dir = std::filesystem::path(tokenizer_model).parent_path();
  std::vector<std::pair<std::string, std::string>> out;
  for (const char* name : {kKeptTokenizerJson, kTokenizerOrigin}) {
    const std::filesystem::path p = dir / name;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p, ec)) return {};
    out.emplace_back(name, p.string());
  }
  return out;
}

}  // namespace siglip2
