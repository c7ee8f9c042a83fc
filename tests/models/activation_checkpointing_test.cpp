#include "models/activation_checkpointing.hpp"

#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/siglip2.hpp"
#include "models/text_decoder.hpp"
#include "tiny_model.hpp"

namespace siglip2 {
namespace {

ModelConfig three_blocks(bool naflex) {
  ModelConfig c = testing::tiny_model(naflex, 3);
  c.decoder.num_hidden_layers = 3;
  c.decoder.max_length = 6;
  return c;
}

struct Inputs {
  VisionInput image;
  at::Tensor input_ids, decoder_inputs, parallel;
};

Inputs inputs(const ModelConfig& c) {
  torch::manual_seed(7);
  Inputs in;
  const int64_t b = 3;
  if (c.vision.naflex) {
    // Three images of 4x4, 2x4 and 3x3 patches, padded to 16.
    in.image.pixel_values = torch::rand({b, 16, 4 * 4 * 3}) * 2 - 1;
    in.image.spatial_shapes = torch::tensor({4, 4, 2, 4, 3, 3}, torch::kLong).view({b, 2});
    in.image.pixel_attention_mask = torch::zeros({b, 16}, torch::kLong);
    for (int64_t i = 0; i < b; ++i) {
      const int64_t n = in.image.spatial_shapes[i][0].item<int64_t>() * in.image.spatial_shapes[i][1].item<int64_t>();
      in.image.pixel_attention_mask[i].slice(0, 0, n).fill_(1);
    }
  } else {
    in.image.pixel_values = torch::rand({b, 3, 16, 16}) * 2 - 1;
  }
  in.input_ids = torch::randint(0, c.text.vocab_size, {b, 8});
  in.decoder_inputs = torch::randint(0, c.text.vocab_size, {b, 6});
  in.parallel = torch::tensor({false, true, false});
  return in;
}

// The hook train/grad_sync puts on every parameter: it runs after each accumulation into .grad.
struct CountAccumulations : torch::autograd::PostAccumulateGradHook {
  CountAccumulations(std::map<std::string, int>* counts, std::string name) : counts(counts), name(std::move(name)) {}
  void operator()(const torch::autograd::Variable&) override { ++(*counts)[name]; }
  std::map<std::string, int>* counts;
  std::string name;
};

// Every gradient of towers and decoder after one backward of a loss that reaches all their outputs, and
// how many times each was accumulated (train/grad_sync starts a bucket's all-reduce at the first).
// `bf16`: the forward under CPU bf16 autocast, the losses and backward outside it, as train/step.cpp does.
std::map<std::string, at::Tensor> gradients(Siglip2Model& towers, TextDecoder& decoder, const Inputs& in,
                                            int64_t every_n, std::map<std::string, int>* accumulations, bool bf16) {
  for (auto* e : {towers->vision_model->encoder.get(), towers->text_model->encoder.get()})
    e->checkpointing.every_n = every_n;
  decoder->checkpointing.every_n = every_n;
  towers->zero_grad();
  decoder->zero_grad();
  std::vector<at::Tensor> hooked;
  auto count = [&](const std::string& name, const at::Tensor& p) {
    torch::autograd::impl::set_post_acc_grad_hooks(p, std::make_unique<CountAccumulations>(accumulations, name));
    hooked.push_back(p);
  };
  for (const auto& p : towers->named_parameters()) count(p.key(), p.value());
  for (const auto& p : decoder->named_parameters()) count("text_decoder." + p.key(), p.value());
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCPU, bf16);
  VisionOutput v = towers->encode_image(in.image);
  TextOutput t = towers->encode_text(in.input_ids);
  at::Tensor d = decoder->forward(in.decoder_inputs, in.parallel, v.last_hidden_state, in.image.pixel_attention_mask);
  // The vision tower a second time, on other images (as the self-distillation views are): each parameter
  // then sums gradients from two graphs.
  VisionInput flipped = in.image;
  flipped.pixel_values = in.image.pixel_values.flip(1);
  VisionOutput v2 = towers->encode_image(flipped);
  at::Tensor logits = decoder->output(d);
  at::autocast::set_autocast_enabled(at::kCPU, false);
  at::autocast::clear_cache();
  auto f32 = [](const at::Tensor& t) { return t.to(at::kFloat); };
  at::Tensor loss = (l2_normalize(f32(v.pooler_output)) * l2_normalize(f32(t.pooler_output))).sum() +
                    f32(v2.pooler_output).pow(2).mean() + f32(logits).logsumexp(-1).mean() +
                    f32(t.last_hidden_state).pow(2).mean();
  loss.backward();
  for (const auto& p : hooked) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
  std::map<std::string, at::Tensor> out;
  for (const auto& p : towers->named_parameters())
    if (p.value().grad().defined()) out[p.key()] = p.value().grad().clone();  // not logit_scale, logit_bias
  for (const auto& p : decoder->named_parameters()) out["text_decoder." + p.key()] = p.value().grad().clone();
  return out;
}

// Recomputing every block, or every second one, gives the gradients of storing the activations, bit for
// bit on the CPU: the recomputation runs the same kernels on the same inputs, and every gradient sum is
// taken in the same order. Fixed resolution and NaFlex (masked keys), towers and LocCa decoder, in fp32.
// (Under bf16 autocast they differ at bf16 rounding when a weight serves several forwards of one step:
// autocast casts it once and sums its gradients in bf16, a recomputed block casts again and the sum is in
// float32. AutocastIsReplayed below checks the recomputation's precision.)
TEST(ActivationCheckpointing, GradientsEqualStoringTheActivationsBitForBit) {
  for (auto [naflex, bf16] : {std::pair{false, false}, std::pair{true, false}}) {
    const ModelConfig c = three_blocks(naflex);
    Siglip2Model towers(c);
    TextDecoder decoder(c);
    {
      torch::NoGradGuard g;  // a decoder output that is not zero, so its gradients reach the layers
      decoder->output->weight.normal_(0, 0.1);
    }
    const Inputs in = inputs(c);
    std::map<std::string, int> plain_accumulations;
    const auto plain = gradients(towers, decoder, in, 0, &plain_accumulations, bf16);
    for (int64_t every_n : {1, 2}) {
      std::map<std::string, int> accumulations;
      const auto recomputed = gradients(towers, decoder, in, every_n, &accumulations, bf16);
      // Once per backward each, though the vision tower ran twice: what the bucketed all-reduce needs.
      EXPECT_EQ(accumulations, plain_accumulations);
      for (const auto& [name, n] : accumulations) EXPECT_EQ(n, 1) << name;
      ASSERT_EQ(recomputed.size(), plain.size());
      ASSERT_GT(plain.size(), 100u);
      for (const auto& [name, g] : plain) {
        ASSERT_TRUE(g.defined()) << name;
        EXPECT_GT(g.abs().max().item<double>(), 0.0) << name << " has no gradient";
        EXPECT_TRUE(torch::equal(recomputed.at(name), g))
            << (naflex ? "NaFlex " : "fixed ") << (bf16 ? "bf16 " : "fp32 ") << "every_n " << every_n << ": " << name
            << " differs by " << (recomputed.at(name) - g).abs().max().item<double>();
      }
    }
  }
}

// The recomputation runs under the autocast state of the forward, though backward comes after the
// step's autocast scope has closed (on the CPU, the same thread): bf16 matrix products both times, and the
// gradients of the plain call.
TEST(ActivationCheckpointing, AutocastIsReplayed) {
  const at::Tensor w = torch::randn({6, 6}).requires_grad_(true);
  std::vector<at::ScalarType> seen;
  auto block = [w, &seen](const at::Tensor& x, const at::Tensor&) {
    at::Tensor y = at::matmul(x, w);
    seen.push_back(y.scalar_type());
    return y.to(at::kFloat).tanh();
  };
  const at::Tensor x0 = torch::randn({4, 6});
  auto run = [&](bool checkpoint) {
    seen.clear();
    const at::Tensor x = x0.clone().requires_grad_(true);
    w.mutable_grad() = at::Tensor();
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::Tensor y = checkpoint ? checkpointed(block, {w}, x) : block(x, {});
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
    y.pow(2).sum().backward();
    return std::make_pair(x.grad().clone(), w.grad().clone());
  };
  const auto [gx0, gw0] = run(false);
  const auto [gx1, gw1] = run(true);
  EXPECT_EQ(seen, (std::vector<at::ScalarType>{at::kBFloat16, at::kBFloat16}));  // forward, recomputation
  EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCPU));                     // and put back after it
  EXPECT_TRUE(torch::equal(gx0, gx1));
  EXPECT_TRUE(torch::equal(gw0, gw1));
}

// A block that draws random numbers (dropout) draws the same ones when recomputed, so gradients equal
// the plain call's; and the generator is left where the plain call leaves it.
TEST(ActivationCheckpointing, RandomDrawsAreReplayed) {
  const at::Tensor w = torch::randn({5, 5}).requires_grad_(true);
  auto block = [w](const at::Tensor& x, const at::Tensor&) { return at::dropout(at::matmul(x, w), 0.5, true).tanh(); };
  const at::Tensor x0 = torch::randn({4, 5});

  auto run = [&](bool checkpoint) {
    torch::manual_seed(11);
    const at::Tensor x = x0.clone().requires_grad_(true);
    w.mutable_grad() = at::Tensor();
    at::Tensor y = checkpoint ? checkpointed(block, {w}, x) : block(x, {});
    at::Tensor next = torch::rand({3});  // the generator's position after the forward
    y.sum().backward();
    return std::make_tuple(y.detach(), x.grad().clone(), w.grad().clone(), next);
  };
  const auto [y0, gx0, gw0, n0] = run(false);
  const auto [y1, gx1, gw1, n1] = run(true);
  EXPECT_TRUE(torch::equal(y0, y1));
  EXPECT_TRUE(torch::equal(gx0, gx1));
  EXPECT_TRUE(torch::equal(gw0, gw1));
  EXPECT_TRUE(torch::equal(n0, n1));
  EXPECT_GT((y0 == 0).sum().item<int64_t>(), 0);  // dropout did drop something
}

// Without gradients (evaluation, the EMA teacher) a checkpointed block is the block; an input that needs
// no gradient still trains the block's parameters.
TEST(ActivationCheckpointing, NoGradModeAndInputsWithoutGradients) {
  const at::Tensor w = torch::randn({3, 3}).requires_grad_(true);
  auto block = [w](const at::Tensor& x, const at::Tensor&) { return at::matmul(x, w).relu(); };
  const at::Tensor x = torch::randn({2, 3});
  {
    torch::NoGradGuard g;
    at::Tensor y = checkpointed(block, {w}, x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(torch::equal(y, block(x, {})));
  }
  checkpointed(block, {w}, x).sum().backward();
  const at::Tensor recomputed = w.grad().clone();
  w.mutable_grad() = at::Tensor();
  block(x, {}).sum().backward();
  EXPECT_TRUE(torch::equal(recomputed, w.grad()));
}

}  // namespace
}  // namespace siglip2
