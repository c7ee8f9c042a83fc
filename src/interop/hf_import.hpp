#pragma once
// Hugging Face `transformers` checkpoints (SiglipModel, Siglip2Model) into siglip2-cpp
// (spec: hf_interop.md §1, §2, §4.2, §5). The weights need no conversion: parameter names are
// the HF names; config.json keys that a Hub file omits take the transformers defaults.
#include <string>

#include "interop/checkpoint_dir.hpp"

namespace siglip2 {

struct HfCheckpoint {
  ModelBundleConfig config;
  NamedTensors tensors;         // as stored (any float dtype), every tensor checked; *.position_ids dropped
  std::string tokenizer_model;  // the sentencepiece model found (tokenizer.model, spiece.model) or given; "" = none
};

// Reads an HF directory: config.json, preprocessor_config.json and tokenizer_config.json (both optional),
// model.safetensors or a sharded model.safetensors.index.json. Every tensor the config implies must be
// present with its shape, else a siglip2::Error names them. `tokenizer_model` overrides the one found.
HfCheckpoint read_hf_checkpoint(const std::string& dir, const std::string& tokenizer_model = "");

// The model config a config.json describes. `origin` names the file in errors.
ModelConfig model_config_from_hf_json(const std::string& json_text, const std::string& origin);

// The preprocessing a preprocessor_config.json describes for the model `m` of its config.json, and
// the tokenizer settings of a tokenizer_config.json (pad/eos ids from added_tokens_decoder; model_file
// left empty). "{}" gives the SigLIP defaults for `m`. `origin` names the file in errors.
ImageConfig image_config_from_hf_json(const std::string& json_text, const std::string& origin, const ModelConfig& m);
TokenizerConfig tokenizer_config_from_hf_json(const std::string& json_text, const std::string& origin,
                                              const ModelConfig& m);

// `siglip2 import --hf`: read_hf_checkpoint, then a model directory with float32 weights. Nothing is
// written unless the whole checkpoint is valid.
void import_hf(const std::string& hf_dir, const std::string& out_dir, const std::string& tokenizer_model = "",
               bool overwrite = false);

}  // namespace siglip2
