#pragma once
// The files that travel with a tokenizer model (tokenizer.model) wherever it is copied: into model
// directories (siglip2 import), training checkpoints and adapted checkpoints.
//   tokenizer.json         the original Hugging Face tokenizer of an imported checkpoint, byte for byte
//   tokenizer_origin.json  where it came from and the tokenizer settings it was imported with; export writes the
//                          original file while those settings are unchanged (src/interop/hf_tokenizer_kept.hpp)
#include <string>
#include <utility>
#include <vector>

namespace siglip2 {

inline constexpr const char* kKeptTokenizerJson = "tokenizer.json";
inline constexpr const char* kTokenizerOrigin = "tokenizer_origin.json";

// (file name, path) of the companions beside `tokenizer_model` in its directory: both files or none (a
// tokenizer.json without its record is not ours to carry). Empty when `tokenizer_model` is "".
std::vector<std::pair<std::string, std::string>> tokenizer_companions(const std::string& tokenizer_model);

}  // namespace siglip2
