#include "models/text_decoder.hpp"

#include <torch/torch.h>

#include <cmath>
#include <optional>

namespace siglip2 {
namespace {

torch::nn::LayerNorm layer_norm(int64_t width, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps));
}

}  // namespace

int64_t decoder_depth(const ModelConfig& c) {
  if (c.decoder.num_hidden_layers > 0) return c.decoder.num_hidden_layers;
  return (c.text.num_hidden_layers + 1) / 2;
}

CrossAttentionImpl::CrossAttentionImpl(int64_t width, int64_t kv_width, int64_t heads_, bool bias) : heads(heads_) {
  TORCH_CHECK(width % heads == 0, "decoder width ", width, " is not divisible by ", heads, " heads");
  q_proj = register_module("q_proj", torch::nn::Linear(torch::nn::LinearOptions(width, width).bias(bias)));
  k_proj = register_module("k_proj", torch::nn::Linear(torch::nn::LinearOptions(kv_width, width).bias(bias)));
  v_proj = register_module("v_proj", torch::nn::Linear(torch::nn::LinearOptions(kv_width, width).bias(bias)));
  out_proj = register_module("out_proj", torch::nn::Linear(torch::nn::LinearOptions(width, width).bias(bias)));
}

at::Tensor CrossAttentionImpl::forward(const at::Tensor& x, const at::Tensor& kv, const at::Tensor& attention_mask) {
  at::Tensor q = split_heads(q_proj(x), heads), k = split_heads(k_proj(kv), heads), v = split_heads(v_proj(kv), heads);
  std::optional<at::Tensor> m;
  if (attention_mask.defined()) m = attention_mask;
  at::Tensor o = at::scaled_dot_product_attention(q, k, v, m);
  return out_proj(merge_heads(o));
}

DecoderLayerImpl::DecoderLayerImpl(int64_t width, int64_t mlp, int64_t heads, int64_t image_width, bool bias,
                                   double eps) {
  layer_norm1 = register_module("layer_norm1", layer_norm(width, eps));
  self_attn = register_module("self_attn", CrossAttention(width, width, heads, bias));
  layer_norm2 = register_module("layer_norm2", layer_norm(width, eps));
  cross_attn = register_module("cross_attn", CrossAttention(width, image_width, heads, bias));
  layer_norm3 = register_module("layer_norm3", layer_norm(width, eps));
  fc1 = register_module("fc1", torch::nn::Linear(torch::nn::LinearOptions(width, mlp).bias(bias)));
  fc2 = register_module("fc2", torch::nn::Linear(torch::nn::LinearOptions(mlp, width).bias(bias)));
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& self_attention_mask,
                                     const at::Tensor& image, const at::Tensor& cross_attention_mask) {
  at::Tensor h = layer_norm1(x);
  at::Tensor y = x + self_attn(h, h, self_attention_mask);
  y = y + cross_attn(layer_norm2(y), image, cross_attention_mask);
  return y + fc2(at::gelu(fc1(layer_norm3(y)), "tanh"));
}

TextDecoderImpl::TextDecoderImpl(const ModelConfig& c)
    : vocab_size(c.text.vocab_size), mask_token_id(c.text.vocab_size), depth(decoder_depth(c)) {
  const int64_t d = c.text.hidden_size;
  token_embedding = register_module("token_embedding", torch::nn::Embedding(vocab_size + 1, d));
  position_embedding = register_parameter("position_embedding", torch::empty({c.decoder.max_length, d}));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < depth; ++i)
    layers->push_back(DecoderLayer(d, c.text.intermediate_size, c.text.num_attention_heads, c.vision.hidden_size,
                                   c.decoder.bias, c.text.layer_norm_eps));
  final_layer_norm = register_module("final_layer_norm", layer_norm(d, c.text.layer_norm_eps));
  output = register_module("output", torch::nn::Linear(torch::nn::LinearOptions(d, vocab_size).bias(true)));
  // CapPa: embeddings N(0, 1), positions N(0, 1/sqrt(D)), output projection zero; attention and MLP
  // kernels xavier-uniform with zero biases, as in the encoder.
  torch::NoGradGuard g;
  for (const auto& p : layers->named_parameters()) {
    if (p.key().find("layer_norm") != std::string::npos) continue;
    if (p.value().dim() == 2)
      torch::nn::init::xavier_uniform_(p.value());
    else
      p.value().zero_();
  }
  token_embedding->weight.normal_(0.0, 1.0);
  position_embedding.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(d)));
  output->weight.zero_();
  output->bias.zero_();
}

at::Tensor TextDecoderImpl::forward(const at::Tensor& inputs, const at::Tensor& parallel, const at::Tensor& image,
                                    const at::Tensor& encoder_attention_mask) {
  const int64_t b = inputs.size(0), len = inputs.size(1);
  TORCH_CHECK(len <= position_embedding.size(0), "decoder input of ", len, " tokens exceeds max_length ",
              position_embedding.size(0));
  at::Tensor x = token_embedding(inputs) + position_embedding.slice(0, 0, len).unsqueeze(0);
  // Causal for teacher forcing; full attention for examples predicted in parallel from mask tokens.
  at::Tensor causal = at::ones({len, len}, inputs.options().dtype(at::kBool)).tril();
  at::Tensor self_attention_mask = causal.unsqueeze(0).expand({b, len, len});
  if (parallel.defined())
    self_attention_mask = self_attention_mask | parallel.to(at::kBool).view({b, 1, 1}).to(inputs.device());
  self_attention_mask = self_attention_mask.unsqueeze(1);
  at::Tensor cross_attention_mask;
  if (encoder_attention_mask.defined())
    cross_attention_mask = encoder_attention_mask.to(at::kBool).view({b, 1, 1, image.size(1)});
  for (size_t i = 0; i < layers->size(); ++i) {
    std::shared_ptr<DecoderLayerImpl> layer = layers->ptr<DecoderLayerImpl>(i);
    // Each layer reads the image through its own alias, so that its two uses (key and value projections)
    // are summed before the layers' gradients are: the order a checkpointed layer sums them in, which keeps
    // activation checkpointing bit-exact (activation_checkpointing.hpp).
    const at::Tensor layer_image = image.alias();
    if (checkpointing.applies(static_cast<int64_t>(i)))
      x = checkpointed(
          [layer, self_attention_mask, cross_attention_mask](const at::Tensor& in, const at::Tensor& image_in) {
            return layer->forward(in, self_attention_mask, image_in, cross_attention_mask);
          },
          layer->parameters(), x, layer_image);
    else
      x = layer->forward(x, self_attention_mask, layer_image, cross_attention_mask);
  }
  return final_layer_norm(x);
}

}  // namespace siglip2
