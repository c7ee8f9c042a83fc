#pragma once
// The collectives the losses need, as an interface: the process group (src/train) implements it,
// so losses depend on no launcher or backend. All calls are blocking and must be made by every rank
// in the same order.
#include <ATen/core/Tensor.h>

namespace siglip2 {

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual void all_reduce_sum(at::Tensor& t) = 0;
  virtual at::Tensor all_gather(const at::Tensor& t) = 0;          // concatenated along dim 0, rank order
  virtual at::Tensor reduce_scatter_sum(const at::Tensor& t) = 0;  // dim 0 split into world_size parts
  // Sends `out` to (rank + 1) % W and returns what (rank - 1 + W) % W sent.
  virtual at::Tensor ring_exchange(const at::Tensor& out) = 0;
};

}  // namespace siglip2
