// NCCL backend (CUDA builds only). nccl.h comes from the NCCL the wheel depends on, so
// ProcessGroupNCCL::Options has the layout the library was built with.
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <c10/cuda/CUDAFunctions.h>

#include <cstdlib>

#include "common/error.hpp"
#include "train/distributed.hpp"

namespace siglip2 {

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                    int world_size, int local_rank, std::chrono::milliseconds timeout) {
  int devices = c10::cuda::device_count();
  if (devices == 0) throw Error("the NCCL backend needs a CUDA device, and none is visible");
  if (local_rank >= devices)
    throw Error("LOCAL_RANK " + std::to_string(local_rank) + " has no GPU: only " + std::to_string(devices) +
                " visible");
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(local_rank));
  // Without blocking wait a dead peer makes NCCL's watchdog terminate the process; with it a
  // timeout surfaces as an exception the trainer can report.
  setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, opts);
  pg->setBoundDeviceId(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank)));
  return pg;
}

}  // namespace siglip2
