#include "train/bench.hpp"

#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <memory>

#include "common/cpu_memory.hpp"
#include "common/error.hpp"
#include "models/siglip2.hpp"
#include "siglip2/build_config.hpp"
#include "train/acid_stage.hpp"
#include "train/batch.hpp"
#include "train/distributed.hpp"
#include "train/grad_sync.hpp"
#include "train/model.hpp"
#include "train/optimizer.hpp"
#include "train/step.hpp"
#if SIGLIP2_CONFIG_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace siglip2 {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

constexpr double kMiB = 1024.0 * 1024.0;

// Live tensor bytes on the device: what the CUDA caching allocator has handed out, or the counted CPU tensors.
int64_t live_tensor_bytes(const c10::Device& device) {
#if SIGLIP2_CONFIG_CUDA
  if (device.is_cuda()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].current;
  }
#endif
  (void)device;
  return cpu_memory::live_bytes();
}

void reset_peak_tensor_memory(const c10::Device& device) {
#if SIGLIP2_CONFIG_CUDA
  if (device.is_cuda()) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
    return;
  }
#endif
  (void)device;
  cpu_memory::reset_peak();
}

double peak_tensor_mib(const c10::Device& device) {
#if SIGLIP2_CONFIG_CUDA
  if (device.is_cuda()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return static_cast<double>(
               stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak) /
           kMiB;
  }
#endif
  (void)device;
  return static_cast<double>(cpu_memory::peak_bytes()) / kMiB;
}

double cpu_peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

}  // namespace

double device_peak_flops(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H100") && has("PCIe")) return 756e12;
  if (has("H100") || has("H200") || has("GH200")) return 989.4e12;
  if (has("A100")) return 312e12;
  return 0;
}

std::string cuda_device_name(int index) {
#if SIGLIP2_CONFIG_CUDA
  return at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(index))->name;
#else
  (void)index;
  return "cpu";
#endif
}

BenchResult run_training_benchmark(const RunConfig& base, const BenchOptions& o) {
  RunConfig cfg = base;
  const DistEnv env = dist_env_from_environment();
  const auto world = static_cast<int64_t>(env.world_size);
  cfg.train.batch_size = o.batch * world;  // --batch is per rank
  cfg.train.shard_optimizer = o.shard_optimizer;
  if (std::string why = cfg.train.check_world_size(world); !why.empty())
    throw UsageError("--batch " + std::to_string(o.batch) + " and --accumulation-steps: " + why);
  cfg.train.total_steps = o.warmup + o.steps;
  cfg.train.locca = o.locca;
  cfg.train.self_distillation = o.self_distillation;
  if (o.acid) {  // (run_bench has refused other objectives and NaFlex towers with --objectives' words)
    cfg.acid.reference = "(benchmark)";
    if (std::string why = cfg.check(); !why.empty()) throw UsageError(why);
    if (std::string why = cfg.check_world_size(world); !why.empty()) throw UsageError(why);
  }
  const bool cuda = o.device == "cuda";
  if (cuda && !torch::cuda::is_available()) throw UsageError("--device cuda: CUDA is not available");
  const c10::Device device = cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  const bool bf16 = o.precision == "bf16";

  // Before any model: a rank that cannot join says so at once.
  std::shared_ptr<ProcessGroup> pg;
  if (world > 1) pg = training_process_group(env, cfg.dist.backend, cfg.dist.timeout_s, device);

  BenchResult r;
  r.rank = env.rank;
  r.world_size = env.world_size;
  r.batch = o.batch;
  r.steps = o.steps;
  r.train_flop_per_pair = 3 * forward_flops(cfg.model).pair();
  r.device_name = "cpu";
#if SIGLIP2_CONFIG_CUDA
  if (cuda) r.device_name = at::cuda::getCurrentDeviceProperties()->name;
#endif
  r.peak_flops = o.peak_flops > 0 ? o.peak_flops : device_peak_flops(r.device_name);

  if (!cuda) cpu_memory::install();  // before the model, so that every tensor of the run is counted
  TrainingModel m = build_training_model(cfg, o.locca, static_cast<uint64_t>(cfg.train.seed), device);
  if (o.self_distillation) m.start_self_distillation(cfg, static_cast<uint64_t>(cfg.train.seed));
  AdamOptimizer optimizer(cfg.optimizer, m.parameters(), pg && o.shard_optimizer);
  for (const auto& [name, t] : m.parameters()) r.parameters += t.numel();
  for (const auto& t : optimizer.parameter_tensors()) r.optimizer_whole_mib += 2.0 * 4.0 * t.numel() / kMiB;
  std::unique_ptr<GradientSync> grad_sync = make_data_parallel(pg.get(), optimizer, o.shard_optimizer);

  // One batch, drawn once and reused, so the timing holds no data generation. Accumulation keeps it on
  // the host and moves one micro-batch at a time, as the trainer does.
  const int64_t micro_batches = cfg.train.accumulation_steps;
  Batch batch = SyntheticBatches(cfg, env.rank, env.world_size).next(0);
  // ACID: this batch is the super-batch each step scores on the host, as the trainer's loader gives it, and
  // selects from; the selection goes to the device as the trainer's does.
  Batch super_batch;
  std::unique_ptr<AcidSelection> acid;
  if (o.acid) {
    auto reference = std::make_shared<Siglip2ModelImpl>(o.reference);
    reference->reset_parameters(static_cast<uint64_t>(cfg.train.seed) + 1);
    acid = std::make_unique<AcidSelection>(cfg, reference, device, bf16, env.rank, env.world_size, 1);
    r.super_batch = acid->super_batch_per_rank();
    r.score_flop_per_pair = forward_flops(cfg.model).pair() + forward_flops(o.reference).pair();
    r.train_flop_per_pair += acid->scoring_flop_per_pair();
  }
  if (micro_batches == 1 && !acid) {
    batch = to_device(std::move(batch), device);
  } else if (cuda) {  // host memory the copies need not wait for, as the loader's
    for (at::Tensor* t :
         {&batch.pixel_values, &batch.input_ids, &batch.source, &batch.local_views, &batch.bool_masked_pos})
      if (t->defined()) *t = t->pin_memory();
  }
  if (acid) super_batch = std::move(batch);

  auto sync = [&] {
    if (cuda) torch::cuda::synchronize();
  };
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
  for (int64_t step = 0; step < o.warmup + o.steps; ++step) {
    const bool timed = step >= o.warmup;
    if (step == o.warmup && !o.profile.empty())
      profile = std::make_unique<torch::autograd::profiler::RecordProfile>(o.profile);
    sync();
    const auto t0 = Clock::now();
    optimizer.zero_grad();
    if (step == o.warmup) {
      r.tensor_base_mib = static_cast<double>(live_tensor_bytes(device)) / kMiB;
      reset_peak_tensor_memory(device);
    }
    double selection_ms = 0;
    if (acid) {
      batch = acid->select(*m.towers, super_batch, step).batch;
      if (micro_batches == 1) batch = to_device(std::move(batch), device);
      sync();
      selection_ms = ms_since(t0);
    }
    const int64_t before_forward = live_tensor_bytes(device);
    at::Tensor loss;
    if (micro_batches > 1) {  // forward and backward interleaved: all of it counts as forward
      loss = accumulate_gradients(m.step_modules(), batch, micro_batches, cfg, step, bf16, device, pg.get(),
                                  grad_sync.get())
                 .total;
    } else {
      loss = training_losses(m.step_modules(), batch, cfg, step, bf16, pg.get()).total;
    }
    sync();
    const auto t1 = Clock::now();
    if (timed && micro_batches == 1)
      r.activation_mib =
          std::max(r.activation_mib, static_cast<double>(live_tensor_bytes(device) - before_forward) / kMiB);
    if (micro_batches == 1) loss.backward();
    sync();
    // The reductions still running after the backward (the last buckets; accumulate_gradients waits itself).
    const auto t_comm = Clock::now();
    if (grad_sync && micro_batches == 1) grad_sync->finish();
    sync();
    const double comm_ms = ms_since(t_comm);
    const auto t2 = Clock::now();
    optimizer.step(1.0);
    if (m.teacher)
      m.teacher->update(*m.towers->vision_model, *m.self_distillation_heads, cfg.loss.self_distillation.ema_momentum);
    sync();
    const auto t3 = Clock::now();
    if (!std::isfinite(loss.item<double>()))
      throw Error("bench: the loss is not finite at step " + std::to_string(step));
    if (!timed) continue;
    r.selection_ms += selection_ms;
    r.forward_ms += std::chrono::duration<double, std::milli>(t1 - t0).count() - selection_ms;
    r.backward_ms += std::chrono::duration<double, std::milli>(t2 - t1).count() - comm_ms;
    r.optimizer_ms += std::chrono::duration<double, std::milli>(t3 - t2).count();
    r.comm_ms += comm_ms;
    r.step_ms += ms_since(t0);
  }
  profile.reset();  // writes the trace
  const double n = static_cast<double>(o.steps);
  r.selection_ms /= n;
  r.forward_ms /= n;
  r.backward_ms /= n;
  r.optimizer_ms /= n;
  r.comm_ms /= n;
  r.step_ms /= n;
  r.pairs_per_s = static_cast<double>(o.batch * world) / (r.step_ms / 1000.0);  // every rank's pairs
  r.optimizer_state_mib = static_cast<double>(optimizer.state_bytes()) / kMiB;
  r.tensor_peak_mib = peak_tensor_mib(device);
  r.peak_mem_mib = cuda ? r.tensor_peak_mib : cpu_peak_rss_mib();
  return r;
}

}  // namespace siglip2
