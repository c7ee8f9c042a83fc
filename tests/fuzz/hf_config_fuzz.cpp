// The Hugging Face config.json importer: any text, valid JSON or not, of any shape.
#include "fuzz_util.hpp"
#include "interop/hf_import.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  return siglip2::fuzz::expect_errors_only([&] { siglip2::model_config_from_hf_json(text, "config.json"); });
}
