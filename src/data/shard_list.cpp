#include "data/shard_list.hpp"

#include <filesystem>

#include <cstdlib>

#include "common/error.hpp"
#include "common/logging.hpp"

namespace siglip2 {
namespace {

constexpr size_t kMaxExpansion = 10'000'000;

bool parse_number(const std::string& s, long long& out) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  out = std::atoll(s.c_str());
  return true;
}

// The alternatives of one brace body: "a,b,c" or "lo..hi".
std::vector<std::string> alternatives(const std::string& body, const std::string& pattern) {
  const size_t dots = body.find("..");
  if (dots != std::string::npos && body.find(',') == std::string::npos) {
    const std::string lo_text = body.substr(0, dots), hi_text = body.substr(dots + 2);
    long long lo = 0, hi = 0;
    if (!parse_number(lo_text, lo) || !parse_number(hi_text, hi))
      throw Error("shard pattern '" + pattern + "': range {" + body + "} must be {FIRST..LAST} with decimal numbers");
    const long long count = (hi >= lo ? hi - lo : lo - hi) + 1;
    if (static_cast<size_t>(count) > kMaxExpansion)
      throw Error("shard pattern '" + pattern + "': range {" + body + "} is too large");
    const size_t width = lo_text.size();
    std::vector<std::string> out;
    out.reserve(static_cast<size_t>(count));
    for (long long i = 0; i < count; ++i) {
      std::string n = std::to_string(hi >= lo ? lo + i : lo - i);
      if (n.size() < width) n.insert(0, width - n.size(), '0');
      out.push_back(std::move(n));
    }
    return out;
  }
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t comma = body.find(','); comma != std::string::npos; comma = body.find(',', start)) {
    out.push_back(body.substr(start, comma - start));
    start = comma + 1;
  }
  out.push_back(body.substr(start));
  return out;
}

}  // namespace

std::vector<std::string> expand_braces(const std::string& pattern) {
  std::vector<std::string> results{""};
  size_t pos = 0;
  while (pos < pattern.size()) {
    const size_t open = pattern.find('{', pos);
    const size_t stray_close = pattern.find('}', pos);
    if (stray_close != std::string::npos && (open == std::string::npos || stray_close < open))
      throw Error("shard pattern '" + pattern + "': '}' without a matching '{'");
    const std::string literal = pattern.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
    for (auto& r : results) r += literal;
    if (open == std::string::npos) break;
    const size_t close = pattern.find('}', open);
    if (close == std::string::npos) throw Error("shard pattern '" + pattern + "': '{' without a matching '}'");
    const std::string body = pattern.substr(open + 1, close - open - 1);
    if (body.find('{') != std::string::npos) throw Error("shard pattern '" + pattern + "': nested braces");
    const std::vector<std::string> alts = alternatives(body, pattern);
    if (results.size() * alts.size() > kMaxExpansion) throw Error("shard pattern '" + pattern + "' is too large");
    std::vector<std::string> next;
    next.reserve(results.size() * alts.size());
    for (const auto& r : results)
      for (const auto& a : alts) next.push_back(r + a);
    results = std::move(next);
    pos = close + 1;
  }
  return results;
}

std::vector<std::string> expand_shard_patterns(const std::vector<std::string>& patterns) {
  std::vector<std::string> out;
  for (const auto& p : patterns) {
    std::vector<std::string> e = expand_braces(p);
    out.insert(out.end(), e.begin(), e.end());
  }
  return out;
}

void check_shard_files(const std::string& key, const std::string& pattern, const std::vector<std::string>& paths,
                       double max_missing, const RemoteOptions* remote) {
  if (remote) {
    std::vector<std::string> urls;
    for (const auto& path : paths)
      if (is_remote_shard(path) && urls.size() < 3) urls.push_back(path);
    std::string first_error;
    size_t failed = 0;
    for (const auto& url : urls) {
      try {
        RemoteStream probe(url, *remote);
        break;  // one readable shard: the pattern, host and credentials work
      } catch (const Error& e) {
        if (failed++ == 0) first_error = e.what();
      }
    }
    if (!urls.empty() && failed == urls.size())
      throw ConfigError(key + ": '" + pattern + "': the first " + std::to_string(urls.size()) +
                        " shards cannot be read (first: " + first_error.substr(first_error.rfind("shard ", 0) == 0 ? 6 : 0) + ")");
  }
  size_t missing = 0, local = 0;
  std::string first;
  for (const auto& path : paths) {
    if (!is_local_shard(path)) continue;
    ++local;
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) continue;
    if (missing++ == 0) first = path;
  }
  if (missing == 0) return;
  const std::string what = key + ": '" + pattern + "': " + std::to_string(missing) + " of " +
                           std::to_string(local) + " shard files do not exist or cannot be checked (first: " + first + ")";
  if (missing == local || static_cast<double>(missing) > max_missing * static_cast<double>(local))
    throw ConfigError(what + (missing == local ? "" : "; more than data.max_failed_shards allows"));
  log_warn(what + "; they are skipped and counted as unreadable_shard");
}

}  // namespace siglip2
