// Gradient accumulation (train/step.hpp, accumulate_gradients) against the whole batch at once: the same
// gradients for every parameter, the same loss terms and the same teacher centres, with every objective.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>

#include "../models/tiny_model.hpp"
#include "train/batch.hpp"
#include "train/model.hpp"
#include "train/step.hpp"

namespace siglip2 {
namespace {

struct Case {
  const char* name;
  bool naflex;
  int64_t micro_batches;
  bool frozen_vision = false;  // locked-image tuning (optimizer.frozen: ['^vision_model\.'])
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

RunConfig tiny_run(bool naflex) {
  RunConfig c;
  c.model = testing::tiny_model(naflex);
  c.model.decoder.max_length = 6;
  c.image.naflex = naflex;
  c.image.image_size = c.model.vision.image_size;
  c.image.patch_size = c.model.vision.patch_size;
  c.train.batch_size = 8;
  c.train.self_distillation = !naflex;
  c.loss.self_distillation.prototypes = 32;
  c.loss.self_distillation.head_hidden = 16;
  c.loss.self_distillation.head_bottleneck = 8;
  return c;
}

struct Gradients {
  std::map<std::string, at::Tensor> grads;
  std::map<std::string, double> terms;
  at::Tensor center_global, center_patch;
};

// One step's gradients from the same starting point (parameters, centres), either way.
Gradients gradients(TrainingModel& m, const RunConfig& cfg, const Batch& batch, int64_t micro_batches) {
  at::Tensor global_before, patch_before;
  if (m.self_distillation) {
    global_before = m.self_distillation->center_global.clone();
    patch_before = m.self_distillation->center_patch.clone();
  }
  for (auto& [name, p] : m.parameters())
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  StepLosses l;
  if (micro_batches == 0) {
    l = training_losses(m.step_modules(), batch, cfg, 3, false, nullptr);
    l.total.backward();
  } else {
    l = accumulate_gradients(m.step_modules(), batch, micro_batches, cfg, 3, false, c10::Device(c10::kCPU), nullptr,
                             nullptr);
  }
  Gradients g;
  for (auto& [name, p] : m.parameters()) g.grads[name] = p.grad().defined() ? p.grad().clone() : at::Tensor();
  for (auto& [name, v] : l.terms) g.terms[name] = v.item<double>();
  g.terms["total"] = l.total.item<double>();
  if (m.self_distillation) {
    g.center_global = m.self_distillation->center_global.clone();
    g.center_patch = m.self_distillation->center_patch.clone();
    m.self_distillation->center_global.copy_(global_before);
    m.self_distillation->center_patch.copy_(patch_before);
  }
  return g;
}

class Accumulation : public ::testing::TestWithParam<Case> {};

// k micro-batches give the whole batch's gradients up to float32 rounding (different matrix shapes sum in
// another order): within 1e-5 of each gradient's largest value. Key biases are held to an absolute bound:
// softmax ignores them, so their gradient is zero in exact arithmetic and only rounding noise here.
TEST_P(Accumulation, GradientsEqualTheWholeBatch) {
  const Case c = GetParam();
  torch::manual_seed(0);
  RunConfig cfg = tiny_run(c.naflex);
  TrainingModel m = build_training_model(cfg, true, 7, c10::Device(c10::kCPU));
  if (cfg.train.self_distillation) {
    m.start_self_distillation(cfg, 7);
    // Non-zero centres, so that using them before updating them matters.
    m.self_distillation->center_global.uniform_(-0.1, 0.1);
    m.self_distillation->center_patch.uniform_(-0.1, 0.1);
  }
  if (c.frozen_vision)
    for (auto& [name, p] : m.parameters())
      if (name.rfind("vision_model.", 0) == 0) p.set_requires_grad(false);
  const Batch batch = SyntheticBatches(cfg, 0, 1).next(5);
  const Gradients whole = gradients(m, cfg, batch, 0);
  const Gradients accumulated = gradients(m, cfg, batch, c.micro_batches);

  ASSERT_EQ(whole.terms.size(), accumulated.terms.size());
  EXPECT_EQ(whole.terms.size(), c.naflex ? 3u : 5u);  // total, sigmoid, locca (+ global_local, masked)
  for (const auto& [name, v] : whole.terms) EXPECT_NEAR(accumulated.terms.at(name), v, 1e-6 * std::abs(v)) << name;
  double largest = 0;
  for (const auto& [name, g] : whole.grads)
    if (g.defined()) largest = std::max(largest, g.abs().max().item<double>());
  int compared = 0;
  for (const auto& [name, g] : whole.grads) {
    const at::Tensor& a = accumulated.grads.at(name);
    if (c.frozen_vision && name.rfind("vision_model.", 0) == 0) {
      EXPECT_FALSE(g.defined() || a.defined()) << name;
      continue;
    }
    ASSERT_TRUE(g.defined() && a.defined()) << name;
    const double scale = g.abs().max().item<double>();
    const double diff = (a - g).abs().max().item<double>();
    const bool key_bias = name.find("k_proj.bias") != std::string::npos;
    if (key_bias)
      EXPECT_LE(diff, 1e-6 * largest) << name;
    else
      EXPECT_LE(diff, 1e-5 * scale) << name << " (largest " << scale << ")";
    ++compared;
  }
  EXPECT_GT(compared, 0);
  if (!c.frozen_vision) EXPECT_EQ(compared, static_cast<int>(m.parameters().size()));
  if (m.self_distillation) {  // one centre update from the whole batch, after the losses used the old centre
    EXPECT_TRUE(at::allclose(accumulated.center_global, whole.center_global, 1e-6, 1e-7));
    EXPECT_TRUE(at::allclose(accumulated.center_patch, whole.center_patch, 1e-6, 1e-7));
    EXPECT_GT((whole.center_global - m.self_distillation->center_global).abs().max().item<double>(), 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(MicroBatches, Accumulation,
                         ::testing::Values(Case{"fixed_2", false, 2}, Case{"fixed_3_uneven", false, 3},
                                           Case{"fixed_8_single_examples", false, 8}, Case{"naflex_4", true, 4},
                                           Case{"frozen_vision_4", false, 4, true}),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// Micro-batches are consecutive slices of every per-example tensor, the local crops image-major.
TEST(SplitBatch, SlicesEveryExampleTensorInOrder) {
  RunConfig cfg = tiny_run(false);
  const Batch b = SyntheticBatches(cfg, 0, 1).next(0);
  const auto parts = split_batch(b, 3);
  ASSERT_EQ(parts.size(), 3u);
  const int64_t sizes[] = {3, 3, 2};
  const int64_t crops = b.local_views.size(0) / 8;
  for (int64_t i = 0, begin = 0; i < 3; begin += sizes[i], ++i) {
    const Batch& p = parts[static_cast<size_t>(i)];
    EXPECT_EQ(p.pixel_values.size(0), sizes[i]);
    EXPECT_TRUE(torch::equal(p.pixel_values, b.pixel_values.narrow(0, begin, sizes[i])));
    EXPECT_TRUE(torch::equal(p.input_ids, b.input_ids.narrow(0, begin, sizes[i])));
    EXPECT_TRUE(torch::equal(p.local_views, b.local_views.narrow(0, begin * crops, sizes[i] * crops)));
    EXPECT_TRUE(torch::equal(p.bool_masked_pos, b.bool_masked_pos.narrow(0, begin, sizes[i])));
    EXPECT_TRUE(torch::equal(p.locca->caption.parallel, b.locca->caption.parallel.narrow(0, begin, sizes[i])));
    EXPECT_TRUE(torch::equal(p.locca->grounded.loss_mask, b.locca->grounded.loss_mask.narrow(0, begin, sizes[i])));
  }
  EXPECT_EQ(split_batch(b, 20).size(), 8u);  // never an empty micro-batch
}

}  // namespace
}  // namespace siglip2
