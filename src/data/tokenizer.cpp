#include "data/tokenizer.hpp"

#include <sentencepiece_processor.h>
#include <torch/torch.h>

#include <filesystem>

#include "common/error.hpp"
#include "data/text_normalize.hpp"

namespace siglip2 {
namespace {

const std::string kSpaceSymbol = "\xE2\x96\x81";  // "▁", sentencepiece's word boundary
const std::string kUnkToken = "<unk>";            // SiglipTokenizer's default unk_token

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

std::vector<int> encode_ids(const sentencepiece::SentencePieceProcessor& model, const std::string& text) {
  std::vector<int> ids;
  const auto status = model.Encode(text, &ids);
  if (!status.ok()) throw Error("tokenizer: cannot encode text (" + status.ToString() + ")");
  return ids;
}

}  // namespace

Tokenizer Tokenizer::load(const TokenizerConfig& config, const std::string& base_dir) {
  std::filesystem::path path = config.model_file;
  if (path.empty()) throw ConfigError("tokenizer.model_file is not set");
  if (path.is_relative() && !base_dir.empty()) path = std::filesystem::path(base_dir) / path;

  auto model = std::make_shared<sentencepiece::SentencePieceProcessor>();
  const auto status = model->Load(path.string());
  if (!status.ok()) throw Error(path.string() + ": cannot load the sentencepiece model (" + status.ToString() + ")");
  const int64_t size = model->GetPieceSize();
  for (const auto& [name, id] : {std::pair{"pad_id", config.pad_id}, std::pair{"eos_id", config.eos_id}}) {
    if (id >= size) {
      throw ConfigError(std::string("tokenizer.") + name + " = " + std::to_string(id) +
                        " is outside the vocabulary of " + path.string() + " (" + std::to_string(size) + " pieces)");
    }
  }

  Tokenizer tokenizer;
  tokenizer.config_ = config;
  if (config.siglip1) tokenizer.unk_prefix_ids_ = encode_ids(*model, kUnkToken).size();
  tokenizer.model_ = std::move(model);
  return tokenizer;
}

int64_t Tokenizer::vocab_size() const {
  return model_->GetPieceSize();
}

std::vector<int> Tokenizer::pieces(const std::string& text) const {
  // SiglipTokenizer.tokenize prefixes "▁" (after turning any "▁" into a space) and canonicalize_text lowercases.
  std::string normalized = config_.siglip1 ? kSpaceSymbol + replace_all(text, kSpaceSymbol, " ") : text;
  if (config_.lowercase == "unicode") {
    normalized = unicode_lower(normalized, /*final_sigma=*/config_.siglip1);
  } else if (config_.lowercase == "ascii") {
    normalized = ascii_lower(normalized);
  }
  if (!config_.siglip1) return encode_ids(*model_, normalized);

  // SiglipTokenizer._tokenize encodes unk_token + text and drops the unk token's pieces, so that the
  // leading "▁" is kept whatever the model's add_dummy_prefix says.
  std::vector<int> ids = encode_ids(*model_, kUnkToken + siglip1_canonicalize(normalized));
  if (ids.size() >= unk_prefix_ids_) ids.erase(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(unk_prefix_ids_));
  return ids;
}

std::vector<int> Tokenizer::encode_one(const std::string& text) const {
  const auto length = static_cast<size_t>(config_.length);
  std::vector<int> ids = pieces(text);
  if (ids.size() > length - 1) ids.resize(length - 1);  // "sticky" EOS: truncate first, then append it
  ids.push_back(static_cast<int>(config_.eos_id));
  ids.resize(length, static_cast<int>(config_.pad_id));
  return ids;
}

at::Tensor Tokenizer::encode(const std::vector<std::string>& texts) const {
  at::Tensor out = torch::empty({static_cast<int64_t>(texts.size()), config_.length}, torch::kLong);
  auto rows = out.accessor<int64_t, 2>();
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int> ids = encode_one(texts[i]);
    for (size_t j = 0; j < ids.size(); ++j) rows[i][j] = ids[j];
  }
  return out;
}

}  // namespace siglip2
