#pragma once
// One LocCa decoder task over a batch (captioning, referring expression or grounded captioning): made by
// the data loader (src/data/locca_targets.hpp), consumed by the LocCa loss (src/losses/locca.hpp).
#include <ATen/core/Tensor.h>

namespace siglip2 {

struct DecoderTask {
  at::Tensor targets;    // int64 [B, L]: task prefix, body, EOS, padding
  at::Tensor loss_mask;  // bool [B, L]: the positions the loss counts (body and EOS; not the prefix or padding)
  at::Tensor parallel;   // bool [B]: predicted in parallel, without the causal mask (captioning only; else undefined)
};

}  // namespace siglip2
