#include "data/text_normalize.hpp"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <vector>

namespace siglip2 {
namespace {

struct LowerRun {
  char32_t first, last;
  int stride;  // 1: every code point in [first, last]; 2: every other one (upper/lower pairs)
  int delta;
};
struct Range {
  char32_t first, last;
};

#include "data/text_normalize_tables.inc"

constexpr char32_t kCapitalSigma = 0x3A3, kSmallSigma = 0x3C3, kFinalSigma = 0x3C2;
constexpr char32_t kInvalid = 0xFFFFFFFF;

template <class Table>
const auto* find_range(const Table& table, char32_t c) {
  const auto* it =
      std::upper_bound(std::begin(table), std::end(table), c, [](char32_t v, const auto& r) { return v < r.first; });
  if (it == std::begin(table)) return static_cast<decltype(it)>(nullptr);
  --it;
  return c <= it->last ? it : nullptr;
}

bool is_case_ignorable(char32_t c) {
  return find_range(kCaseIgnorable, c) != nullptr;
}
bool is_cased(char32_t c) {
  return find_range(kCased, c) != nullptr;
}

char32_t simple_lower(char32_t c) {
  const LowerRun* run = find_range(kLowerRuns, c);
  if (run == nullptr || (c - run->first) % run->stride != 0) return c;
  return static_cast<char32_t>(static_cast<int64_t>(c) + run->delta);
}

// One code point decoded at text[i]; kInvalid (advancing one byte) for a malformed sequence.
char32_t decode(const std::string& text, size_t& i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  int extra;
  char32_t c;
  if (b0 < 0x80) {
    ++i;
    return b0;
  } else if ((b0 & 0xE0) == 0xC0) {
    extra = 1, c = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    extra = 2, c = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    extra = 3, c = b0 & 0x07;
  } else {
    ++i;
    return kInvalid;
  }
  if (i + extra >= text.size()) {
    ++i;
    return kInvalid;
  }
  for (int k = 1; k <= extra; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) {
      ++i;
      return kInvalid;
    }
    c = (c << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr char32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  if (c < kMin[extra] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
    ++i;
    return kInvalid;
  }
  i += extra + 1;
  return c;
}

void encode(char32_t c, std::string& out) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// Final_Sigma: preceded by a cased letter and not followed by one, case-ignorable characters skipped both ways.
template <class It>
bool cased_after_ignorables(It begin, It end) {
  const It it = std::find_if(begin, end, [](char32_t c) { return c == kInvalid || !is_case_ignorable(c); });
  return it != end && *it != kInvalid && is_cased(*it);
}

// Python's str.isspace(), which is also what re's \s matches in a str pattern.
bool is_python_space(char32_t c) {
  return (c >= 0x9 && c <= 0xD) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace

std::string unicode_lower(const std::string& text, bool final_sigma) {
  std::vector<char32_t> chars;
  std::vector<size_t> starts;  // byte offset of each entry, to copy invalid bytes through
  chars.reserve(text.size());
  starts.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    starts.push_back(i);
    chars.push_back(decode(text, i));
  }
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (size_t k = 0; k < chars.size(); ++k) {
    const char32_t c = chars[k];
    if (c == kInvalid) {
      out += text[starts[k]];
    } else if (c == 0x130) {  // İ: the only code point whose lowercase is two code points
      encode(U'i', out);
      encode(0x307, out);
    } else if (c == kCapitalSigma && final_sigma) {
      const bool word_final = cased_after_ignorables(chars.rbegin() + (chars.size() - k), chars.rend()) &&
                              !cased_after_ignorables(chars.begin() + k + 1, chars.end());
      encode(word_final ? kFinalSigma : kSmallSigma, out);
    } else {
      encode(simple_lower(c), out);
    }
  }
  return out;
}

std::string ascii_lower(const std::string& text) {
  std::string out = text;
  for (char& ch : out)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  return out;
}

std::string siglip1_canonicalize(const std::string& text) {
  static const std::string kPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  std::string out;
  out.reserve(text.size());
  bool in_space = false;
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    const char32_t c = decode(text, i);
    if (c != kInvalid && is_python_space(c)) {
      in_space = true;
      continue;
    }
    if (c < 0x80 && kPunctuation.find(static_cast<char>(c)) != std::string::npos) continue;
    if (in_space && !out.empty()) out += ' ';
    in_space = false;
    out.append(text, start, i - start);
  }
  return out;
}

}  // namespace siglip2
