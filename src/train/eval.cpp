#include "train/eval.hpp"

#include <torch/torch.h>

#include <chrono>
#include <fstream>

#include "common/error.hpp"
#include "siglip2/build_config.hpp"
#if SIGLIP2_CONFIG_DATA_PIPELINE
#include "data/loader.hpp"
#include "data/tokenizer.hpp"
#endif
#include "data/shard_list.hpp"
#include "models/siglip2.hpp"
#include "train/config.hpp"
#include "train/training_log.hpp"

namespace siglip2 {

RetrievalResult retrieval_recall(const at::Tensor& images, const at::Tensor& texts, const at::Tensor& input_ids) {
  torch::NoGradGuard no_grad;
  RetrievalResult r;
  const int64_t n = images.size(0);
  if (n == 0) return r;
  TORCH_CHECK(texts.size(0) == n && input_ids.size(0) == n, "retrieval needs as many texts and ids as images");
  // Repeated captions count once: texts are deduplicated by token ids, and an image's only match is its
  // own caption (otherwise the top k of an image would fill up with copies of one caption).
  at::Tensor ids = input_ids.to(at::kCPU, at::kLong).contiguous();
  auto [unique, inverse, counts] = at::unique_dim(ids, 0, /*sorted=*/true, /*return_inverse=*/true);
  const int64_t u = unique.size(0);
  std::vector<int64_t> first(static_cast<size_t>(u), -1);
  auto inv = inverse.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i)
    if (first[static_cast<size_t>(inv[i])] < 0) first[static_cast<size_t>(inv[i])] = i;
  at::Tensor unique_texts = texts.to(at::kCPU, at::kFloat).index_select(0, at::tensor(first, at::kLong));
  at::Tensor match = inverse.unsqueeze(1) == at::arange(u, at::kLong).unsqueeze(0);  // [n images, u texts]
  at::Tensor sim = at::matmul(images.to(at::kCPU, at::kFloat), unique_texts.t());
  r.pairs = n;
  r.texts = u;
  const int64_t ks[3] = {1, 5, 10};
  for (int way = 0; way < 2; ++way) {
    at::Tensor s = way == 0 ? sim : sim.t();
    at::Tensor m = way == 0 ? match : match.t();
    const int64_t candidates = s.size(1);
    at::Tensor order = std::get<1>(s.topk(std::min<int64_t>(10, candidates), 1));  // best first
    at::Tensor hit = m.gather(1, order);                                           // is the candidate a match
    for (int j = 0; j < 3; ++j) {
      int64_t k = std::min<int64_t>(ks[j], candidates);
      double recall = hit.narrow(1, 0, k).any(1).to(at::kDouble).mean().item<double>();
      (way == 0 ? r.image_to_text : r.text_to_image)[j] = recall;
    }
  }
  return r;
}

#if SIGLIP2_CONFIG_DATA_PIPELINE
namespace {

std::vector<std::string> read_lines(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) throw Error(std::string(what) + " file '" + path + "' cannot be opened");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  if (lines.empty()) throw Error(std::string(what) + " file '" + path + "' is empty");
  return lines;
}

}  // namespace

ZeroShotResult zero_shot_accuracy(Siglip2ModelImpl& model, const Tokenizer& tokenizer, const ImageConfig& image,
                                  const EvalConfig& eval) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  auto classes = read_lines(eval.classnames, "class names");
  auto templates = read_lines(eval.templates, "templates");
  const auto device = model.logit_scale.device();

  std::vector<at::Tensor> class_embeds;
  for (const auto& name : classes) {
    std::vector<std::string> prompts;
    for (const auto& t : templates) {
      std::string p = t;
      size_t at = p.find("{}");
      if (at != std::string::npos) p.replace(at, 2, name);
      prompts.push_back(p);
    }
    at::Tensor e = l2_normalize(model.encode_text(tokenizer.encode(prompts).to(device)).pooler_output).mean(0);
    class_embeds.push_back(e / e.norm());
  }
  at::Tensor text = at::stack(class_embeds);  // [C, E]

  LoaderConfig lc;
  lc.shards = {eval.shards};
  lc.batch_size = eval.batch_size;
  lc.workers = 1;
  lc.epochs = 1;
  lc.shuffle_buffer = 0;
  lc.locca = false;
  lc.self_distillation = false;
  DataLoader loader(lc, image, tokenizer, 0, 1);
  ZeroShotResult r;
  r.classes = static_cast<int64_t>(classes.size());
  int64_t hit1 = 0, hit5 = 0;
  std::vector<at::Tensor> ret_images, ret_texts, ret_ids;
  int64_t ret_count = 0;
  while (auto batch = loader.next()) {
    at::Tensor labels = batch->labels;
    at::Tensor keep = labels >= 0;
    if (keep.sum().item<int64_t>() == 0) continue;
    VisionInput in{batch->pixel_values.to(device), {}, {}};
    if (batch->pixel_attention_mask.defined()) {
      in.pixel_attention_mask = batch->pixel_attention_mask.to(device);
      in.spatial_shapes = batch->spatial_shapes.to(device);
    }
    at::Tensor img = l2_normalize(model.encode_image(in).pooler_output);
    if (ret_count < eval.retrieval_pairs && batch->input_ids.defined()) {
      int64_t take = std::min<int64_t>(eval.retrieval_pairs - ret_count, img.size(0));
      at::Tensor ids = batch->input_ids.narrow(0, 0, take);
      ret_images.push_back(img.narrow(0, 0, take).cpu());
      ret_texts.push_back(l2_normalize(model.encode_text(ids.to(device)).pooler_output).cpu());
      ret_ids.push_back(ids.cpu());
      ret_count += take;
    }
    at::Tensor top = std::get<1>(at::matmul(img, text.t()).topk(std::min<int64_t>(5, r.classes), 1)).cpu();
    for (int64_t i = 0; i < labels.size(0); ++i) {
      int64_t y = labels[i].item<int64_t>();
      if (y < 0) continue;
      if (y >= r.classes)
        throw Error("eval: label " + std::to_string(y) + " has no class name (" + std::to_string(r.classes) + " in " +
                    eval.classnames + ")");
      ++r.images;
      hit1 += top[i][0].item<int64_t>() == y;
      hit5 += (top[i] == y).any().item<bool>();
    }
  }
  if (r.images == 0) throw Error("eval: no labelled images in '" + eval.shards + "'");
  r.top1 = static_cast<double>(hit1) / static_cast<double>(r.images);
  r.top5 = static_cast<double>(hit5) / static_cast<double>(r.images);
  if (ret_count > 0) r.retrieval = retrieval_recall(at::cat(ret_images), at::cat(ret_texts), at::cat(ret_ids));
  if (was_training) model.train();
  return r;
}
#else
ZeroShotResult zero_shot_accuracy(Siglip2ModelImpl&, const Tokenizer&, const ImageConfig&, const EvalConfig&) {
  throw Error("zero-shot evaluation needs a build with OpenCV, libarchive and sentencepiece");
}
#endif

bool evaluation_supported() {
  return SIGLIP2_CONFIG_DATA_PIPELINE != 0;
}

void check_evaluation_inputs(const RunConfig& config) {
  if (config.eval.shards.empty()) return;
  if (!evaluation_supported())
    throw ConfigError("eval.shards: evaluation needs a build with OpenCV, libarchive and sentencepiece");
  check_shard_files("eval.shards", config.eval.shards, expand_braces(config.eval.shards), 0.0, &config.data.remote);
}

void evaluate_zero_shot(const RunConfig& config, Siglip2ModelImpl& model, TrainingLog* log, int64_t step) {
  if (config.eval.shards.empty() || log == nullptr) return;
#if SIGLIP2_CONFIG_DATA_PIPELINE
  const Tokenizer tokenizer = Tokenizer::load(config.tokenizer);
  const auto t0 = std::chrono::steady_clock::now();
  const ZeroShotResult z = zero_shot_accuracy(model, tokenizer, config.image, config.eval);
  log->evaluation(step, z, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
#else
  (void)model;
  (void)step;
  throw Error("zero-shot evaluation needs a build with OpenCV, libarchive and sentencepiece");
#endif
}

}  // namespace siglip2
