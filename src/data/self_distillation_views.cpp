#include "data/self_distillation_views.hpp"

#include <torch/torch.h>

#include <cmath>

#include "data/image.hpp"

namespace siglip2 {
namespace {

at::Tensor gray(const at::Tensor& rgb01) {  // [3, H, W] -> [1, H, W], ITU-R 601 as torchvision
  return (rgb01[0] * 0.299 + rgb01[1] * 0.587 + rgb01[2] * 0.114).unsqueeze(0);
}

// Hue rotation in YIQ space: a rotation of the chroma plane by 2*pi*shift turns (close to torchvision's
// HSV shift for the small shifts DINO uses, and much cheaper).
at::Tensor rotate_hue(const at::Tensor& rgb01, double shift) {
  const double a = 2 * M_PI * shift, c = std::cos(a), s = std::sin(a);
  const at::Tensor to_yiq =
      torch::tensor({{0.299, 0.587, 0.114}, {0.596, -0.274, -0.322}, {0.211, -0.523, 0.312}}, torch::kDouble);
  const at::Tensor rot = torch::tensor({{1.0, 0.0, 0.0}, {0.0, c, -s}, {0.0, s, c}}, torch::kDouble);
  const at::Tensor m = torch::linalg_inv(to_yiq).matmul(rot).matmul(to_yiq).to(torch::kFloat);
  return torch::einsum("ij,jhw->ihw", {m, rgb01});
}

at::Tensor blur(const at::Tensor& rgb01, double sigma) {
  const int64_t radius = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(3 * sigma)));
  at::Tensor k = torch::arange(-radius, radius + 1, torch::kFloat);
  k = torch::exp(-k * k / (2 * sigma * sigma));
  k = k / k.sum();
  at::Tensor x = rgb01.unsqueeze(1);  // [3, 1, H, W]: channels as batch
  const int64_t pad = std::min<int64_t>(radius, std::min(x.size(2), x.size(3)) - 1);
  x = torch::nn::functional::pad(x, torch::nn::functional::PadFuncOptions({pad, pad, pad, pad}).mode(torch::kReflect));
  const int64_t trim = radius - pad;  // kernel wider than the reflection allows: crop the valid part
  x = torch::conv2d(x, k.view({1, 1, 1, -1}), at::Tensor(), at::IntArrayRef{1, 1}, at::IntArrayRef{0, trim});
  x = torch::conv2d(x, k.view({1, 1, -1, 1}), at::Tensor(), at::IntArrayRef{1, 1}, at::IntArrayRef{trim, 0});
  return x.squeeze(1);
}

at::Tensor jitter(at::Tensor y, const SelfDistillationViewsConfig& c, DataRng& rng) {
  const double b = uniform(rng, std::max(0.0, 1 - c.brightness), 1 + c.brightness);
  const double k = uniform(rng, std::max(0.0, 1 - c.contrast), 1 + c.contrast);
  const double s = uniform(rng, std::max(0.0, 1 - c.saturation), 1 + c.saturation);
  const double h = uniform(rng, -c.hue, c.hue);
  y = (y * b).clamp(0, 1);
  const at::Tensor mean = gray(y).mean();
  y = ((y - mean) * k + mean).clamp(0, 1);
  const at::Tensor g = gray(y);
  y = ((y - g) * s + g).clamp(0, 1);
  if (h != 0) y = rotate_hue(y, h).clamp(0, 1);
  return y;
}

}  // namespace

std::array<int64_t, 4> random_resized_crop_box(int64_t height, int64_t width, double scale_min, double scale_max,
                                               DataRng& rng) {
  const double area = double(height) * double(width);
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * uniform(rng, scale_min, scale_max);
    const double ratio = std::exp(uniform(rng, log_lo, log_hi));
    const auto w = static_cast<int64_t>(std::lround(std::sqrt(target * ratio)));
    const auto h = static_cast<int64_t>(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const auto top = static_cast<int64_t>(below(rng, static_cast<uint64_t>(height - h + 1)));
      const auto left = static_cast<int64_t>(below(rng, static_cast<uint64_t>(width - w + 1)));
      return {top, left, h, w};
    }
  }
  const double in_ratio = double(width) / double(height);
  int64_t w = width, h = height;
  if (in_ratio < 3.0 / 4.0) {
    h = std::lround(w / (3.0 / 4.0));
  } else if (in_ratio > 4.0 / 3.0) {
    w = std::lround(h * (4.0 / 3.0));
  }
  h = std::min(h, height);
  w = std::min(w, width);
  return {(height - h) / 2, (width - w) / 2, h, w};
}

at::Tensor make_local_views(const at::Tensor& rgb_hwc_u8, const SelfDistillationViewsConfig& c, DataRng& rng) {
  std::vector<at::Tensor> views;
  for (int64_t v = 0; v < c.local_crops; ++v) {
    const auto [top, left, h, w] =
        random_resized_crop_box(rgb_hwc_u8.size(0), rgb_hwc_u8.size(1), c.local_scale_min, c.local_scale_max, rng);
    const at::Tensor crop = rgb_hwc_u8.slice(0, top, top + h).slice(1, left, left + w).contiguous();
    at::Tensor y = preprocess_fixed(crop, c.local_size, "bilinear").add_(1).mul_(0.5);  // [0, 1]
    if (bernoulli(rng, c.flip_probability)) y = y.flip({2});
    if (bernoulli(rng, c.jitter_probability)) y = jitter(y, c, rng);
    if (bernoulli(rng, c.grayscale_probability)) y = gray(y).expand({3, -1, -1});
    if (bernoulli(rng, c.blur_probability)) y = blur(y, uniform(rng, c.blur_sigma_min, c.blur_sigma_max));
    views.push_back(y.mul(2).sub_(1));
  }
  return torch::stack(views);
}

}  // namespace siglip2
