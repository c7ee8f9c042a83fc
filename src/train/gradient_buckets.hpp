#pragma once
// How parameters are laid out in the flat buffers that gradients are reduced in (train/grad_sync.hpp)
// and, when optimizer state is sharded, which elements each rank owns (train/optimizer.hpp).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace siglip2 {

// Where each parameter's gradient sits in the flat buffer of its bucket.
struct GradientBucket {
  std::vector<size_t> params;    // indices into the parameter list, in buffer order
  std::vector<int64_t> offsets;  // where each one starts in the buffer (elements)
  int64_t numel = 0;             // the buffer's length: the parameters', padded to a multiple of the world size
                                 // when sharded (rank r owns elements [r·numel/W, (r+1)·numel/W))
};

// The buckets of `params`: each group (params[group_starts[g]] up to the next group's start) is bucketed
// on its own, in reverse order, the groups in order, so that parameters added later (the
// self-distillation heads) leave the earlier buckets as they were. The first bucket holds up to
// `first_bucket_bytes`, the others `bucket_bytes`; one dtype and device per bucket; numel padded to a
// multiple of `pad_to`.
std::vector<GradientBucket> bucket_layout(const std::vector<at::Tensor>& params,
                                          const std::vector<size_t>& group_starts, int64_t bucket_bytes,
                                          int64_t first_bucket_bytes, int64_t pad_to);

// The elements [start, start + length) of a parameter's flattened tensor that this rank owns when sharded.
struct ShardSlice {
  int64_t start = 0, length = 0;
};
// Per parameter of `params`, the slice rank `rank` of `world` owns under `layout` (length 0: none).
std::vector<ShardSlice> shard_slices(const std::vector<at::Tensor>& params, const std::vector<GradientBucket>& layout,
                                     int rank, int world);

}  // namespace siglip2
