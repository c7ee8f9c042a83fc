#include "losses/sigmoid.hpp"

#include <torch/torch.h>

#include <cstdint>

#include "common/error.hpp"

namespace siglip2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

Collectives* comm_from(AutogradContext* ctx) {
  return reinterpret_cast<Collectives*>(static_cast<intptr_t>(ctx->saved_data["comm"].toInt()));
}

// One b×b' block of the loss: images x against texts y (from rank `owner`), positives on the
// diagonal only when the texts are this rank's own.
struct Block {
  at::Tensor xy;      // x y^T
  at::Tensor logits;  // t x y^T + b
  bool own;
};

Block block(const at::Tensor& x, const at::Tensor& y, const at::Tensor& t, const at::Tensor& b, bool own) {
  at::Tensor xy = at::mm(x, y.t());
  return {xy, xy * t + b, own};
}

at::Tensor block_loss(const Block& blk) {
  // -log σ(z·l) = softplus(-z·l): z = -1 off the diagonal, +1 on it.
  at::Tensor s = at::softplus(blk.logits).sum();
  if (blk.own) s = s - blk.logits.diagonal().sum();
  return s;
}

// dℓ/dlogits = σ(l) - δ_ij (own block), before the 1/b normalisation.
at::Tensor block_grad(const Block& blk) {
  at::Tensor g = at::sigmoid(blk.logits);
  if (blk.own) g.diagonal().sub_(1.0);
  return g;
}

// The ring version as one autograd node: forward passes text blocks round the ring and keeps only
// running sums; backward passes them round again, each with an accumulator for its gradient, which
// arrives back at the owner after W steps. Nothing of size W is ever stored.
struct RingSigmoidLoss : torch::autograd::Function<RingSigmoidLoss> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& y, const at::Tensor& log_t,
                            const at::Tensor& bias, Collectives* comm) {
    const int world = comm ? comm->world_size() : 1;
    at::Tensor t = log_t.exp().reshape({}), b = bias.reshape({});
    at::Tensor total = at::zeros({}, x.options());
    at::Tensor texts = y.contiguous();
    for (int step = 0; step < world; ++step) {
      if (step > 0) texts = comm->ring_exchange(texts);
      total += block_loss(block(x, texts, t, b, step == 0));
    }
    ctx->save_for_backward({x, y, log_t, bias});
    ctx->saved_data["comm"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(comm));
    return total / x.size(0);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &y = saved[1], &log_t = saved[2], &bias = saved[3];
    Collectives* comm = comm_from(ctx);
    const int world = comm ? comm->world_size() : 1;
    at::Tensor t = log_t.exp().reshape({}), b = bias.reshape({});
    at::Tensor scale = grads[0] / x.size(0);
    at::Tensor gx = at::zeros_like(x);
    at::Tensor gt = at::zeros({}, x.options()), gb = at::zeros({}, x.options());
    at::Tensor texts = y.contiguous();
    at::Tensor gtexts = at::zeros_like(texts);
    for (int step = 0; step < world; ++step) {
      if (step > 0) {
        // The pair travels together; packing them into one tensor halves the messages.
        at::Tensor packed = comm->ring_exchange(at::stack({texts, gtexts}));
        texts = packed[0];
        gtexts = packed[1];
      }
      Block blk = block(x, texts, t, b, step == 0);
      at::Tensor g = block_grad(blk) * scale;  // dℓ/dlogits
      gt += (g * blk.xy).sum() * t;            // logits = exp(log_t) x·y + b
      gb += g.sum();
      gx += at::mm(g, texts) * t;
      gtexts += at::mm(g.t(), x) * t;
    }
    // After W-1 shifts each accumulator sits one rank past its owner: one more shift brings it home.
    at::Tensor gy = world > 1 ? comm->ring_exchange(gtexts) : gtexts;
    return {gx, gy, gt.reshape(log_t.sizes()), gb.reshape(bias.sizes()), at::Tensor()};
  }
};

// All-gather whose backward is a reduce-scatter: the gradient of every rank's copy of a text is
// summed at the text's owner.
struct GatherTexts : torch::autograd::Function<GatherTexts> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& y, Collectives* comm) {
    ctx->saved_data["comm"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(comm));
    return comm->all_gather(y);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {comm_from(ctx)->reduce_scatter_sum(grads[0].contiguous()), at::Tensor()};
  }
};

at::Tensor gathered_sigmoid_loss(const at::Tensor& x, const at::Tensor& y, const at::Tensor& log_t,
                                 const at::Tensor& bias, Collectives* comm) {
  const int world = comm ? comm->world_size() : 1;
  const int rank = comm ? comm->rank() : 0;
  at::Tensor all = world > 1 ? GatherTexts::apply(y, comm) : y;
  at::Tensor logits = at::mm(x, all.t()) * log_t.exp() + bias;
  const int64_t b = x.size(0);
  at::Tensor positives = logits.narrow(1, rank * b, b).diagonal();
  return (at::softplus(logits).sum() - positives.sum()) / b;
}

}  // namespace

at::Tensor sigmoid_loss(const at::Tensor& image_embeds, const at::Tensor& text_embeds, const at::Tensor& logit_scale,
                        const at::Tensor& logit_bias, Collectives* comm, const SigmoidLossConfig& config) {
  TORCH_CHECK(image_embeds.dim() == 2 && text_embeds.sizes() == image_embeds.sizes(),
              "sigmoid loss needs image and text embeddings of the same shape [b, E], got ", image_embeds.sizes(),
              " and ", text_embeds.sizes());
  TORCH_CHECK(logit_scale.numel() == 1 && logit_bias.numel() == 1, "logit_scale and logit_bias must be scalars");
  if (comm && comm->world_size() > 1) {
    // Every rank must hold the same number of pairs: the ring and the positives' positions rely on it.
    at::Tensor n = at::full({1}, static_cast<double>(image_embeds.size(0)), at::kDouble);
    at::Tensor m = n.clone();
    comm->all_reduce_sum(m);
    TORCH_CHECK(m.item<double>() == n.item<double>() * comm->world_size(),
                "sigmoid loss: ranks hold different batch sizes");
  }
  if (config.exchange == "gather")
    return gathered_sigmoid_loss(image_embeds, text_embeds, logit_scale, logit_bias, comm);
  if (config.exchange != "ring") throw ConfigError("sigmoid loss: unknown exchange '" + config.exchange + "'");
  return RingSigmoidLoss::apply(image_embeds, text_embeds, logit_scale, logit_bias, comm);
}

}  // namespace siglip2
