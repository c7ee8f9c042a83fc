#pragma once
// Runs a loaded model for inference (`siglip2 embed`, `siglip2 zero-shot`): eval mode, no autograd,
// batches of `batch_size`, results as float32 CPU tensors.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <string>
#include <vector>

#include "interop/checkpoint_dir.hpp"

namespace siglip2 {

struct TowerOutput {
  at::Tensor embeds;             // [B, E] L2-normalised
  at::Tensor features;           // [B, E] pooled, not normalised (only when asked for)
  at::Tensor last_hidden_state;  // [B, S, D] (only when asked for)
};

class Embedder {
 public:
  Embedder(ModelBundle bundle, c10::Device device, int64_t batch_size = 32);

  // Model inputs from files, preprocessed as the model's image config says. max_num_patches <= 0 keeps
  // the config's value (NaFlex only). Needs a build with OpenCV.
  VisionInput load_images(const std::vector<std::string>& files, int64_t max_num_patches = 0) const;
  // Token ids [N, length] from texts with the model's tokenizer. Needs a build with sentencepiece.
  at::Tensor tokenize(const std::vector<std::string>& texts) const;

  TowerOutput encode_images(const VisionInput& in, bool with_features = false);
  TowerOutput encode_texts(const at::Tensor& input_ids, bool with_features = false);
  // [images, texts] = exp(logit_scale) * image_embeds @ text_embeds^T + logit_bias
  at::Tensor logits(const at::Tensor& image_embeds, const at::Tensor& text_embeds) const;

  const ModelBundle& bundle() const { return bundle_; }

 private:
  ModelBundle bundle_;
  c10::Device device_;
  int64_t batch_size_;
};

// "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
c10::Device parse_device(const std::string& name);

}  // namespace siglip2
