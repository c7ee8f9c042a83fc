#pragma once
// Process groups without Python: rendezvous through c10d's TCPStore from the variables torchrun or
// SLURM set, then a Gloo (CPU) or NCCL (CUDA) backend. A single process needs no launcher.
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "common/collectives.hpp"

namespace siglip2 {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // none, torchrun or slurm
  bool agent_store = false;       // torchrun's agent already hosts the TCPStore server
  int restart_count = 0;
};

// Reads torchrun's RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT, else SLURM's
// SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID and the first host of SLURM_JOB_NODELIST, else a single
// process. Inconsistent values are a ConfigError naming the variable.
DistEnv dist_env_from_environment();

// First host of a SLURM node list: "gpu[003-004,007],login1" -> "gpu003".
std::string first_slurm_host(const std::string& nodelist);

bool gloo_available();
bool nccl_available();

class ProcessGroup final : public Collectives {
 public:
  // backend: "gloo" or "nccl" ("auto" must be resolved by the caller). Blocks until every rank has
  // joined or `timeout` passes (then throws siglip2::Error).
  static std::shared_ptr<ProcessGroup> create(const DistEnv& env, const std::string& backend,
                                              std::chrono::milliseconds timeout);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  const std::string& backend_name() const { return backend_name_; }
  c10d::Backend& backend() { return *backend_; }
  const c10::intrusive_ptr<c10d::Backend>& backend_ptr() const { return backend_; }
  c10d::Store& store() { return *store_; }

  // Blocking collectives (see Collectives). With NCCL, host tensors (counters, flags, loader states)
  // travel through a copy on this rank's GPU and come back to the host.
  void all_reduce_sum(at::Tensor& t) override;
  void broadcast(at::Tensor& t, int root);
  at::Tensor all_gather(const at::Tensor& t) override;
  at::Tensor reduce_scatter_sum(const at::Tensor& t) override;
  at::Tensor ring_exchange(const at::Tensor& out) override;
  void barrier();

  // Waits for `work`; a failure (a peer rank died, was stopped or lost its connection) becomes a
  // siglip2::Error naming this rank, the operation and the timeout.
  void wait(c10d::Work& work, const char* operation);

 private:
  ProcessGroup() = default;
  at::Tensor exchange(const at::Tensor& out, int to, int from);
  // The tensor on the backend's device: itself, or (NCCL, host tensor) a copy on the GPU.
  at::Tensor staged(const at::Tensor& t) const;
  int rank_ = 0;
  c10::Device device_{c10::kCPU};  // NCCL: this rank's GPU
  int world_size_ = 1;
  std::chrono::milliseconds timeout_{0};
  std::string backend_name_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> backend_;
};

// The training run's process group: null on one rank; else dist.backend, where auto is NCCL when
// `device` is a GPU and Gloo otherwise, with dist.timeout_s.
std::shared_ptr<ProcessGroup> training_process_group(const DistEnv& env, const std::string& backend, int64_t timeout_s,
                                                     const c10::Device& device);

// Defined in gloo_backend.cpp / nccl_backend.cpp (each only when its backend is built).
c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                    int world_size, std::chrono::milliseconds timeout);
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                    int world_size, int local_rank, std::chrono::milliseconds timeout);

}  // namespace siglip2
