#pragma once
// ACID / JEST joint batch selection by learnability (spec: recipe.md §6.3; SigLIP 2 §2.5; JEST, Evans et al.
// 2024), the core of the recipe's last stage for B-sized models:
// - per pair (i, j) of a super-batch of n image-text pairs, the sigmoid loss of one model
//     L_ij = -log σ(z_ij (t x_i·y_j + b)),  z_ij = +1 if i = j else -1   (x, y L2-normalised, t = exp(log t));
// - learnability S = L_learner − L_reference (Mindermann et al. 2022);
// - JEST's blocked sampling of `select` pairs in `chunks` chunks: the first chunk with probability
//   ∝ exp(S_ii) without replacement, each next chunk ∝ exp(S_ii + Σ_{k∈chosen} (S_ik + S_ki)) over the pairs not
//   chosen yet, without replacement. Sampling without replacement from a softmax is Gumbel top-k: the chunk is
//   the c largest of logit_i − log(−log u_i) with u uniform in (0, 1).
// S is never held whole (n² values): the diagonal is n values, and each chunk adds the n × c rows and columns
// of the pairs it chose to a running sum; memory per step is O(n·c), time O(n²·d) as the full matrix.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace siglip2 {

// One model's view of a super-batch: L2-normalised embeddings [n, E] (float32), log t and b as [1] or scalars.
struct PairScorer {
  at::Tensor image_embeds, text_embeds, logit_scale, logit_bias;
  // L_ij for rows `rows` (indices, int64 [r]) and every column: [r, n].
  at::Tensor rows(const at::Tensor& rows) const;
  // L_ij for every row and columns `cols`: [n, c].
  at::Tensor columns(const at::Tensor& cols) const;
  at::Tensor diagonal() const;  // L_ii: [n]
  int64_t size() const { return image_embeds.size(0); }
};

// Learnability between a learner and a reference scoring the same super-batch (same n, embeddings of each
// model's own width).
struct Learnability {
  PairScorer learner, reference;
  at::Tensor rows(const at::Tensor& idx) const { return learner.rows(idx) - reference.rows(idx); }
  at::Tensor columns(const at::Tensor& idx) const { return learner.columns(idx) - reference.columns(idx); }
  at::Tensor diagonal() const { return learner.diagonal() - reference.diagonal(); }
  int64_t size() const { return learner.size(); }
};

struct JointSelection {
  std::vector<int64_t> chosen;  // indices into the super-batch, in the order drawn (chunk after chunk)
  double mean_selected = 0;     // mean of S_ii over the chosen pairs
  double mean_rejected = 0;     // mean of S_ii over the others (0 when none)
};

// JEST's joint sampling above. `select` pairs (at most n) in `chunks` chunks (`select` split as evenly as
// possible, the first chunks one larger); `uniform(chunk, n)` returns the chunk's uniforms in (0, 1) as a
// float64 [n] tensor (a seeded generator in training; given values in tests). Throws std::invalid_argument
// on select > n, chunks < 1 or chunks > select.
JointSelection jest_joint_sample(const Learnability& s, int64_t select, int64_t chunks,
                                 const std::function<at::Tensor(int64_t chunk, int64_t n)>& uniform);

}  // namespace siglip2
