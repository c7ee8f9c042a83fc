// Under torchrun: each rank runs backward on its own data through GradientSync; the gradients must
// equal the mean over ranks of the plain per-rank gradients (computed again without the hooks and
// all-reduced by hand), including a parameter that gets no gradient and one used twice.
#include <torch/torch.h>

#include <cstdio>
#include <iostream>

#include "train/grad_sync.hpp"

using namespace siglip2;

struct Net : torch::nn::Module {
  Net() {
    a = register_module("a", torch::nn::Linear(6, 32));
    b = register_module("b", torch::nn::Linear(32, 32));
    c = register_module("c", torch::nn::Linear(32, 3));
    unused = register_parameter("unused", torch::ones({4}));
  }
  at::Tensor forward(const at::Tensor& x) { return c(torch::tanh(b(torch::tanh(b(a(x)))))); }  // b used twice
  torch::nn::Linear a{nullptr}, b{nullptr}, c{nullptr};
  at::Tensor unused;
};

std::vector<std::pair<std::string, at::Tensor>> named(Net& n) {
  std::vector<std::pair<std::string, at::Tensor>> v;
  for (auto& p : n.named_parameters()) v.emplace_back(p.key(), p.value());
  return v;
}

int main() {
  try {
    auto pg = ProcessGroup::create(dist_env_from_environment(), "gloo", std::chrono::seconds(120));
    torch::manual_seed(0);
    Net synced, plain;
    torch::NoGradGuard g0;
    for (auto& p : plain.named_parameters()) p.value().copy_(synced.named_parameters()[p.key()]);
    torch::manual_seed(100 + pg->rank());
    at::Tensor x = torch::randn({5, 6}), y = torch::randn({5, 3});
    double worst = 0;
    for (int step = 0; step < 3; ++step) {  // several steps: the buckets must reset between steps
      GradientSync* sync = nullptr;
      static std::unique_ptr<GradientSync> holder;
      if (!holder) holder = std::make_unique<GradientSync>(*pg, named(synced), 1024, 256);
      sync = holder.get();
      for (auto& p : synced.parameters()) p.mutable_grad().reset();
      for (auto& p : plain.parameters()) p.mutable_grad().reset();
      {
        torch::AutoGradMode on(true);
        (synced.forward(x * (step + 1)) - y).pow(2).sum().backward();
        (plain.forward(x * (step + 1)) - y).pow(2).sum().backward();
      }
      sync->finish();
      for (auto& p : plain.named_parameters()) {
        at::Tensor want = p.value().grad().defined() ? p.value().grad().clone() : torch::zeros_like(p.value());
        pg->all_reduce_sum(want);
        want /= pg->world_size();
        at::Tensor got = synced.named_parameters()[p.key()].grad();
        worst = std::max(worst, (got - want).abs().max().item<double>());
      }
    }
    if (pg->rank() == 0)
      std::printf("grad sync W=%d over %lld buckets: max difference %.3g: %s\n", pg->world_size(),
                  static_cast<long long>(GradientSync(*pg, named(plain), 1024, 256).buckets()), worst,
                  worst < 1e-6 ? "1 passed, 0 failed" : "0 passed, 1 failed");
    return worst < 1e-6 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
