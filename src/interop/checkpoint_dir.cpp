#include "interop/checkpoint_dir.hpp"

#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <random>

#include "common/config.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/logging.hpp"
#include "common/safetensors.hpp"
#include "data/tokenizer_files.hpp"
#include "interop/hf_import.hpp"
#include "train/config.hpp"

namespace siglip2 {
namespace fs = std::filesystem;

namespace {

std::string shape_text(c10::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string list_some(const std::vector<std::string>& items, size_t most = 5) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < most; ++i) s += (i ? ", " : "") + items[i];
  if (items.size() > most) s += " and " + std::to_string(items.size() - most) + " more";
  return s;
}

std::string unique_suffix() {
  std::random_device rd;
  return std::to_string(::getpid()) + "-" + std::to_string(rd());
}

}  // namespace

TensorShapes expected_hf_tensors(const ModelConfig& c) {
  return parameter_shapes(c);
}

bool is_model_tensor_name(const std::string& name) {
  return name.rfind("vision_model.", 0) == 0 || name.rfind("text_model.", 0) == 0 || name.rfind("logit_", 0) == 0;
}

std::string ModelBundleConfig::check() const {
  return inputs_match_model(model, image, tokenizer);
}

void check_tensors(const TensorShapes& expected, const NamedTensors& given, const std::string& what) {
  std::map<std::string, const at::Tensor*> by_name;
  for (const auto& [name, t] : given) by_name[name] = &t;
  std::vector<std::string> missing, wrong, unexpected;
  std::map<std::string, bool> wanted;
  for (const auto& [name, shape] : expected) {
    wanted[name] = true;
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      missing.push_back(name);
    } else if (!it->second->sizes().equals(shape)) {
      wrong.push_back(name + " is " + shape_text(it->second->sizes()) + " but the config needs " + shape_text(shape));
    }
  }
  for (const auto& [name, t] : given)
    if (!wanted.count(name) && is_model_tensor_name(name)) unexpected.push_back(name);
  if (missing.empty() && wrong.empty() && unexpected.empty()) return;
  std::string msg = what + " does not match the model config:";
  if (!wrong.empty()) msg += " wrong shape: " + list_some(wrong, 3) + ";";
  if (!missing.empty()) msg += " missing " + std::to_string(missing.size()) + " tensors: " + list_some(missing) + ";";
  if (!unexpected.empty())
    msg += " unexpected " + std::to_string(unexpected.size()) + " tensors: " + list_some(unexpected) + ";";
  msg.pop_back();
  throw Error(msg);
}

void check_output_dir(const std::string& dir, bool overwrite) {
  if (!fs::exists(dir)) return;
  if (!fs::is_directory(dir)) throw Error("output '" + dir + "' exists and is not a directory");
  if (!overwrite && !fs::is_empty(dir))
    throw Error("output directory '" + dir + "' exists and is not empty; choose another or pass --overwrite");
}

void write_dir_atomic(const std::string& dir, bool overwrite, const std::function<void(const std::string&)>& fill) {
  fs::path target = fs::absolute(fs::path(dir)).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();
  const fs::path parent = target.parent_path();
  const std::string name = target.filename().string();
  check_output_dir(target.string(), overwrite);
  fs::create_directories(parent);
  const bool replace = fs::exists(target) && !fs::is_empty(target);

  const fs::path tmp = parent / ("." + name + ".tmp-" + unique_suffix());
  fs::create_directory(tmp);
  try {
    fill(tmp.string());
    fsync_directory(tmp.string());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  if (replace) {
    const fs::path old = parent / ("." + name + ".old-" + unique_suffix());
    fs::rename(target, old);
    fs::rename(tmp, target);
    fsync_directory(parent.string());
    std::error_code ec;
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp, target);  // replaces an empty directory
    fsync_directory(parent.string());
  }
}

void save_model_dir(const std::string& dir, ModelBundleConfig config, const NamedTensors& tensors,
                    const std::string& tokenizer_model, bool overwrite,
                    std::vector<std::pair<std::string, std::string>> extra_files) {
  std::string problem = config.check();
  if (!problem.empty()) throw ConfigError("model directory '" + dir + "': " + problem);
  check_tensors(expected_hf_tensors(config.model), tensors, "the weights for '" + dir + "'");
  std::string tokenizer_bytes;
  if (!tokenizer_model.empty()) {
    tokenizer_bytes = read_file(tokenizer_model);
    config.tokenizer.model_file = "tokenizer.model";
    if (extra_files.empty())
      for (const auto& [name, path] : tokenizer_companions(tokenizer_model)) extra_files.emplace_back(name, read_file(path));
  } else if (!config.tokenizer.model_file.empty() && fs::path(config.tokenizer.model_file).is_relative()) {
    log_warn("tokenizer.model_file '" + config.tokenizer.model_file + "' is relative and was not copied into '" + dir +
             "'; the directory is written without a tokenizer model");
    config.tokenizer.model_file.clear();
  }
  write_dir_atomic(dir, overwrite, [&](const std::string& tmp) {
    safetensors::save(tmp + "/model.safetensors", tensors, {{"format", "pt"}});
    if (!tokenizer_model.empty()) write_file_atomic(tmp + "/tokenizer.model", tokenizer_bytes);
    for (const auto& [name, bytes] : extra_files) write_file_atomic(tmp + "/" + name, bytes);
    std::string yaml =
        "# siglip2-cpp model directory: model.safetensors holds the weights under their\n"
        "# Hugging Face names; `siglip2 export DIR --format hf` writes a transformers checkpoint.\n";
    write_file_atomic(tmp + "/config.yaml", yaml + config::dump(config));
  });
}

NamedTensors model_tensors(Siglip2ModelImpl& model) {
  NamedTensors out;
  for (const auto& p : model.named_parameters(true)) out.emplace_back(p.key(), p.value());
  return out;
}

ModelBundleConfig load_bundle_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.yaml").string();
  if (!fs::exists(path)) throw Error("'" + dir + "' is not a siglip2-cpp model directory (it has no config.yaml)");
  return load_bundle_config_file(path);
}

ModelBundleConfig load_bundle_config_file(const std::string& path, const std::vector<std::string>& overrides) {
  ConfigValue tree = load_config_tree(path);
  for (const auto& o : overrides) apply_override(tree, o);
  ConfigValue sections;
  sections.kind = ConfigValue::Kind::Map;
  sections.loc = tree.loc;
  for (const char* key : {"model", "image", "tokenizer"}) {
    if (const ConfigValue* v = tree.find(key)) sections.set(key, *v, *tree.key_loc(key));
  }
  return config::from_tree<ModelBundleConfig>(sections);
}

void load_parameters(Siglip2ModelImpl& model, const NamedTensors& tensors, const std::string& what) {
  TensorShapes expected;
  for (const auto& p : model.named_parameters(true)) expected.emplace_back(p.key(), p.value().sizes().vec());
  check_tensors(expected, tensors, what);
  std::map<std::string, const at::Tensor*> by_name;
  for (const auto& [name, t] : tensors) by_name[name] = &t;
  torch::NoGradGuard no_grad;
  for (auto& p : model.named_parameters(true)) p.value().copy_(*by_name.at(p.key()));
}

void init_model_dir(const std::string& dir, const ModelBundleConfig& config, uint64_t seed,
                    const std::string& tokenizer_model, bool overwrite) {
  std::string problem = config.check();
  if (!problem.empty()) throw ConfigError(problem);
  check_output_dir(dir, overwrite);
  Siglip2Model model(config.model);
  model->reset_parameters(seed);
  save_model_dir(dir, config, model_tensors(*model), tokenizer_model, overwrite);
}

std::string tokenizer_model_path(const std::string& dir, const TokenizerConfig& t) {
  if (t.model_file.empty()) return "";
  fs::path p(t.model_file);
  if (p.is_relative()) p = fs::path(dir) / p;
  return fs::absolute(p).lexically_normal().string();
}

ModelBundle load_model_dir(const std::string& dir) {
  ModelBundle b;
  b.source = dir;
  b.config = load_bundle_config(dir);
  b.tokenizer_model = tokenizer_model_path(dir, b.config.tokenizer);
  const std::string weights = (fs::path(dir) / "model.safetensors").string();
  if (!fs::exists(weights)) throw Error("model directory '" + dir + "' has no model.safetensors");
  safetensors::File file = safetensors::File::open(weights);
  NamedTensors tensors;
  for (const auto& info : file.tensors()) tensors.emplace_back(info.name, file.get(info.name));
  b.model = Siglip2Model(b.config.model);
  load_parameters(*b.model, tensors, "'" + weights + "'");
  b.model->eval();
  return b;
}

bool is_hf_dir(const std::string& dir) {
  return fs::exists(fs::path(dir) / "config.json") && !fs::exists(fs::path(dir) / "config.yaml");
}

ModelBundle load_any_model(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error("model directory '" + dir + "' does not exist");
  if (!is_hf_dir(dir)) return load_model_dir(dir);
  HfCheckpoint hf = read_hf_checkpoint(dir);
  ModelBundle b;
  b.source = dir;
  b.config = hf.config;
  b.tokenizer_model = hf.tokenizer_model;
  b.model = Siglip2Model(b.config.model);
  load_parameters(*b.model, hf.tensors, "Hugging Face checkpoint '" + dir + "'");
  b.model->eval();
  return b;
}

const std::string& require_tokenizer(const ModelBundle& b) {
  if (b.tokenizer_model.empty())
    throw Error("model '" + b.source +
                "' has no tokenizer model, so it cannot encode texts: import it with --tokenizer FILE "
                "(the sentencepiece tokenizer.model / spiece.model), or pass token ids with --inputs");
  if (!fs::exists(b.tokenizer_model))
    throw Error("the tokenizer model of '" + b.source + "' (" + b.tokenizer_model + ") does not exist");
  return b.tokenizer_model;
}

}  // namespace siglip2
