#include "train/distributed.hpp"

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <ATen/ATen.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/logging.hpp"
#include "siglip2/build_config.hpp"

namespace siglip2 {
namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int fallback, int min_value) {
  const char* v = env(name);
  if (!v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (!end || *end != '\0' || x < min_value || x > 1 << 30)
    throw ConfigError(std::string("environment variable ") + name + "='" + v + "' is not a valid number");
  return static_cast<int>(x);
}

void check_env(const DistEnv& e) {
  if (e.rank >= e.world_size)
    throw ConfigError("rank " + std::to_string(e.rank) + " is not below world size " + std::to_string(e.world_size) +
                      " (" + e.launcher + " variables)");
  if (e.master_port <= 0 || e.master_port > 65535)
    throw ConfigError("MASTER_PORT=" + std::to_string(e.master_port) + " is not a TCP port");
}

c10::intrusive_ptr<c10d::Store> make_tcp_store(const DistEnv& env, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<std::uint16_t>(env.master_port);
  opts.isServer = env.rank == 0 && !env.agent_store;
  opts.numWorkers = env.agent_store ? std::nullopt : std::optional<std::size_t>(env.world_size);
  opts.waitWorkers = false;
  opts.timeout = timeout;
  opts.multiTenant = true;
  c10::intrusive_ptr<c10d::Store> tcp;
  auto failed = [&](std::string why) {
    // c10d's messages go on with "Exception raised from …" and a backtrace: keep the first line.
    why = why.substr(0, why.find('\n'));
    return Error("rendezvous at " + env.master_addr + ":" + std::to_string(env.master_port) + " failed for rank " +
                 std::to_string(env.rank) + ": " + why);
  };
  try {
    tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
  } catch (const c10::Error& e) {
    throw failed(e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw failed(e.what());
  }
  // A prefix per torchrun restart keeps keys of a failed attempt from leaking into the next one.
  return c10::make_intrusive<c10d::PrefixStore>("siglip2/attempt_" + std::to_string(env.restart_count), tcp);
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at a comma outside brackets; a bracket range is replaced by its first value.
  std::string first;
  int depth = 0;
  for (char c : nodelist) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (c == ',' && depth == 0) break;
    first += c;
  }
  size_t open = first.find('[');
  if (open == std::string::npos) return first;
  size_t close = first.find(']', open);
  std::string range = first.substr(open + 1, close == std::string::npos ? std::string::npos : close - open - 1);
  std::string head = range.substr(0, range.find_first_of(",-"));
  std::string tail = close == std::string::npos ? "" : first.substr(close + 1);
  return first.substr(0, open) + head + tail;
}

DistEnv dist_env_from_environment() {
  DistEnv e;
  if (env("WORLD_SIZE") || env("RANK")) {
    e.launcher = "torchrun";
    e.world_size = env_int("WORLD_SIZE", 1, 1);
    e.rank = env_int("RANK", 0, 0);
    e.local_rank = env_int("LOCAL_RANK", 0, 0);
    e.local_world_size = env_int("LOCAL_WORLD_SIZE", e.world_size, 1);
    if (const char* a = env("MASTER_ADDR")) e.master_addr = a;
    e.master_port = env_int("MASTER_PORT", 29500, 1);
    e.agent_store = env("TORCHELASTIC_USE_AGENT_STORE") && std::string(env("TORCHELASTIC_USE_AGENT_STORE")) == "True";
    e.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0, 0);
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS")) {
    e.launcher = "slurm";
    e.world_size = env_int("SLURM_NTASKS", 1, 1);
    e.rank = env_int("SLURM_PROCID", 0, 0);
    e.local_rank = env_int("SLURM_LOCALID", 0, 0);
    e.local_world_size = env_int("SLURM_NTASKS_PER_NODE", 1, 1);
    if (const char* a = env("MASTER_ADDR")) {
      e.master_addr = a;
    } else if (const char* nodes = env("SLURM_JOB_NODELIST") ? env("SLURM_JOB_NODELIST") : env("SLURM_NODELIST")) {
      e.master_addr = first_slurm_host(nodes);
    }
    e.master_port = env_int("MASTER_PORT", 29500, 1);
  }
  check_env(e);
  return e;
}

bool gloo_available() {
#if SIGLIP2_CONFIG_GLOO
  return true;
#else
  return false;
#endif
}

bool nccl_available() {
#if SIGLIP2_CONFIG_NCCL
  return true;
#else
  return false;
#endif
}

std::shared_ptr<ProcessGroup> ProcessGroup::create(const DistEnv& env, const std::string& backend,
                                                   std::chrono::milliseconds timeout) {
  std::shared_ptr<ProcessGroup> pg(new ProcessGroup());
  pg->rank_ = env.rank;
  pg->world_size_ = env.world_size;
  pg->backend_name_ = backend;
  pg->timeout_ = timeout;

  if (env.world_size == 1 && env.launcher == "none") {
    // A lone process needs no rendezvous: an in-memory store, and no port to collide on.
    pg->store_ = c10::make_intrusive<c10d::HashStore>();
  } else {
    pg->store_ = make_tcp_store(env, timeout);
  }

  try {
    if (backend == "gloo") {
#if SIGLIP2_CONFIG_GLOO
      pg->backend_ = make_gloo_backend(pg->store_, env.rank, env.world_size, timeout);
#else
      throw ConfigError(
          "this build has no Gloo backend (configure with the Gloo headers: apt-get install libgloo-dev)");
#endif
    } else if (backend == "nccl") {
#if SIGLIP2_CONFIG_NCCL
      pg->backend_ = make_nccl_backend(pg->store_, env.rank, env.world_size, env.local_rank, timeout);
      pg->device_ = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
#else
      throw ConfigError("this build has no NCCL backend (configure on a machine with the CUDA toolkit and nccl.h)");
#endif
    } else {
      throw ConfigError("unknown distributed backend '" + backend + "' (expected gloo or nccl)");
    }
  } catch (const siglip2::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("creating the " + backend + " process group (rank " + std::to_string(env.rank) + " of " +
                std::to_string(env.world_size) + ") failed: " + e.what());
  }
  if (env.world_size > 1) set_log_rank(env.rank, env.world_size);
  return pg;
}

ProcessGroup::~ProcessGroup() {
  if (!backend_) return;
  try {
    backend_->shutdown();
  } catch (const std::exception& e) {
    log_debug(std::string("process group shutdown: ") + e.what());
  }
}

at::Tensor ProcessGroup::staged(const at::Tensor& t) const {
  return backend_name_ == "nccl" && t.device() != device_ ? t.to(device_) : t;
}

void ProcessGroup::all_reduce_sum(at::Tensor& t) {
  std::vector<at::Tensor> v{staged(t)};
  wait(*backend_->allreduce(v), "all_reduce");
  if (!v[0].is_same(t)) t.copy_(v[0]);
}

void ProcessGroup::broadcast(at::Tensor& t, int root) {
  std::vector<at::Tensor> v{staged(t)};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  wait(*backend_->broadcast(v, o), "broadcast");
  if (!v[0].is_same(t)) t.copy_(v[0]);
}

at::Tensor ProcessGroup::all_gather(const at::Tensor& t) {
  at::Tensor in = staged(t).contiguous();
  std::vector<int64_t> sizes = in.sizes().vec();
  TORCH_CHECK(!sizes.empty(), "all_gather needs at least one dimension");
  sizes[0] *= world_size_;
  at::Tensor out = at::empty(sizes, in.options());
  wait(*backend_->_allgather_base(out, in), "all_gather");
  return out.to(t.device());
}

at::Tensor ProcessGroup::reduce_scatter_sum(const at::Tensor& t) {
  at::Tensor in = staged(t).contiguous();
  std::vector<int64_t> sizes = in.sizes().vec();
  TORCH_CHECK(!sizes.empty() && sizes[0] % world_size_ == 0, "reduce_scatter needs dim 0 divisible by world size");
  sizes[0] /= world_size_;
  at::Tensor out = at::empty(sizes, in.options());
  wait(*backend_->_reduce_scatter_base(out, in), "reduce_scatter");
  return out.to(t.device());
}

at::Tensor ProcessGroup::ring_exchange(const at::Tensor& out) {
  return exchange(out, (rank_ + 1) % world_size_, (rank_ - 1 + world_size_) % world_size_);
}

at::Tensor ProcessGroup::exchange(const at::Tensor& out, int to, int from) {
  if (world_size_ == 1) return out.clone();
  std::vector<at::Tensor> send{staged(out).contiguous()};
  std::vector<at::Tensor> recv{at::empty_like(send[0])};
  if (backend_name_ == "nccl") {
    // NCCL needs the pair grouped, or every rank blocks in send.
    backend_->startCoalescing();
    backend_->send(send, to, 0);
    backend_->recv(recv, from, 0);
    wait(*backend_->endCoalescing(), "send/recv");
  } else {
    auto ws = backend_->send(send, to, 0);
    auto wr = backend_->recv(recv, from, 0);
    wait(*ws, "send");
    wait(*wr, "recv");
  }
  return recv[0].to(out.device());
}

void ProcessGroup::barrier() {
  wait(*backend_->barrier(), "barrier");
}

void ProcessGroup::wait(c10d::Work& work, const char* operation) {
  auto fail = [&](std::string why) {
    if (!why.empty() && why[0] == '[' && why.find("] ") != std::string::npos)
      why = why.substr(why.find("] ") + 2);  // the backend's source location means nothing to a user
    throw Error("rank " + std::to_string(rank_) + " of " + std::to_string(world_size_) + ": " + operation +
                " failed; another rank died, was stopped or lost its connection (dist.timeout_s " +
                std::to_string(timeout_.count() / 1000) + "): " + why);
  };
  try {
    work.wait();
  } catch (const c10::Error& e) {
    fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

std::shared_ptr<ProcessGroup> training_process_group(const DistEnv& env, const std::string& backend, int64_t timeout_s,
                                                     const c10::Device& device) {
  if (env.world_size <= 1) return nullptr;
  const std::string name = backend == "auto" ? (device.is_cuda() ? "nccl" : "gloo") : backend;
  return ProcessGroup::create(env, name, std::chrono::seconds(timeout_s));
}

}  // namespace siglip2
