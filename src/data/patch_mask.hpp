#pragma once
// The masked-prediction input of self-distillation (TIPS, as SigLIP 2 uses it: recipe.md §4): which
// patches the student sees as the mask token.
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace siglip2 {

// bool [batch, patches]: exactly round(ratio × patches) patches per image, uniformly without replacement,
// drawn from `gen` (a CPU generator).
at::Tensor random_patch_mask(int64_t batch, int64_t patches, double ratio, at::Generator& gen);

}  // namespace siglip2
