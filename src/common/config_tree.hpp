#pragma once
// A YAML document as loaded from config files and --set overrides, with the file:line:column each
// key and value came from, so that every later error can point at its source.
#include <string>
#include <utility>
#include <vector>

namespace siglip2 {

struct SourceLoc {
  std::string file;  // a path, or "--set a.b=c" for a command-line override
  int line = 0;      // 1-based; 0 when the value did not come from a file
  int column = 0;

  std::string str() const;
};

struct ConfigValue {
  enum class Kind { Null, Scalar, Sequence, Map };

  Kind kind = Kind::Null;
  std::string scalar;   // the text of a scalar, unparsed
  bool quoted = false;  // the scalar was written in quotes: it is a string, never a number or a bool
  std::vector<ConfigValue> items;
  std::vector<std::pair<std::string, ConfigValue>> entries;  // in file order
  std::vector<SourceLoc> key_locs;                           // one per entry
  SourceLoc loc;

  ConfigValue* find(const std::string& key);
  const ConfigValue* find(const std::string& key) const;
  const SourceLoc* key_loc(const std::string& key) const;
  // Sets `key` in a map, replacing an existing entry in place.
  ConfigValue& set(const std::string& key, ConfigValue value, SourceLoc key_loc);
  void erase(const std::string& key);
};

// Loads `path` and, recursively, the files named by its top-level `base:` (a path or a list of
// paths, relative to the file). Bases are merged left to right, then the file over them: maps
// merge key by key, anything else is replaced. Cycles and unreadable files are ConfigErrors.
ConfigValue load_config_tree(const std::string& path);

// Parses YAML text (used for --set values and tests). `origin` names it in error messages.
ConfigValue parse_config_text(const std::string& text, const std::string& origin);

// Applies `a.b.c=value`; the value is parsed as YAML (so `[1, 2]` is a list and `1e-3` a number).
void apply_override(ConfigValue& root, const std::string& assignment);

// Deep merge of `over` into `base` (maps merge, everything else replaces).
void merge_config_tree(ConfigValue& base, const ConfigValue& over);

}  // namespace siglip2
