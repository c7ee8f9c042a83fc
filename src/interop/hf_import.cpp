#include "interop/hf_import.hpp"

#include <torch/torch.h>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json_limits.hpp"
#include "common/logging.hpp"
#include "common/safetensors.hpp"
#include "data/tokenizer_files.hpp"
#include "interop/hf_tokenizer_kept.hpp"

namespace siglip2 {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A top-level JSON object from a file's text; `origin` names the file in errors.
json parse_json_object(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text, json_depth_limit(origin));
  } catch (const json::exception& e) {
    throw Error(origin + " is not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(origin + " must hold a JSON object");
  return j;
}

// A sub-object of config.json (text_config, vision_config); absent or null means all defaults.
const json& section(const json& j, const char* key, const std::string& origin) {
  static const json empty = json::object();
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return empty;
  if (!it->is_object()) throw Error(origin + ": '" + key + "' must be an object");
  return *it;
}

// `where` + key: "'dir/config.json' text_config" + "vocab_size" is "… text_config.vocab_size"; a file's
// top-level keys come after a space: "'dir/tokenizer_config.json' " + "pad_token".
std::string key_path(const std::string& where, const std::string& key) {
  return !where.empty() && where.back() == ' ' ? where + key : where + "." + key;
}

// An integer, or a float with an integral value in int64's range (1e300 would overflow the cast).
int64_t to_int(const json& v, const std::string& what) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d >= -0x1p63 && d < 0x1p63 && d == std::trunc(d)) return static_cast<int64_t>(d);
  }
  throw Error(what + " must be an integer, got " + v.dump());
}

int64_t get_int(const json& j, const char* key, int64_t fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return to_int(*it, key_path(where, key));
}

double get_double(const json& j, const char* key, double fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (it->is_number()) return it->get<double>();
  throw Error(key_path(where, key) + " must be a number, got " + it->dump());
}

void require_supported(const json& j, const std::string& where) {
  auto act = j.find("hidden_act");
  if (act != j.end() && !act->is_null() && *act != "gelu_pytorch_tanh")
    throw Error(where + ".hidden_act is " + act->dump() + "; siglip2-cpp implements gelu_pytorch_tanh only");
  auto head = j.find("vision_use_head");
  if (head != j.end() && head->is_boolean() && !head->get<bool>())
    throw Error(where + ".vision_use_head is false; siglip2-cpp models always have the attention-pooling head");
}

TextConfig text_from_hf(const json& t, const std::string& where) {
  require_supported(t, where);
  TextConfig c;  // transformers defaults (hf_interop.md §1.2), not ours
  c.vocab_size = get_int(t, "vocab_size", 32000, where);
  c.hidden_size = get_int(t, "hidden_size", 768, where);
  c.intermediate_size = get_int(t, "intermediate_size", 3072, where);
  c.num_hidden_layers = get_int(t, "num_hidden_layers", 12, where);
  c.num_attention_heads = get_int(t, "num_attention_heads", 12, where);
  c.max_position_embeddings = get_int(t, "max_position_embeddings", 64, where);
  c.layer_norm_eps = get_double(t, "layer_norm_eps", 1e-6, where);
  c.projection_size = get_int(t, "projection_size", 0, where);
  if (c.projection_size == c.hidden_size) c.projection_size = 0;
  return c;
}

VisionConfig vision_from_hf(const json& v, bool naflex, const std::string& where) {
  require_supported(v, where);
  VisionConfig c;  // transformers defaults (hf_interop.md §1.3, §1.4)
  c.naflex = naflex;
  c.hidden_size = get_int(v, "hidden_size", 768, where);
  c.intermediate_size = get_int(v, "intermediate_size", 3072, where);
  c.num_hidden_layers = get_int(v, "num_hidden_layers", 12, where);
  c.num_attention_heads = get_int(v, "num_attention_heads", 12, where);
  c.num_channels = get_int(v, "num_channels", 3, where);
  c.patch_size = get_int(v, "patch_size", 16, where);
  c.layer_norm_eps = get_double(v, "layer_norm_eps", 1e-6, where);
  if (naflex) {
    c.num_patches = get_int(v, "num_patches", 256, where);
  } else {
    auto it = v.find("image_size");
    if (it != v.end() && it->is_array()) {
      if (it->size() != 2 || (*it)[0] != (*it)[1])
        throw Error(where + ".image_size is " + it->dump() + "; only square fixed-resolution models are supported");
      c.image_size = to_int((*it)[0], where + ".image_size[0]");
    } else {
      c.image_size = get_int(v, "image_size", 224, where);
    }
  }
  return c;
}

void check_positive(const std::string& where, const char* key, int64_t value) {
  if (value <= 0) throw Error(key_path(where, key) + " must be positive, got " + std::to_string(value));
}

std::string basename_of(const std::string& dir) {
  fs::path p = fs::absolute(fs::path(dir)).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

bool get_bool(const json& j, const char* key, bool fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (it->is_boolean()) return it->get<bool>();
  throw Error(key_path(where, key) + " must be true or false, got " + it->dump());
}

std::string get_string(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  throw Error(key_path(where, key) + " must be a string, got " + it->dump());
}

// Token id of a special token named in tokenizer_config.json ("pad_token": "<pad>" or {"content": …}),
// looked up in its added_tokens_decoder ({"0": {"content": "<pad>", …}, …}); -1 when it is not there.
int64_t special_token_id(const json& t, const char* key, const std::string& where) {
  auto it = t.find(key);
  if (it == t.end() || it->is_null()) return -1;
  std::string content;
  if (it->is_string()) {
    content = it->get<std::string>();
  } else if (it->is_object()) {
    content = get_string(*it, "content", key_path(where, key));
  } else {
    throw Error(key_path(where, key) + " must be a token string or an object with \"content\", got " + it->dump());
  }
  auto dec = t.find("added_tokens_decoder");
  if (content.empty() || dec == t.end() || dec->is_null()) return -1;
  if (!dec->is_object())
    throw Error(key_path(where, "added_tokens_decoder") + " must be an object, got " + dec->dump());
  for (const auto& [id, tok] : dec->items()) {
    const std::string entry = key_path(where, "added_tokens_decoder[\"" + id + "\"]");
    if (!tok.is_object()) throw Error(entry + " must be an object, got " + tok.dump());
    if (get_string(tok, "content", entry) != content) continue;
    int64_t value = -1;
    const char* end = id.data() + id.size();
    auto [ptr, ec] = std::from_chars(id.data(), end, value);
    if (id.empty() || ec != std::errc() || ptr != end || value < 0)
      throw Error(entry + ": the key must be a token id (a non-negative integer)");
    return value;
  }
  return -1;
}

}  // namespace

ImageConfig image_config_from_hf_json(const std::string& json_text, const std::string& origin, const ModelConfig& m) {
  ImageConfig img;
  img.naflex = m.vision.naflex;
  img.patch_size = m.vision.patch_size;
  img.image_size = m.vision.image_size;
  // SigLIP 2 resizes bilinearly, SigLIP 1 bicubically (hf_interop.md §4.4).
  const bool siglip2_vocab = m.text.vocab_size == 256000;
  img.resample = m.vision.naflex || siglip2_vocab ? "bilinear" : "bicubic";
  const json p = parse_json_object(json_text, origin);
  const std::string where = origin + " ";
  if (auto it = p.find("resample"); it != p.end() && !it->is_null()) {
    int64_t r = to_int(*it, where + "resample");
    if (r != 2 && r != 3)
      throw Error(where + "resample " + std::to_string(r) + " is not supported (2 = bilinear, 3 = bicubic)");
    img.resample = r == 2 ? "bilinear" : "bicubic";
  }
  if (img.naflex) {
    img.patch_size = get_int(p, "patch_size", m.vision.patch_size, where);
    img.max_num_patches = get_int(p, "max_num_patches", 256, where);
    check_positive(where, "max_num_patches", img.max_num_patches);
  } else if (auto it = p.find("size"); it != p.end() && !it->is_null()) {
    if (!it->is_object())
      throw Error(where + "size must be an object {\"height\": …, \"width\": …}, got " + it->dump());
    int64_t h = get_int(*it, "height", m.vision.image_size, where + "size");
    int64_t w = get_int(*it, "width", m.vision.image_size, where + "size");
    if (h != w) throw Error(where + "size " + it->dump() + " is not square");
    img.image_size = h;
  }
  if (img.patch_size != m.vision.patch_size)
    throw Error(where + "patch_size " + std::to_string(img.patch_size) + " differs from the model's " +
                std::to_string(m.vision.patch_size));
  check_positive(where, "size", img.image_size);
  auto is_half = [](const json& v) {
    if (!v.is_array() || v.empty()) return false;
    for (const auto& x : v)
      if (!x.is_number() || x.get<double>() != 0.5) return false;
    return true;
  };
  for (const char* key : {"image_mean", "image_std"})
    if (auto it = p.find(key); it != p.end() && !is_half(*it))
      log_warn(where + key + " is " + it->dump() + "; siglip2-cpp normalises with 0.5 (x / 127.5 - 1)");
  if (!get_bool(p, "do_normalize", true, where) || !get_bool(p, "do_rescale", true, where))
    log_warn(where + "do_rescale/do_normalize off; siglip2-cpp always maps pixels to [-1, 1]");
  return img;
}

TokenizerConfig tokenizer_config_from_hf_json(const std::string& json_text, const std::string& origin,
                                              const ModelConfig& m) {
  TokenizerConfig tok;
  tok.length = m.text.max_position_embeddings;  // the text tower pools the last position: pad to exactly this
  const json t = parse_json_object(json_text, origin);
  const std::string where = origin + " ";
  const std::string cls = get_string(t, "tokenizer_class", where);
  bool siglip1;
  if (cls.find("Gemma") != std::string::npos || cls.find("Siglip2") != std::string::npos ||
      cls == "TokenizersBackend" || cls == "PreTrainedTokenizerFast") {  // what export writes with tokenizer.json
    siglip1 = false;
  } else if (cls.rfind("SiglipTokenizer", 0) == 0) {
    siglip1 = true;
  } else {
    if (!cls.empty()) log_warn(origin + ": unknown tokenizer_class '" + cls + "'; guessing from the vocabulary size");
    siglip1 = !m.vision.naflex && m.text.vocab_size != 256000;  // NaFlex ⇔ model_type siglip2
  }
  tok.siglip1 = siglip1;
  tok.pad_id = siglip1 ? 1 : 0;  // SigLIP 1: pad = eos = </s> (1); Gemma: <pad> 0, <eos> 1
  tok.eos_id = 1;
  if (int64_t id = special_token_id(t, "pad_token", where); id >= 0) tok.pad_id = id;
  if (int64_t id = special_token_id(t, "eos_token", where); id >= 0) tok.eos_id = id;
  for (const auto& [key, id] : {std::pair{"pad_token", tok.pad_id}, std::pair{"eos_token", tok.eos_id}})
    if (id >= m.text.vocab_size)
      throw Error(where + key + " has id " + std::to_string(id) + ", outside the vocabulary of " +
                  std::to_string(m.text.vocab_size));
  if (!get_bool(t, "do_lower_case", true, where)) tok.lowercase = "none";
  return tok;
}

namespace {

// The file's text, or "{}" (every key at its default) when the directory does not have it.
std::string optional_file(const std::string& dir, const char* name, std::string* origin) {
  const fs::path path = fs::path(dir) / name;
  *origin = "'" + path.string() + "'";
  if (!fs::exists(path)) {
    log_debug("no " + std::string(name) + " in '" + dir + "': using the SigLIP defaults for this model");
    return "{}";
  }
  return read_file(path.string());
}

// The sentencepiece model: `override_file`, else tokenizer.model or spiece.model in `dir`; "" when none.
std::string tokenizer_model_file(const std::string& dir, const std::string& override_file) {
  std::string file = override_file;
  if (file.empty()) {
    for (const char* name : {"tokenizer.model", "spiece.model"}) {
      fs::path p = fs::path(dir) / name;
      if (fs::exists(p)) {
        file = p.string();
        break;
      }
    }
  } else if (!fs::exists(file)) {
    throw Error("tokenizer model '" + file + "' does not exist");
  }
  if (!file.empty()) file = fs::absolute(fs::path(file)).lexically_normal().string();
  return file;
}

NamedTensors read_hf_weights(const std::string& dir) {
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single = fs::path(dir) / "model.safetensors";
  NamedTensors tensors;
  auto keep = [](const std::string& name) {
    static const std::string suffix = ".position_ids";
    return !(name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0);
  };
  if (fs::exists(single)) {
    safetensors::File f = safetensors::File::open(single.string());
    for (const auto& info : f.tensors())
      if (keep(info.name)) tensors.emplace_back(info.name, f.get(info.name));
    return tensors;
  }
  if (fs::exists(index_path)) {
    const std::string origin = "'" + index_path.string() + "'";
    const json index = parse_json_object(read_file(index_path.string()), origin);
    if (!index.contains("weight_map") || !index["weight_map"].is_object())
      throw Error("'" + index_path.string() + "' has no weight_map");
    std::map<std::string, safetensors::File> shards;
    for (const auto& [name, shard] : index["weight_map"].items()) {
      if (!shard.is_string()) throw Error(index_path.string() + ": weight_map[\"" + name + "\"] is not a file name");
      const std::string file = shard.get<std::string>();
      if (file.find('/') != std::string::npos)
        throw Error(index_path.string() + ": shard name '" + file + "' must be a file in the same directory");
      auto it = shards.find(file);
      if (it == shards.end()) it = shards.emplace(file, safetensors::File::open((fs::path(dir) / file).string())).first;
      if (!it->second.contains(name))
        throw Error(index_path.string() + " puts tensor " + name + " in " + file + ", which does not hold it");
      if (keep(name)) tensors.emplace_back(name, it->second.get(name));
    }
    return tensors;
  }
  for (const char* pickle : {"pytorch_model.bin", "pytorch_model.bin.index.json"})
    if (fs::exists(fs::path(dir) / pickle))
      throw Error("'" + dir + "' has only PyTorch pickle weights (" + pickle +
                  "); siglip2-cpp reads safetensors only: re-save with save_pretrained(dir) in transformers");
  throw Error("'" + dir + "' has no model.safetensors or model.safetensors.index.json");
}

}  // namespace

ModelConfig model_config_from_hf_json(const std::string& json_text, const std::string& origin) {
  const json j = parse_json_object(json_text, origin);
  auto type_it = j.find("model_type");
  const std::string type = type_it == j.end()     ? ""
                           : type_it->is_string() ? type_it->get<std::string>()
                                                  : type_it->dump();
  if (type == "siglip_vision_model" || type == "siglip2_vision_model")
    throw Error(origin + " describes a vision-only model (" + type +
                "); siglip2-cpp models have both towers, so import a SiglipModel or Siglip2Model checkpoint");
  if (type != "siglip" && type != "siglip2")
    throw Error(origin + ": model_type is '" + type + "', expected 'siglip' (SiglipModel) or 'siglip2' (Siglip2Model)");
  const bool naflex = type == "siglip2";
  ModelConfig m;
  m.text = text_from_hf(section(j, "text_config", origin), origin + " text_config");
  m.vision = vision_from_hf(section(j, "vision_config", origin), naflex, origin + " vision_config");
  const std::string where = origin + " ";
  for (auto [key, v] : {std::pair<const char*, int64_t>{"vision_config.hidden_size", m.vision.hidden_size},
                        {"vision_config.intermediate_size", m.vision.intermediate_size},
                        {"vision_config.num_hidden_layers", m.vision.num_hidden_layers},
                        {"vision_config.num_attention_heads", m.vision.num_attention_heads},
                        {"vision_config.patch_size", m.vision.patch_size},
                        {"vision_config.num_channels", m.vision.num_channels},
                        {"vision_config.image_size", m.vision.image_size},
                        {"vision_config.num_patches", m.vision.num_patches},
                        {"text_config.vocab_size", m.text.vocab_size},
                        {"text_config.hidden_size", m.text.hidden_size},
                        {"text_config.intermediate_size", m.text.intermediate_size},
                        {"text_config.num_hidden_layers", m.text.num_hidden_layers},
                        {"text_config.num_attention_heads", m.text.num_attention_heads},
                        {"text_config.max_position_embeddings", m.text.max_position_embeddings}})
    check_positive(origin, key, v);
  if (m.text.projection_size < 0) throw Error(origin + ": text_config.projection_size must be positive");
  for (const std::string& problem : {m.vision.check(), m.text.check(), m.check()})
    if (!problem.empty()) throw Error(origin + ": " + problem);
  return m;
}

HfCheckpoint read_hf_checkpoint(const std::string& dir, const std::string& tokenizer_model) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(config_path)) throw Error("'" + dir + "' is not a Hugging Face checkpoint (it has no config.json)");
  const std::string text = read_file(config_path);
  HfCheckpoint hf;
  hf.config.model = model_config_from_hf_json(text, "'" + config_path + "'");
  hf.config.model.name = basename_of(dir);
  std::string origin;
  std::string file_text = optional_file(dir, "preprocessor_config.json", &origin);
  hf.config.image = image_config_from_hf_json(file_text, origin, hf.config.model);
  file_text = optional_file(dir, "tokenizer_config.json", &origin);
  hf.config.tokenizer = tokenizer_config_from_hf_json(file_text, origin, hf.config.model);
  hf.tokenizer_model = tokenizer_model_file(dir, tokenizer_model);
  hf.config.tokenizer.model_file = hf.tokenizer_model;
  std::string problem = hf.config.check();
  if (!problem.empty()) throw Error("'" + dir + "': " + problem);

  NamedTensors all = read_hf_weights(dir);
  const std::string what = "Hugging Face checkpoint '" + dir + "'";
  const TensorShapes expected = expected_hf_tensors(hf.config.model);
  check_tensors(expected, all, what);
  std::map<std::string, at::Tensor> by_name;
  for (auto& [name, t] : all) by_name[name] = t;
  std::vector<std::string> ignored;
  for (const auto& [name, t] : all)
    if (!is_model_tensor_name(name)) ignored.push_back(name);
  if (!ignored.empty())
    log_warn(what + ": ignoring " + std::to_string(ignored.size()) + " tensors that are not part of the model (" +
             ignored.front() + ", …)");
  for (const auto& [name, shape] : expected) {
    const at::Tensor& t = by_name.at(name);
    if (!at::isFloatingType(t.scalar_type()))
      throw Error(what + ": tensor " + name + " has dtype " + safetensors::dtype_name(t.scalar_type()) +
                  ", expected floating point");
    hf.tensors.emplace_back(name, t);
  }
  return hf;
}

void import_hf(const std::string& hf_dir, const std::string& out_dir, const std::string& tokenizer_model,
               bool overwrite) {
  check_output_dir(out_dir, overwrite);
  HfCheckpoint hf = read_hf_checkpoint(hf_dir, tokenizer_model);
  NamedTensors f32;
  int64_t params = 0;
  for (const auto& [name, t] : hf.tensors) {
    f32.emplace_back(name, t.to(at::kFloat));
    params += t.numel();
  }
  // The directory's own tokenizer.json travels with the model, exported unchanged while the settings are
  // (src/interop/hf_tokenizer_kept.hpp).
  std::vector<std::pair<std::string, std::string>> kept;
  const fs::path original = fs::path(hf_dir) / kKeptTokenizerJson;
  if (!hf.tokenizer_model.empty() && !hf.config.tokenizer.siglip1 && fs::is_regular_file(original)) {
    kept.emplace_back(kKeptTokenizerJson, read_file(original.string()));
    kept.emplace_back(kTokenizerOrigin,
                      tokenizer_origin_json(fs::absolute(hf_dir).lexically_normal().string(), hf.config.tokenizer));
  }
  save_model_dir(out_dir, hf.config, f32, hf.tokenizer_model, overwrite, kept);
  log_info("imported " + std::to_string(f32.size()) + " tensors (" + std::to_string(params) + " parameters, " +
           (hf.config.model.vision.naflex ? "NaFlex" : "fixed resolution") + ") from '" + hf_dir + "' into '" +
           out_dir + "'");
  if (hf.tokenizer_model.empty())
    log_warn("'" + hf_dir +
             "' has no sentencepiece tokenizer model (tokenizer.model or spiece.model): the model can embed images "
             "and token ids but not texts; import again with --tokenizer FILE to add one");
}

}  // namespace siglip2
