#include "train/optimizer.hpp"
#include "train/tensorboard.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace siglip2 {
namespace {

TEST(Schedule, WarmupThenCosineRsqrtConstant) {
  ScheduleConfig s;
  s.warmup_steps = 10;
  s.type = "cosine";
  EXPECT_DOUBLE_EQ(schedule_multiplier(s, 0, 110), 0.0);
  EXPECT_DOUBLE_EQ(schedule_multiplier(s, 5, 110), 0.5);
  EXPECT_DOUBLE_EQ(schedule_multiplier(s, 10, 110), 1.0);
  EXPECT_NEAR(schedule_multiplier(s, 60, 110), 0.5, 1e-12);  // half way through the decay
  EXPECT_NEAR(schedule_multiplier(s, 110, 110), 0.0, 1e-12);
  s.end_fraction = 0.1;
  EXPECT_NEAR(schedule_multiplier(s, 110, 110), 0.1, 1e-12);
  s.type = "rsqrt";
  EXPECT_DOUBLE_EQ(schedule_multiplier(s, 10, 110), 1.0);
  EXPECT_NEAR(schedule_multiplier(s, 40, 110), 0.5, 1e-12);
  s.type = "constant";
  EXPECT_DOUBLE_EQ(schedule_multiplier(s, 100, 110), 1.0);
  EXPECT_DOUBLE_EQ(schedule_multiplier(s, 3, 110), 0.3);
}

TEST(Schedule, StretchedBranchFollowsTheRunThenSlowsDown) {
  // A run of T = 1000 steps; the NaFlex branch stretches its last 10% by 3.75: it ends at
  // 900 + 3.75 * 100 = 1275 steps, and branch step 900 + 3.75 k is run step 900 + k.
  ScheduleConfig run;
  run.warmup_steps = 100;
  ScheduleConfig branch = run;
  branch.stretch_from = 0.9;
  branch.stretch_factor = 3.75;
  EXPECT_NEAR(schedule_multiplier(branch, 50, 1275), schedule_multiplier(run, 50, 1000), 1e-12);
  EXPECT_NEAR(schedule_multiplier(branch, 900, 1275), schedule_multiplier(run, 900, 1000), 1e-12);
  EXPECT_NEAR(schedule_multiplier(branch, 1050, 1275), schedule_multiplier(run, 940, 1000), 1e-12);
  EXPECT_NEAR(schedule_multiplier(branch, 1275, 1275), 0.0, 1e-12);
  // By hand: run step 940 of cosine after 100 warm-up steps: progress 840/900.
  EXPECT_NEAR(schedule_multiplier(branch, 1050, 1275), 0.5 * (1 + std::cos(M_PI * 840.0 / 900.0)), 1e-12);
  EXPECT_NEAR(schedule_multiplier(branch, 1200, 1275), schedule_multiplier(run, 980, 1000), 1e-12);
  EXPECT_GT(schedule_multiplier(branch, 1200, 1275), 0.0);
}

TEST(WeightDecayMask, KernelsOnly) {
  at::Tensor m = torch::zeros({4, 4}), v = torch::zeros({4});
  EXPECT_TRUE(decays("vision_model.encoder.layers.0.self_attn.q_proj.weight", m));
  EXPECT_TRUE(decays("vision_model.embeddings.patch_embedding.weight", torch::zeros({4, 3, 2, 2})));
  EXPECT_TRUE(decays("vision_model.head.attention.in_proj_weight", m));
  EXPECT_TRUE(decays("text_model.head.weight", m));
  EXPECT_FALSE(decays("text_model.head.bias", v));
  EXPECT_FALSE(decays("vision_model.post_layernorm.weight", v));
  EXPECT_FALSE(decays("text_model.embeddings.token_embedding.weight", m));
  EXPECT_FALSE(decays("vision_model.embeddings.position_embedding.weight", m));
  EXPECT_FALSE(decays("vision_model.head.probe", torch::zeros({1, 1, 4})));
  EXPECT_FALSE(decays("logit_scale", torch::zeros({1})));
}

struct Fixture {
  NamedTensors ours, theirs_decay, theirs_plain;
  std::vector<at::Tensor> grads;
};

// The same parameters twice: ours, and a copy for torch's AdamW, which is big_vision's update when
// its lr is lr·s and its weight decay wd/lr (decoupled decay not multiplied by the base lr).
Fixture make() {
  torch::manual_seed(0);
  Fixture f;
  auto opt = torch::TensorOptions().dtype(torch::kDouble);
  std::vector<std::pair<std::string, at::Tensor>> init = {
      {"layer.weight", torch::randn({3, 4}, opt)},
      {"layer.bias", torch::randn({3}, opt)},
      {"text_model.embeddings.token_embedding.weight", torch::randn({5, 2}, opt)}};
  for (auto& [n, t] : init) {
    f.ours.emplace_back(n, t.clone().requires_grad_());
    (n == "layer.weight" ? f.theirs_decay : f.theirs_plain).emplace_back(n, t.clone().requires_grad_());
  }
  return f;
}

TEST(AdamOptimizer, EqualsTorchAdamWWithBigVisionWeightDecay) {
  Fixture f = make();
  OptimizerConfig c;
  c.lr = 0.01;
  c.weight_decay = 0.5;
  c.beta2 = 0.95;
  c.grad_clip_norm = 0;
  const double s = 0.7;
  AdamOptimizer ours(c, f.ours);
  auto adamw = [&](NamedTensors& ps, double wd) {
    std::vector<at::Tensor> v;
    for (auto& p : ps) v.push_back(p.second);
    return torch::optim::AdamW(
        v, torch::optim::AdamWOptions(c.lr * s).betas({c.beta1, c.beta2}).eps(c.eps).weight_decay(wd));
  };
  auto decayed = adamw(f.theirs_decay, c.weight_decay / c.lr);
  auto plain = adamw(f.theirs_plain, 0.0);
  for (int step = 0; step < 5; ++step) {
    for (size_t i = 0; i < f.ours.size(); ++i) {
      at::Tensor g = torch::randn_like(f.ours[i].second);
      f.ours[i].second.mutable_grad() = g.clone();
      auto& other = i == 0 ? f.theirs_decay[0].second : f.theirs_plain[i - 1].second;
      other.mutable_grad() = g.clone();
    }
    ours.step(s);
    decayed.step();
    plain.step();
  }
  EXPECT_TRUE(torch::allclose(f.ours[0].second, f.theirs_decay[0].second, 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(f.ours[1].second, f.theirs_plain[0].second, 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(f.ours[2].second, f.theirs_plain[1].second, 1e-12, 1e-12));
}

TEST(AdamOptimizer, ClipsByGlobalNormAndFreezes) {
  auto opt = torch::TensorOptions().dtype(torch::kDouble);
  at::Tensor a = torch::zeros({2}, opt).requires_grad_(), b = torch::zeros({2}, opt).requires_grad_();
  OptimizerConfig c;
  c.grad_clip_norm = 1.0;
  c.weight_decay = 0;
  c.frozen = {"^frozen\\."};
  AdamOptimizer o(c, {{"a", a}, {"frozen.b", b}});
  EXPECT_FALSE(b.requires_grad());
  a.mutable_grad() = torch::tensor({3.0, 4.0}, opt);
  OptimizerStepStats st = o.step(1.0);
  EXPECT_DOUBLE_EQ(st.grad_norm, 5.0);
  EXPECT_DOUBLE_EQ(st.clip_scale, 0.2);
  // First Adam step: update = g/|g| elementwise (bias-corrected, eps tiny) whatever the scale: -lr·sign.
  EXPECT_TRUE(torch::allclose(a, torch::full({2}, -c.lr, opt), 1e-9, 1e-9));
  EXPECT_TRUE(torch::equal(b, torch::zeros({2}, opt)));
  auto state = o.state();
  EXPECT_EQ(state.size(), 3u);  // step + two moments of the one trainable parameter
  // First moment after one step: (1 - b1) * clipped gradient.
  EXPECT_TRUE(torch::allclose(state[1].second, 0.1 * torch::tensor({0.6, 0.8}, opt), 1e-12, 1e-12));
}

TEST(AdamOptimizer, StateRoundTripContinuesIdentically) {
  Fixture f1 = make(), f2 = make();
  OptimizerConfig c;
  AdamOptimizer a(c, f1.ours), b(c, f2.ours);
  auto grads = [](NamedTensors& ps, int seed) {
    torch::manual_seed(seed);
    for (auto& p : ps) p.second.mutable_grad() = torch::randn_like(p.second);
  };
  grads(f1.ours, 1);
  a.step(0.5);
  grads(f2.ours, 1);
  b.step(0.5);
  std::map<std::string, at::Tensor> saved;
  for (auto& [n, t] : a.state()) saved[n] = t.clone();
  // A third optimizer over b's parameters, restored from a's state: the next steps agree with a.
  AdamOptimizer restored(c, f2.ours);
  restored.load_state(saved);
  EXPECT_EQ(restored.steps(), 1);
  for (int s = 2; s < 4; ++s) {
    grads(f1.ours, s);
    a.step(0.9);
    grads(f2.ours, s);
    restored.step(0.9);
  }
  for (size_t i = 0; i < f1.ours.size(); ++i) EXPECT_TRUE(torch::equal(f1.ours[i].second, f2.ours[i].second));
}

TEST(TensorBoard, Crc32cCheckValue) {
  // The CRC-32C (Castagnoli) check value of "123456789" (RFC 3720, B.4).
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
}

}  // namespace
}  // namespace siglip2
