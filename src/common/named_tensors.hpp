#pragma once
// Tensors under their names, in order: parameters, checkpoint contents, import and export lists. Names
// are Hugging Face's for the towers ("vision_model.…", "text_model.…", "logit_scale") and the
// checkpoint's own for training-only parts ("text_decoder.…", "self_distillation.…"; DESIGN.md §3).
#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace siglip2 {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

}  // namespace siglip2
