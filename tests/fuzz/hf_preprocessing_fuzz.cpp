// The other two JSON files of a Hugging Face checkpoint: the same text is read as
// preprocessor_config.json and as tokenizer_config.json, for a SigLIP 2 NaFlex model and a SigLIP
// fixed-resolution one (the two readers take different branches for each).
#include "common/logging.hpp"
#include "fuzz_util.hpp"
#include "interop/hf_import.hpp"

namespace {

siglip2::ModelConfig model(bool naflex) {
  siglip2::ModelConfig m;
  m.vision.naflex = naflex;
  m.text.vocab_size = naflex ? 256000 : 32000;
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const siglip2::ModelConfig models[] = {model(true), model(false)};
  static const bool quiet = (siglip2::setup_logging(-2), true);  // the readers warn about odd values
  (void)quiet;
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const siglip2::ModelConfig& m : models) {
    siglip2::fuzz::expect_errors_only([&] { siglip2::image_config_from_hf_json(text, "preprocessor_config.json", m); });
    siglip2::fuzz::expect_errors_only(
        [&] { siglip2::tokenizer_config_from_hf_json(text, "tokenizer_config.json", m); });
  }
  return 0;
}
