#pragma once
// Shared by the fuzz targets: the input as a file (the readers take paths), and the one rule of
// every target: errors the project throws for bad input are expected, anything else is a finding.
#include <c10/util/Exception.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/error.hpp"

namespace siglip2::fuzz {

// A file of the input's bytes, one per process, rewritten for every input.
inline const std::string& write_input(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string path = [suffix] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir && *dir ? dir : "/tmp") + "/siglip2-fuzz-" + std::to_string(getpid()) + suffix;
  }();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) std::abort();
  return path;
}

// Runs `body`; a siglip2::Error (ConfigError included) or a c10::Error is the expected answer to
// bad input. Any other exception escapes, terminates the process and so is reported as a crash.
template <class F>
int expect_errors_only(F&& body) {
  try {
    body();
  } catch (const siglip2::Error&) {
  } catch (const c10::Error&) {
  }
  return 0;
}

}  // namespace siglip2::fuzz
