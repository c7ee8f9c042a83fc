#pragma once
// LocCa decoder losses (spec: recipe.md §3): captioning, referring expression (caption -> box) and
// grounded captioning (box -> caption), all three for every example; cross-entropy over the target
// tokens each task counts, computed in chunks so [tokens, vocabulary] logits never exist at once.
#include <ATen/core/Tensor.h>

#include <vector>

#include "common/collectives.hpp"
#include "common/config.hpp"
#include "losses/decoder_task.hpp"

namespace siglip2 {

struct TextDecoderImpl;

struct LoccaLossConfig {
  double parallel_probability = 0.5;  // captioning examples predicted in parallel from mask tokens
  int64_t chunk_tokens = 4096;        // target tokens per logits chunk (vocabulary 256k: 4 GiB at fp32 for 4096)

  template <class V>
  void visit(V& v) {
    v("parallel_probability", parallel_probability,
      "probability that a captioning example is predicted in parallel from mask tokens (SigLIP 2: 0.5)",
      config::in_range(0.0, 1.0));
    v("chunk_tokens", chunk_tokens, "target tokens per chunk of the output softmax", config::greater_than<int64_t>(0));
  }
};

// Teacher forcing: targets shifted right with `start_id` first; parallel examples get mask tokens only.
at::Tensor decoder_inputs(const DecoderTask& task, int64_t start_id, int64_t mask_id);

// Σ over rows of -log softmax(h W^T + b)[target], computed `chunk` rows at a time in forward and
// again in backward (nothing of size [rows, V] is kept).
at::Tensor chunked_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& bias,
                                 const at::Tensor& targets, int64_t chunk);

// Mean over tasks of each task's mean cross-entropy per counted token. With ranks (`comm`), each task
// is normalised by the counted tokens of the global batch (times W), so that the mean over ranks
// equals the single-process loss however the tokens fall on ranks.
at::Tensor locca_loss(TextDecoderImpl& decoder, const at::Tensor& image_tokens,
                      const at::Tensor& encoder_attention_mask, const std::vector<DecoderTask>& tasks, int64_t start_id,
                      const LoccaLossConfig& config, Collectives* comm = nullptr);

// Each task's normaliser in locca_loss: its counted tokens over all ranks / W (at least 1). One
// collective when `comm` has several ranks.
std::vector<double> locca_denominators(const std::vector<DecoderTask>& tasks, Collectives* comm);

// locca_loss with the normalisers given: the loss of a micro-batch with the whole batch's normalisers,
// so that the micro-batches' losses sum to the whole batch's (gradient accumulation). No collective.
at::Tensor locca_loss(TextDecoderImpl& decoder, const at::Tensor& image_tokens,
                      const at::Tensor& encoder_attention_mask, const std::vector<DecoderTask>& tasks, int64_t start_id,
                      const LoccaLossConfig& config, const std::vector<double>& denominators);

}  // namespace siglip2
