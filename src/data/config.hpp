#pragma once
// How images and texts become model inputs. Field names follow the Hugging Face processor files
// (preprocessor_config.json, tokenizer_config.json) where there is one.
#include <cstdint>
#include <string>

#include "common/config.hpp"

namespace siglip2 {

struct ImageConfig {
  // Fixed resolution: resize to image_size x image_size (aspect ratio not kept).
  // NaFlex: aspect-preserving resize to at most max_num_patches patches of patch_size.
  int64_t image_size = 256;
  std::string resample = "bilinear";  // bilinear (SigLIP 2) or bicubic (SigLIP 1), antialiased
  bool naflex = false;
  int64_t patch_size = 16;
  int64_t max_num_patches = 256;

  template <class V>
  void visit(V& v) {
    using config::greater_than;
    v("image_size", image_size, "fixed resolution: square input side in pixels", greater_than<int64_t>(0));
    v("resample", resample, "resize filter: bilinear (SigLIP 2) or bicubic (SigLIP 1)",
      config::one_of({"bilinear", "bicubic"}));
    v("naflex", naflex, "NaFlex: keep the aspect ratio, variable number of patches");
    v("patch_size", patch_size, "NaFlex: patch side in pixels", greater_than<int64_t>(0));
    v("max_num_patches", max_num_patches, "NaFlex: patches per image at most (sequence length)",
      greater_than<int64_t>(0));
  }
};

struct TokenizerConfig {
  std::string model_file;  // sentencepiece model; relative paths are relative to the checkpoint
  int64_t length = 64;
  std::string lowercase = "unicode";  // unicode, ascii (big_vision's tf.strings.lower) or none
  int64_t pad_id = 0;                 // Gemma: pad 0, eos 1; SigLIP 1: pad = eos = 1
  int64_t eos_id = 1;
  bool siglip1 = false;  // SigLIP 1 text canonicalisation (punctuation removed, "▁" prefix)

  template <class V>
  void visit(V& v) {
    v("model_file", model_file, "sentencepiece model file (tokenizer.model / spiece.model)");
    v("length", length, "tokens per text: truncated keeping EOS, right-padded", config::greater_than<int64_t>(1));
    v("lowercase", lowercase, "lowercase texts first: unicode, ascii or none",
      config::one_of({"unicode", "ascii", "none"}));
    v("pad_id", pad_id, "padding token id", config::at_least<int64_t>(0));
    v("eos_id", eos_id, "end-of-sequence token id, appended to every text", config::at_least<int64_t>(0));
    v("siglip1", siglip1, "SigLIP 1 canonicalisation: strip punctuation, collapse spaces");
  }
};

}  // namespace siglip2
