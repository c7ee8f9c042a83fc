#include "interop/hf_export.hpp"

#include "siglip2/build_config.hpp"
#if SIGLIP2_CONFIG_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/logging.hpp"
#include "common/safetensors.hpp"
#include "interop/hf_import.hpp"
#include "interop/hf_tokenizer_json.hpp"
#include "interop/hf_tokenizer_kept.hpp"

namespace siglip2 {
namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

namespace {

// Floats are written as JSON doubles (1e-06, 0.0, 1.0) so that strict typed configs accept them.
ordered_json vision_json(const VisionConfig& v) {
  ordered_json j;
  j["model_type"] = v.naflex ? "siglip2_vision_model" : "siglip_vision_model";
  j["hidden_size"] = v.hidden_size;
  j["intermediate_size"] = v.intermediate_size;
  j["num_hidden_layers"] = v.num_hidden_layers;
  j["num_attention_heads"] = v.num_attention_heads;
  j["num_channels"] = v.num_channels;
  if (v.naflex)
    j["num_patches"] = v.num_patches;
  else
    j["image_size"] = v.image_size;
  j["patch_size"] = v.patch_size;
  j["hidden_act"] = "gelu_pytorch_tanh";
  j["layer_norm_eps"] = v.layer_norm_eps;
  j["attention_dropout"] = 0.0;
  j["vision_use_head"] = true;
  return j;
}

ordered_json text_json(const TextConfig& t, const TokenizerConfig& tok, bool naflex) {
  ordered_json j;
  j["model_type"] = naflex ? "siglip2_text_model" : "siglip_text_model";
  j["vocab_size"] = t.vocab_size;
  j["hidden_size"] = t.hidden_size;
  j["intermediate_size"] = t.intermediate_size;
  j["num_hidden_layers"] = t.num_hidden_layers;
  j["num_attention_heads"] = t.num_attention_heads;
  j["max_position_embeddings"] = t.max_position_embeddings;
  j["hidden_act"] = "gelu_pytorch_tanh";
  j["layer_norm_eps"] = t.layer_norm_eps;
  j["attention_dropout"] = 0.0;
  j["projection_size"] = t.projection_size > 0 ? t.projection_size : t.hidden_size;
  j["pad_token_id"] = tok.pad_id;
  j["eos_token_id"] = tok.eos_id;
  if (tok.siglip1)
    j["bos_token_id"] = nullptr;  // SigLIP 1 has no BOS
  else
    j["bos_token_id"] = 2;  // Gemma <bos>
  return j;
}

void check_dtype(const std::string& dtype) {
  if (dtype != "float32" && dtype != "bfloat16")
    throw UsageError("--dtype must be float32 or bfloat16, got '" + dtype + "'");
}

std::string json_text(const ordered_json& j) {
  return j.dump(2) + "\n";
}

}  // namespace

std::string hf_config_json(const ModelBundleConfig& c, const HfExportOptions& o) {
  check_dtype(o.dtype);
  const bool naflex = c.model.vision.naflex;
  ordered_json j;
  if (o.vision_only) {
    j["architectures"] = {naflex ? "Siglip2VisionModel" : "SiglipVisionModel"};
    const ordered_json vision = vision_json(c.model.vision);
    for (const auto& [key, value] : vision.items()) j[key] = value;
  } else {
    j["architectures"] = {naflex ? "Siglip2Model" : "SiglipModel"};
    j["model_type"] = naflex ? "siglip2" : "siglip";
    j["initializer_factor"] = 1.0;
    j["text_config"] = text_json(c.model.text, c.tokenizer, naflex);
    j["vision_config"] = vision_json(c.model.vision);
  }
  j["torch_dtype"] = o.dtype;
  return json_text(j);
}

std::string hf_preprocessor_json(const ImageConfig& img) {
  ordered_json j;
  // The torchvision processors, which src/data matches bit for bit: "*Fast" in transformers 4, which
  // transformers 5 maps to its (torchvision) Siglip2ImageProcessor / SiglipImageProcessor.
  j["image_processor_type"] = img.naflex ? "Siglip2ImageProcessorFast" : "SiglipImageProcessorFast";
  j["do_resize"] = true;
  j["resample"] = img.resample == "bicubic" ? 3 : 2;
  j["do_rescale"] = true;
  j["rescale_factor"] = 1.0 / 255.0;
  j["do_normalize"] = true;
  j["image_mean"] = {0.5, 0.5, 0.5};
  j["image_std"] = {0.5, 0.5, 0.5};
  if (img.naflex) {
    j["patch_size"] = img.patch_size;
    j["max_num_patches"] = img.max_num_patches;
  } else {
    j["size"] = {{"height", img.image_size}, {"width", img.image_size}};
  }
  return json_text(j);
}

SpecialTokens special_tokens(const TokenizerConfig& t, const std::string& model_file) {
  SpecialTokens s{"", "</s>", "</s>", "<unk>"};  // SigLIP 1: no BOS, pad = eos = </s>
#if SIGLIP2_CONFIG_SENTENCEPIECE
  if (model_file.empty()) return s;
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.Load(model_file).ok()) throw Error("cannot load the tokenizer model '" + model_file + "'");
  auto piece = [&](int id, const std::string& fallback) {
    return id >= 0 && id < sp.GetPieceSize() ? sp.IdToPiece(id) : fallback;
  };
  s.eos = piece(static_cast<int>(t.eos_id), s.eos);
  s.pad = piece(static_cast<int>(t.pad_id), s.pad);
  s.unk = piece(sp.unk_id(), s.unk);
#endif
  return s;
}

std::string hf_tokenizer_config_json(const TokenizerConfig& t, const SpecialTokens& s) {
  // SiglipTokenizer (hf_interop.md §5.2): pad = eos = </s>, lowercased, punctuation stripped by the class.
  ordered_json j;
  j["tokenizer_class"] = "SiglipTokenizer";
  j["eos_token"] = s.eos;
  j["pad_token"] = s.pad;
  j["unk_token"] = s.unk;
  j["padding_side"] = "right";
  j["do_lower_case"] = t.lowercase != "none";
  j["model_max_length"] = t.length;
  j["model_input_names"] = {"input_ids"};
  return json_text(j);
}

std::string hf_special_tokens_json(const TokenizerConfig&, const SpecialTokens& s) {
  ordered_json j;
  j["eos_token"] = s.eos;
  j["pad_token"] = s.pad;
  j["unk_token"] = s.unk;
  return json_text(j);
}

namespace {

// What an export reads: the model directory's config, tensors and tokenizer model, from either kind of
// directory (ours: config.yaml + model.safetensors; Hugging Face's: config.json + safetensors).
struct ExportSource {
  ModelBundleConfig config;
  NamedTensors tensors;
  std::string tokenizer_model;
  std::string what;  // the weights, as errors name them
  bool hf_dir = false;
};

ExportSource read_export_source(const std::string& model_dir) {
  if (!fs::is_directory(model_dir)) throw Error("model directory '" + model_dir + "' does not exist");
  ExportSource s;
  s.hf_dir = is_hf_dir(model_dir);
  if (s.hf_dir) {
    HfCheckpoint hf = read_hf_checkpoint(model_dir);
    s.config = hf.config;
    s.tensors = std::move(hf.tensors);
    s.tokenizer_model = hf.tokenizer_model;
    s.what = "Hugging Face checkpoint '" + model_dir + "'";
    return s;
  }
  s.config = load_bundle_config(model_dir);
  s.tokenizer_model = tokenizer_model_path(model_dir, s.config.tokenizer);
  const std::string weights = (fs::path(model_dir) / "model.safetensors").string();
  if (!fs::exists(weights)) throw Error("model directory '" + model_dir + "' has no model.safetensors");
  safetensors::File f = safetensors::File::open(weights);
  for (const auto& info : f.tensors()) s.tensors.emplace_back(info.name, f.get(info.name));
  s.what = "'" + weights + "'";
  return s;
}

// SigLIP 2 style tokenizers travel as tokenizer.json (exact in a transformers without sentencepiece);
// SigLIP 1's keeps SiglipTokenizer over spiece.model (its nmt_nfkc charsmap has no exact tokenizer.json),
// and gets no files from here. An imported checkpoint's own tokenizer.json is written unchanged where it
// still applies (src/interop/hf_tokenizer_kept.hpp); otherwise one is generated from tokenizer.model.
HfTokenizerFiles tokenizer_json_files(const std::string& model_dir, const ExportSource& s, const std::string& bytes,
                                      bool regenerate) {
  SentencePieceModel sp;
  try {
    sp = SentencePieceModel::parse(bytes, s.tokenizer_model);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + "; or export with --no-tokenizer");
  }
  std::string why_not;
  std::optional<HfTokenizerFiles> kept;
  if (!regenerate)
    kept = kept_tokenizer_files(s.tokenizer_model, sp, s.config.tokenizer, s.config.model.vision.naflex, s.hf_dir,
                                &why_not);
  if (kept) {
    log_info("tokenizer.json: the imported original, unchanged");
    return std::move(*kept);
  }
  if (!why_not.empty()) log_warn("not writing the imported tokenizer.json: " + why_not + "; generating one");
  try {
    return hf_tokenizer_files(sp, s.config.tokenizer, s.config.model.vision.naflex, "'" + model_dir + "'");
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + "; or export with --no-tokenizer");
  }
}

}  // namespace

void export_hf(const std::string& model_dir, const std::string& out_dir, const HfExportOptions& o) {
  check_dtype(o.dtype);
  check_output_dir(out_dir, o.overwrite);
  const ExportSource source = read_export_source(model_dir);
  const ModelBundleConfig& config = source.config;
  const std::string& tokenizer_model = source.tokenizer_model;
  const TensorShapes expected = expected_hf_tensors(config.model);
  check_tensors(expected, source.tensors, source.what);

  // Only the two towers and the logit scale/bias: training-only tensors (text_decoder.*, self_distillation.*) stay
  // behind.
  std::map<std::string, at::Tensor> by_name(source.tensors.begin(), source.tensors.end());
  const at::ScalarType dtype = o.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
  NamedTensors out;
  for (const auto& [name, shape] : expected) {
    if (o.vision_only && name.rfind("vision_model.", 0) != 0) continue;
    out.emplace_back(name, by_name.at(name).to(dtype));
  }
  bool with_tokenizer = !o.vision_only && !o.no_tokenizer && !tokenizer_model.empty();
  if (!o.vision_only && !o.no_tokenizer && tokenizer_model.empty())
    log_warn("'" + model_dir + "' has no tokenizer model: the export has no tokenizer files");
  if (with_tokenizer && !fs::exists(tokenizer_model))
    throw Error("the tokenizer model of '" + model_dir + "' (" + tokenizer_model + ") does not exist");
  const std::string tokenizer_bytes = with_tokenizer ? read_file(tokenizer_model) : std::string();
  HfTokenizerFiles json_files;
  if (with_tokenizer && !config.tokenizer.siglip1)
    json_files = tokenizer_json_files(model_dir, source, tokenizer_bytes, o.regenerate_tokenizer);

  write_dir_atomic(out_dir, o.overwrite, [&](const std::string& tmp) {
    safetensors::save(tmp + "/model.safetensors", out, {{"format", "pt"}});
    write_file_atomic(tmp + "/config.json", hf_config_json(config, o));
    write_file_atomic(tmp + "/preprocessor_config.json", hf_preprocessor_json(config.image));
    if (with_tokenizer) {
      // The vocabulary file names the tokenizer classes look for (VOCAB_FILES_NAMES).
      const char* vocab = config.tokenizer.siglip1 ? "spiece.model" : "tokenizer.model";
      write_file_atomic(tmp + "/" + vocab, tokenizer_bytes);
      if (config.tokenizer.siglip1) {
        SpecialTokens special = special_tokens(config.tokenizer, tokenizer_model);
        write_file_atomic(tmp + "/tokenizer_config.json", hf_tokenizer_config_json(config.tokenizer, special));
        write_file_atomic(tmp + "/special_tokens_map.json", hf_special_tokens_json(config.tokenizer, special));
      } else {
        write_file_atomic(tmp + "/tokenizer.json", json_files.tokenizer_json);
        write_file_atomic(tmp + "/tokenizer_config.json", json_files.tokenizer_config_json);
        write_file_atomic(tmp + "/special_tokens_map.json", json_files.special_tokens_map_json);
      }
    }
  });
  if (with_tokenizer && config.model.text.max_position_embeddings != 64)
    log_warn("the text tower has " + std::to_string(config.model.text.max_position_embeddings) +
             " positions; transformers' zero-shot-image-classification pipeline pads SigLIP texts to 64 tokens and "
             "cannot run this export: tokenize with max_length=" +
             std::to_string(config.model.text.max_position_embeddings) + " and call the model");
  log_info("exported " + std::to_string(out.size()) + " tensors (" + o.dtype + ") to '" + out_dir + "' as " +
           (o.vision_only ? (config.model.vision.naflex ? "Siglip2VisionModel" : "SiglipVisionModel")
                          : (config.model.vision.naflex ? "Siglip2Model" : "SiglipModel")));
}

}  // namespace siglip2
