#include "common/config_tree.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include "common/error.hpp"

namespace siglip2 {

namespace fs = std::filesystem;

std::string SourceLoc::str() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

ConfigValue* ConfigValue::find(const std::string& key) {
  for (auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

const ConfigValue* ConfigValue::find(const std::string& key) const {
  return const_cast<ConfigValue*>(this)->find(key);
}

const SourceLoc* ConfigValue::key_loc(const std::string& key) const {
  for (size_t i = 0; i < entries.size(); ++i)
    if (entries[i].first == key) return &key_locs[i];
  return nullptr;
}

ConfigValue& ConfigValue::set(const std::string& key, ConfigValue value, SourceLoc kloc) {
  kind = Kind::Map;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].first == key) {
      entries[i].second = std::move(value);
      key_locs[i] = std::move(kloc);
      return entries[i].second;
    }
  }
  entries.emplace_back(key, std::move(value));
  key_locs.push_back(std::move(kloc));
  return entries.back().second;
}

void ConfigValue::erase(const std::string& key) {
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].first == key) {
      entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(i));
      key_locs.erase(key_locs.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
}

namespace {

SourceLoc loc_of(const YAML::Node& node, const std::string& file) {
  YAML::Mark m = node.Mark();
  if (m.line < 0) return {file, 0, 0};
  return {file, m.line + 1, m.column + 1};
}

// YAML aliases share nodes: `a: &x {b: *x}` is a node that contains itself, and a chain of anchors
// each listing the previous one twice doubles with every line. Converting to a tree expands them, so
// both the depth and the number of values are bounded (a run config is a few levels and a few hundred
// values deep).
constexpr int kMaxDepth = 64;
constexpr int64_t kMaxValues = 100000;

struct ConvertBudget {
  std::string file;
  int64_t values = 0;
};

ConfigValue convert(const YAML::Node& node, ConvertBudget& budget, int depth) {
  ConfigValue out;
  out.loc = loc_of(node, budget.file);
  if (depth > kMaxDepth)
    throw ConfigError(out.loc.str() + ": nested more than " + std::to_string(kMaxDepth) +
                      " levels deep (is it an alias that contains itself?)");
  if (++budget.values > kMaxValues)
    throw ConfigError(out.loc.str() + ": more than " + std::to_string(kMaxValues) +
                      " values once YAML aliases are expanded");
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      out.kind = ConfigValue::Kind::Null;
      break;
    case YAML::NodeType::Scalar:
      out.kind = ConfigValue::Kind::Scalar;
      out.scalar = node.Scalar();
      out.quoted = node.Tag() == "!";
      break;
    case YAML::NodeType::Sequence:
      out.kind = ConfigValue::Kind::Sequence;
      for (const auto& item : node) out.items.push_back(convert(item, budget, depth + 1));
      break;
    case YAML::NodeType::Map:
      out.kind = ConfigValue::Kind::Map;
      for (const auto& kv : node) {
        SourceLoc kloc = loc_of(kv.first, budget.file);
        if (!kv.first.IsScalar()) throw ConfigError(kloc.str() + ": map keys must be plain names");
        std::string key = kv.first.Scalar();
        if (out.find(key)) throw ConfigError(kloc.str() + ": duplicate key '" + key + "'");
        out.entries.emplace_back(key, convert(kv.second, budget, depth + 1));
        out.key_locs.push_back(kloc);
      }
      break;
  }
  return out;
}

ConfigValue convert(const YAML::Node& node, const std::string& file) {
  ConvertBudget budget{file};
  return convert(node, budget, 0);
}

ConfigValue parse_yaml_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open config file");
  try {
    YAML::Node node = YAML::Load(in);
    ConfigValue v = convert(node, path);
    if (v.kind == ConfigValue::Kind::Null) {
      v.kind = ConfigValue::Kind::Map;
      v.loc = {path, 1, 1};
    }
    if (v.kind != ConfigValue::Kind::Map)
      throw ConfigError(v.loc.str() + ": a config file must be a map of keys to values");
    return v;
  } catch (const YAML::Exception& e) {
    throw ConfigError(path + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                      ": invalid YAML: " + e.msg);
  }
}

std::vector<std::pair<std::string, SourceLoc>> base_paths(const ConfigValue& root, const std::string& file) {
  std::vector<std::pair<std::string, SourceLoc>> out;
  const ConfigValue* base = root.find("base");
  if (!base) return out;
  fs::path dir = fs::path(file).parent_path();
  auto add = [&](const ConfigValue& v) {
    if (v.kind != ConfigValue::Kind::Scalar || v.scalar.empty())
      throw ConfigError(v.loc.str() + ": base: expected a file path or a list of file paths");
    fs::path p(v.scalar);
    out.emplace_back((p.is_absolute() ? p : dir / p).lexically_normal().string(), v.loc);
  };
  if (base->kind == ConfigValue::Kind::Sequence) {
    for (const auto& item : base->items) add(item);
  } else {
    add(*base);
  }
  return out;
}

ConfigValue load_recursive(const std::string& path, std::vector<std::string>& stack) {
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(path, ec);
  std::string id = ec ? path : canonical.string();
  if (std::find(stack.begin(), stack.end(), id) != stack.end()) {
    std::string chain;
    for (const auto& s : stack) chain += s + " -> ";
    throw ConfigError(path + ": cycle in base: " + chain + id);
  }
  if (!fs::exists(path)) throw ConfigError(path + ": config file not found");
  stack.push_back(id);
  ConfigValue own = parse_yaml_file(path);
  ConfigValue merged;
  merged.kind = ConfigValue::Kind::Map;
  merged.loc = own.loc;
  for (const auto& [base_path, loc] : base_paths(own, path)) {
    if (!fs::exists(base_path)) throw ConfigError(loc.str() + ": base file '" + base_path + "' not found");
    merge_config_tree(merged, load_recursive(base_path, stack));
  }
  own.erase("base");
  merge_config_tree(merged, own);
  stack.pop_back();
  return merged;
}

}  // namespace

void merge_config_tree(ConfigValue& base, const ConfigValue& over) {
  if (base.kind != ConfigValue::Kind::Map || over.kind != ConfigValue::Kind::Map) {
    base = over;
    return;
  }
  for (size_t i = 0; i < over.entries.size(); ++i) {
    const auto& [key, value] = over.entries[i];
    ConfigValue* existing = base.find(key);
    if (existing && existing->kind == ConfigValue::Kind::Map && value.kind == ConfigValue::Kind::Map) {
      merge_config_tree(*existing, value);
    } else {
      base.set(key, value, over.key_locs[i]);
    }
  }
}

ConfigValue load_config_tree(const std::string& path) {
  std::vector<std::string> stack;
  return load_recursive(path, stack);
}

ConfigValue parse_config_text(const std::string& text, const std::string& origin) {
  try {
    return convert(YAML::Load(text), origin);
  } catch (const YAML::Exception& e) {
    throw ConfigError(origin + ": invalid YAML: " + e.msg);
  }
}

void apply_override(ConfigValue& root, const std::string& assignment) {
  std::string origin = "--set " + assignment;
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(origin + ": expected KEY=VALUE, e.g. --set optimizer.lr=3e-4");
  std::string path = assignment.substr(0, eq);
  std::vector<std::string> keys;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (key.empty()) throw ConfigError(origin + ": empty key in '" + path + "'");
    keys.push_back(key);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  // `--set eval.shards=` means the empty string (as a shell user writes it), not YAML's null.
  const std::string text = assignment.substr(eq + 1);
  const bool blank = text.find_first_not_of(" \t") == std::string::npos;
  ConfigValue value = parse_config_text(blank ? "''" : text, origin);
  SourceLoc loc{origin, 0, 0};
  std::function<void(ConfigValue&, const SourceLoc&)> relocate = [&](ConfigValue& v, const SourceLoc& l) {
    v.loc = l;
    for (auto& item : v.items) relocate(item, l);
    for (auto& kl : v.key_locs) kl = l;
    for (auto& [k, child] : v.entries) relocate(child, l);
  };
  relocate(value, loc);
  if (root.kind == ConfigValue::Kind::Null) root.kind = ConfigValue::Kind::Map;
  ConfigValue* node = &root;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    ConfigValue* child = node->find(keys[i]);
    if (!child || child->kind != ConfigValue::Kind::Map) {
      ConfigValue map;
      map.kind = ConfigValue::Kind::Map;
      map.loc = loc;
      child = &node->set(keys[i], map, loc);
    }
    node = child;
  }
  node->set(keys.back(), value, loc);
}

}  // namespace siglip2
