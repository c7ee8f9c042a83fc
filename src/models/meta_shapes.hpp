#pragma once
// The parameter names and shapes of a module, constructed with the Meta dispatch key included: the
// initialisers (uniform_, normal_, fill_) run their meta kernels and the buffers the LibTorch constructors
// allocate are never written (address space, not resident memory), so any size, g-opt included, takes well
// under a second. Used by parameter_shapes (models/siglip2.hpp) and `siglip2 plan` (train/memory_plan.hpp).
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/nn/module.h>
#include <torch/utils.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace siglip2 {

using TensorShapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;

// `make()` returns a module holder (Siglip2Model, TextDecoder, ...), built on the calling thread.
template <class Make>
TensorShapes meta_parameter_shapes(Make make) {
  TensorShapes out;
  // Saves and restores the thread's whole dispatch state: IncludeDispatchKeyGuard would leave the Meta
  // backend bit behind (removing a key from a DispatchKeySet keeps its backend bits), and every later
  // operation on this thread would then run its meta kernel.
  const c10::impl::LocalDispatchKeySet now = c10::impl::tls_local_dispatch_key_set();
  c10::impl::ForceDispatchKeyGuard meta(now.included_ | c10::DispatchKeySet(c10::DispatchKey::Meta), now.excluded_);
  torch::NoGradGuard no_grad;
  auto module = make();
  for (const auto& p : module->named_parameters()) out.emplace_back(p.key(), p.value().sizes().vec());
  return out;
}

}  // namespace siglip2
