#include "models/layers.hpp"

#include <torch/torch.h>

#include <optional>

namespace siglip2 {
namespace {

// [B, S] key mask -> [B, 1, 1, S] boolean mask for SDPA (true = attend).
std::optional<at::Tensor> sdpa_key_mask(const at::Tensor& attention_mask) {
  if (!attention_mask.defined()) return std::nullopt;
  return attention_mask.to(at::kBool).unsqueeze(1).unsqueeze(1);
}

}  // namespace

at::Tensor split_heads(const at::Tensor& x, int64_t heads) {
  return x.view({x.size(0), x.size(1), heads, x.size(2) / heads}).transpose(1, 2);
}

at::Tensor merge_heads(const at::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

MlpImpl::MlpImpl(int64_t width, int64_t hidden) {
  fc1 = register_module("fc1", torch::nn::Linear(width, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, width));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  return fc2(at::gelu(fc1(x), "tanh"));
}

AttentionImpl::AttentionImpl(int64_t width, int64_t heads_) : heads(heads_) {
  TORCH_CHECK(width % heads == 0, "attention width ", width, " is not divisible by ", heads, " heads");
  k_proj = register_module("k_proj", torch::nn::Linear(width, width));
  v_proj = register_module("v_proj", torch::nn::Linear(width, width));
  q_proj = register_module("q_proj", torch::nn::Linear(width, width));
  out_proj = register_module("out_proj", torch::nn::Linear(width, width));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& attention_mask) {
  // One matrix product for q, k and v (the HF parameters stay separate): [B, S, 3, H, d].
  at::Tensor w = at::cat({q_proj->weight, k_proj->weight, v_proj->weight});
  at::Tensor b = at::cat({q_proj->bias, k_proj->bias, v_proj->bias});
  const int64_t d = x.size(2) / heads;
  at::Tensor qkv = at::linear(x, w, b).view({x.size(0), x.size(1), 3, heads, d}).permute({2, 0, 3, 1, 4});
  at::Tensor q = qkv[0], k = qkv[1], v = qkv[2];
  // Default scale is head_dim^-0.5, as in SigLIP.
  at::Tensor o = at::scaled_dot_product_attention(q, k, v, sdpa_key_mask(attention_mask));
  return out_proj(merge_heads(o));
}

EncoderLayerImpl::EncoderLayerImpl(int64_t width, int64_t mlp_width, int64_t heads, double eps) {
  self_attn = register_module("self_attn", Attention(width, heads));
  layer_norm1 = register_module("layer_norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps)));
  mlp = register_module("mlp", Mlp(width, mlp_width));
  layer_norm2 = register_module("layer_norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps)));
}

at::Tensor EncoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& attention_mask) {
  at::Tensor h = x + self_attn(layer_norm1(x), attention_mask);
  return h + mlp(layer_norm2(h));
}

EncoderImpl::EncoderImpl(int64_t depth, int64_t width, int64_t mlp, int64_t heads, double eps) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < depth; ++i) layers->push_back(EncoderLayer(width, mlp, heads, eps));
}

at::Tensor EncoderImpl::forward(at::Tensor x, const at::Tensor& attention_mask) {
  for (size_t i = 0; i < layers->size(); ++i) {
    std::shared_ptr<EncoderLayerImpl> layer = layers->ptr<EncoderLayerImpl>(i);
    if (checkpointing.applies(static_cast<int64_t>(i)))
      x = checkpointed([layer, attention_mask](const at::Tensor& in,
                                               const at::Tensor&) { return layer->forward(in, attention_mask); },
                       layer->parameters(), x);
    else
      x = layer->forward(x, attention_mask);
  }
  return x;
}

PackedAttentionImpl::PackedAttentionImpl(int64_t width, int64_t heads_) : heads(heads_) {
  TORCH_CHECK(width % heads == 0, "attention width ", width, " is not divisible by ", heads, " heads");
  // Initialised here too so a tower built on its own is usable; Siglip2Model re-initialises with its seed.
  in_proj_weight =
      register_parameter("in_proj_weight", torch::nn::init::xavier_uniform_(torch::empty({3 * width, width})));
  in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * width}));
  out_proj = register_module("out_proj", torch::nn::Linear(width, width));
}

at::Tensor PackedAttentionImpl::forward(const at::Tensor& query, const at::Tensor& x,
                                        const at::Tensor& attention_mask) {
  auto w = in_proj_weight.chunk(3, 0);
  auto b = in_proj_bias.chunk(3, 0);
  at::Tensor q = split_heads(at::linear(query, w[0], b[0]), heads);
  at::Tensor k = split_heads(at::linear(x, w[1], b[1]), heads);
  at::Tensor v = split_heads(at::linear(x, w[2], b[2]), heads);
  at::Tensor o = at::scaled_dot_product_attention(q, k, v, sdpa_key_mask(attention_mask));
  return out_proj(merge_heads(o));
}

MapHeadImpl::MapHeadImpl(int64_t width, int64_t mlp_width, int64_t heads, double eps) {
  probe = register_parameter("probe", torch::nn::init::xavier_uniform_(torch::empty({1, 1, width})));
  attention = register_module("attention", PackedAttention(width, heads));
  layernorm = register_module("layernorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps)));
  mlp = register_module("mlp", Mlp(width, mlp_width));
}

at::Tensor MapHeadImpl::forward(const at::Tensor& x, const at::Tensor& attention_mask) {
  at::Tensor q = probe.expand({x.size(0), 1, probe.size(2)});
  at::Tensor h = attention(q, x, attention_mask);
  h = h + mlp(layernorm(h));  // the residual is the attention output, not the probe
  return h.select(1, 0);
}

}  // namespace siglip2
