#pragma once
// The LocCa text decoder (training only): token embedding with one extra mask token, learned
// positions, pre-LN blocks of causal self-attention, cross-attention to the image tokens and an MLP,
// a final LayerNorm and an untied output projection. Registered under "text_decoder." by the trainer.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "models/config.hpp"
#include "models/layers.hpp"

namespace siglip2 {

// Attention from decoder tokens (queries) to other tokens (keys/values) of possibly another width.
struct CrossAttentionImpl : torch::nn::Module {
  CrossAttentionImpl(int64_t width, int64_t kv_width, int64_t heads, bool bias);
  // attention_mask: boolean, broadcastable to [B, H, Lq, Lk] (true = attend); undefined = attend to all.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& kv, const at::Tensor& attention_mask = {});
  int64_t heads;
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(CrossAttention);

struct DecoderLayerImpl : torch::nn::Module {
  DecoderLayerImpl(int64_t width, int64_t mlp, int64_t heads, int64_t image_width, bool bias, double eps);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& self_attention_mask, const at::Tensor& image,
                     const at::Tensor& cross_attention_mask);
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr}, layer_norm3{nullptr};
  CrossAttention self_attn{nullptr}, cross_attn{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(DecoderLayer);

struct TextDecoderImpl : torch::nn::Module {
  TextDecoderImpl(const ModelConfig& c);
  // inputs [B, L] token ids (mask_token_id allowed); parallel [B] bool: no causal mask for that
  // example (parallel prediction); image [B, S, Dimg] un-pooled image tokens; encoder_attention_mask
  // [B, S] (nonzero = a real image token, NaFlex) or undefined. Returns the final hidden states [B, L, D] (logits come
  // from `output` in the loss).
  at::Tensor forward(const at::Tensor& inputs, const at::Tensor& parallel, const at::Tensor& image,
                     const at::Tensor& encoder_attention_mask = {});
  int64_t vocab_size, mask_token_id, depth;
  torch::nn::Embedding token_embedding{nullptr};
  at::Tensor position_embedding;  // [max_length, D]
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm final_layer_norm{nullptr};
  torch::nn::Linear output{nullptr};      // [vocab, D], zero-initialised, not tied to the embedding
  ActivationCheckpointing checkpointing;  // training: which layers recompute in backward (none by default)
};
TORCH_MODULE(TextDecoder);

int64_t decoder_depth(const ModelConfig& c);

}  // namespace siglip2
