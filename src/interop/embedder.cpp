#include "interop/embedder.hpp"

#include <torch/torch.h>

#include "common/error.hpp"
#include "siglip2/build_config.hpp"
#if SIGLIP2_CONFIG_OPENCV
#include "data/image.hpp"
#endif
#if SIGLIP2_CONFIG_SENTENCEPIECE
#include "data/tokenizer.hpp"
#endif

namespace siglip2 {

c10::Device parse_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  try {
    c10::Device d(name);
    if (d.is_cuda() && !torch::cuda::is_available()) throw UsageError("--device " + name + ": CUDA is not available");
    return d;
  } catch (const c10::Error&) {
    throw UsageError("--device must be auto, cpu, cuda or cuda:N, got '" + name + "'");
  }
}

Embedder::Embedder(ModelBundle bundle, c10::Device device, int64_t batch_size)
    : bundle_(std::move(bundle)), device_(device), batch_size_(std::max<int64_t>(1, batch_size)) {
  bundle_.model->to(device_);
  bundle_.model->eval();
}

namespace {

at::Tensor cat_or_empty(std::vector<at::Tensor>& parts) {
  return parts.empty() ? at::Tensor() : at::cat(parts);
}

}  // namespace

TowerOutput Embedder::encode_images(const VisionInput& in, bool with_features) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> embeds, features, hidden;
  const int64_t n = in.pixel_values.size(0);
  for (int64_t start = 0; start < n; start += batch_size_) {
    const int64_t end = std::min(n, start + batch_size_);
    VisionInput b;
    b.pixel_values = in.pixel_values.slice(0, start, end).to(device_, at::kFloat);
    if (in.pixel_attention_mask.defined())
      b.pixel_attention_mask = in.pixel_attention_mask.slice(0, start, end).ne(0).to(device_);
    if (in.spatial_shapes.defined()) b.spatial_shapes = in.spatial_shapes.slice(0, start, end).to(at::kLong);
    VisionOutput o = bundle_.model->encode_image(b);
    embeds.push_back(l2_normalize(o.pooler_output).to(at::kCPU, at::kFloat));
    if (with_features) {
      features.push_back(o.pooler_output.to(at::kCPU, at::kFloat));
      hidden.push_back(o.last_hidden_state.to(at::kCPU, at::kFloat));
    }
  }
  return {cat_or_empty(embeds), cat_or_empty(features), cat_or_empty(hidden)};
}

TowerOutput Embedder::encode_texts(const at::Tensor& input_ids, bool with_features) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> embeds, features, hidden;
  const int64_t n = input_ids.size(0);
  for (int64_t start = 0; start < n; start += batch_size_) {
    const int64_t end = std::min(n, start + batch_size_);
    TextOutput o = bundle_.model->encode_text(input_ids.slice(0, start, end).to(device_, at::kLong));
    embeds.push_back(l2_normalize(o.pooler_output).to(at::kCPU, at::kFloat));
    if (with_features) {
      features.push_back(o.pooler_output.to(at::kCPU, at::kFloat));
      hidden.push_back(o.last_hidden_state.to(at::kCPU, at::kFloat));
    }
  }
  return {cat_or_empty(embeds), cat_or_empty(features), cat_or_empty(hidden)};
}

at::Tensor Embedder::logits(const at::Tensor& image_embeds, const at::Tensor& text_embeds) const {
  torch::NoGradGuard no_grad;
  at::Tensor scale = bundle_.model->logit_scale.to(at::kCPU, at::kFloat).exp();
  at::Tensor bias = bundle_.model->logit_bias.to(at::kCPU, at::kFloat);
  return at::matmul(image_embeds, text_embeds.t()) * scale + bias;
}

VisionInput Embedder::load_images(const std::vector<std::string>& files, int64_t max_num_patches) const {
#if SIGLIP2_CONFIG_OPENCV
  const ImageConfig& c = bundle_.config.image;
  VisionInput in;
  if (!c.naflex) {
    if (max_num_patches > 0) throw UsageError("--max-num-patches applies to NaFlex models only");
    std::vector<at::Tensor> images;
    for (const auto& f : files) images.push_back(preprocess_fixed(decode_image(f), c.image_size, c.resample));
    in.pixel_values = stack_fixed(images);
    return in;
  }
  const int64_t patches = max_num_patches > 0 ? max_num_patches : c.max_num_patches;
  std::vector<NaflexImage> images;
  for (const auto& f : files) images.push_back(preprocess_naflex(decode_image(f), c.patch_size, patches));
  NaflexBatch b = stack_naflex(images);
  in.pixel_values = b.pixel_values;
  in.pixel_attention_mask = b.pixel_attention_mask;
  in.spatial_shapes = b.spatial_shapes;
  return in;
#else
  (void)files;
  (void)max_num_patches;
  throw Error("this siglip2 was built without OpenCV, so it cannot read image files; pass --inputs instead");
#endif
}

at::Tensor Embedder::tokenize(const std::vector<std::string>& texts) const {
  const std::string& model_file = require_tokenizer(bundle_);
#if SIGLIP2_CONFIG_SENTENCEPIECE
  TokenizerConfig c = bundle_.config.tokenizer;
  c.model_file = model_file;
  return Tokenizer::load(c).encode(texts);
#else
  (void)texts;
  (void)model_file;
  throw Error("this siglip2 was built without sentencepiece, so it cannot tokenize texts; pass --inputs instead");
#endif
}

}  // namespace siglip2
