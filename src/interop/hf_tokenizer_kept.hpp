#pragma once
// An imported checkpoint's own tokenizer.json (google/siglip2-* ship one), kept and exported byte for byte.
//
// `siglip2 import` copies the Hugging Face directory's tokenizer.json into the model directory with a record,
// tokenizer_origin.json: the source and the tokenizer settings it was imported with (lowercase, pad_id,
// eos_id, siglip1). Both travel with tokenizer.model into checkpoints (src/data/tokenizer_files.hpp).
// `siglip2 export` writes the original file unchanged when all of these hold, else it generates one from
// tokenizer.model (src/interop/hf_tokenizer_json.hpp) and says why:
//   - the settings equal the record's (an HF directory exported directly needs no record: its own
//     tokenizer_config.json gave the settings);
//   - the file's vocabulary (model.vocab and added_tokens) is tokenizer.model's, piece for piece;
//   - its model is BPE and its post-processor makes a text "text EOS" (TemplateProcessing single [A, EOS]);
//   - transformers can apply the configured lowercasing to it: a file with a Lowercase normaliser is loaded as
//     TokenizersBackend (settings: unicode); a file without one as Siglip2Tokenizer (unicode; it prepends
//     Lowercase and rebuilds Gemma's pipeline from the vocabulary and merges, so the sentencepiece model must be
//     Gemma-style) or TokenizersBackend (none). NaFlex exports always load as Siglip2Tokenizer.
// tokenizer_config.json and special_tokens_map.json are ours in both cases (right padding, the class above).
#include <optional>
#include <string>

#include "data/config.hpp"
#include "interop/hf_tokenizer_json.hpp"
#include "interop/sentencepiece_model.hpp"

namespace siglip2 {

// The text of tokenizer_origin.json for a tokenizer imported from `source` with settings `t`.
std::string tokenizer_origin_json(const std::string& source, const TokenizerConfig& t);

// The files to export for the tokenizer.json beside `tokenizer_model`, or nullopt with *why_not set ("" when there
// is no such file). `hf_dir`: the model is a Hugging Face directory (no record needed). Malformed files are a
// reason, not an error.
std::optional<HfTokenizerFiles> kept_tokenizer_files(const std::string& tokenizer_model, const SentencePieceModel& model,
                                                     const TokenizerConfig& t, bool naflex, bool hf_dir,
                                                     std::string* why_not);

}  // namespace siglip2
