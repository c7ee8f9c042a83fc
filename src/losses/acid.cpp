#include "losses/acid.hpp"

#include <torch/torch.h>

#include <limits>
#include <stdexcept>
#include <string>

namespace siglip2 {

namespace {

at::Tensor scale_of(const at::Tensor& logit_scale) {
  return logit_scale.to(at::kFloat).reshape({}).exp();
}
at::Tensor bias_of(const at::Tensor& logit_bias) {
  return logit_bias.to(at::kFloat).reshape({});
}

}  // namespace

at::Tensor PairScorer::rows(const at::Tensor& idx) const {
  at::Tensor logits =
      scale_of(logit_scale) * at::matmul(image_embeds.index_select(0, idx), text_embeds.t()) + bias_of(logit_bias);
  // z = +1 where the column is the row's own text.
  at::Tensor own = idx.unsqueeze(1) == at::arange(size(), idx.options()).unsqueeze(0);
  return at::softplus(-at::where(own, logits, -logits));  // -log σ(z · logit)
}

at::Tensor PairScorer::columns(const at::Tensor& idx) const {
  at::Tensor logits =
      scale_of(logit_scale) * at::matmul(image_embeds, text_embeds.index_select(0, idx).t()) + bias_of(logit_bias);
  at::Tensor own = at::arange(size(), idx.options()).unsqueeze(1) == idx.unsqueeze(0);
  return at::softplus(-at::where(own, logits, -logits));
}

at::Tensor PairScorer::diagonal() const {
  at::Tensor logits = scale_of(logit_scale) * (image_embeds * text_embeds).sum(1) + bias_of(logit_bias);
  return at::softplus(-logits);
}

JointSelection jest_joint_sample(const Learnability& s, int64_t select, int64_t chunks,
                                 const std::function<at::Tensor(int64_t chunk, int64_t n)>& uniform) {
  torch::NoGradGuard no_grad;
  const int64_t n = s.size();
  if (select < 1 || select > n)
    throw std::invalid_argument("ACID: cannot select " + std::to_string(select) + " of a super-batch of " +
                                std::to_string(n));
  if (chunks < 1 || chunks > select)
    throw std::invalid_argument("ACID: " + std::to_string(chunks) + " chunks for " + std::to_string(select) +
                                " pairs (1 to the number selected)");
  const at::Tensor diag = s.diagonal().to(at::kDouble).cpu();
  at::Tensor sum = at::zeros({n}, at::kDouble);  // Σ_{k chosen} (S_ik + S_ki)
  at::Tensor chosen = at::zeros({n}, at::kBool);
  JointSelection out;
  const auto device = s.learner.image_embeds.device();
  for (int64_t q = 0; q < chunks; ++q) {
    const int64_t size = select / chunks + (q < select % chunks ? 1 : 0);
    at::Tensor u = uniform(q, n).to(at::kDouble).cpu();
    at::Tensor key = diag + sum - at::log(-at::log(u));
    key.masked_fill_(chosen, -std::numeric_limits<double>::infinity());
    at::Tensor picked = std::get<1>(key.topk(size, 0, /*largest=*/true, /*sorted=*/true));
    chosen.index_fill_(0, picked, true);
    const auto* p = picked.data_ptr<int64_t>();
    out.chosen.insert(out.chosen.end(), p, p + size);
    if (q + 1 < chunks) {
      const at::Tensor idx = picked.to(device);
      sum += s.columns(idx).sum(1).to(at::kDouble).cpu() + s.rows(idx).sum(0).to(at::kDouble).cpu();
    }
  }
  out.mean_selected = diag.masked_select(chosen).mean().item<double>();
  if (select < n) out.mean_rejected = diag.masked_select(chosen.logical_not()).mean().item<double>();
  return out;
}

}  // namespace siglip2
