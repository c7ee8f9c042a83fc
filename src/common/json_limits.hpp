#pragma once
// JSON from files siglip2-cpp did not write is parsed with a nesting limit. nlohmann's parser and
// destructor do not recurse, but dump(), copies and comparisons do: a value nested 300,000 deep (a
// 600 kB file) would overflow the stack the first time an error message quoted it.
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.hpp"

namespace siglip2 {

inline constexpr int kMaxJsonDepth = 64;

// Throws siglip2::Error("ORIGIN: nested more than 64 levels deep") from inside nlohmann::json::parse.
inline auto json_depth_limit(const std::string& origin) {
  return [origin](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > kMaxJsonDepth)
      throw Error(origin + ": nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
    return true;
  };
}

}  // namespace siglip2
