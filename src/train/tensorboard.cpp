#include "train/tensorboard.hpp"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "common/error.hpp"

namespace siglip2 {
namespace {

std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // Castagnoli, reflected
    t[i] = c;
  }
  return t;
}

uint32_t masked_crc(const void* data, size_t size) {
  uint32_t c = crc32c(data, size);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

// Protobuf wire format, just what Event and Summary need.
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void fixed64(std::string& out, uint32_t field, double v) {
  varint(out, (field << 3) | 1);
  char b[8];
  std::memcpy(b, &v, 8);
  out.append(b, 8);
}
void fixed32(std::string& out, uint32_t field, float v) {
  varint(out, (field << 3) | 5);
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}
void bytes(std::string& out, uint32_t field, const std::string& v) {
  varint(out, (field << 3) | 2);
  varint(out, v.size());
  out += v;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  static const std::array<uint32_t, 256> table = make_table();
  uint32_t c = 0xFFFFFFFFu;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  path_ = dir + "/events.out.tfevents." + std::to_string(static_cast<int64_t>(now_seconds())) + "." + host;
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) throw Error("cannot create TensorBoard event file '" + path_ + "'");
  std::string event;
  fixed64(event, 1, now_seconds());
  bytes(event, 3, "brain.Event:2");  // file_version
  record(event);
}

void TensorBoardWriter::scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  std::string summary;
  for (const auto& [tag, v] : values) {
    std::string value;
    bytes(value, 1, tag);
    fixed32(value, 2, static_cast<float>(v));  // simple_value
    bytes(summary, 1, value);
  }
  std::string event;
  fixed64(event, 1, now_seconds());
  varint(event, (2 << 3) | 0);
  varint(event, static_cast<uint64_t>(step));
  bytes(event, 5, summary);
  record(event);
}

void TensorBoardWriter::record(const std::string& data) {
  uint64_t len = data.size();
  char header[8];
  std::memcpy(header, &len, 8);
  uint32_t hc = masked_crc(header, 8), dc = masked_crc(data.data(), data.size());
  out_.write(header, 8);
  out_.write(reinterpret_cast<const char*>(&hc), 4);
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  out_.write(reinterpret_cast<const char*>(&dc), 4);
  out_.flush();
}

}  // namespace siglip2
