#pragma once
// Transformer pieces shared by the towers. Sub-modules are registered under the Hugging Face names
// (spec: hf_interop.md §2), so named_parameters() reads e.g. "layers.3.self_attn.q_proj.weight".
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "models/activation_checkpointing.hpp"

namespace siglip2 {

// Attention heads: [B, S, D] -> [B, H, S, D/H], and back: [B, H, S, d] -> [B, S, H*d].
at::Tensor split_heads(const at::Tensor& x, int64_t heads);
at::Tensor merge_heads(const at::Tensor& x);

struct MlpImpl : torch::nn::Module {
  MlpImpl(int64_t width, int64_t hidden);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// Multi-head self-attention with separate q/k/v/out projections. `attention_mask` is an optional boolean key
// mask [B, S] (true = attend); padded keys are never attended to, padded queries still are computed.
struct AttentionImpl : torch::nn::Module {
  AttentionImpl(int64_t width, int64_t heads);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& attention_mask = {});
  int64_t heads;
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(Attention);

// Pre-LN block: h = x + attn(ln1(x)); y = h + mlp(ln2(h)).
struct EncoderLayerImpl : torch::nn::Module {
  EncoderLayerImpl(int64_t width, int64_t mlp, int64_t heads, double eps);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& attention_mask = {});
  Attention self_attn{nullptr};
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(EncoderLayer);

struct EncoderImpl : torch::nn::Module {
  EncoderImpl(int64_t depth, int64_t width, int64_t mlp, int64_t heads, double eps);
  at::Tensor forward(at::Tensor x, const at::Tensor& attention_mask = {});
  torch::nn::ModuleList layers{nullptr};
  ActivationCheckpointing checkpointing;  // training: which blocks recompute in backward (none by default)
};
TORCH_MODULE(Encoder);

// The packed q;k;v projection of torch.nn.MultiheadAttention, as the MAP head stores it.
struct PackedAttentionImpl : torch::nn::Module {
  PackedAttentionImpl(int64_t width, int64_t heads);
  at::Tensor forward(const at::Tensor& query, const at::Tensor& x, const at::Tensor& attention_mask = {});
  int64_t heads;
  at::Tensor in_proj_weight, in_proj_bias;  // [3D, D], [3D]: rows q, then k, then v
  torch::nn::Linear out_proj{nullptr};
};
TORCH_MODULE(PackedAttention);

// Multihead attention pooling: a learned probe attends to the tokens; h + mlp(layernorm(h)); token 0.
struct MapHeadImpl : torch::nn::Module {
  MapHeadImpl(int64_t width, int64_t mlp, int64_t heads, double eps);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& attention_mask = {});
  at::Tensor probe;  // [1, 1, D]
  PackedAttention attention{nullptr};
  torch::nn::LayerNorm layernorm{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(MapHead);

}  // namespace siglip2
