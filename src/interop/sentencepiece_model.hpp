#pragma once
// The parts of a sentencepiece model file (tokenizer.model / spiece.model, a serialised ModelProto of
// sentencepiece_model.proto) that decide how text is tokenised, read without protobuf: a small, strict
// reader of the protobuf wire format that keeps the fields below and skips the others.
// Field numbers and defaults: sentencepiece's src/sentencepiece_model.proto (v0.1.9x–0.2.x).
#include <cstdint>
#include <string>
#include <vector>

namespace siglip2 {

struct SentencePieceModel {
  enum class Type { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };
  enum class PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
  struct Piece {
    std::string piece;  // UTF-8, "▁" for a space
    float score = 0;
    PieceType type = PieceType::kNormal;
  };

  std::vector<Piece> pieces;  // id = index
  // TrainerSpec
  Type model_type = Type::kUnigram;                         // field 3
  bool byte_fallback = false;                               // field 35
  bool treat_whitespace_as_suffix = false;                  // field 24
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;  // fields 40-43
  // NormalizerSpec
  std::string normalizer_name;           // field 1: "nmt_nfkc", "identity", "nfkc_cf", …, or "user_defined"
  std::string precompiled_charsmap;      // field 2: the compiled normalisation rule (bytes)
  bool add_dummy_prefix = true;          // field 3
  bool remove_extra_whitespaces = true;  // field 4
  bool escape_whitespaces = true;        // field 5
  bool has_denormalizer = false;         // ModelProto field 5 with a charsmap: decoding differs, encoding does not

  // Parses the serialised ModelProto; throws siglip2::Error naming `name_for_errors` and the offset when the
  // bytes are not a well-formed model (truncated, wrong wire type, no pieces, unknown enum value).
  static SentencePieceModel parse(const std::string& bytes, const std::string& name_for_errors);
  static SentencePieceModel load(const std::string& path);
};

}  // namespace siglip2
