#pragma once
// Image width and height read from the file header, so that a pixel limit can be enforced before any
// decoder allocates (OpenCV's imdecode has no such limit per call). Bounds-checked: a short or
// malformed header gives nullopt, never a read past the end.
#include <cstdint>
#include <optional>
#include <string_view>

namespace siglip2 {

struct ImageSize {
  int64_t width = 0;
  int64_t height = 0;
};

// JPEG (any SOF marker), PNG (IHDR) and WebP (VP8, VP8L, VP8X). nullopt: not one of these, or malformed.
std::optional<ImageSize> probe_image_size(std::string_view bytes);

}  // namespace siglip2
