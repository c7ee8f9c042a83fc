#pragma once
// Image decoding and the two SigLIP input pipelines, matching the Hugging Face fast (torchvision) image
// processors bit for bit: SiglipImageProcessor(Fast) for fixed resolution, Siglip2ImageProcessor(Fast) for
// NaFlex (hf_interop spec §4.2, §4.4).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace siglip2 {

// uint8 [H, W, 3] RGB. Alpha is dropped (not composited), grayscale and palette images are expanded.
// exif_orientation: turn the image upright by its EXIF orientation tag (all eight values), as
// transformers' load_image (PIL's ImageOps.exif_transpose) does for its pipelines; false keeps the
// stored pixels, as a bare PIL Image.open does. Throws siglip2::Error naming the file
// ("photo.jpg: cannot decode image (...)").
at::Tensor decode_image(const std::string& path, bool exif_orientation = true);
// `reduction` 2, 4 or 8: a JPEG is decoded at that fraction of its size (libjpeg's DCT scaling, sides
// rounded up); other formats, and 1, decode at full size.
at::Tensor decode_image_bytes(const std::string& bytes, const std::string& name_for_errors, int64_t reduction = 1,
                              bool exif_orientation = true);

// The largest reduction (8, 4, 2, else 1) that keeps a height x width image at least need_height x
// need_width.
int64_t decode_reduction(int64_t height, int64_t width, int64_t need_height, int64_t need_width);

// Fixed resolution: antialiased resize of the uint8 image to size x size with resample "bilinear" or
// "bicubic" (torchvision F.resize(antialias=True)), then (x - 127.5) / 127.5. float32 [3, size, size].
at::Tensor preprocess_fixed(const at::Tensor& rgb_hwc_u8, int64_t size, const std::string& resample);

// The size (height, width), multiples of patch_size, that HF's get_image_size_for_max_num_patches picks:
// the same binary search over the scale in IEEE double arithmetic.
std::pair<int64_t, int64_t> naflex_target_size(int64_t height, int64_t width, int64_t patch_size,
                                               int64_t max_num_patches);

struct NaflexImage {
  at::Tensor patches;        // float32 [max_num_patches, P*P*3], patch order row-major, each (row, col, channel)
  at::Tensor mask;           // int32 [max_num_patches]: 1 for real patches, 0 for the zero padding
  at::Tensor spatial_shape;  // int64 [2]: patch rows, patch columns
};

// NaFlex: aspect-preserving bilinear antialiased resize to naflex_target_size, normalise, patchify, pad.
NaflexImage preprocess_naflex(const at::Tensor& rgb_hwc_u8, int64_t patch_size, int64_t max_num_patches);

// pixel_values [B, 3, S, S] from preprocess_fixed outputs; `pinned`: allocated in page-locked memory
// (needs CUDA at run time).
at::Tensor stack_fixed(const std::vector<at::Tensor>& images, bool pinned = false);

struct NaflexBatch {
  at::Tensor pixel_values;          // float32 [B, max_num_patches, P*P*3]
  at::Tensor pixel_attention_mask;  // int32 [B, max_num_patches]
  at::Tensor spatial_shapes;        // int64 [B, 2]
};
NaflexBatch stack_naflex(const std::vector<NaflexImage>& images, bool pinned = false);

}  // namespace siglip2
