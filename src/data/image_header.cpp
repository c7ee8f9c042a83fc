#include "data/image_header.hpp"

namespace siglip2 {
namespace {

uint32_t be16(std::string_view b, size_t at) {
  return (uint32_t(uint8_t(b[at])) << 8) | uint8_t(b[at + 1]);
}
uint32_t be32(std::string_view b, size_t at) {
  return (be16(b, at) << 16) | be16(b, at + 2);
}
uint32_t le16(std::string_view b, size_t at) {
  return uint8_t(b[at]) | (uint32_t(uint8_t(b[at + 1])) << 8);
}
uint32_t le24(std::string_view b, size_t at) {
  return le16(b, at) | (uint32_t(uint8_t(b[at + 2])) << 16);
}
uint32_t le32(std::string_view b, size_t at) {
  return le16(b, at) | (le16(b, at + 2) << 16);
}

std::optional<ImageSize> probe_png(std::string_view b) {
  // signature (8), chunk length (4), "IHDR", width (4), height (4)
  if (b.size() < 24 || b.substr(12, 4) != "IHDR") return std::nullopt;
  return ImageSize{be32(b, 16), be32(b, 20)};
}

std::optional<ImageSize> probe_jpeg(std::string_view b) {
  size_t at = 2;
  while (at < b.size()) {
    if (uint8_t(b[at]) != 0xFF) return std::nullopt;
    while (at < b.size() && uint8_t(b[at]) == 0xFF) ++at;  // fill bytes
    if (at >= b.size()) return std::nullopt;
    const uint8_t marker = uint8_t(b[at++]);
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length field
    if (marker == 0xD9 || marker == 0xDA) return std::nullopt;           // end or scan before any frame
    if (at + 2 > b.size()) return std::nullopt;
    const size_t length = be16(b, at);
    if (length < 2) return std::nullopt;
    const bool frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (frame) {
      // length (2), precision (1), height (2), width (2)
      if (length < 7 || at + 7 > b.size()) return std::nullopt;
      return ImageSize{be16(b, at + 5), be16(b, at + 3)};
    }
    at += length;
  }
  return std::nullopt;
}

std::optional<ImageSize> probe_webp(std::string_view b) {
  // "RIFF" size "WEBP", then the first chunk: fourcc (4), size (4), data
  if (b.size() < 30) return std::nullopt;
  const std::string_view chunk = b.substr(12, 4);
  const size_t data = 20;
  if (chunk == "VP8 ") {
    // frame tag (3), start code 9d 01 2a, 14-bit width and height (little endian, 2 scale bits)
    if (uint8_t(b[data + 3]) != 0x9D || uint8_t(b[data + 4]) != 0x01 || uint8_t(b[data + 5]) != 0x2A)
      return std::nullopt;
    return ImageSize{le16(b, data + 6) & 0x3FFF, le16(b, data + 8) & 0x3FFF};
  }
  if (chunk == "VP8L") {
    if (uint8_t(b[data]) != 0x2F) return std::nullopt;
    const uint32_t bits = le32(b, data + 1);
    return ImageSize{(bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1};
  }
  if (chunk == "VP8X") {
    // flags (4), canvas width - 1 (24 bits), canvas height - 1 (24 bits)
    return ImageSize{int64_t(le24(b, data + 4)) + 1, int64_t(le24(b, data + 7)) + 1};
  }
  return std::nullopt;
}

}  // namespace

std::optional<ImageSize> probe_image_size(std::string_view b) {
  if (b.size() >= 8 && b.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8)) return probe_png(b);
  if (b.size() >= 3 && uint8_t(b[0]) == 0xFF && uint8_t(b[1]) == 0xD8) return probe_jpeg(b);
  if (b.size() >= 12 && b.substr(0, 4) == "RIFF" && b.substr(8, 4) == "WEBP") return probe_webp(b);
  return std::nullopt;
}

}  // namespace siglip2
