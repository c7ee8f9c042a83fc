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
#include "train/grad_sync.hpp"

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

namespace {

at::Tensor plus(const at::Tensor& sum, const at::Tensor& x) {  // undefined + x = x
  return sum.defined() ? sum + x : x;
}

}  // namespace

std::vector<std::pair<at::Tensor, at::Tensor>> pooled_embeddings(const std::vector<EmbeddingModel>& models,
                                                                 const std::vector<Batch>& parts, bool bf16,
                                                                 const c10::Device& device) {
  torch::NoGradGuard no_grad;
  std::vector<std::vector<at::Tensor>> images(models.size()), texts(models.size());
  for (const Batch& part : parts) {
    Batch inputs;  // the towers' inputs only: the crops and decoder targets stay on the host
    inputs.pixel_values = part.pixel_values;
    inputs.pixel_attention_mask = part.pixel_attention_mask;
    inputs.spatial_shapes = part.spatial_shapes;
    inputs.input_ids = part.input_ids;
    inputs = to_device(std::move(inputs), device);
    for (size_t i = 0; i < models.size(); ++i) {
      at::Tensor pixels = inputs.pixel_values;
      const int64_t size = models[i].image_size;
      if (size > 0 && !inputs.spatial_shapes.defined() && pixels.size(-1) != size)
        pixels = at::_upsample_bilinear2d_aa(pixels, {size, size}, /*align_corners=*/false);
      AutocastScope autocast(bf16, device.type());
      images[i].push_back(models[i]
                              .model->encode_image({pixels, inputs.pixel_attention_mask, inputs.spatial_shapes})
                              .pooler_output.to(at::kFloat));
      texts[i].push_back(models[i].model->encode_text(inputs.input_ids).pooler_output.to(at::kFloat));
    }
  }
  std::vector<std::pair<at::Tensor, at::Tensor>> out;
  for (size_t i = 0; i < models.size(); ++i) out.emplace_back(at::cat(images[i]), at::cat(texts[i]));
  return out;
}

StepLosses accumulate_gradients(const StepModules& m, const Batch& batch, int64_t micro_batches,
                                const RunConfig& config, int64_t self_distillation_step, bool bf16,
                                const c10::Device& device, Collectives* comm, GradientSync* sync,
                                const std::function<void(int64_t)>& after_micro_batch) {
  const std::vector<Batch> micro = split_batch(batch, micro_batches);
  const bool self_distillation = m.self_distillation && m.self_distillation_heads && m.teacher;
  // The hooks are off until the last micro-batch, and on again however this ends.
  struct HooksBackOn {
    GradientSync* sync;
    ~HooksBackOn() {
      if (sync) sync->set_hooks_enabled(true);
    }
  } hooks_back_on{sync};
  if (sync) sync->set_hooks_enabled(false);

  // 1-2. The sigmoid loss of the whole batch from cached embeddings; its gradients for each embedding.
  auto [image_embeds, text_embeds] = pooled_embeddings({{m.towers, 0}}, micro, bf16, device).front();
  image_embeds.requires_grad_(true);
  text_embeds.requires_grad_(true);
  at::Tensor sigmoid = sigmoid_loss(l2_normalize(image_embeds), l2_normalize(text_embeds), m.towers->logit_scale,
                                    m.towers->logit_bias, comm, config.loss.sigmoid);
  sigmoid.backward();
  const at::Tensor image_grads = image_embeds.grad(), text_grads = text_embeds.grad();
  if (sync)  // step 3 does not reach them: their buckets may go during the last backward
    for (const at::Tensor* p : {&m.towers->logit_scale, &m.towers->logit_bias})
      if (p->requires_grad()) sync->mark_final(*p);

  // The whole batch's normalisers of the per-example losses.
  std::vector<double> denominators;
  if (m.decoder) {
    TORCH_CHECK(batch.locca.has_value(), "the LocCa loss needs a batch with decoder targets");
    denominators = locca_denominators(batch.locca->tasks(), comm);
  }
  double local_rows = 0, masked_rows = 0;
  if (self_distillation) {
    local_rows = static_cast<double>(batch.local_views.size(0));
    masked_rows = batch.bool_masked_pos.to(at::kBool).sum().item<double>();
  }

  // 3. Each micro-batch with gradients.
  at::Tensor locca_sum, local_sum, masked_sum;
  TeacherLogitSums centers;
  for (size_t i = 0, offset = 0; i < micro.size(); ++i) {
    const Batch mb = to_device(micro[i], device);
    const int64_t n = mb.pixel_values.size(0);
    if (sync && i + 1 == micro.size()) sync->set_hooks_enabled(true);
    std::vector<at::Tensor> roots, grads;
    {
      AutocastScope autocast(bf16, device.type());
      VisionOutput img = m.towers->encode_image({mb.pixel_values, mb.pixel_attention_mask, mb.spatial_shapes});
      TextOutput txt = m.towers->encode_text(mb.input_ids);
      // A frozen tower (optimizer.frozen) has no gradient to carry back.
      for (auto [embeds, embed_grads] :
           {std::pair{img.pooler_output, image_grads}, std::pair{txt.pooler_output, text_grads}})
        if (embeds.requires_grad()) {
          roots.push_back(embeds);
          grads.push_back(embed_grads.narrow(0, static_cast<int64_t>(offset), n).to(embeds.scalar_type()));
        }
      at::Tensor per_example;
      if (m.decoder) {
        at::Tensor l = locca_loss(*m.decoder, img.last_hidden_state, mb.pixel_attention_mask, mb.locca->tasks(),
                                  config.tokenizer.pad_id, config.loss.locca, denominators)
                           .to(at::kFloat);
        locca_sum = plus(locca_sum, l.detach());
        per_example = l;
      }
      if (self_distillation) {
        SelfDistillationLosses s = m.self_distillation->forward(
            *m.towers->vision_model, *m.self_distillation_heads, *m.teacher, mb.pixel_values, mb.local_views,
            mb.bool_masked_pos, self_distillation_step, comm, &centers);
        // Means over this micro-batch's rows, weighted to the whole batch's.
        at::Tensor local = s.global_local.to(at::kFloat) * (static_cast<double>(s.global_local_rows) / local_rows);
        at::Tensor masked = s.masked.to(at::kFloat) * (static_cast<double>(s.masked_rows) / masked_rows);
        local_sum = plus(local_sum, local.detach());
        masked_sum = plus(masked_sum, masked.detach());
        per_example = plus(per_example, m.self_distillation->weighted_total(local, masked));
      }
      if (per_example.defined() && per_example.requires_grad()) {
        roots.push_back(per_example);
        grads.push_back(at::ones_like(per_example));
      }
    }
    if (!roots.empty()) torch::autograd::backward(roots, grads);
    offset += static_cast<size_t>(n);
    if (after_micro_batch) after_micro_batch(static_cast<int64_t>(i));
  }
  // Reduced before the centre update's collective, so that every rank issues its collectives in one order
  // whichever parameters the last backward reached.
  if (sync) sync->finish();
  if (self_distillation) m.self_distillation->update_centers(centers, comm);

  StepLosses out;
  out.total = sigmoid.detach();
  out.terms.emplace_back("sigmoid", out.total);
  if (locca_sum.defined()) {
    out.total = out.total + locca_sum;
    out.terms.emplace_back("locca", locca_sum);
  }
  if (self_distillation) {
    out.total = out.total + m.self_distillation->weighted_total(local_sum, masked_sum);
    out.terms.emplace_back("global_local", local_sum);
    out.terms.emplace_back("masked", masked_sum);
  }
  return out;
}

}  // namespace siglip2
