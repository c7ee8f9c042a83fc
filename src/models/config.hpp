#pragma once
// Shapes of the two towers. Field names follow the Hugging Face config.json keys
// (spec: hf_interop.md §1) so import and export are a copy; presets live in configs/models/.
#include <cstdint>
#include <string>

#include "common/config.hpp"

namespace siglip2 {

struct VisionConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t num_channels = 3;
  int64_t patch_size = 16;
  int64_t image_size = 256;   // fixed resolution: square input side in pixels
  bool naflex = false;        // NaFlex: Linear patch embedding, variable aspect ratio and length
  int64_t num_patches = 256;  // NaFlex: size of the learned position grid (a perfect square)
  double layer_norm_eps = 1e-6;

  template <class V>
  void visit(V& v) {
    using config::greater_than;
    v("hidden_size", hidden_size, "width of the vision transformer", greater_than<int64_t>(0));
    v("intermediate_size", intermediate_size, "MLP hidden width", greater_than<int64_t>(0));
    v("num_hidden_layers", num_hidden_layers, "number of encoder blocks", greater_than<int64_t>(0));
    v("num_attention_heads", num_attention_heads, "attention heads (must divide hidden_size)",
      greater_than<int64_t>(0));
    v("num_channels", num_channels, "input image channels", greater_than<int64_t>(0));
    v("patch_size", patch_size, "patch side in pixels", greater_than<int64_t>(0));
    v("image_size", image_size,
      "fixed-resolution input side in pixels (a remainder after whole patches is ignored, e.g. 384 at patch 14)",
      greater_than<int64_t>(0));
    v("naflex", naflex, "NaFlex tower: native aspect ratio, variable sequence length");
    v("num_patches", num_patches, "NaFlex: positions in the learned square grid (256 = 16x16)",
      greater_than<int64_t>(0));
    v("layer_norm_eps", layer_norm_eps, "LayerNorm epsilon", greater_than(0.0));
  }
  std::string check() const {
    if (hidden_size % num_attention_heads != 0) return "num_attention_heads must divide hidden_size";
    if (!naflex && image_size < patch_size) return "image_size must be at least patch_size";
    int64_t side = 0;
    while (side * side < num_patches) ++side;
    if (naflex && side * side != num_patches) return "num_patches must be a perfect square";
    return "";
  }
};

struct TextConfig {
  int64_t vocab_size = 256000;  // Gemma tokenizer (SigLIP 2)
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t max_position_embeddings = 64;
  int64_t projection_size = 0;  // 0 = hidden_size; 1536 for g-opt (the vision width)
  double layer_norm_eps = 1e-6;

  template <class V>
  void visit(V& v) {
    using config::at_least;
    using config::greater_than;
    v("vocab_size", vocab_size, "tokenizer vocabulary size", greater_than<int64_t>(0));
    v("hidden_size", hidden_size, "width of the text transformer", greater_than<int64_t>(0));
    v("intermediate_size", intermediate_size, "MLP hidden width", greater_than<int64_t>(0));
    v("num_hidden_layers", num_hidden_layers, "number of encoder blocks", greater_than<int64_t>(0));
    v("num_attention_heads", num_attention_heads, "attention heads (must divide hidden_size)",
      greater_than<int64_t>(0));
    v("max_position_embeddings", max_position_embeddings, "text length in tokens", greater_than<int64_t>(0));
    v("projection_size", projection_size, "output width of the text head; 0 means hidden_size", at_least<int64_t>(0));
    v("layer_norm_eps", layer_norm_eps, "LayerNorm epsilon", greater_than(0.0));
  }
  std::string check() const {
    return hidden_size % num_attention_heads == 0 ? "" : "num_attention_heads must divide hidden_size";
  }
};

// The LocCa decoder (training only, never exported): the text tower's width, heads and MLP, half its
// depth, plus cross-attention to the un-pooled image tokens (spec: recipe.md §3).
struct DecoderConfig {
  int64_t num_hidden_layers = 0;  // 0: half the text tower's depth, rounded up (B 6, L 12, So400m 14)
  int64_t max_length = 64;        // target tokens, task prefix included
  bool bias = false;              // CapPa's decoder has no biases

  template <class V>
  void visit(V& v) {
    v("num_hidden_layers", num_hidden_layers, "decoder blocks; 0 = half the text tower's depth, rounded up",
      config::at_least<int64_t>(0));
    v("max_length", max_length, "decoder sequence length (task prefix + target)", config::greater_than<int64_t>(0));
    v("bias", bias, "biases in the decoder's linear layers (CapPa: none)");
  }
};

struct ModelConfig {
  std::string name = "B/16-256";  // a label for logs and exports
  VisionConfig vision;
  TextConfig text;
  DecoderConfig decoder;

  template <class V>
  void visit(V& v) {
    v("name", name, "a label for logs and exported configs");
    v("vision", vision, "image tower");
    v("text", text, "text tower");
    v("decoder", decoder, "LocCa decoder (training only; not exported)");
  }
  // The sigmoid loss takes the dot product of the two embeddings (transformers' Siglip2Model: the vision
  // tower has no projection, the text head projects to text_config.projection_size).
  std::string check() const {
    const int64_t text_width = text.projection_size > 0 ? text.projection_size : text.hidden_size;
    if (text_width == vision.hidden_size) return "";
    return "the text embedding width (text.projection_size, or text.hidden_size when it is 0: " +
           std::to_string(text_width) + ") must equal vision.hidden_size (" + std::to_string(vision.hidden_size) +
           "): the sigmoid loss compares the two embeddings";
  }
};

}  // namespace siglip2
