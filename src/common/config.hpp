#pragma once
// Typed, strict configs. Every component owns a small struct that lists its fields once:
//
//   struct OptimizerConfig {
//     double lr = 1e-3;
//     template <class V> void visit(V& v) {
//       v("lr", lr, "peak learning rate", config::at_least(0.0));
//     }
//   };
//
// The same `visit` drives reading (ConfigReader: unknown keys, wrong types, missing required
// values and out-of-range values are ConfigErrors naming the key path and file:line:column),
// writing the resolved config (ConfigWriter) and listing every key with its type, default and
// documentation (KeyLister), so that validation, `config show` and `config keys` cannot drift.
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/config_tree.hpp"
#include "common/error.hpp"

namespace siglip2::config {

// A check returns "" when the value is fine, else what is wrong ("must be at least 0").
template <class T>
using Check = std::function<std::string(const T&)>;

template <class T>
Check<T> at_least(T lo) {
  return [lo](const T& v) { return v >= lo ? std::string() : "must be at least " + std::to_string(lo); };
}
template <class T>
Check<T> greater_than(T lo) {
  return [lo](const T& v) { return v > lo ? std::string() : "must be greater than " + std::to_string(lo); };
}
template <class T>
Check<T> in_range(T lo, T hi) {
  return [lo, hi](const T& v) {
    return v >= lo && v <= hi ? std::string() : "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  };
}
Check<std::string> one_of(std::vector<std::string> choices);
Check<std::string> not_empty();
template <class T>
Check<std::vector<T>> each(Check<T> check) {
  return [check](const std::vector<T>& v) {
    for (size_t i = 0; i < v.size(); ++i) {
      std::string e = check(v[i]);
      if (!e.empty()) return "[" + std::to_string(i) + "] " + e;
    }
    return std::string();
  };
}

// ------------------------------------------------------------------------------------------------
namespace detail {

// `visit` is a template, so probe it with a visitor type that accepts anything.
struct AnyVisitor {
  template <class... A>
  void operator()(A&&...) {}
  template <class... A>
  void required(A&&...) {}
  void retired(const char*, const char*) {}
};
template <class T, class = void>
struct is_section : std::false_type {};
template <class T>
struct is_section<T, std::void_t<decltype(std::declval<T&>().visit(std::declval<AnyVisitor&>()))>> : std::true_type {};

// A section may define `std::string check() const` for rules that span fields ("" = fine).
template <class T, class = void>
struct has_check : std::false_type {};
template <class T>
struct has_check<T, std::void_t<decltype(std::declval<const T&>().check())>> : std::true_type {};

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

// Scalar parsing and formatting (defined in config.cpp). Each parse_* throws ConfigError.
bool parse_bool(const ConfigValue& v, const std::string& path);
int64_t parse_int(const ConfigValue& v, const std::string& path);
double parse_double(const ConfigValue& v, const std::string& path);
std::string parse_string(const ConfigValue& v, const std::string& path);
ConfigValue scalar_value(const std::string& text, bool quoted);
std::string format_double(double v);
[[noreturn]] void fail(const SourceLoc& loc, const std::string& path, const std::string& what);
std::string join_path(const std::string& prefix, const std::string& key);
std::string suggest(const std::string& key, const std::vector<std::string>& valid);

template <class T>
std::string type_name() {
  if constexpr (std::is_same_v<T, bool>)
    return "bool";
  else if constexpr (std::is_integral_v<T>)
    return "int";
  else if constexpr (std::is_floating_point_v<T>)
    return "float";
  else if constexpr (std::is_same_v<T, std::string>)
    return "string";
  else if constexpr (is_vector<T>::value)
    return "list of " + type_name<typename T::value_type>();
  else if constexpr (is_optional<T>::value)
    return type_name<typename T::value_type>() + " or null";
  else
    return "section";
}

}  // namespace detail

// ------------------------------------------------------------------------------------------------
class ConfigReader {
 public:
  ConfigReader(const ConfigValue& map, std::string prefix) : map_(map), prefix_(std::move(prefix)) {}

  template <class T, class... C>
  void operator()(const char* key, T& field, const char* /*doc*/, C&&... checks) {
    read(key, field, false, std::forward<C>(checks)...);
  }
  template <class T, class... C>
  void required(const char* key, T& field, const char* /*doc*/, C&&... checks) {
    read(key, field, true, std::forward<C>(checks)...);
  }

  // A key this section does not accept in this context, with the reason and what to do instead (the value
  // comes from another section, or the key moved): given, it is an error naming the key and `why`.
  void retired(const char* key, const char* why) { retired_.emplace_back(key, why); }

  // Rejects keys that no field consumed, suggesting the nearest valid one; then reports the first required value
  // that was missing (after the unknown keys: `trian:` for `train:` is named as the misspelling, not as
  // train's missing keys).
  void finish() const;

  template <class T>
  static void parse(const ConfigValue& v, const std::string& path, T& out) {
    if constexpr (std::is_same_v<T, bool>) {
      out = detail::parse_bool(v, path);
    } else if constexpr (std::is_integral_v<T>) {
      int64_t x = detail::parse_int(v, path);
      bool fits = std::is_signed_v<T> ? (x >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                                         x <= static_cast<int64_t>(std::numeric_limits<T>::max()))
                                      : (x >= 0 && static_cast<uint64_t>(x) <= std::numeric_limits<T>::max());
      if (!fits) detail::fail(v.loc, path, "value " + v.scalar + " is out of range for this field");
      out = static_cast<T>(x);
    } else if constexpr (std::is_floating_point_v<T>) {
      out = static_cast<T>(detail::parse_double(v, path));
    } else if constexpr (std::is_same_v<T, std::string>) {
      out = detail::parse_string(v, path);
    } else if constexpr (detail::is_optional<T>::value) {
      if (v.kind == ConfigValue::Kind::Null) {
        out.reset();
      } else {
        typename T::value_type inner{};
        parse(v, path, inner);
        out = std::move(inner);
      }
    } else if constexpr (detail::is_vector<T>::value) {
      if (v.kind != ConfigValue::Kind::Sequence) detail::fail(v.loc, path, "expected a list");
      T result;
      for (size_t i = 0; i < v.items.size(); ++i) {
        typename T::value_type item{};
        parse(v.items[i], path + "[" + std::to_string(i) + "]", item);
        result.push_back(std::move(item));
      }
      out = std::move(result);
    } else {
      static_assert(detail::is_section<T>::value, "config fields must be scalars, lists, optionals or sections");
      if (v.kind == ConfigValue::Kind::Null) {  // `section:` with nothing under it keeps the defaults
        ConfigValue empty;
        empty.kind = ConfigValue::Kind::Map;
        empty.loc = v.loc;
        ConfigReader sub(empty, path);
        out.visit(sub);
        sub.finish();  // a required key missing under it
        return;
      }
      if (v.kind != ConfigValue::Kind::Map) detail::fail(v.loc, path, "expected a section (a map of keys)");
      ConfigReader sub(v, path);
      out.visit(sub);
      sub.finish();
      if constexpr (detail::has_check<T>::value) {
        std::string problem = out.check();
        if (!problem.empty()) detail::fail(v.loc, path, problem);
      }
    }
  }

 private:
  template <class T, class... C>
  void read(const char* key, T& field, bool required, C&&... checks) {
    known_.emplace_back(key);
    std::string path = detail::join_path(prefix_, key);
    const ConfigValue* v = map_.find(key);
    if (!v) {
      try {
        if (required) detail::fail(map_.loc, path, "required value is missing");
        if constexpr (detail::is_section<T>::value) {  // an absent section may still hold required keys
          ConfigValue empty;
          empty.kind = ConfigValue::Kind::Map;
          empty.loc = map_.loc;
          parse(empty, path, field);
        }
      } catch (const ConfigError& e) {
        if (!missing_) missing_ = e.what();  // reported by finish(), after any unknown key
      }
      return;
    }
    parse(*v, path, field);
    (run_check(*v, path, field, checks), ...);
  }
  template <class T, class C>
  void run_check(const ConfigValue& v, const std::string& path, const T& field, const C& check) {
    std::string problem = Check<T>(check)(field);
    if (!problem.empty()) detail::fail(v.loc, path, problem + " (got " + describe(v) + ")");
  }
  static std::string describe(const ConfigValue& v);

  const ConfigValue& map_;
  std::string prefix_;
  std::vector<std::string> known_;
  std::optional<std::string> missing_;                        // the first "required value is missing" error
  std::vector<std::pair<std::string, std::string>> retired_;  // key, why
};

// ------------------------------------------------------------------------------------------------
class ConfigWriter {
 public:
  ConfigWriter() { out_.kind = ConfigValue::Kind::Map; }

  template <class T, class... C>
  void operator()(const char* key, T& field, const char*, C&&...) {
    out_.set(key, to_value(field), {});
  }
  template <class T, class... C>
  void required(const char* key, T& field, const char* doc, C&&... c) {
    (*this)(key, field, doc, std::forward<C>(c)...);
  }
  void retired(const char*, const char*) {}
  const ConfigValue& result() const { return out_; }

  template <class T>
  static ConfigValue to_value(T& field) {
    if constexpr (std::is_same_v<T, bool>) {
      return detail::scalar_value(field ? "true" : "false", false);
    } else if constexpr (std::is_integral_v<T>) {
      return detail::scalar_value(std::to_string(field), false);
    } else if constexpr (std::is_floating_point_v<T>) {
      return detail::scalar_value(detail::format_double(static_cast<double>(field)), false);
    } else if constexpr (std::is_same_v<T, std::string>) {
      return detail::scalar_value(field, true);
    } else if constexpr (detail::is_optional<T>::value) {
      if (!field) return ConfigValue{};
      return to_value(*field);
    } else if constexpr (detail::is_vector<T>::value) {
      ConfigValue seq;
      seq.kind = ConfigValue::Kind::Sequence;
      for (auto& item : field) seq.items.push_back(to_value(item));
      return seq;
    } else {
      ConfigWriter sub;
      field.visit(sub);
      return sub.out_;
    }
  }

 private:
  ConfigValue out_;
};

// ------------------------------------------------------------------------------------------------
struct KeyInfo {
  std::string path, type, default_value, doc;
  bool required = false;
};

class KeyLister {
 public:
  explicit KeyLister(std::string prefix = "") : prefix_(std::move(prefix)) {}

  template <class T, class... C>
  void operator()(const char* key, T& field, const char* doc, C&&...) {
    add(key, field, doc, false);
  }
  template <class T, class... C>
  void required(const char* key, T& field, const char* doc, C&&...) {
    add(key, field, doc, true);
  }
  void retired(const char*, const char*) {}
  const std::vector<KeyInfo>& keys() const { return keys_; }

 private:
  template <class T>
  void add(const char* key, T& field, const char* doc, bool required) {
    std::string path = detail::join_path(prefix_, key);
    if constexpr (detail::is_section<T>::value) {
      keys_.push_back({path, "section", "", doc, required});
      KeyLister sub(path);
      field.visit(sub);
      keys_.insert(keys_.end(), sub.keys_.begin(), sub.keys_.end());
    } else {
      keys_.push_back({path, detail::type_name<T>(), render(ConfigWriter::to_value(field)), doc, required});
    }
  }
  static std::string render(const ConfigValue& v);

  std::string prefix_;
  std::vector<KeyInfo> keys_;
};

// ------------------------------------------------------------------------------------------------
// Entry points.

template <class T>
T from_tree(const ConfigValue& tree) {
  T cfg{};
  ConfigReader::parse(tree, "", cfg);
  return cfg;
}

// Loads FILE (with its bases), applies `--set` overrides in order and validates into T.
template <class T>
T load(const std::string& file, const std::vector<std::string>& overrides = {}) {
  ConfigValue tree = load_config_tree(file);
  for (const auto& o : overrides) apply_override(tree, o);
  return from_tree<T>(tree);
}

std::string to_yaml(const ConfigValue& v);

template <class T>
std::string dump(const T& cfg) {
  T copy = cfg;
  return to_yaml(ConfigWriter::to_value(copy));
}

template <class T>
std::vector<KeyInfo> list_keys() {
  T cfg{};
  KeyLister lister;
  cfg.visit(lister);
  return lister.keys();
}

}  // namespace siglip2::config
