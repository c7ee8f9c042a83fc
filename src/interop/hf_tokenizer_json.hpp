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
//   - user-defined or unused pieces, treat_whitespace_as_suffix, SigLIP 1 canonicalisation;
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

}  // namespace siglip2
