#pragma once
// File-system helpers that never leave a half-written file behind.
#include <string>
#include <string_view>

namespace siglip2 {

// Writes `bytes` to `path` through a temporary file in the same directory: write, fsync, rename,
// fsync the directory. Readers see the old file or the new one, never a mixture.
void write_file_atomic(const std::string& path, std::string_view bytes);

// fsync a directory so that renames inside it survive a crash.
void fsync_directory(const std::string& dir);

// Reads a whole file; throws siglip2::Error naming the path when it cannot.
std::string read_file(const std::string& path);

}  // namespace siglip2
