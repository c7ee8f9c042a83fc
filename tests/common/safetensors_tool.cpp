// Used by tests/python/safetensors_interop.py to check this reader and writer against the
// `safetensors` Python package.
//   safetensors_tool write PATH   writes the fixed tensors below (values from value_at) with metadata
//   safetensors_tool dump PATH    prints {"metadata": ...}, then one JSON line per tensor in file order:
//                                 name, dtype, shape, sum (float64) and the first values (float64)
#include <torch/torch.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.hpp"
#include "common/safetensors.hpp"

namespace {

using siglip2::safetensors::dtype_name;

// The same formula is in safetensors_interop.py; every value is exact in its dtype.
double value_at(c10::ScalarType dtype, int64_t i) {
  switch (dtype) {
    case at::kBool:
      return i % 3 == 0 ? 1 : 0;
    case at::kByte:
      return (i * 37 + 11) % 256;
    case at::kChar:
      return (i * 29 + 7) % 256 - 128;
    case at::kShort:
      return i * 1001 - 30000;
    case at::kInt:
      return i * 100003 - 2000000000;
    case at::kLong:
      return i * 3000000019LL - 9000000000LL;
    case at::kHalf:
      return i * 0.125 - 3.0;
    case at::kBFloat16:
      return i * 0.5 - 7.0;
    case at::kFloat:
      return i * 0.0625 - 1.5;
    default:
      return i / 3.0 - 5.0;  // F64: not a short binary fraction, so rounding would show
  }
}

at::Tensor make(c10::ScalarType dtype, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  at::Tensor t = torch::empty({n}, torch::kDouble);
  for (int64_t i = 0; i < n; ++i) t[i] = value_at(dtype, i);
  return t.to(dtype).reshape(shape);
}

void write(const std::string& path) {
  siglip2::safetensors::save(path,
                             {
                                 {"vision.f32", make(at::kFloat, {3, 4})},
                                 {"vision.f64", make(at::kDouble, {5})},
                                 {"text.bf16", make(at::kBFloat16, {2, 3, 2})},
                                 {"text.f16", make(at::kHalf, {7})},
                                 {"ids.i64", make(at::kLong, {4})},
                                 {"ids.i32", make(at::kInt, {3})},
                                 {"ids.i16", make(at::kShort, {3})},
                                 {"ids.i8", make(at::kChar, {6})},
                                 {"pixels.u8", make(at::kByte, {2, 5})},
                                 {"mask.bool", make(at::kBool, {5})},
                                 {"logit_scale", make(at::kFloat, {})},
                                 {"empty", make(at::kFloat, {0, 3})},
                             },
                             {{"producer", "safetensors_tool"}, {"step", "1234"}, {"note", "ünï ✓ \"quoted\""}});
}

void dump(const std::string& path) {
  const auto file = siglip2::safetensors::File::open(path);
  std::cout << nlohmann::json{{"metadata", file.metadata()}}.dump() << "\n";
  for (const auto& info : file.tensors()) {
    const at::Tensor values = file.get(info.name).to(torch::kDouble).flatten();
    std::vector<double> first;
    for (int64_t i = 0; i < std::min<int64_t>(values.numel(), 4); ++i) first.push_back(values[i].item<double>());
    nlohmann::json line = {{"name", info.name},
                           {"dtype", dtype_name(info.dtype)},
                           {"shape", info.shape},
                           {"sum", values.sum().item<double>()},
                           {"first", first}};
    std::cout << line.dump() << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "write" && std::string(argv[1]) != "dump")) {
    std::cerr << "usage: safetensors_tool write|dump PATH\n";
    return 2;
  }
  try {
    if (std::string(argv[1]) == "write")
      write(argv[2]);
    else
      dump(argv[2]);
  } catch (const siglip2::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
