#include "data/image.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "common/error.hpp"

namespace siglip2 {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct SizeCase {
  int64_t height, width, patch, max_patches, want_height, want_width;
};

// How gtest and ctest show a case (instead of its bytes).
void PrintTo(const SizeCase& c, std::ostream* os) {
  *os << c.height << "x" << c.width << " patch " << c.patch << " max_patches " << c.max_patches << " -> "
      << c.want_height << "x" << c.want_width;
}

// hf_interop spec §4.2, computed with HF's get_image_size_for_max_num_patches.
class NaflexTargetSize : public ::testing::TestWithParam<SizeCase> {};

TEST_P(NaflexTargetSize, MatchesHuggingFace) {
  const SizeCase c = GetParam();
  EXPECT_EQ(naflex_target_size(c.height, c.width, c.patch, c.max_patches), std::make_pair(c.want_height, c.want_width));
}

INSTANTIATE_TEST_SUITE_P(SpecTable, NaflexTargetSize,
                         ::testing::Values(SizeCase{224, 224, 16, 256, 256, 256},
                                           SizeCase{1024, 1024, 16, 256, 256, 256},
                                           SizeCase{224, 1024, 16, 256, 112, 512},
                                           SizeCase{480, 640, 16, 256, 224, 288}, SizeCase{640, 480, 16, 256, 288, 224},
                                           SizeCase{375, 500, 16, 256, 224, 288}, SizeCase{30, 400, 16, 256, 64, 864},
                                           SizeCase{100, 3000, 16, 256, 48, 1360}, SizeCase{1, 1, 16, 256, 112, 112},
                                           SizeCase{18, 18, 16, 256, 256, 256}, SizeCase{480, 640, 16, 1024, 432, 576},
                                           SizeCase{720, 1280, 16, 576, 288, 512},
                                           SizeCase{480, 640, 14, 729, 322, 434}),
                         [](const ::testing::TestParamInfo<SizeCase>& info) {
                           const SizeCase& c = info.param;
                           return "h" + std::to_string(c.height) + "_w" + std::to_string(c.width) + "_p" +
                                  std::to_string(c.patch) + "_n" + std::to_string(c.max_patches);
                         });

// Pixel values that tell row, column and channel apart.
at::Tensor ramp_image(int64_t height, int64_t width) {
  const at::Tensor y = torch::arange(height).view({height, 1, 1});
  const at::Tensor x = torch::arange(width).view({1, width, 1});
  const at::Tensor c = torch::arange(3).view({1, 1, 3});
  return torch::remainder(y * 7 + x * 3 + c * 101, 256).to(torch::kUInt8);
}

float normalized(int64_t v) {
  return (static_cast<float>(v) - 127.5f) / 127.5f;
}

TEST(Naflex, PatchesAreRowMajorWithRowColChannelInside) {
  // 32x48 with at most 8 patches stays 32x48 (2x3 patches): no resampling, so every value is known.
  const at::Tensor image = ramp_image(32, 48);
  const NaflexImage out = preprocess_naflex(image, 16, 8);
  ASSERT_EQ(out.patches.sizes(), (std::vector<int64_t>{8, 16 * 16 * 3}));
  EXPECT_EQ(out.patches.scalar_type(), at::kFloat);
  const auto img = image.accessor<uint8_t, 3>();
  const auto patches = out.patches.accessor<float, 2>();
  for (int64_t row = 0; row < 2; ++row)
    for (int64_t col = 0; col < 3; ++col)
      for (int64_t py = 0; py < 16; ++py)
        for (int64_t px = 0; px < 16; ++px)
          for (int64_t c = 0; c < 3; ++c)
            ASSERT_EQ(patches[row * 3 + col][(py * 16 + px) * 3 + c], normalized(img[row * 16 + py][col * 16 + px][c]))
                << "patch " << row << "," << col << " pixel " << py << "," << px << " channel " << c;
}

TEST(Naflex, PadsWithZerosAndMasks) {
  const NaflexImage out = preprocess_naflex(ramp_image(32, 48), 16, 8);
  EXPECT_TRUE(torch::equal(out.mask, torch::tensor({1, 1, 1, 1, 1, 1, 0, 0}, torch::kInt)));
  EXPECT_TRUE(torch::equal(out.spatial_shape, torch::tensor({2, 3}, torch::kLong)));
  EXPECT_EQ(out.patches.slice(0, 6).abs().max().item<float>(), 0.0f);
  EXPECT_GT(out.patches.slice(0, 0, 6).abs().min().item<float>(), 0.0f);  // ramp values are never 127.5
}

TEST(Naflex, ResizesToTheTargetSize) {
  const NaflexImage out = preprocess_naflex(ramp_image(480, 640), 16, 256);
  EXPECT_TRUE(torch::equal(out.spatial_shape, torch::tensor({14, 18}, torch::kLong)));
  EXPECT_EQ(out.mask.sum().item<int64_t>(), 252);
  EXPECT_LE(out.patches.abs().max().item<float>(), 1.0f);

  const NaflexBatch batch = stack_naflex({out, preprocess_naflex(ramp_image(100, 3000), 16, 256)});
  EXPECT_EQ(batch.pixel_values.sizes(), (std::vector<int64_t>{2, 256, 768}));
  EXPECT_EQ(batch.pixel_attention_mask.scalar_type(), at::kInt);
  EXPECT_TRUE(torch::equal(batch.spatial_shapes, torch::tensor({14, 18, 3, 85}, torch::kLong).view({2, 2})));
}

TEST(Fixed, ShapeRangeAndConstantImage) {
  for (const std::string resample : {"bilinear", "bicubic"}) {
    const at::Tensor out = preprocess_fixed(ramp_image(300, 200), 224, resample);
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, 224, 224})) << resample;
    EXPECT_EQ(out.scalar_type(), at::kFloat);
    EXPECT_GE(out.min().item<float>(), -1.0f);
    EXPECT_LE(out.max().item<float>(), 1.0f);
    EXPECT_GT(out.max().item<float>() - out.min().item<float>(), 1.5f) << "the ramp's range survives";

    // Resampling a constant image gives the constant back, downscaling and upscaling.
    for (const int64_t size : {64, 512}) {
      const at::Tensor flat = preprocess_fixed(torch::full({300, 200, 3}, 200, torch::kUInt8), size, resample);
      EXPECT_EQ(flat.min().item<float>(), normalized(200)) << resample << " " << size;
      EXPECT_EQ(flat.max().item<float>(), normalized(200)) << resample << " " << size;
    }
  }
  EXPECT_EQ(stack_fixed({preprocess_fixed(ramp_image(20, 30), 16, "bilinear"),
                         preprocess_fixed(ramp_image(30, 20), 16, "bilinear")})
                .sizes(),
            (std::vector<int64_t>{2, 3, 16, 16}));
  EXPECT_THROW(preprocess_fixed(ramp_image(20, 30), 16, "nearest"), c10::Error);
}

TEST(Fixed, SameSizeIsOnlyNormalized) {
  const at::Tensor image = ramp_image(16, 16);
  EXPECT_TRUE(torch::equal(preprocess_fixed(image, 16, "bicubic"),
                           image.permute({2, 0, 1}).to(torch::kFloat).sub(127.5).div(127.5)));
}

class Decode : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("siglip2_image_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  static std::string png(const cv::Mat& mat) {
    std::vector<uchar> buffer;
    EXPECT_TRUE(cv::imencode(".png", mat, buffer));
    return std::string(buffer.begin(), buffer.end());
  }
  fs::path dir_;
};

TEST_F(Decode, ReturnsRgbHwc) {
  cv::Mat bgr(2, 3, CV_8UC3, cv::Scalar(0, 0, 0));
  bgr.at<cv::Vec3b>(0, 1) = {10, 20, 250};  // B, G, R
  const at::Tensor rgb = decode_image(write("red.png", png(bgr)));
  ASSERT_EQ(rgb.sizes(), (std::vector<int64_t>{2, 3, 3}));
  EXPECT_EQ(rgb.scalar_type(), at::kByte);
  EXPECT_TRUE(torch::equal(rgb[0][1], torch::tensor({250, 20, 10}, torch::kUInt8)));
  EXPECT_EQ(rgb.sum().item<int64_t>(), 280);
}

TEST_F(Decode, ExpandsGrayAndDropsAlpha) {
  const cv::Mat gray(2, 2, CV_8UC1, cv::Scalar(77));
  EXPECT_TRUE(torch::equal(decode_image_bytes(png(gray), "gray.png"), torch::full({2, 2, 3}, 77, torch::kUInt8)));
  const cv::Mat bgra(2, 2, CV_8UC4, cv::Scalar(1, 2, 3, 0));  // fully transparent: alpha is ignored
  const at::Tensor rgb = decode_image_bytes(png(bgra), "rgba.png");
  EXPECT_TRUE(torch::equal(rgb[1][1], torch::tensor({3, 2, 1}, torch::kUInt8)));
}

TEST_F(Decode, ReducedJpegDecodeIsSmallerAndClose) {
  cv::Mat bgr(64, 96, CV_8UC3);
  for (int y = 0; y < bgr.rows; ++y)
    for (int x = 0; x < bgr.cols; ++x) bgr.at<cv::Vec3b>(y, x) = {uchar(2 * x), uchar(3 * y), 128};
  std::vector<uchar> buffer;
  ASSERT_TRUE(cv::imencode(".jpg", bgr, buffer, {cv::IMWRITE_JPEG_QUALITY, 95}));
  const std::string jpeg(buffer.begin(), buffer.end());
  const at::Tensor full = decode_image_bytes(jpeg, "x.jpg");
  const at::Tensor half = decode_image_bytes(jpeg, "x.jpg", 2);
  const at::Tensor eighth = decode_image_bytes(jpeg, "x.jpg", 8);
  ASSERT_EQ(half.sizes(), (std::vector<int64_t>{32, 48, 3}));
  ASSERT_EQ(eighth.sizes(), (std::vector<int64_t>{8, 12, 3}));
  // The reduced decode approximates an area average of the full one (a smooth ramp: a few levels at most).
  const at::Tensor pooled = torch::avg_pool2d(full.permute({2, 0, 1}).to(torch::kFloat), 2);
  EXPECT_LT((half.permute({2, 0, 1}).to(torch::kFloat) - pooled).abs().max().item<float>(), 6.f);
  // PNG has no reduced decode: full size whatever the reduction.
  EXPECT_EQ(decode_image_bytes(png(bgr), "x.png", 4).sizes(), (std::vector<int64_t>{64, 96, 3}));
}

TEST(DecodeReduction, KeepsTheTargetCovered) {
  EXPECT_EQ(decode_reduction(1411, 1411, 256, 256), 4);
  EXPECT_EQ(decode_reduction(512, 512, 256, 256), 2);
  EXPECT_EQ(decode_reduction(511, 4000, 256, 256), 1);
  EXPECT_EQ(decode_reduction(427, 640, 208, 304), 2);  // the NaFlex-256 target of a 640 x 427 photo
  EXPECT_EQ(decode_reduction(2048, 4096, 256, 256), 8);
}

TEST_F(Decode, ErrorsNameTheFile) {
  const auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string garbage = write("photo.jpg", "\xFF\xD8\xFF not really a jpeg");
  EXPECT_THAT(message([&] { decode_image(garbage); }), HasSubstr("photo.jpg: cannot decode image ("));
  EXPECT_THAT(message([&] { decode_image((dir_ / "missing.png").string()); }),
              HasSubstr("missing.png: cannot decode image (cannot open"));
  EXPECT_THAT(message([&] { decode_image(write("empty.webp", "")); }), HasSubstr("empty.webp: cannot decode image ("));
  EXPECT_THAT(message([&] { decode_image_bytes("GIF89a", "shard/000.tar:x.gif"); }),
              HasSubstr("shard/000.tar:x.gif: cannot decode image ("));
}

}  // namespace
}  // namespace siglip2
