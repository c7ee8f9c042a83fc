#include "models/siglip2.hpp"

#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/accumulate.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <utility>

#include "models/meta_shapes.hpp"
#include "models/resize.hpp"

namespace siglip2 {

// ------------------------------------------------------------------------------------------------
// Vision tower

VisionEmbeddingsImpl::VisionEmbeddingsImpl(const VisionConfig& c) : config(c) {
  const int64_t d = c.hidden_size, p = c.patch_size;
  if (c.naflex) {
    patch_linear = register_module("patch_embedding", torch::nn::Linear(c.num_channels * p * p, d));
    position_embedding = register_module("position_embedding", torch::nn::Embedding(c.num_patches, d));
  } else {
    patch_conv = register_module(
        "patch_embedding", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.num_channels, d, p).stride(p).bias(true)));
    const int64_t side = c.image_size / p;
    position_embedding = register_module("position_embedding", torch::nn::Embedding(side * side, d));
  }
}

at::Tensor VisionEmbeddingsImpl::resized_positions(int64_t rows, int64_t cols) {
  const int64_t d = config.hidden_size;
  const int64_t side =
      static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(position_embedding->weight.size(0)))));
  // In (at least) float32, as transformers computes it; the weights are explicit (resize.hpp).
  const at::Tensor grid = position_embedding->weight.reshape({side, side, d})
                              .to(at::promote_types(position_embedding->weight.scalar_type(), at::kFloat));
  return resize_grid(grid, rows, cols, /*align_corners=*/false, /*antialias=*/true)
      .reshape({rows * cols, d})
      .to(position_embedding->weight.scalar_type());
}

namespace {

// Masked prediction (TIPS): chosen patch embeddings become the mask token before positions are added.
at::Tensor mask_patches(const at::Tensor& patches, const VisionInput& in) {
  if (!in.bool_masked_pos.defined()) return patches;
  TORCH_CHECK(in.mask_token.defined(), "bool_masked_pos needs a mask_token");
  TORCH_CHECK(in.bool_masked_pos.sizes() == patches.sizes().slice(0, 2),
              "bool_masked_pos must be [B, S] = ", patches.sizes().slice(0, 2), ", got ", in.bool_masked_pos.sizes());
  return at::where(in.bool_masked_pos.to(at::kBool).unsqueeze(-1), in.mask_token.to(patches.scalar_type()), patches);
}

}  // namespace

at::Tensor VisionEmbeddingsImpl::forward(const VisionInput& in) {
  const at::Tensor& x = in.pixel_values;
  if (!config.naflex) {
    TORCH_CHECK(x.dim() == 4 && x.size(1) == config.num_channels, "fixed-resolution pixel_values must be [B, ",
                config.num_channels, ", H, W], got ", x.sizes());
    const bool native = x.size(2) == config.image_size && x.size(3) == config.image_size;
    TORCH_CHECK(native || in.resize_positions, "this model takes ", config.image_size, "x", config.image_size,
                " images, got ", x.size(2), "x", x.size(3));
    at::Tensor conv = patch_conv(x.to(patch_conv->weight.scalar_type()));
    at::Tensor patches = mask_patches(conv.flatten(2).transpose(1, 2), in);
    at::Tensor positions = native ? position_embedding->weight : resized_positions(conv.size(2), conv.size(3));
    return patches + positions.unsqueeze(0);
  }
  const int64_t ppc = config.num_channels * config.patch_size * config.patch_size;
  TORCH_CHECK(x.dim() == 3 && x.size(2) == ppc, "NaFlex pixel_values must be [B, S, ", ppc, "], got ", x.sizes());
  TORCH_CHECK(in.spatial_shapes.defined() && in.spatial_shapes.dim() == 2 && in.spatial_shapes.size(0) == x.size(0) &&
                  in.spatial_shapes.size(1) == 2,
              "NaFlex input needs spatial_shapes [B, 2]");
  at::Tensor patches = mask_patches(patch_linear(x.to(patch_linear->weight.scalar_type())), in);
  const int64_t batch = x.size(0), seq = x.size(1);
  at::Tensor shapes = in.spatial_shapes.to(at::kCPU, at::kLong).contiguous();
  auto acc = shapes.accessor<int64_t, 2>();
  std::map<std::pair<int64_t, int64_t>, at::Tensor> cache;  // a batch often repeats a few shapes
  std::vector<at::Tensor> rows;
  rows.reserve(batch);
  for (int64_t i = 0; i < batch; ++i) {
    int64_t h = acc[i][0], w = acc[i][1];
    TORCH_CHECK(h > 0 && w > 0 && h * w <= seq, "image ", i, ": spatial shape ", h, "x", w,
                " does not fit a sequence of ", seq);
    auto key = std::make_pair(h, w);
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, resized_positions(h, w)).first;
    at::Tensor r = it->second;
    // Padding rows get the first position, as transformers does; they are masked everywhere.
    if (h * w < seq) r = at::cat({r, r.slice(0, 0, 1).expand({seq - h * w, r.size(1)})}, 0);
    rows.push_back(r);
  }
  return patches + at::stack(rows).to(patches.device());
}

VisionTransformerImpl::VisionTransformerImpl(const VisionConfig& c) : config(c) {
  embeddings = register_module("embeddings", VisionEmbeddings(c));
  encoder = register_module("encoder", Encoder(c.num_hidden_layers, c.hidden_size, c.intermediate_size,
                                               c.num_attention_heads, c.layer_norm_eps));
  post_layernorm = register_module(
      "post_layernorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  head = register_module("head", MapHead(c.hidden_size, c.intermediate_size, c.num_attention_heads, c.layer_norm_eps));
}

VisionOutput VisionTransformerImpl::forward(const VisionInput& in) {
  at::Tensor attention_mask;
  if (config.naflex && in.pixel_attention_mask.defined()) attention_mask = in.pixel_attention_mask.to(at::kBool);
  at::Tensor x = embeddings(in);
  x = post_layernorm(encoder(x, attention_mask));
  return {x, head(x, attention_mask)};
}

// ------------------------------------------------------------------------------------------------
// Text tower

TextEmbeddingsImpl::TextEmbeddingsImpl(const TextConfig& c) {
  token_embedding = register_module("token_embedding", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  position_embedding =
      register_module("position_embedding", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
}

at::Tensor TextEmbeddingsImpl::forward(const at::Tensor& input_ids) {
  const int64_t len = input_ids.size(1);
  TORCH_CHECK(len <= position_embedding->weight.size(0), "text of ", len, " tokens is longer than the model's ",
              position_embedding->weight.size(0), " positions");
  return token_embedding(input_ids) + position_embedding->weight.slice(0, 0, len).unsqueeze(0);
}

TextTransformerImpl::TextTransformerImpl(const TextConfig& c) : config(c) {
  embeddings = register_module("embeddings", TextEmbeddings(c));
  encoder = register_module("encoder", Encoder(c.num_hidden_layers, c.hidden_size, c.intermediate_size,
                                               c.num_attention_heads, c.layer_norm_eps));
  final_layer_norm = register_module(
      "final_layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  const int64_t out = c.projection_size > 0 ? c.projection_size : c.hidden_size;
  head = register_module("head", torch::nn::Linear(c.hidden_size, out));
}

TextOutput TextTransformerImpl::forward(const at::Tensor& input_ids) {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be [B, L], got ", input_ids.sizes());
  at::Tensor x = final_layer_norm(encoder(embeddings(input_ids)));
  // The last position of the padded sequence, as released (it is usually padding: see hf_interop §3.5).
  return {x, head(x.select(1, x.size(1) - 1))};
}

// ------------------------------------------------------------------------------------------------
// Two towers

Siglip2ModelImpl::Siglip2ModelImpl(const ModelConfig& c) : config(c) {
  vision_model = register_module("vision_model", VisionTransformer(c.vision));
  text_model = register_module("text_model", TextTransformer(c.text));
  logit_scale = register_parameter("logit_scale", torch::full({1}, std::log(10.0)));
  logit_bias = register_parameter("logit_bias", torch::full({1}, -10.0));
  reset_parameters(0);
}

VisionOutput Siglip2ModelImpl::encode_image(const VisionInput& in) {
  return vision_model(in);
}

TextOutput Siglip2ModelImpl::encode_text(const at::Tensor& input_ids) {
  return text_model(input_ids);
}

SiglipOutput Siglip2ModelImpl::forward(const VisionInput& images, const at::Tensor& input_ids) {
  SiglipOutput out;
  out.image_embeds = l2_normalize(encode_image(images).pooler_output);
  out.text_embeds = l2_normalize(encode_text(input_ids).pooler_output);
  out.logits_per_image = at::matmul(out.image_embeds, out.text_embeds.t()) * logit_scale.exp() + logit_bias;
  return out;
}

at::Tensor l2_normalize(const at::Tensor& x) {
  return x / x.norm(2, -1, true);
}

// ------------------------------------------------------------------------------------------------
// Initialisation (big_vision / transformers `_init_weights`)

namespace {

struct Init {
  at::Generator gen;

  void normal(at::Tensor t, double std) { t.normal_(0.0, std, gen); }
  void uniform(at::Tensor t, double bound) { t.uniform_(-bound, bound, gen); }
  // Fans as torch computes them: fan_in = size(1) * receptive field, fan_out = size(0) * receptive field.
  static std::pair<double, double> fans(const at::Tensor& t) {
    double receptive = 1;
    for (int64_t i = 2; i < t.dim(); ++i) receptive *= static_cast<double>(t.size(i));
    return {t.size(1) * receptive, t.size(0) * receptive};
  }
  void xavier_uniform(at::Tensor t) {
    auto [fan_in, fan_out] = fans(t);
    uniform(t, std::sqrt(6.0 / (fan_in + fan_out)));
  }
  // Truncated at two standard deviations, rescaled so the result has std sqrt(1/fan_in) (flax lecun_normal).
  void lecun_normal(at::Tensor t) {
    double std = std::sqrt(1.0 / fans(t).first) / 0.87962566103423978;
    double lo = 0.5 * std::erfc(2.0 / std::sqrt(2.0)), hi = 1.0 - lo;  // Φ(-2), Φ(2)
    t.uniform_(lo, hi, gen);
    t.mul_(2.0).sub_(1.0).erfinv_().mul_(std * std::sqrt(2.0));
  }
  void linear_xavier(const torch::nn::Linear& l, double bias_std) {
    xavier_uniform(l->weight);
    if (bias_std > 0)
      normal(l->bias, bias_std);
    else
      l->bias.zero_();
  }
  void encoder(EncoderImpl& e) {
    for (const auto& m : *e.layers) {
      auto* layer = m->as<EncoderLayerImpl>();
      for (auto* p : {&layer->self_attn->q_proj, &layer->self_attn->k_proj, &layer->self_attn->v_proj,
                      &layer->self_attn->out_proj})
        linear_xavier(*p, 0.0);
      mlp(*layer->mlp);
      layer_norm(layer->layer_norm1);
      layer_norm(layer->layer_norm2);
    }
  }
  void mlp(MlpImpl& m) {
    linear_xavier(m.fc1, 1e-6);
    linear_xavier(m.fc2, 1e-6);
  }
  static void layer_norm(const torch::nn::LayerNorm& ln) {
    ln->weight.fill_(1.0);
    ln->bias.zero_();
  }
};

}  // namespace

void Siglip2ModelImpl::reset_parameters(uint64_t seed) {
  torch::NoGradGuard no_grad;
  Init init{at::make_generator<at::CPUGeneratorImpl>(seed)};
  for (const auto& p : parameters())
    TORCH_CHECK(p.device().is_cpu(), "reset_parameters runs before the model is moved to a device");

  auto& ve = *vision_model->embeddings;
  at::Tensor patch_w = ve.config.naflex ? ve.patch_linear->weight : ve.patch_conv->weight;
  at::Tensor patch_b = ve.config.naflex ? ve.patch_linear->bias : ve.patch_conv->bias;
  init.lecun_normal(patch_w);
  patch_b.zero_();
  init.normal(ve.position_embedding->weight, 1.0 / std::sqrt(static_cast<double>(config.vision.hidden_size)));
  init.encoder(*vision_model->encoder);
  Init::layer_norm(vision_model->post_layernorm);
  auto& head = *vision_model->head;
  init.xavier_uniform(head.probe);
  init.xavier_uniform(head.attention->in_proj_weight);
  head.attention->in_proj_bias.zero_();
  init.lecun_normal(head.attention->out_proj->weight);
  head.attention->out_proj->bias.zero_();
  Init::layer_norm(head.layernorm);
  init.mlp(*head.mlp);

  auto& te = *text_model->embeddings;
  const double text_std = 1.0 / std::sqrt(static_cast<double>(config.text.hidden_size));
  init.normal(te.token_embedding->weight, text_std);
  init.normal(te.position_embedding->weight, text_std);
  init.encoder(*text_model->encoder);
  Init::layer_norm(text_model->final_layer_norm);
  init.lecun_normal(text_model->head->weight);
  text_model->head->bias.zero_();

  logit_scale.fill_(std::log(10.0));  // SigLIP: t' = log 10, b = -10
  logit_bias.fill_(-10.0);
}

// ------------------------------------------------------------------------------------------------
// Parameter counts

namespace {

int64_t count_tensors(const std::vector<at::Tensor>& params) {
  int64_t n = 0;
  for (const auto& p : params) n += p.numel();
  return n;
}

}  // namespace

ParameterCounts count_parameters(Siglip2ModelImpl& model) {
  ParameterCounts c;
  c.vision = count_tensors(model.vision_model->parameters());
  c.text = count_tensors(model.text_model->parameters());
  c.total = c.vision + c.text + model.logit_scale.numel() + model.logit_bias.numel();
  return c;
}

TensorShapes parameter_shapes(const ModelConfig& c) {
  return meta_parameter_shapes([&] { return Siglip2Model(c); });
}

ParameterCounts count_parameters(const ModelConfig& c) {
  ParameterCounts counts;
  for (const auto& [name, shape] : parameter_shapes(c)) {
    const int64_t n = c10::multiply_integers(shape);
    if (name.rfind("vision_model.", 0) == 0) counts.vision += n;
    if (name.rfind("text_model.", 0) == 0) counts.text += n;
    counts.total += n;
  }
  return counts;
}

namespace {

// Multiply-adds of one encoder block over n tokens: q, k, v, out projections, scores and values, MLP.
double block_macs(double n, double d, double i) {
  return n * (4 * d * d + 2 * d * i) + 2 * n * n * d;
}

}  // namespace

ForwardFlops forward_flops(const ModelConfig& m) {
  const auto& v = m.vision;
  const auto& t = m.text;
  const double d = static_cast<double>(v.hidden_size), i = static_cast<double>(v.intermediate_size);
  const double p = static_cast<double>(v.patch_size);
  const double grid = static_cast<double>(v.image_size / v.patch_size);
  const double s = v.naflex ? static_cast<double>(v.num_patches) : grid * grid;
  double vision = s * static_cast<double>(v.num_channels) * p * p * d + v.num_hidden_layers * block_macs(s, d, i);
  // MAP head: one probe query against s keys, then the head's MLP on one token.
  vision += d * d + 2 * s * d * d + 2 * s * d + d * d + 2 * d * i;
  const double l = static_cast<double>(t.max_position_embeddings), dt = static_cast<double>(t.hidden_size);
  const double proj = static_cast<double>(t.projection_size > 0 ? t.projection_size : t.hidden_size);
  double text = t.num_hidden_layers * block_macs(l, dt, static_cast<double>(t.intermediate_size)) + dt * proj;
  return {2 * vision, 2 * text};
}

}  // namespace siglip2
