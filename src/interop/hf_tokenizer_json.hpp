#pragma once
// tokenizer.json (the format of Hugging Face `tokenizers`) generated from a sentencepiece model and our
// tokenizer settings, so that a stock transformers (AutoTokenizer, no sentencepiece or protobuf installed)
// reproduces src/data/tokenizer.* id for id: normaliser (lowercasing, whitespace handling, dummy prefix),
// BPE model (pieces, merges ordered as sentencepiece applies them, byte fallback, unknown token), EOS
// appended by the post-processor (truncation keeps it), special tokens.
//
// Only settings that `tokenizers` can express exactly are written; anything else throws siglip2::Error
// naming the setting (never a tokenizer that tokenises differently):
//   - a precompiled normalisation charsmap (nmt_nfkc, nfkc, …): tokenizers' Precompiled normaliser works per
//     grapheme and differs from sentencepiece on combining-mark sequences ("e\u0301\u0301", "ｶﾞ");
//   - unigram models: tokenizers' Unigram matches control pieces ("</s>", "<pad>") inside text;
//   - unused pieces, user-defined pieces with a space in them or next to a dummy prefix or whitespace removal
//     (tokenizers normalises the text between added tokens piece by piece), treat_whitespace_as_suffix,
//     SigLIP 1 canonicalisation;
// User-defined pieces (Gemma's "<start_of_turn>", "<h1>", …) become added tokens matched in the normalised
// (lowercased) text, as sentencepiece matches them in the text src/data/tokenizer.cpp lowercased first.
//   - NaFlex exports (model_type siglip2): transformers rebuilds Siglip2Tokenizer from the vocabulary with
//     its own normaliser (Lowercase, " " -> "▁"), so only that pipeline is exact there: lowercase unicode,
//     no dummy prefix, no whitespace removal, escaped whitespace.
#include <string>

#include "data/config.hpp"
#include "interop/sentencepiece_model.hpp"

namespace siglip2 {

struct HfTokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
  std::string special_tokens_map_json;
};

// `naflex`: the export's config.json says model_type siglip2 (see above).
HfTokenizerFiles hf_tokenizer_files(const SentencePieceModel& model, const TokenizerConfig& tokenizer, bool naflex,
                                    const std::string& model_name_for_errors);

// tokenizer_config.json and special_tokens_map.json (tokenizer_json left empty) for a tokenizer.json loaded as
// `tokenizer_class`: "TokenizersBackend" uses the file as it is, "Siglip2Tokenizer" rebuilds Gemma's pipeline
// from its vocabulary and merges with Lowercase first. EOS/pad/unk are piece strings.
HfTokenizerFiles hf_tokenizer_config_files(const TokenizerConfig& tokenizer, const std::string& eos,
                                           const std::string& pad, const std::string& unk,
                                           const std::string& tokenizer_class);

// Why transformers' Siglip2Tokenizer (Lowercase, " " -> "▁", BPE with byte fallback, no dummy prefix) cannot
// reproduce this model and these settings ("SETTING" + where + " (reason)"); "" when it can.
std::string siglip2_tokenizer_problem(const SentencePieceModel& model, const TokenizerConfig& tokenizer,
                                      const std::string& where);

}  // namespace siglip2
