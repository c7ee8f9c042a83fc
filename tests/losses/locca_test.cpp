#include "losses/locca.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "models/text_decoder.hpp"
#include "test_support/finite_difference.hpp"

namespace siglip2 {
namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.vision.hidden_size = 12;
  c.text.vocab_size = 11;
  c.text.hidden_size = 8;
  c.text.intermediate_size = 16;
  c.text.num_hidden_layers = 3;  // decoder depth: 2
  c.text.num_attention_heads = 2;
  c.decoder.max_length = 6;
  return c;
}

TEST(ChunkedCrossEntropy, HandComputedValue) {
  auto opt = torch::TensorOptions().dtype(torch::kDouble);
  at::Tensor h = torch::tensor({{1.0, 0.0}}, opt);
  at::Tensor w = torch::tensor({{1.0, 0.0}, {0.0, 1.0}, {0.0, 0.0}}, opt);
  at::Tensor b = torch::zeros({3}, opt);
  // logits [1, 0, 0], target 0: log(e + 2) - 1.
  double want = std::log(std::exp(1.0) + 2.0) - 1.0;
  EXPECT_NEAR(chunked_cross_entropy(h, w, b, torch::tensor({0}, torch::kLong), 1).item<double>(), want, 1e-15);
}

TEST(ChunkedCrossEntropy, EqualsUnchunkedValuesAndGradients) {
  torch::manual_seed(0);
  auto opt = torch::TensorOptions().dtype(torch::kDouble);
  at::Tensor h0 = torch::randn({7, 5}, opt), w0 = torch::randn({13, 5}, opt), b0 = torch::randn({13}, opt);
  at::Tensor t = torch::randint(0, 13, {7}, torch::kLong);
  auto run = [&](int64_t chunk) {
    at::Tensor h = h0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
    at::Tensor l = chunk == 0 ? torch::nn::functional::cross_entropy(
                                    at::addmm(b, h, w.t()), t,
                                    torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                              : chunked_cross_entropy(h, w, b, t, chunk);
    l.backward();
    return std::vector<at::Tensor>{l.detach(), h.grad(), w.grad(), b.grad()};
  };
  auto ref = run(0);
  for (int64_t chunk : {1, 3, 7, 100}) {
    auto got = run(chunk);
    for (size_t i = 0; i < ref.size(); ++i)
      EXPECT_TRUE(torch::allclose(got[i], ref[i], 1e-12, 1e-12)) << "chunk " << chunk << " output " << i;
  }
}

TEST(LoccaDecoder, ShapesNamesAndDepth) {
  ModelConfig c = tiny();
  TextDecoder d(c);
  EXPECT_EQ(d->depth, 2);
  EXPECT_EQ(d->token_embedding->weight.size(0), 12);  // vocabulary + the mask token
  auto params = d->named_parameters();
  EXPECT_TRUE(params.contains("layers.1.cross_attn.k_proj.weight"));
  EXPECT_EQ(params["layers.1.cross_attn.k_proj.weight"].sizes(), (std::vector<int64_t>{8, 12}));
  EXPECT_FALSE(params.contains("layers.0.fc1.bias"));  // no biases by default (CapPa)
  EXPECT_EQ(params["output.weight"].abs().max().item<double>(), 0.0);
  c.text.num_hidden_layers = 27;  // So400m: 14
  EXPECT_EQ(decoder_depth(c), 14);
}

TEST(LoccaDecoder, InputsAreShiftedTargetsOrMaskTokens) {
  DecoderTask task{torch::tensor({{5, 6, 7}, {8, 9, 1}}, torch::kLong), torch::ones({2, 3}, torch::kBool),
                   torch::tensor({false, true})};
  at::Tensor in = decoder_inputs(task, 0, 11);
  EXPECT_TRUE(torch::equal(in, torch::tensor({{0, 5, 6}, {11, 11, 11}}, torch::kLong)));
}

TEST(LoccaDecoder, CausalUnlessParallel) {
  torch::manual_seed(1);
  ModelConfig c = tiny();
  TextDecoder d(c);
  at::Tensor image = torch::randn({1, 4, 12});
  at::Tensor a = torch::tensor({{1, 2, 3, 4}}, torch::kLong), b = torch::tensor({{1, 2, 9, 4}}, torch::kLong);
  torch::NoGradGuard g;
  for (bool parallel : {false, true}) {
    at::Tensor p = torch::full({1}, parallel, torch::kBool);
    at::Tensor ha = d->forward(a, p, image), hb = d->forward(b, p, image);
    bool early_same = torch::allclose(ha.narrow(1, 0, 2), hb.narrow(1, 0, 2));
    EXPECT_EQ(early_same, !parallel) << "parallel " << parallel;
    EXPECT_FALSE(torch::allclose(ha.narrow(1, 2, 2), hb.narrow(1, 2, 2)));
  }
  // Padded image tokens are never attended to.
  at::Tensor keep = torch::tensor({{1, 1, 1, 0}}, torch::kBool);
  at::Tensor other = image.clone();
  other[0][3] = torch::randn({12}) * 10;
  EXPECT_TRUE(torch::allclose(d->forward(a, {}, image, keep), d->forward(a, {}, other, keep), 1e-6, 1e-6));
}

TEST(LoccaLoss, CountsOnlyMaskedInPositions) {
  torch::manual_seed(2);
  ModelConfig c = tiny();
  TextDecoder d(c);
  {
    torch::NoGradGuard g;
    d->output->weight.normal_();  // zero-initialised otherwise: every token equally likely
  }
  at::Tensor image = torch::randn({2, 4, 12});
  at::Tensor targets = torch::randint(0, 11, {2, 5}, torch::kLong);
  at::Tensor mask = torch::tensor({{0, 1, 1, 1, 0}, {0, 0, 1, 1, 1}}, torch::kBool);
  LoccaLossConfig cfg;
  cfg.chunk_tokens = 2;
  at::Tensor l = locca_loss(*d, image, {}, {{targets, mask, {}}}, 0, cfg);
  // Changing a target at an uncounted position changes the inputs of later positions only through
  // teacher forcing; change the last, uncounted, position of example 0: nothing it feeds is counted.
  at::Tensor t2 = targets.clone();
  t2[0][4] = (t2[0][4].item<int64_t>() + 1) % 11;
  EXPECT_NEAR(locca_loss(*d, image, {}, {{t2, mask, {}}}, 0, cfg).item<double>(), l.item<double>(), 1e-7);
  // A counted position does change it.
  at::Tensor t3 = targets.clone();
  t3[1][4] = (t3[1][4].item<int64_t>() + 1) % 11;
  EXPECT_GT(std::abs(locca_loss(*d, image, {}, {{t3, mask, {}}}, 0, cfg).item<double>() - l.item<double>()), 1e-6);
  // Zero output weights: every token has probability 1/V, so the loss is log V exactly.
  TextDecoder zero(c);
  EXPECT_NEAR(locca_loss(*zero, image, {}, {{targets, mask, {}}}, 0, cfg).item<double>(), std::log(11.0), 1e-6);
}

// Finite differences in double precision through the whole decoder and the chunked loss.
TEST(LoccaLoss, GradientsMatchFiniteDifferences) {
  torch::manual_seed(3);
  ModelConfig c = tiny();
  TextDecoder d(c);
  d->to(torch::kDouble);
  {
    torch::NoGradGuard g;
    d->output->weight.normal_(0.0, 0.5);
  }
  at::Tensor image = torch::randn({2, 3, 12}, torch::kDouble);
  DecoderTask cap{torch::randint(0, 11, {2, 4}, torch::kLong), torch::ones({2, 4}, torch::kBool),
                  torch::tensor({true, false})};
  DecoderTask ref{
      torch::randint(0, 11, {2, 4}, torch::kLong), torch::tensor({{0, 1, 1, 1}, {0, 0, 1, 1}}, torch::kBool), {}};
  LoccaLossConfig cfg;
  cfg.chunk_tokens = 3;
  auto loss = [&] { return locca_loss(*d, image, {}, {cap, ref}, 0, cfg); };
  image.requires_grad_();
  loss().backward();
  std::vector<std::pair<std::string, at::Tensor>> checks = {
      {"image", image},
      {"output.weight", d->output->weight},
      {"layers.0.cross_attn.v_proj.weight", d->named_parameters()["layers.0.cross_attn.v_proj.weight"]},
      {"token_embedding.weight", d->token_embedding->weight}};
  testing::expect_gradients_match_finite_differences([&] { return loss().item<double>(); }, checks, 12, 1e-7);
}

}  // namespace
}  // namespace siglip2
