#include "losses/locca.hpp"

#include <torch/torch.h>

#include "models/text_decoder.hpp"

namespace siglip2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct ChunkedCrossEntropy : torch::autograd::Function<ChunkedCrossEntropy> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& h, const at::Tensor& w, const at::Tensor& b,
                            const at::Tensor& targets, int64_t chunk) {
    // Softmax statistics in at least float32 (bf16 logits over 256k classes lose the target's share).
    const auto acc = at::promote_types(h.scalar_type(), at::kFloat);
    at::Tensor total = at::zeros({}, h.options().dtype(acc));
    for (int64_t s = 0; s < h.size(0); s += chunk) {
      int64_t n = std::min(chunk, h.size(0) - s);
      at::Tensor logits = at::addmm(b, h.narrow(0, s, n), w.t()).to(acc);
      at::Tensor t = targets.narrow(0, s, n).unsqueeze(1);
      total += (at::logsumexp(logits, 1) - logits.gather(1, t).squeeze(1)).sum();
    }
    ctx->save_for_backward({h, w, b, targets});
    ctx->saved_data["chunk"] = chunk;
    return total.to(h.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &h = saved[0], &w = saved[1], &b = saved[2], &targets = saved[3];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    at::Tensor gh = at::empty_like(h), gw = at::zeros_like(w), gb = at::zeros_like(b);
    at::Tensor scale = grads[0];
    const auto acc = at::promote_types(h.scalar_type(), at::kFloat);
    for (int64_t s = 0; s < h.size(0); s += chunk) {
      int64_t n = std::min(chunk, h.size(0) - s);
      at::Tensor hc = h.narrow(0, s, n);
      at::Tensor g = at::softmax(at::addmm(b, hc, w.t()).to(acc), 1);  // d/dlogits = p - onehot
      g.scatter_add_(1, targets.narrow(0, s, n).unsqueeze(1), at::full({n, 1}, -1.0, g.options()));
      g = (g * scale).to(h.scalar_type());
      gh.narrow(0, s, n).copy_(at::mm(g, w));
      gw.addmm_(g.t(), hc);
      gb += g.sum(0);
    }
    return {gh, gw, gb, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor decoder_inputs(const DecoderTask& task, int64_t start_id, int64_t mask_id) {
  at::Tensor inputs = at::full_like(task.targets, start_id);
  inputs.narrow(1, 1, task.targets.size(1) - 1).copy_(task.targets.narrow(1, 0, task.targets.size(1) - 1));
  if (task.parallel.defined())
    inputs = at::where(task.parallel.to(at::kBool).view({-1, 1}).to(inputs.device()), at::full_like(inputs, mask_id),
                       inputs);
  return inputs;
}

at::Tensor chunked_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& bias,
                                 const at::Tensor& targets, int64_t chunk) {
  TORCH_CHECK(hidden.dim() == 2 && targets.dim() == 1 && hidden.size(0) == targets.size(0),
              "chunked_cross_entropy needs hidden [N, D] and targets [N]");
  TORCH_CHECK(chunk > 0, "chunk must be positive");
  return ChunkedCrossEntropy::apply(hidden, weight, bias, targets, chunk);
}

std::vector<double> locca_denominators(const std::vector<DecoderTask>& tasks, Collectives* comm) {
  at::Tensor counts = at::empty({static_cast<int64_t>(tasks.size())}, at::kDouble);
  for (size_t i = 0; i < tasks.size(); ++i) counts[i] = tasks[i].loss_mask.to(at::kBool).sum().item<double>();
  if (comm && comm->world_size() > 1) {
    comm->all_reduce_sum(counts);
    counts /= comm->world_size();
  }
  std::vector<double> denominators;
  for (size_t i = 0; i < tasks.size(); ++i) denominators.push_back(std::max(1.0, counts[i].item<double>()));
  return denominators;
}

at::Tensor locca_loss(TextDecoderImpl& decoder, const at::Tensor& image_tokens,
                      const at::Tensor& encoder_attention_mask, const std::vector<DecoderTask>& tasks, int64_t start_id,
                      const LoccaLossConfig& config, Collectives* comm) {
  TORCH_CHECK(!tasks.empty(), "locca_loss needs at least one task");
  return locca_loss(decoder, image_tokens, encoder_attention_mask, tasks, start_id, config,
                    locca_denominators(tasks, comm));
}

at::Tensor locca_loss(TextDecoderImpl& decoder, const at::Tensor& image_tokens,
                      const at::Tensor& encoder_attention_mask, const std::vector<DecoderTask>& tasks, int64_t start_id,
                      const LoccaLossConfig& config, const std::vector<double>& denominators) {
  TORCH_CHECK(!tasks.empty(), "locca_loss needs at least one task");
  TORCH_CHECK(denominators.size() == tasks.size(), "locca_loss needs one normaliser per task");
  at::Tensor total;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const auto& task = tasks[i];
    at::Tensor inputs = decoder_inputs(task, start_id, decoder.mask_token_id);
    at::Tensor hidden = decoder.forward(inputs, task.parallel, image_tokens, encoder_attention_mask);
    at::Tensor counted = task.loss_mask.to(at::kBool).reshape(-1).nonzero().squeeze(1);
    at::Tensor h = hidden.reshape({-1, hidden.size(2)}).index_select(0, counted);
    at::Tensor t = task.targets.reshape(-1).index_select(0, counted);
    // A batch where a task counts no token contributes zero rather than a division by zero.
    at::Tensor ce = chunked_cross_entropy(h, decoder.output->weight, decoder.output->bias, t, config.chunk_tokens) /
                    denominators[i];
    total = total.defined() ? total + ce : ce;
  }
  return total / static_cast<double>(tasks.size());
}

}  // namespace siglip2
