// The sentencepiece model reader (a protobuf wire-format subset) and the tokenizer.json generator over
// whatever it accepts: any bytes, a real model or not.
#include "fuzz_util.hpp"
#include "interop/hf_tokenizer_json.hpp"
#include "interop/sentencepiece_model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  return siglip2::fuzz::expect_errors_only([&] {
    const siglip2::SentencePieceModel model = siglip2::SentencePieceModel::parse(bytes, "tokenizer.model");
    siglip2::TokenizerConfig config;
    for (const bool naflex : {false, true}) {
      try {
        siglip2::hf_tokenizer_files(model, config, naflex, "fuzz");
      } catch (const siglip2::Error&) {
      }
    }
  });
}
