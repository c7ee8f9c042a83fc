// Drives the sigmoid loss in real multi-process runs (started by torchrun):
//   check:   every rank computes its share of a global batch with both exchanges and compares loss and
//            gradients with the single-process loss over the concatenated batch (double precision).
//   memory:  peak resident memory of forward+backward per rank at a fixed local batch.
//   openclip IN OUT: single-process loss and gradients for inputs written by the open_clip parity test.
#include <sys/resource.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "common/safetensors.hpp"
#include "losses/sigmoid.hpp"
#include "train/distributed.hpp"

using namespace siglip2;

namespace {

at::Tensor normalized(at::Tensor t) {
  return torch::nn::functional::normalize(t, torch::nn::functional::NormalizeFuncOptions().dim(1));
}

struct Grads {
  at::Tensor loss, gx, gy, gt, gb;
};

Grads run(const at::Tensor& x0, const at::Tensor& y0, const at::Tensor& t0, const at::Tensor& b0, Collectives* comm,
          const std::string& exchange) {
  at::Tensor x = x0.clone().requires_grad_(), y = y0.clone().requires_grad_();
  at::Tensor t = t0.clone().requires_grad_(), b = b0.clone().requires_grad_();
  SigmoidLossConfig c;
  c.exchange = exchange;
  at::Tensor l = sigmoid_loss(x, y, t, b, comm, c);
  l.backward();
  return {l.detach(), x.grad(), y.grad(), t.grad(), b.grad()};
}

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

int check(ProcessGroup& pg) {
  const int w = pg.world_size(), r = pg.rank();
  const int64_t b = 3, e = 8;
  torch::manual_seed(1234);  // the same global batch on every rank
  auto opt = torch::TensorOptions().dtype(torch::kDouble);
  at::Tensor gx = normalized(torch::randn({b * w, e}, opt)), gy = normalized(torch::randn({b * w, e}, opt));
  at::Tensor t = torch::full({1}, std::log(10.0), opt), bias = torch::full({1}, -3.0, opt);
  Grads ref = run(gx, gy, t, bias, nullptr, "gather");
  double worst = 0;
  for (const char* ex : {"ring", "gather"}) {
    Grads d = run(gx.narrow(0, r * b, b), gy.narrow(0, r * b, b), t, bias, &pg, ex);
    // Mean over ranks of the loss and of the scale/bias gradients; embedding gradients carry the
    // data-parallel factor W (gradients are averaged over ranks).
    at::Tensor sums = at::cat({d.loss.reshape({1}), d.gt, d.gb});
    pg.all_reduce_sum(sums);
    sums /= w;
    double errs[] = {rel_err(sums.narrow(0, 0, 1), ref.loss.reshape({1})), rel_err(sums.narrow(0, 1, 1), ref.gt),
                     rel_err(sums.narrow(0, 2, 1), ref.gb), rel_err(d.gx / w, ref.gx.narrow(0, r * b, b)),
                     rel_err(d.gy / w, ref.gy.narrow(0, r * b, b))};
    for (double x : errs) worst = std::max(worst, x);
    if (r == 0)
      std::printf("world %d %-6s loss %.12f (single %.12f) | rel err loss %.1e dt %.1e db %.1e dx %.1e dy %.1e\n", w,
                  ex, sums[0].item<double>(), ref.loss.item<double>(), errs[0], errs[1], errs[2], errs[3], errs[4]);
  }
  at::Tensor all_worst = torch::full({1}, worst, opt);
  pg.all_reduce_sum(all_worst);
  bool ok = all_worst.item<double>() <= 1e-6 * w;
  if (r == 0)
    std::printf("sigmoid loss W=%d vs single process: %s\n", w, ok ? "1 passed, 0 failed" : "0 passed, 1 failed");
  return ok ? 0 : 1;
}

long current_rss_kb() {
  long pages = 0, resident = 0;
  std::ifstream("/proc/self/statm") >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

long max_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

int memory(ProcessGroup& pg, const std::string& exchange, int64_t b, int64_t e) {
  torch::manual_seed(pg.rank());
  at::Tensor x = normalized(torch::randn({b, e})), y = normalized(torch::randn({b, e}));
  at::Tensor t = torch::full({1}, std::log(10.0)), bias = torch::full({1}, -10.0);
  long before = current_rss_kb();  // inputs allocated, nothing computed yet
  for (int i = 0; i < 3; ++i) run(x, y, t, bias, &pg, exchange);
  at::Tensor rss =
      torch::tensor({static_cast<double>(max_rss_kb() - before), static_cast<double>(max_rss_kb())}, torch::kDouble);
  pg.all_reduce_sum(rss);
  rss /= pg.world_size() * 1024.0;
  if (pg.rank() == 0)
    std::printf(
        "memory exchange %s world %d local batch %lld dim %lld: loss forward+backward adds %.1f MiB per rank "
        "(peak RSS %.1f MiB)\n",
        exchange.c_str(), pg.world_size(), static_cast<long long>(b), static_cast<long long>(e), rss[0].item<double>(),
        rss[1].item<double>());
  return 0;
}

int openclip(const std::string& in, const std::string& out) {
  auto f = safetensors::File::open(in);
  Grads g = run(f.get("image_features"), f.get("text_features"), f.get("logit_scale_log"), f.get("logit_bias"), nullptr,
                "ring");
  safetensors::save(out, {{"loss", g.loss.reshape({1})},
                          {"grad_image", g.gx},
                          {"grad_text", g.gy},
                          {"grad_scale_log", g.gt},
                          {"grad_bias", g.gb}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "check";
  try {
    if (mode == "openclip" && argc == 4) return openclip(argv[2], argv[3]);
    auto pg = ProcessGroup::create(dist_env_from_environment(), "gloo", std::chrono::seconds(120));
    if (mode == "check") return check(*pg);
    if (mode == "memory" && argc == 5) return memory(*pg, argv[2], std::stoll(argv[3]), std::stoll(argv[4]));
    std::cerr << "usage: sigmoid_dist_tool check | memory ring|gather BATCH DIM | openclip IN OUT\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
