#pragma once
// Checks hand-written or autograd backward passes against central differences (double precision).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace siglip2::testing {

// `tensors` already hold .grad() from one backward of `loss`. For each, up to `max_elements` elements
// (all of them when the tensor is that small; else a spread, 7919 being prime) are perturbed by ±h
// and the difference quotient of `loss` must equal the gradient within `tol`.
inline void expect_gradients_match_finite_differences(const std::function<double()>& loss,
                                                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                                      int64_t max_elements, double tol, double h = 1e-6) {
  torch::NoGradGuard no_grad;
  for (const auto& [name, p] : tensors) {
    ASSERT_TRUE(p.grad().defined()) << name << " has no gradient";
    at::Tensor flat = p.view(-1), grad = p.grad().view(-1);
    const int64_t n = flat.numel();
    for (int64_t i = 0; i < std::min(n, max_elements); ++i) {
      int64_t k = max_elements >= n ? i : (i * 7919) % n;
      double old = flat[k].item<double>();
      flat[k] = old + h;
      double up = loss();
      flat[k] = old - h;
      double down = loss();
      flat[k] = old;
      EXPECT_NEAR(grad[k].item<double>(), (up - down) / (2 * h), tol) << name << "[" << k << "]";
    }
  }
}

}  // namespace siglip2::testing
