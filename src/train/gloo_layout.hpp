#pragma once
// What the Gloo layout checks saw; the layout test compares these with what the library does.
#include <cstddef>
#include <cstdint>

namespace siglip2 {

// Room left after each Gloo object we allocate, filled with a canary and checked after construction.
inline constexpr std::size_t kGlooSpareBytes = 256;

struct GlooLayout {
  std::size_t process_group_bytes = 0;
  std::size_t options_bytes = 0;
  std::size_t options_devices_offset = 0;
  std::size_t options_threads_offset = 0;
  // Read back after the library's own Options constructor ran (timeout 12345 ms).
  int options_ctor_threads = 0;
  std::size_t options_ctor_devices = 0;
  int64_t options_ctor_timeout_ms = 0;
};

// Builds a ProcessGroupGloo::Options with the library's constructor and reports the layout seen.
GlooLayout gloo_layout();

}  // namespace siglip2
