// `siglip2 embed`: image and text embeddings (and their logits) from a model directory or a Hugging
// Face checkpoint, written to a safetensors file. Inputs are image files, texts, or tensors that are
// already preprocessed (--inputs: pixel_values, pixel_attention_mask, spatial_shapes, input_ids).
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "common/error.hpp"
#include "common/logging.hpp"
#include "common/safetensors.hpp"
#include "interop/checkpoint_dir.hpp"
#include "interop/embedder.hpp"

namespace siglip2::cli {
namespace {

struct EmbedArgs {
  std::string model;
  std::vector<std::string> images;
  std::vector<std::string> texts;
  std::string inputs;
  std::string out;
  int64_t max_num_patches = 0;
  bool features = false;
  int64_t batch_size = 32;
  std::string device = "auto";
};

struct Inputs {
  VisionInput vision;  // pixel_values undefined = no images
  at::Tensor input_ids;
};

std::string shape_of(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

// NaFlex rows as transformers' processor writes them: image i fills the first h*w of the S positions
// (spatial_shapes row i = (h, w), both positive) and its pixel_attention_mask row is h*w ones, then zeros.
template <class Fail>
void check_naflex_rows(const VisionInput& v, int64_t seq, const Fail& fail) {
  const at::Tensor shapes = v.spatial_shapes.to(at::kCPU, at::kLong).contiguous();
  const at::Tensor mask = v.pixel_attention_mask.defined()
                              ? v.pixel_attention_mask.to(at::kCPU).ne(0).to(at::kLong).contiguous()
                              : at::Tensor();
  auto hw = shapes.accessor<int64_t, 2>();
  for (int64_t i = 0; i < shapes.size(0); ++i) {
    const std::string row = " row " + std::to_string(i);
    const int64_t h = hw[i][0], w = hw[i][1];
    const std::string grid = std::to_string(h) + " x " + std::to_string(w);
    if (h <= 0 || w <= 0) fail("spatial_shapes" + row + " is " + grid + ": patch rows and columns must be positive");
    if (h * w > seq)
      fail("spatial_shapes" + row + " is " + grid + " = " + std::to_string(h * w) + " patches, more than the " +
           std::to_string(seq) + " positions of pixel_values");
    if (!mask.defined()) continue;
    const at::Tensor m = mask[i];
    const int64_t ones = m.sum().item<int64_t>();
    if (ones == 0) fail("pixel_attention_mask" + row + " is all zeros: image " + std::to_string(i) + " has no patches");
    if (!m.slice(0, 0, ones).all().item<bool>())
      fail("pixel_attention_mask" + row + " is not ones followed by zeros (padding must come last)");
    if (ones != h * w)
      fail("pixel_attention_mask" + row + " has " + std::to_string(ones) + " ones, but spatial_shapes" + row + " is " +
           grid + " = " + std::to_string(h * w) + " patches");
  }
}

// Checks tensors from --inputs against what the model takes; the messages name the tensor and the shape wanted.
void check_inputs(const Inputs& in, const ModelConfig& m, const std::string& file) {
  const VisionInput& v = in.vision;
  auto fail = [&](const std::string& what) { throw Error("--inputs '" + file + "': " + what); };
  if (v.pixel_values.defined()) {
    const at::Tensor& x = v.pixel_values;
    const int64_t b = x.size(0);
    if (m.vision.naflex) {
      const int64_t ppc = m.vision.num_channels * m.vision.patch_size * m.vision.patch_size;
      if (x.dim() != 3 || x.size(2) != ppc)
        fail("pixel_values is " + shape_of(x) + "; this NaFlex model takes [B, S, " + std::to_string(ppc) +
             "] patches");
      if (!v.spatial_shapes.defined() || v.spatial_shapes.dim() != 2 || v.spatial_shapes.size(0) != b ||
          v.spatial_shapes.size(1) != 2)
        fail("a NaFlex model needs spatial_shapes [" + std::to_string(b) + ", 2] (patch rows, cols per image)");
      if (v.pixel_attention_mask.defined() && !v.pixel_attention_mask.sizes().equals({b, x.size(1)}))
        fail("pixel_attention_mask is " + shape_of(v.pixel_attention_mask) + ", expected [" + std::to_string(b) + ", " +
             std::to_string(x.size(1)) + "]");
      check_naflex_rows(v, x.size(1), fail);
    } else {
      const int64_t s = m.vision.image_size;
      if (x.dim() != 4 || x.size(1) != m.vision.num_channels || x.size(2) != s || x.size(3) != s)
        fail("pixel_values is " + shape_of(x) + "; this fixed-resolution model takes [B, " +
             std::to_string(m.vision.num_channels) + ", " + std::to_string(s) + ", " + std::to_string(s) + "]");
      if (v.pixel_attention_mask.defined() || v.spatial_shapes.defined())
        fail("pixel_attention_mask and spatial_shapes are NaFlex inputs; this model has a fixed resolution");
    }
  } else if (v.pixel_attention_mask.defined() || v.spatial_shapes.defined()) {
    fail("pixel_attention_mask / spatial_shapes without pixel_values");
  }
  if (in.input_ids.defined()) {
    const at::Tensor& ids = in.input_ids;
    // The text tower pools the last position, so a shorter row is not the same text padded: refuse it.
    const std::string length = std::to_string(m.text.max_position_embeddings);
    if (ids.dim() != 2 || ids.size(1) != m.text.max_position_embeddings)
      fail("input_ids is " + shape_of(ids) + "; this model's text tower takes [N, " + length + "]: pad each row to " +
           length + " with the tokenizer's pad id, as the tokenizer does");
    if (at::isFloatingType(ids.scalar_type())) fail("input_ids must be integers");
    if (ids.numel() > 0 && (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= m.text.vocab_size))
      fail("input_ids must lie in [0, " + std::to_string(m.text.vocab_size) + ")");
  }
}

Inputs read_inputs(const std::string& file, const ModelConfig& m) {
  Inputs in;
  for (auto& [name, t] : safetensors::load(file)) {
    if (name == "pixel_values") {
      in.vision.pixel_values = t;
    } else if (name == "pixel_attention_mask") {
      in.vision.pixel_attention_mask = t;
    } else if (name == "spatial_shapes") {
      in.vision.spatial_shapes = t.to(at::kLong);
    } else if (name == "input_ids") {
      in.input_ids = t;
    } else if (name == "attention_mask") {
      log_warn("--inputs: ignoring attention_mask: the text tower runs unmasked, as the released models do");
    } else {
      throw Error("--inputs '" + file + "': unknown tensor '" + name +
                  "' (expected pixel_values, pixel_attention_mask, spatial_shapes, input_ids)");
    }
  }
  check_inputs(in, m, file);
  if (m.vision.naflex && in.vision.pixel_values.defined() && !in.vision.pixel_attention_mask.defined()) {
    // No mask given: the first h*w positions of each row are its patches (checked above), the rest padding.
    const at::Tensor counts = in.vision.spatial_shapes.prod(1, /*keepdim=*/true);
    in.vision.pixel_attention_mask = at::arange(in.vision.pixel_values.size(1), at::kLong).unsqueeze(0).lt(counts);
  }
  return in;
}

void run_embed(const EmbedArgs& a) {
  if (a.images.empty() && a.texts.empty() && a.inputs.empty())
    throw UsageError("embed: nothing to embed; pass --images, --texts or --inputs");
  Embedder embedder(load_any_model(a.model), parse_device(a.device), a.batch_size);
  const ModelConfig& m = embedder.bundle().config.model;

  Inputs in;
  if (!a.inputs.empty()) in = read_inputs(a.inputs, m);
  if (!a.images.empty()) {
    if (in.vision.pixel_values.defined()) throw UsageError("embed: images come from --images or --inputs, not both");
    in.vision = embedder.load_images(a.images, a.max_num_patches);
  }
  if (!a.texts.empty()) {
    if (in.input_ids.defined()) throw UsageError("embed: texts come from --texts or --inputs, not both");
    in.input_ids = embedder.tokenize(a.texts);
  }

  NamedTensors out;
  TowerOutput image, text;
  if (in.vision.pixel_values.defined()) {
    image = embedder.encode_images(in.vision, a.features);
    out.emplace_back("image_embeds", image.embeds);
  }
  if (in.input_ids.defined()) {
    text = embedder.encode_texts(in.input_ids, a.features);
    out.emplace_back("text_embeds", text.embeds);
  }
  if (image.embeds.defined() && text.embeds.defined())
    out.emplace_back("logits_per_image", embedder.logits(image.embeds, text.embeds));
  if (a.features) {
    if (image.embeds.defined()) {
      out.emplace_back("image_features", image.features);
      out.emplace_back("image_last_hidden_state", image.last_hidden_state);
      // NaFlex: which rows of image_last_hidden_state are patches, and their grid (row-major h x w).
      if (in.vision.spatial_shapes.defined()) {
        const at::Tensor shapes = in.vision.spatial_shapes.to(at::kCPU, at::kLong);
        out.emplace_back("pixel_attention_mask", in.vision.pixel_attention_mask.to(at::kCPU).ne(0).to(at::kInt));
        out.emplace_back("spatial_shapes", shapes.contiguous());
      }
    }
    if (text.embeds.defined()) {
      out.emplace_back("text_features", text.features);
      out.emplace_back("text_last_hidden_state", text.last_hidden_state);
    }
  }
  if (!a.texts.empty()) out.emplace_back("input_ids", in.input_ids.to(at::kLong));

  std::filesystem::path parent = std::filesystem::absolute(a.out).parent_path();
  std::filesystem::create_directories(parent);
  safetensors::save(a.out, out, {{"model", embedder.bundle().source}});
  std::string summary;
  for (const auto& [name, t] : out) summary += (summary.empty() ? "" : ", ") + name + " " + shape_of(t);
  log_info("wrote " + summary + " to '" + a.out + "'");
}

}  // namespace

void add_embed_command(CLI::App& app) {
  auto args = std::make_shared<EmbedArgs>();
  auto* cmd = app.add_subcommand("embed", "embed images and texts with a model; write the embeddings as safetensors");
  cmd->add_option("--model", args->model, "siglip2-cpp model directory or Hugging Face checkpoint")->required();
  cmd->add_option("--images", args->images, "image files");
  cmd->add_option("--texts", args->texts, "texts (one argument each)");
  cmd->add_option("--inputs", args->inputs,
                  "safetensors file of preprocessed tensors: pixel_values, pixel_attention_mask, spatial_shapes, "
                  "input_ids (padded to the model's text length; NaFlex rows as the HF processor writes them)");
  cmd->add_option("--out", args->out,
                  "output safetensors file: image_embeds, text_embeds, logits_per_image (and input_ids for --texts)")
      ->required();
  cmd->add_option("--max-num-patches", args->max_num_patches, "NaFlex: patches per image (default: the model's)");
  cmd->add_flag("--features", args->features,
                "also write image_features/text_features (pooled, not normalised) and *_last_hidden_state; "
                "for NaFlex also pixel_attention_mask [B, S] (1 = a patch row) and spatial_shapes [B, 2] (h, w): "
                "image i's patch features are its first h*w rows, row-major");
  cmd->add_option("--batch-size", args->batch_size, "images or texts per forward pass")->capture_default_str();
  cmd->add_option("--device", args->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->callback([args] { run_embed(*args); });
}

}  // namespace siglip2::cli
