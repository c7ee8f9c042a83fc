#pragma once
// One rank's batch, the one type from the data loader (or the synthetic source) to the training step.
// Tensor names are transformers' where it has them (pixel_values, pixel_attention_mask, spatial_shapes,
// input_ids, labels, bool_masked_pos).
#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "losses/decoder_task.hpp"

namespace siglip2 {

// The three LocCa tasks of a batch (spec ssl_locca.md §4; layout in docs/data.md).
struct LoccaTargets {
  DecoderTask caption, referring, grounded;
  std::vector<DecoderTask> tasks() const { return {caption, referring, grounded}; }
};

struct Batch {
  std::vector<std::string> keys;  // the samples' WebDataset keys (empty for synthetic batches)
  // Fixed resolution: float32 [B, 3, S, S] in [-1, 1]. NaFlex: float32 [B, N, P*P*3] patches, padded to N.
  at::Tensor pixel_values;
  at::Tensor pixel_attention_mask;    // NaFlex: int32 [B, N], 1 = a real patch; fixed resolution: undefined
  at::Tensor spatial_shapes;          // NaFlex: int64 [B, 2] patch rows and columns; fixed resolution: undefined
  at::Tensor input_ids;               // int64 [B, tokenizer length]; undefined without a tokenizer
  at::Tensor labels;                  // int64 [B]: KEY.cls, -1 where absent (evaluation shards)
  at::Tensor source;                  // int64 [B]: which data.shards pattern each example came from (0 first)
  std::optional<LoccaTargets> locca;  // train.locca
  // Self-distillation: the student's local crops, float32 [B * local_crops, 3, s, s], image-major (the
  // crops of image 0 first), and the patches it sees as the mask token, bool [B, (S / patch)^2].
  at::Tensor local_views;
  at::Tensor bool_masked_pos;
};

}  // namespace siglip2
