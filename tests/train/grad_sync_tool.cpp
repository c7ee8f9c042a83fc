// Under torchrun: each rank runs backward on its own data through GradientSync; the gradients must
// equal the mean over ranks of the plain per-rank gradients (computed again without the hooks and
// all-reduced by hand), including a parameter that gets no gradient and one used twice. Sharded
// (ZeRO-1, reduce-scatter): the elements of this rank's slices hold that mean, and the slices of all
// ranks cover every element once.
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
    double worst = 0;
    torch::manual_seed(0);
    Net synced, plain, sharded;
    torch::NoGradGuard g0;
    for (auto& p : plain.named_parameters()) p.value().copy_(synced.named_parameters()[p.key()]);
    for (auto& p : sharded.named_parameters()) p.value().copy_(synced.named_parameters()[p.key()]);
    std::vector<at::Tensor> sharded_params;
    for (auto& p : sharded.parameters()) sharded_params.push_back(p);
    // Two groups, as after the self-distillation heads are added; buckets padded to the world size.
    GradientSync sharded_sync(*pg, sharded_params, {0, 2}, /*shard=*/true, 1024, 256);
    const auto slices = shard_slices(sharded_params, sharded_sync.layout(), pg->rank(), pg->world_size());
    for (size_t i = 0; i < slices.size(); ++i) {  // every element in exactly one rank's slice
      at::Tensor owners = torch::zeros({sharded_params[i].numel()});
      if (slices[i].length > 0) owners.narrow(0, slices[i].start, slices[i].length).fill_(1.0);
      pg->all_reduce_sum(owners);
      if (!owners.eq(1.0).all().item<bool>()) worst = 1.0;
    }
    torch::manual_seed(100 + pg->rank());
    at::Tensor x = torch::randn({5, 6}), y = torch::randn({5, 3});
    for (int step = 0; step < 3; ++step) {  // several steps: the buckets must reset between steps
      GradientSync* sync = nullptr;
      static std::unique_ptr<GradientSync> holder;
      if (!holder) holder = std::make_unique<GradientSync>(*pg, named(synced), 1024, 256);
      sync = holder.get();
      for (auto& p : synced.parameters()) p.mutable_grad().reset();
      for (auto& p : plain.parameters()) p.mutable_grad().reset();
      for (auto& p : sharded.parameters()) p.mutable_grad().reset();
      {
        torch::AutoGradMode on(true);
        (synced.forward(x * (step + 1)) - y).pow(2).sum().backward();
        (plain.forward(x * (step + 1)) - y).pow(2).sum().backward();
        (sharded.forward(x * (step + 1)) - y).pow(2).sum().backward();
      }
      sync->finish();
      sharded_sync.finish();
      for (auto& p : plain.named_parameters()) {
        at::Tensor want = p.value().grad().defined() ? p.value().grad().clone() : torch::zeros_like(p.value());
        pg->all_reduce_sum(want);
        want /= pg->world_size();
        at::Tensor got = synced.named_parameters()[p.key()].grad();
        worst = std::max(worst, (got - want).abs().max().item<double>());
        const at::Tensor mine = sharded.named_parameters()[p.key()];
        size_t index = 0;
        while (!sharded_params[index].is_same(mine)) ++index;
        const ShardSlice s = slices[index];
        if (s.length > 0)
          worst = std::max(
              worst, (mine.grad().view(-1).narrow(0, s.start, s.length) - want.reshape(-1).narrow(0, s.start, s.length))
                         .abs()
                         .max()
                         .item<double>());
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
