#include "train/step.hpp"

#include <torch/torch.h>

#include "losses/locca.hpp"
#include "losses/self_distillation.hpp"
#include "losses/sigmoid.hpp"
#include "models/siglip2.hpp"
#include "models/text_decoder.hpp"
#include "train/autocast.hpp"

namespace siglip2 {

StepLosses training_losses(const StepModules& m, const TrainBatch& batch, const RunConfig& config, int64_t ssl_step,
                           bool bf16, Collectives* comm) {
  StepLosses out;
  at::Tensor image_embeds, text_embeds;
  SelfDistillationLosses s;
  {
    AutocastScope autocast(bf16, m.towers->logit_scale.device().type());
    VisionOutput img = m.towers->encode_image(batch.images);
    TextOutput txt = m.towers->encode_text(batch.input_ids);
    image_embeds = img.pooler_output;
    text_embeds = txt.pooler_output;
    if (m.decoder)
      out.locca = locca_loss(*m.decoder, img.last_hidden_state, {}, batch.locca, config.tokenizer.pad_id,
                             config.loss.locca, comm);
    if (m.ssl && m.ssl_heads && m.teacher)
      s = m.ssl->forward(*m.towers->vision_model, *m.ssl_heads, *m.teacher, batch.images.pixel_values, batch.ssl_locals,
                         batch.ssl_mask, ssl_step, comm);
  }
  out.sigmoid = sigmoid_loss(l2_normalize(image_embeds.to(at::kFloat)), l2_normalize(text_embeds.to(at::kFloat)),
                             m.towers->logit_scale, m.towers->logit_bias, comm, config.loss.sigmoid);
  out.total = out.sigmoid;
  if (out.locca.defined()) {
    out.locca = out.locca.to(at::kFloat);
    out.total = out.total + out.locca;
  }
  if (s.total.defined()) {
    out.ssl_global_local = s.global_local;
    out.ssl_masked = s.masked;
    out.total = out.total + s.total.to(at::kFloat);
  }
  return out;
}

}  // namespace siglip2
