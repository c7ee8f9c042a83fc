#include "losses/self_distillation.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "data/patch_mask.hpp"
#include "test_support/finite_difference.hpp"

namespace siglip2 {
namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.vision.hidden_size = 16;
  c.vision.intermediate_size = 32;
  c.vision.num_hidden_layers = 2;
  c.vision.num_attention_heads = 2;
  c.vision.patch_size = 4;
  c.vision.image_size = 16;
  return c;
}

SelfDistillationConfig small_heads() {
  SelfDistillationConfig s;
  s.prototypes = 10;
  s.head_hidden = 12;
  s.head_bottleneck = 6;
  return s;
}

TEST(DinoCrossEntropy, HandComputedValues) {
  auto opt = torch::TensorOptions().dtype(torch::kFloat);
  at::Tensor teacher = torch::tensor({{0.0f, static_cast<float>(std::log(3.0))}}, opt);
  at::Tensor student = torch::zeros({1, 2}, opt);
  // Teacher [1/4, 3/4], student uniform: cross-entropy log 2.
  EXPECT_NEAR(dino_cross_entropy(student, teacher, {}, torch::zeros({2}), 0.1, 1.0).item<double>(), std::log(2.0),
              1e-6);
  // Student [1/4, 3/4] too: the entropy of [1/4, 3/4].
  at::Tensor s2 = teacher * 0.1;
  double h = -(0.25 * std::log(0.25) + 0.75 * std::log(0.75));
  EXPECT_NEAR(dino_cross_entropy(s2, teacher, {}, torch::zeros({2}), 0.1, 1.0).item<double>(), h, 1e-6);
  // Centering by the teacher's own logits makes its distribution uniform: -mean(log student).
  EXPECT_NEAR(dino_cross_entropy(s2, teacher, {}, teacher[0], 0.1, 1.0).item<double>(),
              -0.5 * (std::log(0.25) + std::log(0.75)), 1e-6);
  // Rows are matched through the map: two student rows against teacher row 0.
  at::Tensor map = torch::tensor({0, 0}, torch::kLong);
  EXPECT_NEAR(dino_cross_entropy(torch::cat({student, s2}), teacher, map, torch::zeros({2}), 0.1, 1.0).item<double>(),
              0.5 * (std::log(2.0) + h), 1e-6);
}

TEST(RandomPatchMask, ExactlyTheRatio) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  at::Tensor m = random_patch_mask(4, 16, 0.5, gen);
  EXPECT_TRUE(torch::equal(m.sum(1), torch::full({4}, 8, torch::kLong)));
  EXPECT_FALSE(torch::equal(m[0], m[1]));
}

TEST(EmaTeacher, StartsAsTheStudentFollowsTheEmaAndGetsNoGradients) {
  ModelConfig c = tiny();
  SelfDistillationConfig s = small_heads();
  VisionTransformer student(c.vision);
  SelfDistillationHeads heads(c.vision, s);
  EmaTeacher teacher(*student, *heads, c, s);
  auto sp = student->named_parameters();
  for (const auto& p : teacher.vision->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), sp[p.key()])) << p.key();
    EXPECT_FALSE(p.value().requires_grad());
  }
  std::map<std::string, at::Tensor> before;
  for (const auto& p : teacher.vision->named_parameters()) before[p.key()] = p.value().clone();
  {
    torch::NoGradGuard g;
    for (auto& p : student->parameters()) p.add_(1.0);
  }
  teacher.update(*student, *heads, 0.9);
  for (const auto& p : teacher.vision->named_parameters())
    EXPECT_TRUE(torch::allclose(p.value(), before[p.key()] + 0.1, 1e-6, 1e-6)) << p.key();

  SelfDistillation sd(s);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  at::Tensor global = torch::randn({2, 3, 16, 16}), locals = torch::randn({4, 3, 8, 8});
  auto out = sd.forward(*student, *heads, teacher, global, locals, random_patch_mask(2, 16, 0.5, gen), 0, nullptr);
  out.total.backward();
  for (const auto& p : teacher.vision->parameters()) EXPECT_FALSE(p.grad().defined());
  for (const auto& p : teacher.heads->parameters()) EXPECT_FALSE(p.grad().defined());
  EXPECT_TRUE(heads->mask_token.grad().defined());
  EXPECT_GT(heads->mask_token.grad().abs().sum().item<double>(), 0.0);
}

// The masked loss averages over masked patches only: recomputed by hand from the full per-patch
// outputs of both towers, it matches; averaged over all patches, it does not.
TEST(SelfDistillation, MaskedLossUsesOnlyMaskedPositions) {
  torch::manual_seed(7);
  ModelConfig c = tiny();
  SelfDistillationConfig s = small_heads();
  VisionTransformer student(c.vision);
  SelfDistillationHeads heads(c.vision, s);
  EmaTeacher teacher(*student, *heads, c, s);
  SelfDistillation sd(s);
  at::Tensor global = torch::randn({2, 3, 16, 16}), locals = torch::randn({2, 3, 8, 8});
  at::Tensor mask = torch::zeros({2, 16}, torch::kBool);
  mask[0][3] = true;
  mask[1][10] = true;
  mask[1][11] = true;
  TeacherLogitSums centres_untouched;
  auto out = sd.forward(*student, *heads, teacher, global, locals, mask, 0, nullptr, &centres_untouched);
  torch::NoGradGuard g;
  at::Tensor t_tokens = teacher.vision->forward({global, {}, {}}).last_hidden_state.reshape({32, 16});
  VisionInput in{global, {}, {}};
  in.bool_masked_pos = mask;
  in.mask_token = heads->mask_token;
  at::Tensor s_tokens = student->forward(in).last_hidden_state.reshape({32, 16});
  at::Tensor t = at::softmax(teacher.heads->patch_head(t_tokens) / s.teacher_temperature, -1);
  at::Tensor ls = at::log_softmax(heads->patch_head(s_tokens) / s.student_temperature, -1);
  at::Tensor per_patch = -(t * ls).sum(-1);
  at::Tensor idx = mask.reshape(-1).nonzero().squeeze(1);
  EXPECT_NEAR(out.masked.item<double>(), per_patch.index_select(0, idx).mean().item<double>(), 1e-5);
  EXPECT_GT(std::abs(out.masked.item<double>() - per_patch.mean().item<double>()), 1e-4);
  EXPECT_NEAR(out.total.item<double>(),
              s.size_factor * (s.global_local_weight * out.global_local.item<double>() +
                               s.masked_weight * out.masked.item<double>()),
              1e-6);
}

TEST(SelfDistillation, CentreAndTemperatureFollowTheirSchedules) {
  SelfDistillationConfig s = small_heads();
  s.teacher_temperature_warmup = 10;
  SelfDistillation sd(s);
  EXPECT_DOUBLE_EQ(sd.teacher_temperature(0), 0.04);
  EXPECT_NEAR(sd.teacher_temperature(5), 0.055, 1e-12);
  EXPECT_DOUBLE_EQ(sd.teacher_temperature(10), 0.07);
  // One step: c = 0.9 * 0 + 0.1 * batch mean of the teacher's prototype logits.
  ModelConfig c = tiny();
  VisionTransformer student(c.vision);
  SelfDistillationHeads heads(c.vision, s);
  EmaTeacher teacher(*student, *heads, c, s);
  at::Tensor global = torch::randn({3, 3, 16, 16});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  sd.forward(*student, *heads, teacher, global, torch::randn({3, 3, 8, 8}), random_patch_mask(3, 16, 0.5, gen), 0,
             nullptr);
  torch::NoGradGuard g;
  at::Tensor mean = teacher.heads->global_head(teacher.vision->forward({global, {}, {}}).pooler_output).mean(0);
  EXPECT_LT((sd.center_global - 0.1 * mean).abs().max().item<double>(), 1e-6) << sd.center_global << mean;
}

// Finite differences in double precision through both student passes, heads and mask token.
TEST(SelfDistillation, GradientsMatchFiniteDifferences) {
  torch::manual_seed(11);
  ModelConfig c = tiny();
  c.vision.num_hidden_layers = 1;
  SelfDistillationConfig s = small_heads();
  VisionTransformer student(c.vision);
  SelfDistillationHeads heads(c.vision, s);
  student->to(torch::kDouble);
  heads->to(torch::kDouble);
  EmaTeacher teacher(*student, *heads, c, s);
  teacher.vision->to(torch::kDouble);
  teacher.heads->to(torch::kDouble);
  {
    torch::NoGradGuard g;  // a teacher that differs from the student
    for (auto& p : teacher.vision->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  SelfDistillation sd(s);
  sd.center_global = torch::zeros({s.prototypes}, torch::kDouble);
  sd.center_patch = torch::zeros({s.prototypes}, torch::kDouble);
  at::Tensor global = torch::randn({2, 3, 16, 16}, torch::kDouble), locals = torch::randn({4, 3, 8, 8}, torch::kDouble);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  at::Tensor mask = random_patch_mask(2, 16, 0.5, gen);
  TeacherLogitSums centres_untouched;
  auto loss = [&] {
    return sd.forward(*student, *heads, teacher, global, locals, mask, 0, nullptr, &centres_untouched).total;
  };
  loss().backward();
  auto sp = student->named_parameters();
  auto hp = heads->named_parameters();
  std::vector<std::pair<std::string, at::Tensor>> checks = {
      {"mask_token", heads->mask_token},
      {"global_head.fc1.weight", hp["global_head.fc1.weight"]},
      {"patch_head.prototypes", hp["patch_head.prototypes"]},
      {"encoder.layers.0.self_attn.q_proj.weight", sp["encoder.layers.0.self_attn.q_proj.weight"]},
      {"embeddings.position_embedding.weight", sp["embeddings.position_embedding.weight"]}};
  testing::expect_gradients_match_finite_differences([&] { return loss().item<double>(); }, checks, 6, 1e-7);
}

}  // namespace
}  // namespace siglip2
