#include "data/self_distillation_views.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace siglip2 {
namespace {

at::Tensor test_image() {
  return torch::arange(60 * 80 * 3, torch::kLong).remainder(251).to(torch::kUInt8).view({60, 80, 3});
}

TEST(SelfDistillationViews, ShapesRangeAndDeterminism) {
  SelfDistillationViewsConfig c;
  c.local_size = 32;
  DataRng a(1), b(1), other(2);
  const at::Tensor x = make_local_views(test_image(), c, a);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{8, 3, 32, 32}));
  EXPECT_EQ(x.scalar_type(), torch::kFloat);
  EXPECT_GE(x.min().item<float>(), -1.0f - 1e-5f);
  EXPECT_LE(x.max().item<float>(), 1.0f + 1e-5f);
  EXPECT_TRUE(torch::equal(x, make_local_views(test_image(), c, b)));
  EXPECT_FALSE(torch::equal(x, make_local_views(test_image(), c, other)));
}

TEST(SelfDistillationViews, CropAreaWithinTheScaleRange) {
  DataRng rng(7);
  for (int i = 0; i < 500; ++i) {
    const auto [top, left, h, w] = random_resized_crop_box(200, 300, 0.05, 0.4, rng);
    ASSERT_GE(top, 0);
    ASSERT_GE(left, 0);
    ASSERT_LE(top + h, 200);
    ASSERT_LE(left + w, 300);
    const double share = double(h * w) / (200.0 * 300.0);
    EXPECT_GT(share, 0.045);
    EXPECT_LT(share, 0.42);
    EXPECT_LT(double(w) / h, 4.0 / 3.0 + 0.05);
    EXPECT_GT(double(w) / h, 3.0 / 4.0 - 0.05);
  }
}

TEST(SelfDistillationViews, NoAugmentationIsAPlainResizedCrop) {
  SelfDistillationViewsConfig c;
  c.local_crops = 1;
  c.local_size = 16;
  c.flip_probability = c.jitter_probability = c.grayscale_probability = c.blur_probability = 0;
  const at::Tensor image = torch::full({40, 40, 3}, 200, torch::kUInt8);
  DataRng rng(0);
  const at::Tensor x = make_local_views(image, c, rng);
  EXPECT_TRUE(torch::allclose(x, torch::full_like(x, (200 - 127.5) / 127.5)));
  c.grayscale_probability = 1;  // a grey image stays grey
  c.blur_probability = 1;       // and a flat one flat
  DataRng rng2(0);
  EXPECT_TRUE(torch::allclose(make_local_views(image, c, rng2), x, 1e-4, 1e-4));
}

}  // namespace
}  // namespace siglip2
