#pragma once
// Text to token ids as the Hugging Face SigLIP tokenizers produce them with
// padding="max_length", truncation=True, max_length=length (hf_interop spec §5):
//   SigLIP 2 (Gemma sentencepiece, Siglip2Tokenizer): lowercase, encode, no BOS, EOS kept on truncation, pad 0.
//   SigLIP 1 (T5 sentencepiece, SiglipTokenizer): lowercase, drop ASCII punctuation, collapse whitespace,
//   encode "▁" + text, EOS, pad with EOS.
// Special-token strings inside a text ("<eos>") are encoded as plain text, as big_vision does; HF would
// split them out as special tokens.
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "data/config.hpp"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace siglip2 {

class Tokenizer {
 public:
  // A relative config.model_file is looked up under base_dir (the checkpoint) when base_dir is not empty.
  static Tokenizer load(const TokenizerConfig& config, const std::string& base_dir = "");

  at::Tensor encode(const std::vector<std::string>& texts) const;  // int64 [N, length]
  std::vector<int> encode_one(const std::string& text) const;      // exactly `length` ids: one row of encode
  int64_t vocab_size() const;
  // The ids of a text before EOS, truncation and padding (used to lay out LocCa targets).
  std::vector<int> pieces(const std::string& text) const;
  const TokenizerConfig& config() const { return config_; }

 private:
  Tokenizer() = default;

  TokenizerConfig config_;
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> model_;
  size_t unk_prefix_ids_ = 0;  // SigLIP 1: how many ids "<unk>" encodes to (see pieces())
};

}  // namespace siglip2
