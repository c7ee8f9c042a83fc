#include "losses/sigmoid.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "test_support/finite_difference.hpp"

namespace siglip2 {
namespace {

at::Tensor naive_loss(const at::Tensor& x, const at::Tensor& y, const at::Tensor& log_t, const at::Tensor& b) {
  at::Tensor logits = at::mm(x, y.t()) * log_t.exp() + b;
  at::Tensor z = 2 * at::eye(x.size(0), x.options()) - 1;
  return -at::log_sigmoid(z * logits).sum() / x.size(0);
}

TEST(SigmoidLoss, HandComputedValue) {
  // Orthonormal pairs, t = 2, b = -1: diagonal logits 1, off-diagonal -1, every term is softplus(-1).
  auto opt = torch::TensorOptions().dtype(torch::kDouble);
  at::Tensor x = torch::eye(2, opt), y = torch::eye(2, opt);
  at::Tensor log_t = torch::full({1}, std::log(2.0), opt), b = torch::full({1}, -1.0, opt);
  const double want = 4 * std::log1p(std::exp(-1.0)) / 2;  // 0.6265233750364457
  for (const char* ex : {"ring", "gather"}) {
    SigmoidLossConfig c;
    c.exchange = ex;
    EXPECT_NEAR(sigmoid_loss(x, y, log_t, b, nullptr, c).item<double>(), want, 1e-15) << ex;
  }
}

TEST(SigmoidLoss, RingAndGatherEqualTheFormulaWithGradients) {
  torch::manual_seed(3);
  auto opt = torch::TensorOptions().dtype(torch::kDouble);
  at::Tensor x0 =
      torch::nn::functional::normalize(torch::randn({6, 5}, opt), torch::nn::functional::NormalizeFuncOptions().dim(1));
  at::Tensor y0 =
      torch::nn::functional::normalize(torch::randn({6, 5}, opt), torch::nn::functional::NormalizeFuncOptions().dim(1));
  at::Tensor t0 = torch::full({1}, 1.7, opt), b0 = torch::full({1}, -2.5, opt);
  auto run = [&](const std::string& kind) {
    at::Tensor x = x0.clone().requires_grad_(), y = y0.clone().requires_grad_();
    at::Tensor t = t0.clone().requires_grad_(), b = b0.clone().requires_grad_();
    SigmoidLossConfig c;
    c.exchange = kind == "naive" ? "gather" : kind;
    at::Tensor l = kind == "naive" ? naive_loss(x, y, t, b) : sigmoid_loss(x, y, t, b, nullptr, c);
    l.backward();
    return std::vector<at::Tensor>{l.detach(), x.grad(), y.grad(), t.grad(), b.grad()};
  };
  auto ref = run("naive");
  for (const char* kind : {"ring", "gather"}) {
    auto got = run(kind);
    for (size_t i = 0; i < ref.size(); ++i)
      EXPECT_TRUE(torch::allclose(got[i], ref[i], 1e-12, 1e-12)) << kind << " output " << i;
  }
}

// Central differences in double precision against the ring loss's hand-written backward.
TEST(SigmoidLoss, RingBackwardMatchesFiniteDifferences) {
  torch::manual_seed(4);
  auto opt = torch::TensorOptions().dtype(torch::kDouble);
  std::vector<at::Tensor> in = {torch::randn({4, 3}, opt) * 0.5, torch::randn({4, 3}, opt) * 0.5,
                                torch::full({1}, 0.8, opt), torch::full({1}, -1.2, opt)};
  std::vector<std::pair<std::string, at::Tensor>> leaves;
  for (size_t k = 0; k < in.size(); ++k) leaves.emplace_back("input " + std::to_string(k), in[k].requires_grad_());
  auto f = [&] { return sigmoid_loss(in[0], in[1], in[2], in[3], nullptr); };
  f().backward();
  testing::expect_gradients_match_finite_differences([&] { return f().item<double>(); }, leaves, 1000, 1e-8);
}

TEST(SigmoidLoss, MismatchedShapesAreRejected) {
  EXPECT_THROW(sigmoid_loss(torch::zeros({3, 4}), torch::zeros({2, 4}), torch::zeros({1}), torch::zeros({1}), nullptr),
               c10::Error);
}

}  // namespace
}  // namespace siglip2
