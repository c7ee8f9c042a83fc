#include "common/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <string>

namespace siglip2 {
namespace {

std::string pattern_for(int rank, int world_size) {
  std::string prefix = world_size > 1 ? "[rank " + std::to_string(rank) + "] " : "";
  return "%Y-%m-%d %H:%M:%S %^%l%$ " + prefix + "%v";
}

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return spdlog::level::trace;
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

spdlog::logger& logger() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto l = spdlog::stderr_color_mt("siglip2");
    l->set_pattern(pattern_for(0, 1));
    spdlog::set_default_logger(l);
  });
  return *spdlog::default_logger_raw();
}

}  // namespace

void setup_logging(int verbosity) {
  LogLevel level = verbosity <= -2   ? LogLevel::kError
                   : verbosity == -1 ? LogLevel::kWarn
                   : verbosity == 0  ? LogLevel::kInfo
                   : verbosity == 1  ? LogLevel::kDebug
                                     : LogLevel::kTrace;
  logger().set_level(to_spdlog(level));
}

void set_log_rank(int rank, int world_size) {
  logger().set_pattern(pattern_for(rank, world_size));
}

bool log_enabled(LogLevel level) {
  return logger().should_log(to_spdlog(level));
}

void log_message(LogLevel level, const std::string& message) {
  logger().log(to_spdlog(level), message);
}

}  // namespace siglip2
