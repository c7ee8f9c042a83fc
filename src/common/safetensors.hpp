#pragma once
// Strict reader and writer for the safetensors format (hf_interop spec §6): every file is
// validated in full when it is opened, and every violation is a siglip2::Error naming the file, the
// tensor and the rule.
#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/named_tensors.hpp"

namespace siglip2::safetensors {

// The largest header the reference implementation accepts (and writes).
constexpr uint64_t kMaxHeaderSize = 100'000'000;

struct TensorInfo {
  std::string name;
  c10::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data section; end is one past
};

// A read-only view of a safetensors file, memory-mapped. Copies share the mapping.
class File {
 public:
  static File open(const std::string& path);

  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in file (offset) order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  // A CPU tensor over the mapping (which it keeps alive) when the data is aligned for its dtype,
  // else a copy. The mapping is private: writing into the tensor never changes the file.
  at::Tensor get(const std::string& name) const;
  const std::string& path() const { return path_; }

 private:
  struct Mapping;
  File() = default;

  std::string path_;
  std::shared_ptr<const Mapping> mapping_;
  uint64_t data_start_ = 0;  // 8 + header length
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Every tensor of the file, as File::get returns them.
std::map<std::string, at::Tensor> load(const std::string& path);

// Writes the tensors (any device, any layout: they are made contiguous and copied to the CPU one at a
// time) in the layout of the reference writer, through a temporary file renamed into place.
// "format": "pt" is added to the metadata unless it has a "format" key already.
void save(const std::string& path, const NamedTensors& tensors,
          const std::map<std::string, std::string>& metadata = {});

// "F32" <-> at::kFloat, for the ten dtypes supported (F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL).
std::string dtype_name(c10::ScalarType dtype);
c10::ScalarType dtype_from_name(const std::string& name);

}  // namespace siglip2::safetensors
