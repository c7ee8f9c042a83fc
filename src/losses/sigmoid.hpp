#pragma once
// The SigLIP sigmoid loss over the global batch (spec: recipe.md §2.1):
//   L = -(1/N) Σ_i Σ_j log σ(z_ij (t x_i·y_j + b)),  z_ij = +1 if i = j else -1,
// with x, y L2-normalised image and text embeddings, t = exp(logit_scale), N the global batch.
//
// With ranks, each rank holds its own images and texts (equal counts) and gets back
// ℓ_r = (W/N) Σ_{i on r} Σ_{all j} ..., so that the mean of ℓ_r over ranks is L and, once
// gradients are averaged over ranks (as data parallelism does), every gradient equals the
// single-process one. Gradients of a rank's texts include what every other rank's images
// contribute: they travel back to the text's owner.
#include <ATen/core/Tensor.h>

#include <string>

#include "common/collectives.hpp"
#include "common/config.hpp"

namespace siglip2 {

struct SigmoidLossConfig {
  // ring: text blocks travel round the ring, one b×b logit block at a time, recomputed in backward;
  //       memory per rank does not grow with the number of ranks.
  // gather: one all-gather of all texts (backward: reduce-scatter) and a b×N logit matrix.
  std::string exchange = "ring";

  template <class V>
  void visit(V& v) {
    v("exchange", exchange, "how text embeddings reach other ranks: ring (memory flat in ranks) or gather",
      config::one_of({"ring", "gather"}));
  }
};

// image_embeds, text_embeds: [b, E] on this rank, already L2-normalised. logit_scale (log t) and
// logit_bias: [1]. `comm` may be null for a single process. Returns ℓ_r (a differentiable scalar).
at::Tensor sigmoid_loss(const at::Tensor& image_embeds, const at::Tensor& text_embeds, const at::Tensor& logit_scale,
                        const at::Tensor& logit_bias, Collectives* comm, const SigmoidLossConfig& config = {});

}  // namespace siglip2
