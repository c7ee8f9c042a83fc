#include "train/step.hpp"

#include <torch/torch.h>

#include <cmath>

#include "common/collectives.hpp"
#include "losses/locca.hpp"
#include "losses/self_distillation.hpp"
#include "losses/sigmoid.hpp"
#include "models/siglip2.hpp"
#include "models/text_decoder.hpp"
#include "train/autocast.hpp"

namespace siglip2 {

std::vector<std::pair<std::string, double>> mean_losses_over_ranks(const at::Tensor& total, const StepLosses& l,
                                                                   Collectives* comm) {
  std::vector<at::Tensor> values{total.detach()};
  for (const auto& term : l.terms) values.push_back(term.second.detach());
  at::Tensor means = at::stack(values).to(at::kCPU, at::kDouble);
  if (comm && comm->world_size() > 1) {
    comm->all_reduce_sum(means);
    means /= comm->world_size();
  }
  std::vector<std::pair<std::string, double>> out{{"loss", means[0].item<double>()}};
  for (size_t i = 0; i < l.terms.size(); ++i)
    out.emplace_back(l.terms[i].first, means[static_cast<int64_t>(i) + 1].item<double>());
  return out;
}

int64_t progress_step(double fraction, int64_t total) {
  return static_cast<int64_t>(std::llround(fraction * static_cast<double>(total)));
}

StepLosses training_losses(const StepModules& m, const Batch& batch, const RunConfig& config,
                           int64_t self_distillation_step, bool bf16, Collectives* comm) {
  StepLosses out;
  at::Tensor image_embeds, text_embeds, locca;
  SelfDistillationLosses s;
  {
    AutocastScope autocast(bf16, m.towers->logit_scale.device().type());
    VisionOutput img = m.towers->encode_image({batch.pixel_values, batch.pixel_attention_mask, batch.spatial_shapes});
    TextOutput txt = m.towers->encode_text(batch.input_ids);
    image_embeds = img.pooler_output;
    text_embeds = txt.pooler_output;
    if (m.decoder) {
      TORCH_CHECK(batch.locca.has_value(), "the LocCa loss needs a batch with decoder targets");
      // NaFlex: the decoder attends to real patches only, as `siglip2 caption` does.
      locca = locca_loss(*m.decoder, img.last_hidden_state, batch.pixel_attention_mask, batch.locca->tasks(),
                         config.tokenizer.pad_id, config.loss.locca, comm);
    }
    if (m.self_distillation && m.self_distillation_heads && m.teacher)
      s = m.self_distillation->forward(*m.towers->vision_model, *m.self_distillation_heads, *m.teacher,
                                       batch.pixel_values, batch.local_views, batch.bool_masked_pos,
                                       self_distillation_step, comm);
  }
  at::Tensor sigmoid = sigmoid_loss(l2_normalize(image_embeds.to(at::kFloat)), l2_normalize(text_embeds.to(at::kFloat)),
                                    m.towers->logit_scale, m.towers->logit_bias, comm, config.loss.sigmoid);
  out.total = sigmoid;
  out.terms.emplace_back("sigmoid", sigmoid);
  if (locca.defined()) {
    locca = locca.to(at::kFloat);
    out.total = out.total + locca;
    out.terms.emplace_back("locca", locca);
  }
  if (s.total.defined()) {
    out.total = out.total + s.total.to(at::kFloat);
    out.terms.emplace_back("global_local", s.global_local.to(at::kFloat));
    out.terms.emplace_back("masked", s.masked.to(at::kFloat));
  }
  return out;
}

}  // namespace siglip2
