#pragma once
// The student's local crops for the self-distillation phase (SILC / DINO augmentations; values in
// SelfDistillationViewsConfig and docs/data.md). The teacher's global view is the fixed-resolution image itself.
#include <ATen/core/Tensor.h>

#include <array>

#include "data/config.hpp"
#include "data/rng.hpp"

namespace siglip2 {

// torchvision's RandomResizedCrop box (10 tries, then a centre crop): top, left, height, width.
std::array<int64_t, 4> random_resized_crop_box(int64_t height, int64_t width, double scale_min, double scale_max,
                                               DataRng& rng);

// float32 [local_crops, 3, local_size, local_size] in [-1, 1] from a uint8 [H, W, 3] image: random resized
// crop (bilinear, antialiased), flip, colour jitter, grayscale, Gaussian blur, each with its probability.
at::Tensor make_local_views(const at::Tensor& rgb_hwc_u8, const SelfDistillationViewsConfig& config, DataRng& rng);

}  // namespace siglip2
