// `siglip2 comm-check`: joins the process group the launcher describes, runs every collective the
// trainer uses on known values, checks the results, and measures all-reduce bandwidth.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <iostream>
#include <string>

#include "cli/commands.hpp"
#include "cli/validators.hpp"
#include "common/error.hpp"
#include "common/logging.hpp"
#include "train/distributed.hpp"

namespace siglip2::cli {
namespace {

struct CommCheckArgs {
  std::string backend = "auto";
  int timeout_s = 120;
  double size_mb = 8.0;
  int iters = 10;
};

void expect_equal(const at::Tensor& got, const at::Tensor& want, const std::string& what, int rank) {
  if (!got.sizes().equals(want.sizes()) || !at::equal(got.cpu(), want.cpu())) {
    throw Error("comm-check: " + what + " on rank " + std::to_string(rank) + " returned wrong values");
  }
}

void run_comm_check(const CommCheckArgs& a) {
  DistEnv env = dist_env_from_environment();
  std::string backend = a.backend;
  if (backend == "auto") backend = torch::cuda::is_available() && nccl_available() ? "nccl" : "gloo";
  torch::Device device = backend == "nccl" ? torch::Device(torch::kCUDA, env.local_rank) : torch::Device(torch::kCPU);

  auto t0 = std::chrono::steady_clock::now();
  auto pg = ProcessGroup::create(env, backend, std::chrono::seconds(a.timeout_s));
  double join_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int r = pg->rank();
  const int w = pg->world_size();
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);

  at::Tensor sum = torch::full({1024}, static_cast<float>(r + 1), f32);
  pg->all_reduce_sum(sum);
  expect_equal(sum, torch::full({1024}, w * (w + 1) / 2.0f, f32), "all_reduce", r);

  at::Tensor gathered = pg->all_gather(torch::full({2, 3}, static_cast<float>(r), f32));
  at::Tensor want_gather = torch::arange(w, f32).repeat_interleave(2).unsqueeze(1).expand({2 * w, 3});
  expect_equal(gathered, want_gather, "all_gather", r);

  at::Tensor scattered = pg->reduce_scatter_sum(torch::arange(4 * w, f32) + r);
  at::Tensor want_scatter = w * (torch::arange(4, f32) + 4 * r) + w * (w - 1) / 2.0f;
  expect_equal(scattered, want_scatter, "reduce_scatter", r);

  const int root = w - 1;
  at::Tensor b = torch::full({5}, r == root ? 42.0f : -1.0f, f32);
  pg->broadcast(b, root);
  expect_equal(b, torch::full({5}, 42.0f, f32), "broadcast", r);

  at::Tensor ring = pg->ring_exchange(torch::full({7}, static_cast<float>(r), f32));
  expect_equal(ring, torch::full({7}, static_cast<float>((r - 1 + w) % w), f32), "ring send/recv", r);
  pg->barrier();

  const int64_t numel = std::max<int64_t>(1, static_cast<int64_t>(a.size_mb * 1024 * 1024 / 4));
  at::Tensor big = torch::ones({numel}, f32);
  pg->all_reduce_sum(big);  // warm-up
  if (device.is_cuda()) torch::cuda::synchronize();
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < a.iters; ++i) pg->all_reduce_sum(big);
  if (device.is_cuda()) torch::cuda::synchronize();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() / a.iters;
  double bytes = static_cast<double>(numel) * 4;
  double algbw = bytes / secs / 1e9;
  double busbw = algbw * 2.0 * (w - 1) / w;
  pg->barrier();
  if (r == 0) {
    std::cout << "comm-check: ok | backend " << backend << " | world " << w << " | launcher " << env.launcher
              << " | rendezvous " << join_s << " s | all_reduce " << a.size_mb << " MB: " << secs * 1e3 << " ms, algbw "
              << algbw << " GB/s, busbw " << busbw << " GB/s" << std::endl;
  }
}

}  // namespace

void add_comm_check_command(CLI::App& app) {
  auto args = std::make_shared<CommCheckArgs>();
  auto* cmd = app.add_subcommand(
      "comm-check",
      "check the process group the launcher describes (torchrun, SLURM or none): every collective on known "
      "values, then all-reduce bandwidth. Run it under the same launcher as training.");
  cmd->add_option("--backend", args->backend, "auto (nccl on CUDA, else gloo), gloo or nccl")
      ->check(CLI::IsMember({"auto", "gloo", "nccl"}));
  cmd->add_option("--timeout-s", args->timeout_s, "seconds before rendezvous or a collective gives up")
      ->check(positive);
  cmd->add_option("--size-mb", args->size_mb, "all-reduce size for the bandwidth measurement")
      ->check(positive);
  cmd->add_option("--iters", args->iters, "all-reduce repetitions timed")->check(positive);
  cmd->callback([args] { run_comm_check(*args); });
}

}  // namespace siglip2::cli
