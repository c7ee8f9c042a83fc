#include "data/shard_list.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/error.hpp"

namespace siglip2 {
namespace {

using ::testing::ElementsAre;

TEST(ExpandBraces, NumericRangeKeepsZeroPadding) {
  EXPECT_THAT(expand_braces("data/{000008..000011}.tar"),
              ElementsAre("data/000008.tar", "data/000009.tar", "data/000010.tar", "data/000011.tar"));
  EXPECT_THAT(expand_braces("{3..1}"), ElementsAre("3", "2", "1"));
  EXPECT_THAT(expand_braces("x{9..10}"), ElementsAre("x9", "x10"));
}

TEST(ExpandBraces, ListsAndSeveralGroups) {
  EXPECT_THAT(expand_braces("{a,b}/{0..1}.tar"), ElementsAre("a/0.tar", "a/1.tar", "b/0.tar", "b/1.tar"));
  EXPECT_THAT(expand_braces("plain.tar"), ElementsAre("plain.tar"));
  EXPECT_THAT(expand_braces("{x,}y"), ElementsAre("xy", "y"));
  EXPECT_EQ(expand_braces("s/{000000..000999}.tar").size(), 1000u);
}

TEST(ExpandBraces, MalformedPatternsAreErrors) {
  EXPECT_THROW(expand_braces("data/{000..010.tar"), Error);
  EXPECT_THROW(expand_braces("data/000}.tar"), Error);
  EXPECT_THROW(expand_braces("{1..x}"), Error);
  EXPECT_THROW(expand_braces("{a{b}}"), Error);
}

TEST(ExpandBraces, PatternListsConcatenate) {
  EXPECT_THAT(expand_shard_patterns({"a{0..1}", "b"}), ElementsAre("a0", "a1", "b"));
}

}  // namespace
}  // namespace siglip2
