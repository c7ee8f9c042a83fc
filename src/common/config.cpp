#include "common/config.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace siglip2::config {

Check<std::string> one_of(std::vector<std::string> choices) {
  return [choices](const std::string& v) {
    if (std::find(choices.begin(), choices.end(), v) != choices.end()) return std::string();
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    return "must be one of: " + list;
  };
}

Check<std::string> not_empty() {
  return [](const std::string& v) { return v.empty() ? std::string("must not be empty") : std::string(); };
}

namespace detail {

void fail(const SourceLoc& loc, const std::string& path, const std::string& what) {
  std::string where = loc.file.empty() ? std::string("config") : loc.str();
  throw ConfigError(where + ": " + (path.empty() ? std::string("(top level)") : path) + ": " + what);
}

std::string join_path(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

namespace {

const char* kind_name(ConfigValue::Kind k) {
  switch (k) {
    case ConfigValue::Kind::Null:
      return "nothing (null)";
    case ConfigValue::Kind::Scalar:
      return "a scalar";
    case ConfigValue::Kind::Sequence:
      return "a list";
    case ConfigValue::Kind::Map:
      return "a section";
  }
  return "?";
}

const ConfigValue& expect_scalar(const ConfigValue& v, const std::string& path, const char* what) {
  if (v.kind != ConfigValue::Kind::Scalar)
    fail(v.loc, path, std::string("expected ") + what + ", got " + kind_name(v.kind));
  return v;
}

// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

bool looks_like_non_string(const std::string& s) {
  if (s.empty()) return true;
  static const char* special[] = {"true", "false", "True", "False", "TRUE", "FALSE", "yes", "no",
                                  "on",   "off",   "null", "Null",  "NULL", "~",     "y",   "n"};
  for (const char* w : special)
    if (s == w) return true;
  char* end = nullptr;
  errno = 0;
  std::strtod(s.c_str(), &end);
  if (end && *end == '\0') return true;
  return s.find_first_of(":#{}[],&*!|>'\"%@`") != std::string::npos || s.front() == ' ' || s.back() == ' ' ||
         s.front() == '-';
}

void emit(YAML::Emitter& out, const ConfigValue& v) {
  switch (v.kind) {
    case ConfigValue::Kind::Null:
      out << YAML::Null;
      break;
    case ConfigValue::Kind::Scalar:
      if (v.quoted && looks_like_non_string(v.scalar))
        out << YAML::DoubleQuoted << v.scalar;
      else
        out << v.scalar;
      break;
    case ConfigValue::Kind::Sequence: {
      bool flat = std::all_of(v.items.begin(), v.items.end(),
                              [](const ConfigValue& i) { return i.kind == ConfigValue::Kind::Scalar; });
      if (flat) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const auto& item : v.items) emit(out, item);
      out << YAML::EndSeq;
      break;
    }
    case ConfigValue::Kind::Map:
      out << YAML::BeginMap;
      for (const auto& [k, child] : v.entries) {
        out << YAML::Key << k << YAML::Value;
        emit(out, child);
      }
      out << YAML::EndMap;
      break;
  }
}

}  // namespace

std::string suggest(const std::string& key, const std::vector<std::string>& valid) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& v : valid) {
    size_t d = edit_distance(key, v);
    if (d < best_d) {
      best_d = d;
      best = v;
    }
  }
  size_t limit = std::max<size_t>(2, key.size() / 3);
  if (!best.empty() && best_d <= limit) return "did you mean '" + best + "'?";
  std::string list;
  for (const auto& v : valid) list += (list.empty() ? "" : ", ") + v;
  return valid.empty() ? "this section takes no keys" : "valid keys: " + list;
}

bool parse_bool(const ConfigValue& v, const std::string& path) {
  const auto& s = expect_scalar(v, path, "true or false").scalar;
  if (!v.quoted && s == "true") return true;
  if (!v.quoted && s == "false") return false;
  fail(v.loc, path, "expected true or false, got '" + s + "'");
}

int64_t parse_int(const ConfigValue& v, const std::string& path) {
  const auto& s = expect_scalar(v, path, "an integer").scalar;
  int64_t x = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
  if (!v.quoted && ec == std::errc() && ptr == s.data() + s.size()) return x;
  // Allow integral values written in float notation, e.g. 4e9 examples or 1.0e4 steps.
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (!v.quoted && !s.empty() && end && *end == '\0' && std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e18)
    return static_cast<int64_t>(d);
  if (ec == std::errc::result_out_of_range) fail(v.loc, path, "integer '" + s + "' is out of range");
  fail(v.loc, path, "expected an integer, got '" + s + "'");
}

double parse_double(const ConfigValue& v, const std::string& path) {
  const auto& s = expect_scalar(v, path, "a number").scalar;
  char* end = nullptr;
  errno = 0;
  double d = s.empty() ? 0.0 : std::strtod(s.c_str(), &end);
  if (v.quoted || s.empty() || !end || *end != '\0' || !std::isfinite(d))
    fail(v.loc, path, "expected a finite number, got '" + s + "'");
  return d;
}

std::string parse_string(const ConfigValue& v, const std::string& path) {
  return expect_scalar(v, path, "a string").scalar;
}

ConfigValue scalar_value(const std::string& text, bool quoted) {
  ConfigValue v;
  v.kind = ConfigValue::Kind::Scalar;
  v.scalar = text;
  v.quoted = quoted;
  return v;
}

std::string format_double(double v) {
  std::string s = fmt::format("{}", v);
  // Keep floats recognisable as floats: "1" -> "1.0" (strict readers distinguish int and float).
  // and write exponents as YAML 1.1 readers (PyYAML) also take them: "1e-06" -> "1.0e-06".
  size_t e = s.find_first_of("eE");
  if (s.find_first_of(".n") == std::string::npos) {
    if (e == std::string::npos)
      s += ".0";
    else
      s.insert(e, ".0");
  }
  return s;
}

}  // namespace detail

void ConfigReader::finish() const {
  for (size_t i = 0; i < map_.entries.size(); ++i) {
    const std::string& key = map_.entries[i].first;
    if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
    const SourceLoc& loc = i < map_.key_locs.size() ? map_.key_locs[i] : map_.loc;
    for (const auto& [name, why] : retired_)
      if (name == key) detail::fail(loc, detail::join_path(prefix_, key), why);
    detail::fail(loc, detail::join_path(prefix_, key), "unknown key; " + detail::suggest(key, known_));
  }
  if (missing_) throw ConfigError(*missing_);
}

std::string ConfigReader::describe(const ConfigValue& v) {
  if (v.kind == ConfigValue::Kind::Scalar) return v.scalar;
  return detail::kind_name(v.kind);
}

std::string KeyLister::render(const ConfigValue& v) {
  if (v.kind == ConfigValue::Kind::Scalar) return v.scalar;
  YAML::Emitter out;
  detail::emit(out, v);
  return out.c_str();
}

std::string to_yaml(const ConfigValue& v) {
  YAML::Emitter out;
  detail::emit(out, v);
  return std::string(out.c_str()) + "\n";
}

}  // namespace siglip2::config
