#include "train/eval.hpp"

#include <torch/torch.h>

#include <fstream>

#include "common/error.hpp"
#include "siglip2/build_config.hpp"
#if SIGLIP2_CONFIG_ARCHIVE && SIGLIP2_CONFIG_OPENCV && SIGLIP2_CONFIG_SENTENCEPIECE
#define SIGLIP2_DATA_PIPELINE 1
#include "data/loader.hpp"
#include "data/tokenizer.hpp"
#else
#define SIGLIP2_DATA_PIPELINE 0
#endif
#include "models/siglip2.hpp"

namespace siglip2 {
#if SIGLIP2_DATA_PIPELINE
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
  lc.ssl_views = false;
  DataLoader loader(lc, image, tokenizer, 0, 1);
  ZeroShotResult r;
  r.classes = static_cast<int64_t>(classes.size());
  int64_t hit1 = 0, hit5 = 0;
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
  if (was_training) model.train();
  return r;
}
#else
ZeroShotResult zero_shot_accuracy(Siglip2ModelImpl&, const Tokenizer&, const ImageConfig&, const EvalConfig&) {
  throw Error("zero-shot evaluation needs a build with OpenCV, libarchive and sentencepiece");
}
#endif

}  // namespace siglip2
