#include "interop/sentencepiece_model.hpp"

#include <cstring>

#include "common/error.hpp"
#include "common/fs.hpp"

namespace siglip2 {
namespace {

// One protobuf message: a cursor over its bytes that yields (field number, wire type) and the value.
class WireReader {
 public:
  WireReader(const std::string& bytes, size_t begin, size_t end, const std::string& name)
      : bytes_(bytes), at_(begin), end_(end), name_(name) {}

  bool next(uint32_t& field, uint32_t& wire_type) {
    if (at_ >= end_) return false;
    const uint64_t key = varint();
    field = static_cast<uint32_t>(key >> 3);
    wire_type = static_cast<uint32_t>(key & 7);
    if (field == 0) fail("field number 0");
    return true;
  }

  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at_ >= end_) fail("truncated varint");
      const auto byte = static_cast<uint8_t>(bytes_[at_++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    fail("varint longer than 10 bytes");
  }

  // A length-delimited value: [begin, end) of the bytes.
  std::pair<size_t, size_t> delimited() {
    const uint64_t length = varint();
    if (length > end_ - at_) fail("a field of " + std::to_string(length) + " bytes runs past its message");
    const size_t begin = at_;
    at_ += static_cast<size_t>(length);
    return {begin, at_};
  }

  uint32_t fixed32() {
    if (end_ - at_ < 4) fail("truncated 32-bit field");
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes_[at_ + static_cast<size_t>(i)]);
    at_ += 4;
    return v;
  }

  void skip(uint32_t wire_type) {
    switch (wire_type) {
      case 0:
        varint();
        break;
      case 1:
        if (end_ - at_ < 8) fail("truncated 64-bit field");
        at_ += 8;
        break;
      case 2:
        delimited();
        break;
      case 5:
        fixed32();
        break;
      default:
        fail("unsupported wire type " + std::to_string(wire_type));
    }
  }

  void expect(uint32_t wire_type, uint32_t want, const char* what) {
    if (wire_type != want) fail(std::string(what) + " has wire type " + std::to_string(wire_type));
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(name_ + ": not a sentencepiece model (" + what + " at byte " + std::to_string(at_) + ")");
  }

 private:
  const std::string& bytes_;
  size_t at_, end_;
  const std::string& name_;
};

// protobuf `string` fields are UTF-8; a piece that is not would corrupt tokenizer.json.
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<uint8_t>(s[i]);
    size_t n;  // continuation bytes
    uint32_t cp;
    if (b < 0x80) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      n = 1, cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      n = 2, cp = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      n = 3, cp = b & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return false;
    i += n + 1;
  }
  return true;
}

int32_t as_int32(uint64_t v) {
  return static_cast<int32_t>(static_cast<uint32_t>(v));  // protobuf int32: two's complement, low 32 bits
}

SentencePieceModel::Piece read_piece(WireReader& r, const std::string& bytes) {
  SentencePieceModel::Piece p;
  uint32_t field, wire;
  while (r.next(field, wire)) {
    if (field == 1) {
      r.expect(wire, 2, "SentencePiece.piece");
      const auto [b, e] = r.delimited();
      p.piece = bytes.substr(b, e - b);
      if (!valid_utf8(p.piece)) r.fail("a piece that is not UTF-8");
    } else if (field == 2) {
      r.expect(wire, 5, "SentencePiece.score");
      const uint32_t bits = r.fixed32();
      std::memcpy(&p.score, &bits, sizeof bits);
    } else if (field == 3) {
      r.expect(wire, 0, "SentencePiece.type");
      const uint64_t t = r.varint();
      if (t < 1 || t > 6) r.fail("unknown piece type " + std::to_string(t));
      p.type = static_cast<SentencePieceModel::PieceType>(t);
    } else {
      r.skip(wire);
    }
  }
  return p;
}

void read_trainer_spec(WireReader& r, SentencePieceModel& m) {
  uint32_t field, wire;
  while (r.next(field, wire)) {
    if (field == 3) {
      r.expect(wire, 0, "TrainerSpec.model_type");
      const uint64_t t = r.varint();
      if (t < 1 || t > 4) r.fail("unknown model type " + std::to_string(t));
      m.model_type = static_cast<SentencePieceModel::Type>(t);
    } else if (field == 35 || field == 24) {
      r.expect(wire, 0, "a TrainerSpec flag");
      (field == 35 ? m.byte_fallback : m.treat_whitespace_as_suffix) = r.varint() != 0;
    } else if (field >= 40 && field <= 43) {
      r.expect(wire, 0, "a TrainerSpec special id");
      const int32_t id = as_int32(r.varint());
      int32_t* ids[] = {&m.unk_id, &m.bos_id, &m.eos_id, &m.pad_id};
      *ids[field - 40] = id;
    } else {
      r.skip(wire);
    }
  }
}

void read_normalizer_spec(WireReader& r, const std::string& bytes, SentencePieceModel& m) {
  uint32_t field, wire;
  while (r.next(field, wire)) {
    if (field == 1 || field == 2) {
      r.expect(wire, 2, "NormalizerSpec.name/precompiled_charsmap");
      const auto [b, e] = r.delimited();
      (field == 1 ? m.normalizer_name : m.precompiled_charsmap) = bytes.substr(b, e - b);
      if (field == 1 && !valid_utf8(m.normalizer_name)) r.fail("a normalizer name that is not UTF-8");
    } else if (field >= 3 && field <= 5) {
      r.expect(wire, 0, "a NormalizerSpec flag");
      bool* flags[] = {&m.add_dummy_prefix, &m.remove_extra_whitespaces, &m.escape_whitespaces};
      *flags[field - 3] = r.varint() != 0;
    } else {
      r.skip(wire);
    }
  }
}

}  // namespace

SentencePieceModel SentencePieceModel::parse(const std::string& bytes, const std::string& name) {
  SentencePieceModel m;
  WireReader r(bytes, 0, bytes.size(), name);
  uint32_t field, wire;
  while (r.next(field, wire)) {
    if (field == 1 || field == 2 || field == 3 || field == 5) {
      r.expect(wire, 2, "a ModelProto message");
      const auto [b, e] = r.delimited();
      WireReader sub(bytes, b, e, name);
      if (field == 1) m.pieces.push_back(read_piece(sub, bytes));
      if (field == 2) read_trainer_spec(sub, m);
      if (field == 3) read_normalizer_spec(sub, bytes, m);
      if (field == 5) {
        SentencePieceModel denormalizer;
        read_normalizer_spec(sub, bytes, denormalizer);
        m.has_denormalizer = !denormalizer.precompiled_charsmap.empty();
      }
    } else {
      r.skip(wire);
    }
  }
  if (m.pieces.empty()) r.fail("no pieces");
  return m;
}

SentencePieceModel SentencePieceModel::load(const std::string& path) {
  return parse(read_file(path), path);
}

}  // namespace siglip2
