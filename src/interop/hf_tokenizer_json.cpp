#include "interop/hf_tokenizer_json.hpp"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>
#include <unordered_map>

#include "common/error.hpp"
#include "data/text_normalize.hpp"

namespace siglip2 {
namespace {

using ordered_json = nlohmann::ordered_json;
using PieceType = SentencePieceModel::PieceType;
const std::string kSpaceSymbol = "\xE2\x96\x81";  // "▁"

ordered_json replace(const std::string& pattern, const std::string& content, bool regex = false) {
  ordered_json j;
  j["type"] = "Replace";
  j["pattern"] = {{regex ? "Regex" : "String", pattern}};
  j["content"] = content;
  return j;
}

// Byte offsets where a UTF-8 character starts, after the first one.
std::vector<size_t> char_boundaries(const std::string& s) {
  std::vector<size_t> out;
  for (size_t i = 1; i < s.size(); ++i)
    if ((static_cast<uint8_t>(s[i]) & 0xC0) != 0x80) out.push_back(i);
  return out;
}

}  // namespace

std::string siglip2_tokenizer_problem(const SentencePieceModel& m, const TokenizerConfig& t, const std::string& where) {
  if (t.lowercase != "unicode")
    return "tokenizer.lowercase " + t.lowercase + where + " (transformers' Siglip2Tokenizer always lowercases)";
  if (m.add_dummy_prefix) return "add_dummy_prefix" + where + " (Siglip2Tokenizer adds none)";
  if (m.remove_extra_whitespaces) return "remove_extra_whitespaces" + where + " (Siglip2Tokenizer keeps every space)";
  if (!m.escape_whitespaces) return "escape_whitespaces false" + where;
  if (!m.byte_fallback) return "byte_fallback false" + where + " (Siglip2Tokenizer falls back to bytes)";
  return "";
}

namespace {

// Refuses what tokenizers cannot reproduce; the message names the setting and what to do.
void check_expressible(const SentencePieceModel& m, const TokenizerConfig& t, bool naflex, const std::string& name) {
  auto refuse = [&](const std::string& what) {
    throw Error("export: the tokenizer of " + name +
                " cannot be written as a tokenizer.json that transformers "
                "reproduces exactly: " +
                what);
  };
  if (t.siglip1) refuse("tokenizer.siglip1 (SigLIP 1 canonicalisation)");
  if (m.model_type != SentencePieceModel::Type::kBpe)
    refuse("model_type " + std::string(m.model_type == SentencePieceModel::Type::kUnigram ? "unigram" : "word/char") +
           " (tokenizers' Unigram matches control pieces such as '</s>' inside text; train a BPE model)");
  if (!m.precompiled_charsmap.empty())
    refuse("normalization rule '" + (m.normalizer_name.empty() ? std::string("precompiled") : m.normalizer_name) +
           "' (tokenizers applies a precompiled charsmap per grapheme and differs on combining marks; train with "
           "--normalization_rule_name=identity, as Gemma's tokenizer is)");
  if (m.treat_whitespace_as_suffix) refuse("treat_whitespace_as_suffix");
  const auto user_defined =
      std::find_if(m.pieces.begin(), m.pieces.end(), [](const auto& p) { return p.type == PieceType::kUserDefined; });
  // tokenizers normalises the text between added tokens piece by piece: a dummy prefix or whitespace removal
  // would apply around each user-defined piece, sentencepiece applies it once to the whole text.
  if (user_defined != m.pieces.end() && (m.add_dummy_prefix || m.remove_extra_whitespaces))
    refuse(std::string(m.add_dummy_prefix ? "add_dummy_prefix" : "remove_extra_whitespaces") +
           " with user-defined pieces ('" + user_defined->piece + "')");
  for (const auto& p : m.pieces) {
    // sentencepiece matches user-defined pieces in the raw text; with spaces in them its whitespace rules and
    // tokenizers' added-token split would interact differently.
    if (p.type == PieceType::kUserDefined &&
        (p.piece.find(' ') != std::string::npos || p.piece.find(kSpaceSymbol) != std::string::npos))
      refuse("user-defined piece '" + p.piece + "' with a space in it");
    if (p.type == PieceType::kUnused) refuse("unused piece '" + p.piece + "'");
  }
  if (std::count_if(m.pieces.begin(), m.pieces.end(), [](const auto& p) { return p.type == PieceType::kUnknown; }) != 1)
    refuse("the model must have exactly one unknown piece");
  if (naflex) {
    // transformers builds Siglip2Tokenizer for model_type siglip2 whatever tokenizer_config.json says.
    const std::string problem = siglip2_tokenizer_problem(m, t, " in a NaFlex export");
    if (!problem.empty()) refuse(problem);
  }
}

ordered_json normalizer(const SentencePieceModel& m, const TokenizerConfig& t) {
  ordered_json steps = ordered_json::array();
  // Lowercasing comes first in src/data/tokenizer.cpp; tokenizers' Lowercase is Rust's per-character
  // to_lowercase (Σ -> σ, İ -> i̇), which unicode_lower(final_sigma = false) equals.
  if (t.lowercase == "unicode") steps.push_back({{"type", "Lowercase"}});
  if (t.lowercase == "ascii")
    for (char c = 'A'; c <= 'Z'; ++c)
      steps.push_back(replace(std::string(1, c), std::string(1, static_cast<char>(c + 32))));
  // sentencepiece's normaliser (identity rule): leading spaces dropped, runs of spaces collapsed, trailing
  // (escaped) spaces dropped, spaces escaped, the dummy prefix added to a non-empty result.
  if (m.remove_extra_whitespaces) {
    steps.push_back(replace("\\A +", "", true));
    steps.push_back(replace(" {2,}", " ", true));
    steps.push_back(replace("[ " + kSpaceSymbol + "]+\\z", "", true));
  }
  if (m.escape_whitespaces) steps.push_back(replace(" ", kSpaceSymbol));
  if (m.add_dummy_prefix)
    steps.push_back({{"type", "Prepend"}, {"prepend", m.escape_whitespaces ? kSpaceSymbol : " "}});
  if (steps.size() == 1) return steps[0];
  return {{"type", "Sequence"}, {"normalizers", steps}};
}

// sentencepiece's BPE merges the adjacent pair whose merged piece scores highest (leftmost first); tokenizers
// merges by rank. Every split of a piece into two pieces is a merge, ranked by the merged piece's score
// (then id, then split position).
ordered_json merges(const SentencePieceModel& m) {
  std::unordered_map<std::string, size_t> id_of;
  for (size_t i = 0; i < m.pieces.size(); ++i)
    if (m.pieces[i].type == PieceType::kNormal) id_of.emplace(m.pieces[i].piece, i);
  std::vector<std::tuple<float, size_t, size_t>> order;  // (-score, id, split)
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    const auto& p = m.pieces[i];
    if (p.type != PieceType::kNormal) continue;
    for (const size_t k : char_boundaries(p.piece))
      if (id_of.count(p.piece.substr(0, k)) && id_of.count(p.piece.substr(k))) order.emplace_back(-p.score, i, k);
  }
  std::sort(order.begin(), order.end());
  ordered_json out = ordered_json::array();
  for (const auto& [neg_score, id, k] : order) {
    const std::string& p = m.pieces[id].piece;
    out.push_back({p.substr(0, k), p.substr(k)});
  }
  return out;
}

// Control pieces are special and matched in the raw text (split_special_tokens in tokenizer_config.json keeps a
// "<eos>" typed in a text plain text, as sentencepiece does). User-defined pieces are plain added tokens matched
// in the normalised text: src/data/tokenizer.cpp lowercases before sentencepiece matches them, so "<H1>" in a
// text is the piece "<h1>". (transformers' own conversion matches them before lowercasing instead.)
ordered_json added_token(size_t id, const std::string& content, bool special) {
  return {{"id", id},        {"content", content},     {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", !special}, {"special", special}};
}

// The text sentencepiece sees is lowercased first, so a user-defined piece that lowercasing changes never
// matches; as an added token, tokenizers would normalise it and match it.
bool reachable_after_lowercasing(const std::string& piece, const TokenizerConfig& t) {
  if (t.lowercase == "unicode") return unicode_lower(piece, false) == piece;
  if (t.lowercase == "ascii") return ascii_lower(piece) == piece;
  return true;
}

std::string tokenizer_json_text(const ordered_json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::strict) + "\n";
}

}  // namespace

HfTokenizerFiles hf_tokenizer_files(const SentencePieceModel& m, const TokenizerConfig& t, bool naflex,
                                    const std::string& name) {
  check_expressible(m, t, naflex, name);
  const auto size = static_cast<int64_t>(m.pieces.size());
  for (const auto& [key, id] : {std::pair{"pad_id", t.pad_id}, std::pair{"eos_id", t.eos_id}})
    if (id < 0 || id >= size)
      throw Error("export: tokenizer." + std::string(key) + " " + std::to_string(id) + " is outside the " +
                  std::to_string(size) + " pieces of the tokenizer of " + name);
  const std::string eos = m.pieces[static_cast<size_t>(t.eos_id)].piece;
  const std::string pad = m.pieces[static_cast<size_t>(t.pad_id)].piece;
  std::string unk;
  ordered_json added = ordered_json::array();
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    const auto& p = m.pieces[i];
    if (p.type == PieceType::kUnknown) unk = p.piece;
    if (p.type == PieceType::kControl || p.type == PieceType::kUnknown || static_cast<int64_t>(i) == t.pad_id ||
        static_cast<int64_t>(i) == t.eos_id)
      added.push_back(added_token(i, p.piece, true));
    else if (p.type == PieceType::kUserDefined && reachable_after_lowercasing(p.piece, t))
      added.push_back(added_token(i, p.piece, false));
  }

  ordered_json vocab = ordered_json::object();
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    if (vocab.contains(m.pieces[i].piece))
      throw Error("export: the tokenizer of " + name + " has the piece '" + m.pieces[i].piece + "' twice");
    vocab[m.pieces[i].piece] = i;
  }
  ordered_json model;
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = unk;
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = true;
  model["byte_fallback"] = m.byte_fallback;
  model["ignore_merges"] = false;
  model["vocab"] = vocab;
  model["merges"] = merges(m);

  ordered_json eos_token = {{"SpecialToken", {{"id", eos}, {"type_id", 0}}}};
  ordered_json post;
  post["type"] = "TemplateProcessing";
  post["single"] = {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, eos_token};
  post["pair"] = {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                  eos_token,
                  {{"Sequence", {{"id", "B"}, {"type_id", 0}}}},
                  eos_token};
  post["special_tokens"] = {{eos, {{"id", eos}, {"ids", {t.eos_id}}, {"tokens", {eos}}}}};

  ordered_json decoders = ordered_json::array();
  decoders.push_back(replace(kSpaceSymbol, " "));
  if (m.byte_fallback) decoders.push_back({{"type", "ByteFallback"}});
  decoders.push_back({{"type", "Fuse"}});
  if (m.add_dummy_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});

  ordered_json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = normalizer(m, t);
  j["pre_tokenizer"] = nullptr;
  j["post_processor"] = post;
  j["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
  j["model"] = model;

  HfTokenizerFiles files = hf_tokenizer_config_files(t, eos, pad, unk, "TokenizersBackend");
  files.tokenizer_json = tokenizer_json_text(j);
  return files;
}

HfTokenizerFiles hf_tokenizer_config_files(const TokenizerConfig& t, const std::string& eos, const std::string& pad,
                                           const std::string& unk, const std::string& tokenizer_class) {
  // TokenizersBackend uses tokenizer.json as it is. add_bos_token / add_eos_token must not appear (transformers
  // would rewrite the post-processor); split_special_tokens keeps "<eos>" inside a text plain text, as
  // sentencepiece encodes it; Siglip2Tokenizer (NaFlex exports) pads on the left unless told.
  ordered_json c;
  c["tokenizer_class"] = tokenizer_class;
  c["backend"] = "tokenizers";
  c["bos_token"] = nullptr;
  c["eos_token"] = eos;
  c["pad_token"] = pad;
  c["unk_token"] = unk;
  c["split_special_tokens"] = true;
  c["padding_side"] = "right";
  c["truncation_side"] = "right";
  c["model_max_length"] = t.length;
  c["clean_up_tokenization_spaces"] = false;
  c["do_lower_case"] = t.lowercase != "none";
  c["model_input_names"] = {"input_ids"};

  ordered_json s;
  s["eos_token"] = eos;
  s["pad_token"] = pad;
  s["unk_token"] = unk;
  return {"", tokenizer_json_text(c), tokenizer_json_text(s)};
}

}  // namespace siglip2
