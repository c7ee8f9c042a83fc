// `siglip2 zero-shot`: how well each label describes an image, as sigmoid(logit), highest first.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "common/error.hpp"
#include "interop/checkpoint_dir.hpp"
#include "interop/embedder.hpp"

namespace siglip2::cli {
namespace {

struct ZeroShotArgs {
  std::string model;
  std::string image;
  std::vector<std::string> labels;
  std::string template_text = "{}";
  int64_t max_num_patches = 0;
  std::string device = "auto";
};

std::string apply_template(const std::string& templ, const std::string& label) {
  size_t at = templ.find("{}");
  if (at == std::string::npos) throw UsageError("--template must contain {} where the label goes");
  return templ.substr(0, at) + label + templ.substr(at + 2);
}

void run_zero_shot(const ZeroShotArgs& a) {
  Embedder embedder(load_any_model(a.model), parse_device(a.device));
  std::vector<std::string> texts;
  for (const auto& label : a.labels) texts.push_back(apply_template(a.template_text, label));
  at::Tensor ids = embedder.tokenize(texts);
  TowerOutput image = embedder.encode_images(embedder.load_images({a.image}, a.max_num_patches));
  TowerOutput text = embedder.encode_texts(ids);
  at::Tensor probs = torch::sigmoid(embedder.logits(image.embeds, text.embeds)[0]).contiguous();
  std::vector<size_t> order(a.labels.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  const float* p = probs.data_ptr<float>();
  std::stable_sort(order.begin(), order.end(), [p](size_t x, size_t y) { return p[x] > p[y]; });
  for (size_t i : order) std::printf("%.4f  %s\n", p[i], a.labels[i].c_str());
}

}  // namespace

void add_zero_shot_command(CLI::App& app) {
  auto args = std::make_shared<ZeroShotArgs>();
  auto* cmd = app.add_subcommand("zero-shot", "score labels for an image: sigmoid(logit) per label, highest first");
  cmd->add_option("--model", args->model, "siglip2-cpp model directory or Hugging Face checkpoint")->required();
  cmd->add_option("--image", args->image, "image file")->required();
  cmd->add_option("--labels", args->labels, "candidate labels, one argument each")->required();
  cmd->add_option("--template", args->template_text, "text around each label, e.g. \"this is a photo of {}.\"")
      ->capture_default_str();
  cmd->add_option("--max-num-patches", args->max_num_patches, "NaFlex: patches per image (default: the model's)");
  cmd->add_option("--device", args->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->callback([args] { run_zero_shot(*args); });
}

}  // namespace siglip2::cli
