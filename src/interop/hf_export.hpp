#pragma once
// siglip2-cpp model directories into Hugging Face `transformers` checkpoints that
// AutoModel.from_pretrained loads with no missing or unexpected keys (spec: hf_interop.md §1.6, §2, §6.5).
//
//   fixed resolution -> SiglipModel  (model_type siglip,  vision image_size)
//   NaFlex           -> Siglip2Model (model_type siglip2, vision num_patches)
//   --vision-only    -> SiglipVisionModel / Siglip2VisionModel, vision_model.* tensors only
#include <string>

#include "interop/checkpoint_dir.hpp"

namespace siglip2 {

struct HfExportOptions {
  std::string dtype = "float32";  // float32 or bfloat16: the stored weights and config.json torch_dtype
  bool vision_only = false;
  bool overwrite = false;
  bool no_tokenizer = false;  // no tokenizer files (for a tokenizer that tokenizer.json cannot express)
  // Generate tokenizer.json from tokenizer.model even where an imported original applies
  // (src/interop/hf_tokenizer_kept.hpp): exact where transformers' conversion matched user-defined pieces before
  // lowercasing.
  bool regenerate_tokenizer = false;
};

// config.json, preprocessor_config.json, tokenizer_config.json and special_tokens_map.json texts.
std::string hf_config_json(const ModelBundleConfig& config, const HfExportOptions& options);
std::string hf_preprocessor_json(const ImageConfig& image);
// SigLIP 1 tokenizer files (SiglipTokenizer over spiece.model; SigLIP 2 style tokenizers are exported as
// tokenizer.json, hf_tokenizer_json.hpp). The special tokens' strings are read from the sentencepiece model
// when there is one (a model trained here names its pieces as it likes), else SigLIP 1's standard names.
struct SpecialTokens {
  std::string bos, eos, pad, unk;
};
SpecialTokens special_tokens(const TokenizerConfig& tokenizer, const std::string& model_file = "");
std::string hf_tokenizer_config_json(const TokenizerConfig& tokenizer, const SpecialTokens& special);
std::string hf_special_tokens_json(const TokenizerConfig& tokenizer, const SpecialTokens& special);

// Exports a siglip2-cpp model directory (or a training checkpoint) to `out_dir`, written atomically.
void export_hf(const std::string& model_dir, const std::string& out_dir, const HfExportOptions& options);

}  // namespace siglip2
