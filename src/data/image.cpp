#include "data/image.hpp"

#include <ATen/Version.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "common/error.hpp"

namespace siglip2 {
namespace {

void check_rgb_u8(const at::Tensor& image) {
  TORCH_CHECK(image.defined() && image.dim() == 3 && image.size(2) == 3 && image.scalar_type() == at::kByte &&
                  image.device().is_cpu() && image.size(0) > 0 && image.size(1) > 0,
              "expected a non-empty uint8 CPU image [H, W, 3]");
}

// torchvision's F.resize(uint8 CHW, antialias=True) on the CPU: native uint8 kernels, except bilinear
// without AVX2, where torchvision resizes in float32 and rounds (_do_native_uint8_resize_on_cpu).
// The same LibTorch kernels run here, so the result is identical. The result may be channels-last.
at::Tensor resize_u8(const at::Tensor& hwc, int64_t height, int64_t width, const std::string& resample) {
  TORCH_CHECK(resample == "bilinear" || resample == "bicubic", "resample must be bilinear or bicubic, got '", resample,
              "'");
  // [1, C, H, W] over the HWC pixels, i.e. channels-last: the native uint8 kernels read that layout
  // directly (a planar copy would be converted back to it pixel by pixel), and compute the same values.
  const at::Tensor batch = hwc.permute({2, 0, 1}).unsqueeze(0);
  if (hwc.size(0) == height && hwc.size(1) == width) return batch[0];
  if (resample == "bicubic") {
    return at::_upsample_bicubic2d_aa(batch, {height, width}, /*align_corners=*/false)[0];
  }
  static const bool native_uint8 = at::get_cpu_capability() == "AVX2" || at::get_cpu_capability() == "AVX512";
  if (native_uint8) return at::_upsample_bilinear2d_aa(batch, {height, width}, /*align_corners=*/false)[0];
  return at::_upsample_bilinear2d_aa(batch.contiguous().to(at::kFloat), {height, width}, false)[0].round_().to(
      at::kByte);
}

// The HF fast processors fuse rescale (1/255) and normalize (mean = std = 0.5) into normalize(x, 127.5, 127.5).
// Contiguous float32 [C, H, W], whatever the layout of the input.
at::Tensor normalize(const at::Tensor& chw_u8) {
  at::Tensor out = at::empty(chw_u8.sizes(), chw_u8.options().dtype(at::kFloat));
  return out.copy_(chw_u8).sub_(127.5).div_(127.5);
}

at::Tensor from_mat(const cv::Mat& bgr) {
  at::Tensor rgb = torch::empty({bgr.rows, bgr.cols, 3}, torch::kUInt8);
  cv::Mat out(bgr.rows, bgr.cols, CV_8UC3, rgb.data_ptr());
  cv::cvtColor(bgr, out, cv::COLOR_BGR2RGB);
  return rgb;
}

// torch::stack, written straight into a (pinned when asked) tensor instead of copied there afterwards.
at::Tensor stack_into(const std::vector<at::Tensor>& tensors, bool pinned) {
  std::vector<int64_t> shape{static_cast<int64_t>(tensors.size())};
  for (const int64_t d : tensors.front().sizes()) shape.push_back(d);
  at::Tensor out = torch::empty(shape, tensors.front().options().pinned_memory(pinned));
  return torch::stack_out(out, tensors);
}

}  // namespace

at::Tensor decode_image_bytes(const std::string& bytes, const std::string& name_for_errors, int64_t reduction,
                              bool exif_orientation) {
  if (bytes.empty()) throw Error(name_for_errors + ": cannot decode image (empty file)");
  TORCH_CHECK(reduction == 1 || reduction == 2 || reduction == 4 || reduction == 8, "bad decode reduction ", reduction);
  // Only libjpeg scales while decoding; OpenCV would decode other formats fully and then resize.
  const bool jpeg =
      bytes.size() > 2 && static_cast<unsigned char>(bytes[0]) == 0xFF && static_cast<unsigned char>(bytes[1]) == 0xD8;
  int flags = cv::IMREAD_COLOR;
  if (jpeg && reduction == 2) flags = cv::IMREAD_REDUCED_COLOR_2;
  if (jpeg && reduction == 4) flags = cv::IMREAD_REDUCED_COLOR_4;
  if (jpeg && reduction == 8) flags = cv::IMREAD_REDUCED_COLOR_8;
  cv::Mat bgr;
  try {
    const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
    bgr = cv::imdecode(buffer, exif_orientation ? flags : flags | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw Error(name_for_errors + ": cannot decode image (" + e.what() + ")");
  }
  if (bgr.empty()) {
    throw Error(name_for_errors + ": cannot decode image (unknown format or corrupt data, " +
                std::to_string(bytes.size()) + " bytes)");
  }
  TORCH_CHECK(bgr.type() == CV_8UC3, "imdecode(IMREAD_COLOR) returned type ", bgr.type());
  return from_mat(bgr);
}

int64_t decode_reduction(int64_t height, int64_t width, int64_t need_height, int64_t need_width) {
  for (const int64_t r : {8, 4, 2})
    if (height / r >= need_height && width / r >= need_width) return r;
  return 1;
}

at::Tensor decode_image(const std::string& path, bool exif_orientation) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot decode image (cannot open the file)");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw Error(path + ": cannot decode image (read error)");
  return decode_image_bytes(bytes.str(), path, 1, exif_orientation);
}

at::Tensor preprocess_fixed(const at::Tensor& rgb_hwc_u8, int64_t size, const std::string& resample) {
  check_rgb_u8(rgb_hwc_u8);
  TORCH_CHECK(size > 0, "image size must be positive, got ", size);
  return normalize(resize_u8(rgb_hwc_u8, size, size, resample));
}

std::pair<int64_t, int64_t> naflex_target_size(int64_t height, int64_t width, int64_t patch_size,
                                               int64_t max_num_patches) {
  TORCH_CHECK(height > 0 && width > 0 && patch_size > 0 && max_num_patches > 0, "naflex_target_size(", height, ", ",
              width, ", ", patch_size, ", ", max_num_patches, "): arguments must be positive");
  const auto scaled = [patch_size](double scale, int64_t size) {
    const double scaled_size = static_cast<double>(size) * scale;
    const auto patches = static_cast<int64_t>(std::ceil(scaled_size / static_cast<double>(patch_size)));
    return std::max(patch_size, patches * patch_size);
  };
  const double eps = 1e-5;
  double scale_min = eps / 10, scale_max = 100.0;
  while (scale_max - scale_min >= eps) {
    const double scale = (scale_min + scale_max) / 2;
    const double num_patches = (static_cast<double>(scaled(scale, height)) / static_cast<double>(patch_size)) *
                               (static_cast<double>(scaled(scale, width)) / static_cast<double>(patch_size));
    if (num_patches <= static_cast<double>(max_num_patches)) {
      scale_min = scale;
    } else {
      scale_max = scale;
    }
  }
  return {scaled(scale_min, height), scaled(scale_min, width)};
}

NaflexImage preprocess_naflex(const at::Tensor& rgb_hwc_u8, int64_t patch_size, int64_t max_num_patches) {
  check_rgb_u8(rgb_hwc_u8);
  const auto [height, width] = naflex_target_size(rgb_hwc_u8.size(0), rgb_hwc_u8.size(1), patch_size, max_num_patches);
  const at::Tensor image = normalize(resize_u8(rgb_hwc_u8, height, width, "bilinear"));

  const int64_t rows = height / patch_size, cols = width / patch_size, num = rows * cols;
  TORCH_CHECK(num <= max_num_patches, "NaFlex produced ", num, " patches for max_num_patches = ", max_num_patches);
  // [C, rows, P, cols, P] -> [rows, cols, P, P, C]: patches row-major, pixels (row, col, channel) inside.
  NaflexImage out;
  out.patches = torch::empty({max_num_patches, patch_size * patch_size * 3}, torch::kFloat);
  out.patches.narrow(0, 0, num)
      .view({rows, cols, patch_size, patch_size, 3})
      .copy_(image.view({3, rows, patch_size, cols, patch_size}).permute({1, 3, 2, 4, 0}));
  out.patches.narrow(0, num, max_num_patches - num).zero_();
  out.mask = torch::zeros({max_num_patches}, torch::kInt);
  out.mask.narrow(0, 0, num).fill_(1);
  out.spatial_shape = torch::tensor({rows, cols}, torch::kLong);
  return out;
}

at::Tensor stack_fixed(const std::vector<at::Tensor>& images, bool pinned) {
  TORCH_CHECK(!images.empty(), "stack_fixed: no images");
  return stack_into(images, pinned);
}

NaflexBatch stack_naflex(const std::vector<NaflexImage>& images, bool pinned) {
  TORCH_CHECK(!images.empty(), "stack_naflex: no images");
  std::vector<at::Tensor> patches, masks, shapes;
  for (const NaflexImage& image : images) {
    patches.push_back(image.patches);
    masks.push_back(image.mask);
    shapes.push_back(image.spatial_shape);
  }
  return {stack_into(patches, pinned), stack_into(masks, pinned), stack_into(shapes, pinned)};
}

}  // namespace siglip2
