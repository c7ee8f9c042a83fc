#include "interop/hf_tokenizer_json.hpp"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>
#include <unordered_map>

#include "common/error.hpp"

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
  for (const auto& p : m.pieces) {
    if (p.type == PieceType::kUserDefined) refuse("user-defined piece '" + p.piece + "'");
    if (p.type == PieceType::kUnused) refuse("unused piece '" + p.piece + "'");
  }
  if (std::count_if(m.pieces.begin(), m.pieces.end(), [](const auto& p) { return p.type == PieceType::kUnknown; }) != 1)
    refuse("the model must have exactly one unknown piece");
  if (naflex) {
    // transformers builds Siglip2Tokenizer for model_type siglip2 whatever tokenizer_config.json says.
    if (t.lowercase != "unicode")
      refuse("tokenizer.lowercase " + t.lowercase +
             " in a NaFlex export (transformers' Siglip2Tokenizer always "
             "lowercases)");
    if (m.add_dummy_prefix) refuse("add_dummy_prefix in a NaFlex export (Siglip2Tokenizer adds none)");
    if (m.remove_extra_whitespaces)
      refuse("remove_extra_whitespaces in a NaFlex export (Siglip2Tokenizer keeps every space)");
    if (!m.escape_whitespaces) refuse("escape_whitespaces false in a NaFlex export");
    if (!m.byte_fallback) refuse("byte_fallback false in a NaFlex export (Siglip2Tokenizer falls back to bytes)");
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

ordered_json added_token(size_t id, const std::string& content) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

std::string dump(const ordered_json& j) {
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
      added.push_back(added_token(i, p.piece));
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

  // TokenizersBackend uses tokenizer.json as it is. add_bos_token / add_eos_token must not appear (transformers
  // would rewrite the post-processor); split_special_tokens keeps "<eos>" inside a text plain text, as
  // sentencepiece encodes it; Siglip2Tokenizer (NaFlex exports) pads on the left unless told.
  ordered_json c;
  c["tokenizer_class"] = "TokenizersBackend";
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
  return {dump(j), dump(c), dump(s)};
}

}  // namespace siglip2
