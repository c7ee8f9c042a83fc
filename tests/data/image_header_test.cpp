#include "data/image_header.hpp"

#include <gtest/gtest.h>

#include <random>

#include "data_test_util.hpp"

namespace siglip2 {
namespace {

using testing::encode_image;

TEST(ProbeImageSize, JpegPngWebp) {
  for (const std::string ext : {".jpg", ".png", ".webp"}) {
    if (ext == ".webp" && !cv::haveImageWriter(".webp")) continue;
    const std::string bytes = encode_image(37, 21, ext);
    const auto size = probe_image_size(bytes);
    ASSERT_TRUE(size) << ext;
    EXPECT_EQ(size->width, 37) << ext;
    EXPECT_EQ(size->height, 21) << ext;
  }
}

TEST(ProbeImageSize, HandWrittenHeaders) {
  // WebP lossless (VP8L): 14-bit width-1 and height-1 after the 0x2f signature.
  std::string vp8l = std::string("RIFF\0\0\0\0WEBPVP8L\0\0\0\0", 20) + '\x2f';
  const uint32_t bits = (300 - 1) | ((200 - 1) << 14);
  for (int i = 0; i < 4; ++i) vp8l += static_cast<char>((bits >> (8 * i)) & 0xFF);
  vp8l += std::string(8, '\0');
  const auto size = probe_image_size(vp8l);
  ASSERT_TRUE(size);
  EXPECT_EQ(size->width, 300);
  EXPECT_EQ(size->height, 200);
  // A JPEG whose APP1 segment comes before the frame header.
  std::string jpeg = "\xFF\xD8\xFF\xE1";
  jpeg += std::string("\x00\x06", 2) + "abcd";
  jpeg += std::string("\xFF\xC2\x00\x11\x08\x10\x00\x20\x00", 9) + std::string(12, '\0');
  const auto j = probe_image_size(jpeg);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->width, 0x2000);
  EXPECT_EQ(j->height, 0x1000);
}

TEST(ProbeImageSize, TruncatedAndGarbageGiveNothing) {
  const std::string jpeg = encode_image(40, 30, ".jpg");
  const std::string png = encode_image(40, 30, ".png");
  EXPECT_FALSE(probe_image_size(""));
  EXPECT_FALSE(probe_image_size("not an image at all"));
  EXPECT_FALSE(probe_image_size(png.substr(0, 20)));
  EXPECT_FALSE(probe_image_size(jpeg.substr(0, 4)));
  // Every prefix and random corruptions: never a crash (ASan builds check the bounds).
  for (size_t n = 0; n < 200 && n < jpeg.size(); ++n) probe_image_size(jpeg.substr(0, n));
  std::mt19937 rng(1);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string b = trial % 2 ? jpeg.substr(0, 64) : png.substr(0, 40);
    for (int k = 0; k < 4; ++k) b[rng() % b.size()] = static_cast<char>(rng());
    probe_image_size(b);
  }
}

}  // namespace
}  // namespace siglip2
