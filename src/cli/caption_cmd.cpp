// `siglip2 caption --model CKPT --image FILE [--box x0,y0,x1,y1 | --refer TEXT]`: greedy decoding with the
// LocCa decoder of a training checkpoint, to see what it learned. Captioning ("Cap:"), grounded
// captioning ("GCap: {box} :" -> region caption) and referring expressions ("ARef: {text} :" -> box), with
// the prompt layout of the training targets (src/data/locca_targets.hpp).
#include <fmt/format.h>
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <array>
#include <filesystem>
#include <iostream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "common/config.hpp"
#include "common/error.hpp"
#include "common/safetensors.hpp"
#include "models/siglip2.hpp"
#include "models/text_decoder.hpp"
#include "siglip2/build_config.hpp"
#include "train/config.hpp"
#include "train/model.hpp"
#if SIGLIP2_CONFIG_DATA_PIPELINE
#include <sentencepiece_processor.h>

#include "data/image.hpp"
#include "data/locca_targets.hpp"
#include "data/tokenizer.hpp"
#endif

namespace siglip2::cli {
namespace {

namespace fs = std::filesystem;

struct CaptionArgs {
  std::string model, image, box, refer;
  int64_t max_tokens = 0;
};

#if SIGLIP2_CONFIG_DATA_PIPELINE
std::array<float, 4> parse_box(const std::string& text) {
  std::array<float, 4> b{};
  std::string rest = text;
  for (int i = 0; i < 4; ++i) {
    size_t used = 0;
    try {
      b[i] = std::stof(rest, &used);
    } catch (...) {
      throw UsageError("--box '" + text + "': expected x0,y0,x1,y1 in relative coordinates");
    }
    rest = rest.substr(used);
    if (i < 3) {
      if (rest.empty() || rest[0] != ',') throw UsageError("--box '" + text + "': expected x0,y0,x1,y1");
      rest = rest.substr(1);
    }
  }
  for (float v : b)
    if (v < 0 || v > 1) throw UsageError("--box '" + text + "': coordinates are relative, in [0, 1]");
  return b;
}

// The towers and the LocCa decoder of training checkpoint `dir` (the run's model assembly, then its tensors).
TrainingModel load_towers_and_decoder(const fs::path& dir, const RunConfig& cfg) {
  const std::string weights_path = (dir / "model.safetensors").string();
  auto weights = safetensors::File::open(weights_path);
  TrainingModel trained = build_training_model(cfg, /*locca=*/true, static_cast<uint64_t>(cfg.train.seed), c10::kCPU);
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, t] : trained.parameters()) {
    if (!weights.contains(name) && name.rfind("text_decoder.", 0) == 0)
      throw Error("'" + dir.string() + "' has no LocCa decoder (" + name +
                  " is missing): only training checkpoints with train.locca keep one");
    if (weights.contains(name)) tensors.emplace(name, weights.get(name));
  }
  load_named(trained.parameters(), tensors, "'" + weights_path + "'");
  return trained;
}

void run_caption(const CaptionArgs& a) {
  if (!a.box.empty() && !a.refer.empty()) throw UsageError("give --box or --refer, not both");
  const fs::path dir(a.model);
  if (!fs::exists(dir / "config.yaml") || !fs::exists(dir / "model.safetensors"))
    throw Error("'" + a.model + "' is not a training checkpoint (config.yaml and model.safetensors expected)");
  RunConfig cfg = load_checkpoint_config((dir / "config.yaml").string());
  torch::NoGradGuard no_grad;
  TrainingModel trained = load_towers_and_decoder(dir, cfg);
  Siglip2Model model = trained.towers;
  TextDecoder decoder = trained.decoder;
  model->eval();
  decoder->eval();

  Tokenizer tokenizer = Tokenizer::load(cfg.tokenizer, dir.string());
  fs::path spm_file = cfg.tokenizer.model_file;
  if (spm_file.is_relative()) spm_file = dir / spm_file;
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.Load(spm_file.string()).ok()) throw Error("cannot load the tokenizer model '" + spm_file.string() + "'");

  at::Tensor rgb = decode_image(a.image);
  VisionInput in;
  if (cfg.image.naflex) {
    NaflexImage n = preprocess_naflex(rgb, cfg.image.patch_size, cfg.image.max_num_patches);
    in = {n.patches.unsqueeze(0), n.mask.unsqueeze(0), n.spatial_shape.unsqueeze(0)};
  } else {
    in = {preprocess_fixed(rgb, cfg.image.image_size, cfg.image.resample).unsqueeze(0), {}, {}};
  }
  VisionOutput image = model->encode_image(in);

  const auto& lt = cfg.data.locca_targets;
  std::string prefix = lt.caption_prefix, start;
  if (!a.box.empty()) {
    prefix = lt.grounded_prefix;
    start = format_box(parse_box(a.box), lt.box_bins) + " :";
  } else if (!a.refer.empty()) {
    prefix = lt.referring_prefix;
    start = a.refer + " :";
  }
  std::vector<int64_t> seq;
  for (int id : tokenizer.pieces(prefix)) seq.push_back(id);
  for (int id : tokenizer.pieces(start)) seq.push_back(id);
  const size_t known = seq.size();
  const int64_t limit =
      a.max_tokens > 0 ? std::min<int64_t>(a.max_tokens + static_cast<int64_t>(known), cfg.model.decoder.max_length)
                       : cfg.model.decoder.max_length;
  // Greedy: the input is the sequence shifted right behind the start (pad) token, as in training.
  while (static_cast<int64_t>(seq.size()) < limit) {
    std::vector<int64_t> inputs{cfg.tokenizer.pad_id};
    inputs.insert(inputs.end(), seq.begin(), seq.end());
    at::Tensor ids = torch::tensor(inputs, torch::kLong).unsqueeze(0);
    at::Tensor hidden =
        decoder->forward(ids, torch::zeros({1}, torch::kBool), image.last_hidden_state, in.pixel_attention_mask);
    int64_t next = decoder->output(hidden[0][ids.size(1) - 1]).argmax().item<int64_t>();
    if (next == cfg.tokenizer.eos_id) break;
    seq.push_back(next);
  }
  std::vector<int> generated(seq.begin() + static_cast<std::ptrdiff_t>(known), seq.end());
  std::string text = sp.DecodeIds(generated);
  if (a.refer.empty()) {
    std::cout << text << "\n";
    return;
  }
  // A referring expression ends in a box: "x0 y0 x1 y1" in bins; print it in relative coordinates.
  std::smatch m;
  static const std::regex four(R"((\d+)\s+(\d+)\s+(\d+)\s+(\d+))");
  if (!std::regex_search(text, m, four)) {
    std::cout << "no box decoded (the decoder wrote: '" << text << "')\n";
    return;
  }
  std::array<double, 4> rel{};
  for (int i = 0; i < 4; ++i) rel[i] = (std::stod(m[i + 1].str()) + 0.5) / static_cast<double>(lt.box_bins);
  std::cout << fmt::format("{:.3f},{:.3f},{:.3f},{:.3f}", rel[0], rel[1], rel[2], rel[3]) << "\n";
}
#else
void run_caption(const CaptionArgs&) {
  throw Error("caption needs a build with OpenCV, libarchive and sentencepiece");
}
#endif

}  // namespace

void add_caption_command(CLI::App& app) {
  auto args = std::make_shared<CaptionArgs>();
  auto* cmd = app.add_subcommand(
      "caption",
      "greedy decoding with a checkpoint's LocCa decoder: a caption, a region caption (--box) or a box "
      "for a referring expression (--refer)");
  cmd->add_option("--model", args->model, "training checkpoint (RUN/ckpt-N)")->required();
  cmd->add_option("--image", args->image, "image file")->required();
  cmd->add_option("--box", args->box, "x0,y0,x1,y1 in relative coordinates: caption this region");
  cmd->add_option("--refer", args->refer, "a region caption: print the box it refers to");
  cmd->add_option("--max-tokens", args->max_tokens, "stop after this many generated tokens (0: the decoder's length)");
  cmd->callback([args] { run_caption(*args); });
}

}  // namespace siglip2::cli
