#pragma once
// The SigLIP 2 two-tower model. Parameter names equal the Hugging Face names
// ("vision_model.embeddings.patch_embedding.weight", "text_model.head.bias", "logit_scale", …), so
// import and export are a copy plus the documented layout changes (spec: hf_interop.md §2).
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <utility>
#include <vector>

#include "models/config.hpp"
#include "models/layers.hpp"

namespace siglip2 {

// Image input. Fixed resolution: pixel_values [B, C, H, W] in [-1, 1]; mask and shapes undefined.
// NaFlex: pixel_values [B, S, P*P*C] patches in (row, col, channel) order, padded to S;
// pixel_attention_mask [B, S] (nonzero = real patch); spatial_shapes [B, 2] int64 (rows, cols).
struct VisionInput {
  at::Tensor pixel_values;
  at::Tensor pixel_attention_mask;
  at::Tensor spatial_shapes;
  // Training only. Fixed resolution: accept another image size, resizing the position table like
  // NaFlex does (the self-distillation local crops). Masked prediction: embedded patches where
  // bool_masked_pos [B, S] is true become mask_token [D] before positions are added.
  bool resize_positions = false;
  at::Tensor bool_masked_pos;
  at::Tensor mask_token;
};

struct VisionOutput {
  at::Tensor last_hidden_state;  // [B, S, D] after post_layernorm (what the LocCa decoder attends to)
  at::Tensor pooler_output;      // [B, D] MAP head output, not normalised
};

struct VisionEmbeddingsImpl : torch::nn::Module {
  explicit VisionEmbeddingsImpl(const VisionConfig& c);
  at::Tensor forward(const VisionInput& in);
  // The learned (square) position table resized to a (rows, cols) grid: bilinear, antialiased,
  // half-pixel centres (F.interpolate(align_corners=False, antialias=True) by its definition, as
  // transformers computes it; resize.hpp linear_resize_weights), in float32. [rows*cols, D].
  at::Tensor resized_positions(int64_t rows, int64_t cols);
  VisionConfig config;
  torch::nn::Conv2d patch_conv{nullptr};    // fixed resolution: registered as "patch_embedding"
  torch::nn::Linear patch_linear{nullptr};  // NaFlex: registered as "patch_embedding"
  torch::nn::Embedding position_embedding{nullptr};
};
TORCH_MODULE(VisionEmbeddings);

struct VisionTransformerImpl : torch::nn::Module {
  explicit VisionTransformerImpl(const VisionConfig& c);
  VisionOutput forward(const VisionInput& in);
  VisionConfig config;
  VisionEmbeddings embeddings{nullptr};
  Encoder encoder{nullptr};
  torch::nn::LayerNorm post_layernorm{nullptr};
  MapHead head{nullptr};
};
TORCH_MODULE(VisionTransformer);

struct TextOutput {
  at::Tensor last_hidden_state;  // [B, L, Dt] after final_layer_norm
  at::Tensor pooler_output;      // [B, projection] head(last position), not normalised
};

struct TextEmbeddingsImpl : torch::nn::Module {
  explicit TextEmbeddingsImpl(const TextConfig& c);
  at::Tensor forward(const at::Tensor& input_ids);
  torch::nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
};
TORCH_MODULE(TextEmbeddings);

struct TextTransformerImpl : torch::nn::Module {
  explicit TextTransformerImpl(const TextConfig& c);
  // input_ids [B, L], L <= max_position_embeddings, right-padded; no attention mask (as released).
  TextOutput forward(const at::Tensor& input_ids);
  TextConfig config;
  TextEmbeddings embeddings{nullptr};
  Encoder encoder{nullptr};
  torch::nn::LayerNorm final_layer_norm{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(TextTransformer);

struct SiglipOutput {
  at::Tensor image_embeds;      // [Bi, E] L2-normalised
  at::Tensor text_embeds;       // [Bt, E] L2-normalised
  at::Tensor logits_per_image;  // [Bi, Bt] = exp(logit_scale) * img @ txt^T + logit_bias
};

struct Siglip2ModelImpl : torch::nn::Module {
  explicit Siglip2ModelImpl(const ModelConfig& c);
  VisionOutput encode_image(const VisionInput& in);
  TextOutput encode_text(const at::Tensor& input_ids);
  SiglipOutput forward(const VisionInput& images, const at::Tensor& input_ids);
  // Initialisation of a model trained from scratch (spec: recipe.md §1.3–1.6, hf_interop.md §3.7).
  void reset_parameters(uint64_t seed);
  ModelConfig config;
  VisionTransformer vision_model{nullptr};
  TextTransformer text_model{nullptr};
  at::Tensor logit_scale;  // [1], log temperature: init log(10)
  at::Tensor logit_bias;   // [1], init -10
};
TORCH_MODULE(Siglip2Model);

// L2 normalisation without epsilon, as transformers does.
at::Tensor l2_normalize(const at::Tensor& x);

// Every parameter of a model with this config as its constructors define it: Hugging Face name and shape,
// in registration order. The architecture is stated once, by the modules: the tensors a checkpoint must
// hold (interop/checkpoint_dir.hpp expected_hf_tensors) and the parameter counts below are read from this.
// No weight is initialised: construction runs with the Meta dispatch key included, so the initialisers
// (uniform_, normal_, fill_) run their meta kernels and the buffers the LibTorch constructors allocate are
// never written (address space, not resident memory); any size, g-opt included, takes well under a second.
using TensorShapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;
TensorShapes parameter_shapes(const ModelConfig& c);

struct ParameterCounts {
  int64_t vision = 0, text = 0, total = 0;
};
ParameterCounts count_parameters(Siglip2ModelImpl& model);
// The same counts for a config, from parameter_shapes (no weights initialised), for any size.
ParameterCounts count_parameters(const ModelConfig& c);

// Forward FLOPs per image-text pair, 2 per multiply-add, matrix products only (patch embedding,
// attention projections and scores, MLPs, MAP head, text head): the convention of MFU figures
// (spec: peers_and_targets.md §3.2). NaFlex towers count a full sequence of num_patches.
struct ForwardFlops {
  double vision = 0, text = 0;
  double pair() const { return vision + text; }
};
ForwardFlops forward_flops(const ModelConfig& c);

}  // namespace siglip2
