#include "data/patch_mask.hpp"

#include <ATen/ATen.h>

#include <cmath>

namespace siglip2 {

at::Tensor random_patch_mask(int64_t batch, int64_t patches, double ratio, at::Generator& gen) {
  const int64_t n = static_cast<int64_t>(std::lround(ratio * static_cast<double>(patches)));
  at::Tensor scores = at::empty({batch, patches}).uniform_(0.0, 1.0, gen);
  at::Tensor order = std::get<1>(scores.sort(1));
  at::Tensor mask = at::zeros({batch, patches}, at::kBool);
  if (n > 0) mask.scatter_(1, order.narrow(1, 0, n), true);
  return mask;
}

}  // namespace siglip2
