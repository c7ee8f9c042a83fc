#include "interop/hf_tokenizer_kept.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/fs.hpp"
#include "common/json_limits.hpp"
#include "data/tokenizer_files.hpp"

namespace siglip2 {
namespace {

using json = nlohmann::json;

json settings_json(const TokenizerConfig& t) {
  return {{"lowercase", t.lowercase}, {"pad_id", t.pad_id}, {"eos_id", t.eos_id}, {"siglip1", t.siglip1}};
}

// Whether `j` or anything inside it is an object {"type": type, ...} (normalizers and processors nest in
// Sequence steps).
bool has_type(const json& j, const std::string& type) {
  if (j.is_object()) {
    auto it = j.find("type");
    if (it != j.end() && it->is_string() && *it == type) return true;
  }
  if (j.is_structured())
    for (const auto& v : j)
      if (has_type(v, type)) return true;
  return false;
}

// Whether the post-processor turns one text into exactly "text EOS": a TemplateProcessing whose `single` is
// [Sequence A, SpecialToken eos] (a BOS, or EOS only in `pair`, would tokenise differently).
bool appends_eos(const json& post, const std::string& eos) {
  if (!post.is_object() || post.value("type", std::string()) != "TemplateProcessing") return false;
  const json single = post.value("single", json());
  return single.is_array() && single.size() == 2 && single[0].is_object() && single[0].contains("Sequence") &&
         single[0]["Sequence"].is_object() && single[0]["Sequence"].value("id", std::string()) == "A" &&
         single[1].is_object() && single[1].contains("SpecialToken") && single[1]["SpecialToken"].is_object() &&
         single[1]["SpecialToken"].value("id", std::string()) == eos;
}

// "" when the file's id -> piece mapping is the sentencepiece model's, else the first difference.
std::string vocabulary_difference(const json& tok, const SentencePieceModel& m) {
  const json& vocab = tok.at("model").at("vocab");
  if (!vocab.is_object()) return "model.vocab is not an object";
  std::vector<const std::string*> by_id(m.pieces.size(), nullptr);
  auto put = [&](const std::string& piece, const json& id) -> std::string {
    if (!id.is_number_unsigned() || id.get<uint64_t>() >= m.pieces.size())
      return "'" + piece + "' has id " + id.dump() + ", outside tokenizer.model's " + std::to_string(m.pieces.size()) +
             " pieces";
    const size_t i = id.get<size_t>();
    if (m.pieces[i].piece != piece)
      return "id " + std::to_string(i) + " is '" + piece + "' there and '" + m.pieces[i].piece + "' in tokenizer.model";
    by_id[i] = &m.pieces[i].piece;
    return "";
  };
  for (const auto& [piece, id] : vocab.items())
    if (std::string d = put(piece, id); !d.empty()) return d;
  if (tok.contains("added_tokens") && tok["added_tokens"].is_array())
    for (const auto& a : tok["added_tokens"])
      if (std::string d = put(a.value("content", std::string()), a.value("id", json())); !d.empty()) return d;
  for (size_t i = 0; i < by_id.size(); ++i)
    if (by_id[i] == nullptr) return "tokenizer.model's piece " + std::to_string(i) + " '" + m.pieces[i].piece + "' is missing";
  return "";
}

}  // namespace

std::string tokenizer_origin_json(const std::string& source, const TokenizerConfig& t) {
  nlohmann::ordered_json j;
  j["about"] =
      "tokenizer.json beside this file is the original tokenizer of the source; siglip2 export writes it unchanged "
      "while these tokenizer settings are unchanged";
  j["source"] = source;
  j["tokenizer"] = settings_json(t);
  return j.dump(2) + "\n";
}

std::optional<HfTokenizerFiles> kept_tokenizer_files(const std::string& tokenizer_model, const SentencePieceModel& m,
                                                     const TokenizerConfig& t, bool naflex, bool hf_dir,
                                                     std::string* why_not) {
  namespace fs = std::filesystem;
  why_not->clear();
  const fs::path dir = fs::path(tokenizer_model).parent_path();
  const fs::path file = dir / kKeptTokenizerJson, record = dir / kTokenizerOrigin;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return std::nullopt;
  auto no = [&](const std::string& why) {
    *why_not = "'" + file.string() + "': " + why;
    return std::nullopt;
  };
  if (!hf_dir) {
    if (!fs::is_regular_file(record, ec)) return std::nullopt;  // not an imported tokenizer: not ours to carry
    try {
      const json r = json::parse(read_file(record.string()), json_depth_limit(record.string()));
      const json want = settings_json(t), had = r.at("tokenizer");
      for (const auto& [key, value] : want.items())
        if (!had.contains(key) || had[key] != value)
          return no("tokenizer." + key + " is " + value.dump() + ", was " + (had.contains(key) ? had[key].dump() : "unset") +
                    " when it was imported");
    } catch (const std::exception& e) {
      return no(std::string("unreadable record ") + kTokenizerOrigin + ": " + e.what());
    }
  }
  std::string bytes;
  json tok;
  try {
    bytes = read_file(file.string());
    tok = json::parse(bytes, json_depth_limit(file.string()));
    if (tok.at("model").value("type", std::string()) != "BPE") return no("its model is not BPE");
    if (std::string d = vocabulary_difference(tok, m); !d.empty()) return no("its vocabulary differs: " + d);
  } catch (const std::exception& e) {
    return no(std::string("not a readable tokenizer.json: ") + e.what());
  }
  const auto piece = [&](int64_t id) { return m.pieces.at(static_cast<size_t>(id)).piece; };
  if (t.eos_id < 0 || t.pad_id < 0 || static_cast<size_t>(std::max(t.eos_id, t.pad_id)) >= m.pieces.size())
    return no("tokenizer.eos_id or pad_id is outside the vocabulary");
  const std::string eos = piece(t.eos_id), pad = piece(t.pad_id);
  std::string unk;
  for (const auto& p : m.pieces)
    if (p.type == SentencePieceModel::PieceType::kUnknown) unk = p.piece;
  if (!appends_eos(tok.value("post_processor", json()), eos))
    return no("its post-processor does not make a text 'text " + eos + "' (a TemplateProcessing [A, " + eos + "])");
  const bool lowercases = has_type(tok.value("normalizer", json()), "Lowercase");
  std::string cls;
  if (naflex || (t.lowercase == "unicode" && !lowercases)) {
    if (lowercases) return no("it lowercases in its normaliser, and Siglip2Tokenizer would lowercase again");
    const std::string problem = siglip2_tokenizer_problem(m, t, "");
    if (!problem.empty()) return no("transformers loads it as Siglip2Tokenizer, which cannot apply " + problem);
    cls = "Siglip2Tokenizer";
  } else if (t.lowercase == "unicode" || (t.lowercase == "none" && !lowercases)) {
    cls = "TokenizersBackend";
  } else {
    return no("tokenizer.lowercase " + t.lowercase + (lowercases ? ", and the file lowercases" : "") +
              ": no tokenizer class applies that to it");
  }
  HfTokenizerFiles files = hf_tokenizer_config_files(t, eos, pad, unk, cls);
  files.tokenizer_json = bytes;
  return files;
}

}  // namespace siglip2
