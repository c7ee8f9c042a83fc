#include "data/text_normalize.hpp"

#include <gtest/gtest.h>

#include <string>

namespace siglip2 {
namespace {

TEST(UnicodeLower, LatinGreekCyrillic) {
  EXPECT_EQ(unicode_lower("Zürich ÀÉÎÕÜ ÆØÅ Straße ĞŞ", false), "zürich àéîõü æøå straße ğş");
  EXPECT_EQ(unicode_lower("МОСКВА Привет ЁЖ", false), "москва привет ёж");
  EXPECT_EQ(unicode_lower("ΑΘΗΝΑ Ἀθῆναι", false), "αθηνα ἀθῆναι");
  EXPECT_EQ(unicode_lower("東京 😀 ǅ Ⅻ Ⓐ 𐐀", false), "東京 😀 ǆ ⅻ ⓐ 𐐨");  // title case, numerals, circled, Deseret
}

TEST(UnicodeLower, DottedCapitalIBecomesTwoCodePoints) {
  EXPECT_EQ(unicode_lower("İSTANBUL", false), "i\u0307stanbul");
}

TEST(UnicodeLower, FinalSigma) {
  // Python's str.lower(): σ inside a word, ς at its end; case-ignorable characters (') are skipped.
  EXPECT_EQ(unicode_lower("ΟΔΥΣΣΕΥΣ ΣΑΣ Σ ΑΣ' ΑΣ'Α ΑΣ.", true), "οδυσσευς σας σ ας' ασ'α ας.");
  // The tokenizers' Lowercase normalizer maps each character alone: always σ.
  EXPECT_EQ(unicode_lower("ΟΔΥΣΣΕΥΣ ΣΑΣ", false), "οδυσσευσ σασ");
}

TEST(UnicodeLower, InvalidBytesPassThrough) {
  const std::string bad = std::string("A\xFF") + "B\xC3" + "\xE2\x82";  // stray byte, truncated sequences
  EXPECT_EQ(unicode_lower(bad, true), std::string("a\xFF") + "b\xC3" + "\xE2\x82");
  EXPECT_EQ(unicode_lower("\xED\xA0\x80X", false), "\xED\xA0\x80x");  // an encoded surrogate is invalid
}

TEST(AsciiLower, OnlyAToZ) {
  EXPECT_EQ(ascii_lower("ÀBC Zürich ΣΑΣ"), "Àbc zürich ΣΑΣ");
}

TEST(Siglip1Canonicalize, DropsPunctuationAndCollapsesWhitespace) {
  EXPECT_EQ(siglip1_canonicalize("  a photo, of\tthe  \"cat\"!\n\u00a0(x) "), "a photo of the cat x");
  EXPECT_EQ(siglip1_canonicalize("a , b"), "a b");
  EXPECT_EQ(siglip1_canonicalize("l'été—«ok»\u3000fin"), "lété—«ok» fin");  // only ASCII punctuation goes
  EXPECT_EQ(siglip1_canonicalize("...  "), "");
}

}  // namespace
}  // namespace siglip2
