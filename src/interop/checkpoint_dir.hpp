#pragma once
// A siglip2-cpp model directory: everything needed to embed images and texts with a trained model.
//
//   model.safetensors   every parameter, under the Hugging Face names (DESIGN.md §3)
//   config.yaml         sections model:, image:, tokenizer: (a training checkpoint's resolved config works too)
//   tokenizer.model     the sentencepiece model, when known (tokenizer.model_file then says "tokenizer.model")
//
// Directories are written into a sibling temporary directory, synced, and renamed into place, so a
// reader sees a complete directory or none.
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/named_tensors.hpp"
#include "data/config.hpp"
#include "models/config.hpp"
#include "models/siglip2.hpp"

namespace siglip2 {

struct ModelBundleConfig {
  ModelConfig model;
  ImageConfig image;
  TokenizerConfig tokenizer;

  template <class V>
  void visit(V& v) {
    v("model", model, "the two towers");
    v("image", image, "image preprocessing the model expects");
    v("tokenizer", tokenizer, "text tokenization the model expects");
  }
  // Rules between the sections ("" = consistent).
  std::string check() const;
};

// Every parameter of a model with this config: HF name and shape (hf_interop.md §2), in the modules' order
// (models/siglip2.hpp parameter_shapes): a checkpoint is checked against the architecture the constructors
// define, without initialising a model.
TensorShapes expected_hf_tensors(const ModelConfig& config);

// Names the model owns (vision_model.*, text_model.*, logit_*); others are training-only parts.
bool is_model_tensor_name(const std::string& name);

// Throws siglip2::Error naming `what` and a few of the missing, wrongly shaped and unexpected tensors
// (unexpected = a model-owned name that `expected` lacks; other names are ignored).
void check_tensors(const TensorShapes& expected, const NamedTensors& given, const std::string& what);

// A model with its preprocessing, ready to run (eval mode, CPU, float32).
struct ModelBundle {
  ModelBundleConfig config;
  Siglip2Model model{nullptr};
  std::string tokenizer_model;  // absolute path of the sentencepiece model; "" when the model has none
  std::string source;           // the directory it was loaded from
};

// Throws unless `dir` can be written: absent, an empty directory, or (with `overwrite`) any directory.
void check_output_dir(const std::string& dir, bool overwrite);

// Builds `dir` by calling fill(tmp) on an empty sibling temporary directory, syncs it and renames it
// to `dir`. An existing non-empty `dir` is an error unless `overwrite`, in which case it is replaced
// only once the new one is complete. On failure the temporary directory is removed.
void write_dir_atomic(const std::string& dir, bool overwrite, const std::function<void(const std::string&)>& fill);

// Writes a model directory. `tensors` must hold every parameter (HF names); `tokenizer_model` is a
// sentencepiece file to copy as tokenizer.model ("" = none: then config.tokenizer.model_file is kept), with
// its companions (src/data/tokenizer_files.hpp) unless `extra_files` (name, bytes) are given instead.
void save_model_dir(const std::string& dir, ModelBundleConfig config, const NamedTensors& tensors,
                    const std::string& tokenizer_model = "", bool overwrite = false,
                    std::vector<std::pair<std::string, std::string>> extra_files = {});

// The parameters of a model, in the order named_parameters() gives them.
NamedTensors model_tensors(Siglip2ModelImpl& model);

// A model config file (a preset such as configs/models/tiny.yaml, a recipe, or a model directory's
// config.yaml) with `--set` overrides: its model, image and tokenizer sections; other sections are ignored.
ModelBundleConfig load_bundle_config_file(const std::string& path, const std::vector<std::string>& overrides = {});

// A freshly initialised model (Siglip2ModelImpl::reset_parameters(seed)) written as a model directory:
// how a from-scratch run starts.
void init_model_dir(const std::string& dir, const ModelBundleConfig& config, uint64_t seed,
                    const std::string& tokenizer_model = "", bool overwrite = false);

// The absolute path of the tokenizer model a config names (relative to `dir`), or "".
std::string tokenizer_model_path(const std::string& dir, const TokenizerConfig& tokenizer);

// Reads config.yaml (sections other than model/image/tokenizer are ignored, so a training
// checkpoint's resolved config works).
ModelBundleConfig load_bundle_config(const std::string& dir);

// Copies `tensors` into the model's parameters. Every parameter must be present with its shape;
// tensors under vision_model./text_model./logit_ that the model lacks are errors, others (training-only
// heads) are ignored. Messages name `what` (a file or directory) and the tensor.
void load_parameters(Siglip2ModelImpl& model, const NamedTensors& tensors, const std::string& what);

// Loads a siglip2-cpp model directory.
ModelBundle load_model_dir(const std::string& dir);

// True when `dir` holds a Hugging Face checkpoint (config.json and no config.yaml).
bool is_hf_dir(const std::string& dir);

// A siglip2-cpp directory (config.yaml) or a Hugging Face directory (config.json, imported in memory).
ModelBundle load_any_model(const std::string& dir);

// The sentencepiece model of a bundle, or a siglip2::Error saying that the model has none.
const std::string& require_tokenizer(const ModelBundle& bundle);

}  // namespace siglip2
