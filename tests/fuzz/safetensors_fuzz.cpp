// The safetensors reader: File::open validates the whole header; every tensor it accepts must
// then be readable with the size its dtype and shape imply.
#include <ATen/core/Tensor.h>

#include "common/safetensors.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = siglip2::fuzz::write_input(data, size, ".safetensors");
  return siglip2::fuzz::expect_errors_only([&] {
    auto file = siglip2::safetensors::File::open(path);
    for (const auto& info : file.tensors()) {
      at::Tensor t = file.get(info.name);
      if (t.numel() * t.element_size() != int64_t(info.end - info.begin)) std::abort();
    }
  });
}
