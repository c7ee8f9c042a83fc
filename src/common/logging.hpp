#pragma once
// Logging: one stderr sink (spdlog underneath), a level chosen by -v/-q, and a "[rank N]" prefix
// once a process group with more than one rank exists. Messages are formatted by the caller:
//   log_info(fmt::format("step {} loss {:.4f}", step, loss));
#include <string>

namespace siglip2 {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };

// verbosity: 0 = info, 1 = debug, 2+ = trace, -1 = warnings only, -2 = errors only.
void setup_logging(int verbosity);

// Prefixes every later line with "[rank N]" (called by the process group when world size > 1).
void set_log_rank(int rank, int world_size);

bool log_enabled(LogLevel level);
void log_message(LogLevel level, const std::string& message);

inline void log_debug(const std::string& m) {
  log_message(LogLevel::kDebug, m);
}
inline void log_info(const std::string& m) {
  log_message(LogLevel::kInfo, m);
}
inline void log_warn(const std::string& m) {
  log_message(LogLevel::kWarn, m);
}
inline void log_error(const std::string& m) {
  log_message(LogLevel::kError, m);
}

}  // namespace siglip2
