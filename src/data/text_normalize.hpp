#pragma once
// Text normalisation for the tokenizers, independent of the C locale. Invalid UTF-8 bytes pass through unchanged.
#include <string>

namespace siglip2 {

// Full Unicode lowercase (UnicodeData + the unconditional SpecialCasing rule U+0130 -> "i\u0307").
// final_sigma = true applies the Final_Sigma rule ("ΟΔΥΣΣΕΥΣ" -> "οδυσσευς") as Python's str.lower() does
// (SiglipTokenizer); false maps every capital sigma to σ, as the Rust `Lowercase` normalizer of Hugging Face
// `tokenizers` does (Siglip2Tokenizer), since it lowercases character by character.
std::string unicode_lower(const std::string& text, bool final_sigma);

// A-Z only, as big_vision's tf.strings.lower.
std::string ascii_lower(const std::string& text);

// SiglipTokenizer.canonicalize_text without its lowercasing: drops the ASCII punctuation of Python's
// string.punctuation, replaces each run of Unicode whitespace (str.isspace) with one space, strips both ends.
std::string siglip1_canonicalize(const std::string& text);

}  // namespace siglip2
