#include "models/resize.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>

#include "common/error.hpp"
#include "models/siglip2.hpp"

namespace siglip2 {
namespace {

namespace F = torch::nn::functional;

// Smooth random patches: 3x3 noise upsampled (bicubic) to p x p, in double.
at::Tensor smooth_patches(int64_t count, int64_t channels, int64_t p, uint64_t seed) {
  torch::manual_seed(seed);
  at::Tensor coarse = at::randn({count, channels, 3, 3}, at::kDouble);
  return F::interpolate(
      coarse, F::InterpolateFuncOptions().size(std::vector<int64_t>{p, p}).mode(torch::kBicubic).align_corners(false));
}

at::Tensor resize_patches(const at::Tensor& x, int64_t n) {
  return F::interpolate(
      x, F::InterpolateFuncOptions().size(std::vector<int64_t>{n, n}).mode(torch::kBilinear).align_corners(false));
}

// ⟨x, w⟩ for every patch and output unit: [count, D].
at::Tensor responses(const at::Tensor& x, const at::Tensor& w) {
  return at::matmul(x.flatten(1), w.flatten(1).transpose(0, 1));
}

TEST(LinearResizeWeights, ByHand) {
  // Shrinking 8 -> 2 with antialias: centre 1.5, support 4, triangle 1 - |j - 1.5| / 4, normalised by 3.5.
  at::Tensor w = linear_resize_weights(8, 2, /*align_corners=*/false, /*antialias=*/true);
  at::Tensor row0 = at::tensor({0.625, 0.875, 0.875, 0.625, 0.375, 0.125, 0.0, 0.0}, at::kDouble) / 3.5;
  EXPECT_TRUE(at::allclose(w[0], row0, 0, 1e-15)) << w;
  EXPECT_TRUE(at::allclose(w[1], row0.flip(0), 0, 1e-15)) << w;
  // Without antialias shrinking reads the two nearest samples only: centre 1.5 -> (1, 2) by halves.
  at::Tensor plain = linear_resize_weights(8, 2, false, false);
  EXPECT_TRUE(at::allclose(plain[0], at::tensor({0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0}, at::kDouble), 0, 1e-15));
  // Growing 2 -> 4, half-pixel centres -0.25, 0.25, 0.75, 1.25 (edges clamped); antialias changes nothing.
  at::Tensor up = at::tensor({1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0}, at::kDouble).reshape({4, 2});
  EXPECT_TRUE(at::allclose(linear_resize_weights(2, 4, false, true), up, 0, 1e-15));
  EXPECT_TRUE(at::allclose(linear_resize_weights(2, 4, false, false), up, 0, 1e-15));
  // Corner-aligned 2 -> 3 and 3 -> 1 (one output takes the first sample).
  EXPECT_TRUE(at::allclose(linear_resize_weights(2, 3, true, false),
                           at::tensor({1.0, 0.0, 0.5, 0.5, 0.0, 1.0}, at::kDouble).reshape({3, 2}), 0, 1e-15));
  EXPECT_TRUE(
      at::equal(linear_resize_weights(3, 1, true, false), at::tensor({1.0, 0.0, 0.0}, at::kDouble).reshape({1, 3})));
  // One output of several inputs averages all of them (the support covers the whole axis).
  EXPECT_TRUE(at::allclose(linear_resize_weights(4, 1, false, true).sum(), at::tensor(1.0, at::kDouble)));
}

TEST(NaflexPositions, OnePatchWideGridsByHand) {
  // A table whose value is the row index: 8x8 -> 2x1 gives the two antialiased row means (LibTorch's
  // interpolate gives 1.893 twice here), and 1x2 the same along columns of a column-index table.
  VisionConfig c;
  c.naflex = true;
  c.num_patches = 64;
  c.hidden_size = 2;
  VisionEmbeddings e(c);
  torch::NoGradGuard g;
  at::Tensor row = at::arange(8, at::kFloat).reshape({8, 1}).expand({8, 8}).reshape({64});
  at::Tensor col = at::arange(8, at::kFloat).reshape({1, 8}).expand({8, 8}).reshape({64});
  e->position_embedding->weight.copy_(at::stack({row, col}, 1));
  const double a = 6.625 / 3.5;
  at::Tensor tall = e->resized_positions(2, 1), wide = e->resized_positions(1, 2);
  EXPECT_TRUE(at::allclose(tall, at::tensor({a, 3.5, 7 - a, 3.5}, at::kFloat).reshape({2, 2}), 0, 1e-6)) << tall;
  EXPECT_TRUE(at::allclose(wide, at::tensor({3.5, a, 3.5, 7 - a}, at::kFloat).reshape({2, 2}), 0, 1e-6)) << wide;
  // The identity grid returns the table itself.
  EXPECT_TRUE(at::allclose(e->resized_positions(8, 8), e->position_embedding->weight, 0, 1e-6));
}

TEST(ResizeMatrix, EqualsInterpolateOnAnyPatch) {
  at::Tensor b = bilinear_resize_matrix(5, 7);
  ASSERT_EQ(b.sizes(), (std::vector<int64_t>{49, 25}));
  torch::manual_seed(0);
  at::Tensor x = at::randn({4, 1, 5, 5}, at::kDouble);
  at::Tensor by_matrix = at::matmul(x.reshape({4, 25}), b.transpose(0, 1));
  EXPECT_LT((by_matrix - resize_patches(x, 7).reshape({4, 49})).abs().max().item<double>(), 1e-12);
}

TEST(PiResize, GrowingPreservesEveryInnerProductExactly) {
  torch::manual_seed(1);
  at::Tensor w = at::randn({6, 3, 14, 14}, at::kDouble);
  at::Tensor w16 = pi_resize_patch_embedding(w, 16);
  ASSERT_EQ(w16.sizes(), (std::vector<int64_t>{6, 3, 16, 16}));
  at::Tensor x = at::randn({8, 3, 14, 14}, at::kDouble);  // any input, not only smooth ones
  at::Tensor old_r = responses(x, w), new_r = responses(resize_patches(x, 16), w16);
  EXPECT_LT((old_r - new_r).abs().max().item<double>() / old_r.abs().max().item<double>(), 1e-9);
}

TEST(PiResize, ShrinkingPreservesInnerProductsOnSmoothInputs) {
  // 16 -> 14, the SigLIP 2 /14 branch. Random kernels are the hard case (trained ones are smoother).
  torch::manual_seed(2);
  at::Tensor w = at::randn({32, 3, 16, 16}, at::kDouble);
  at::Tensor w14 = pi_resize_patch_embedding(w, 14);
  at::Tensor x = smooth_patches(64, 3, 16, 3);
  at::Tensor old_r = responses(x, w), new_r = responses(resize_patches(x, 14), w14);
  double rel = ((old_r - new_r).norm() / old_r.norm()).item<double>();
  EXPECT_LT(rel, 0.05) << "relative error of <resize(x), w_new> against <x, w_old>";
  // Plain bilinear resizing of the kernel (what PI-resize replaces) is far off: the check can fail.
  at::Tensor naive = resize_patches(w, 14) * (16.0 * 16.0) / (14.0 * 14.0);
  double naive_rel = ((old_r - responses(resize_patches(x, 14), naive)).norm() / old_r.norm()).item<double>();
  EXPECT_GT(naive_rel, 4 * rel);
}

TEST(PositionGrid, CornerAlignedBilinearByHand) {
  // 2x2 grid of 1-d positions [[0, 1], [2, 3]] -> 3x3: corners kept, edges and centre are means.
  at::Tensor pos = at::arange(4, at::kFloat).reshape({4, 1});
  at::Tensor r = resize_position_grid(pos, 3, 3).reshape({3, 3});
  at::Tensor expected = at::tensor({0.0f, 0.5f, 1.0f, 1.0f, 1.5f, 2.0f, 2.0f, 2.5f, 3.0f}).reshape({3, 3});
  EXPECT_TRUE(at::allclose(r, expected, 0, 1e-6)) << r;
  EXPECT_TRUE(at::equal(resize_position_grid(pos, 2, 2), pos));
}

ModelConfig tiny_fixed() {
  ModelConfig c;
  c.vision.hidden_size = 32;
  c.vision.intermediate_size = 64;
  c.vision.num_hidden_layers = 2;
  c.vision.num_attention_heads = 4;
  c.vision.patch_size = 4;
  c.vision.image_size = 16;
  c.text.vocab_size = 50;
  c.text.hidden_size = 32;
  c.text.intermediate_size = 64;
  c.text.num_hidden_layers = 1;
  c.text.num_attention_heads = 2;
  c.text.max_position_embeddings = 8;
  return c;
}

std::map<std::string, at::Tensor> parameters_of(Siglip2ModelImpl& m) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

void load(Siglip2ModelImpl& m, const std::map<std::string, at::Tensor>& tensors) {
  torch::NoGradGuard g;
  for (auto& p : m.named_parameters()) {
    const at::Tensor& src = tensors.at(p.key());
    ASSERT_EQ(src.sizes(), p.value().sizes()) << p.key();
    p.value().copy_(src);
  }
}

TEST(NaflexConversion, SameEmbeddingsWhenThePatchGridEqualsTheOriginal) {
  ModelConfig fixed = tiny_fixed();
  Siglip2Model a(fixed);
  a->reset_parameters(7);
  a->eval();
  ModelConfig flex = fixed;
  flex.vision.naflex = true;
  flex.vision.num_patches = 16;  // the fixed tower's 4x4 grid
  auto tensors = parameters_of(*a);
  auto changed = adapt_vision_tensors(tensors, "vision_model.", fixed.vision, flex.vision);
  EXPECT_EQ(changed, std::vector<std::string>{"vision_model.embeddings.patch_embedding.weight"});
  Siglip2Model b(flex);
  b->eval();
  load(*b, tensors);

  torch::manual_seed(3);
  at::Tensor image = at::rand({2, 3, 16, 16}) * 2 - 1;
  // Patchify in (row, col, channel) order: [B, C, 4, p, 4, p] -> [B, 4, 4, p, p, C].
  at::Tensor patches = image.reshape({2, 3, 4, 4, 4, 4}).permute({0, 2, 4, 3, 5, 1}).reshape({2, 16, 48});
  VisionInput fixed_in;
  fixed_in.pixel_values = image;
  VisionInput flex_in;
  flex_in.pixel_values = patches;
  flex_in.pixel_attention_mask = at::ones({2, 16}, at::kLong);
  flex_in.spatial_shapes = at::full({2, 2}, 4, at::kLong);
  torch::NoGradGuard g;
  at::Tensor ea = a->encode_image(fixed_in).pooler_output, eb = b->encode_image(flex_in).pooler_output;
  EXPECT_LT((ea - eb).abs().max().item<double>(), 1e-5);
  EXPECT_GT(ea.abs().max().item<double>(), 1e-2);
}

TEST(AdaptVisionTensors, ResizesPositionsAndPatchesForANewResolutionAndPatchSize) {
  ModelConfig from = tiny_fixed();
  Siglip2Model a(from);
  a->reset_parameters(1);
  auto tensors = parameters_of(*a);
  VisionConfig to = from.vision;
  to.patch_size = 3;
  to.image_size = 18;  // 6x6 grid
  auto changed = adapt_vision_tensors(tensors, "vision_model.", from.vision, to);
  EXPECT_EQ(changed.size(), 2u);
  EXPECT_EQ(tensors["vision_model.embeddings.patch_embedding.weight"].sizes(), (std::vector<int64_t>{32, 3, 3, 3}));
  EXPECT_EQ(tensors["vision_model.embeddings.position_embedding.weight"].sizes(), (std::vector<int64_t>{36, 32}));
  ModelConfig adapted = from;
  adapted.vision = to;
  Siglip2Model b(adapted);
  load(*b, tensors);  // every shape fits the adapted model
  VisionConfig back = to;
  back.naflex = false;
  VisionConfig flex = from.vision;
  flex.naflex = true;
  EXPECT_THROW(adapt_vision_tensors(tensors, "vision_model.", flex, back), Error);
}

}  // namespace
}  // namespace siglip2
