#pragma once
// TensorBoard event files without TensorFlow: TFRecord framing (length, masked CRC-32C, data, masked
// CRC-32C) around hand-encoded Event protos holding scalar summaries. Written by rank 0.
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace siglip2 {

uint32_t crc32c(const void* data, size_t size);

class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& dir);  // creates events.out.tfevents.<time>.<host>
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  const std::string& path() const { return path_; }

 private:
  void record(const std::string& event);
  std::string path_;
  std::ofstream out_;
};

}  // namespace siglip2
