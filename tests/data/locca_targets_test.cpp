#include "data/locca_targets.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <torch/torch.h>

#include <numeric>
#include <set>

#include "data_test_util.hpp"

namespace siglip2 {
namespace {

std::vector<int64_t> cat(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return std::vector<int64_t>(a.begin(), a.end());
}

TEST(FormatBox, QuantisesToBins) {
  EXPECT_EQ(format_box({0.1f, 0.2f, 0.5f, 0.6f}, 500), "50 100 250 300");
  EXPECT_EQ(format_box({0.f, 0.f, 1.f, 1.f}, 500), "0 0 499 499");
  EXPECT_EQ(format_box({0.f, 0.25f, 0.999f, 1.f}, 4), "0 1 3 3");
}

TEST(LoccaTargets, ExactLayoutOfAHandMadeExample) {
  const Tokenizer& tok = testing::test_tokenizer();
  const int eos = static_cast<int>(tok.config().eos_id), pad = static_cast<int>(tok.config().pad_id);
  LoccaTargetsConfig c;
  c.length = 40;
  const std::vector<Region> regions = {{{0.1f, 0.2f, 0.5f, 0.6f}, "red circle"}};
  DataRng rng(3);
  const LoccaExample e = make_locca_example("a red circle left of a blue square", regions, tok, c, rng);

  auto expect_layout = [&](const LoccaSequence& s, const std::string& prefix, const std::string& body) {
    const std::vector<int> head = tok.pieces(prefix), tail = tok.pieces(body);
    std::vector<int64_t> want = cat(head, tail);
    want.push_back(eos);
    want.resize(40, pad);
    EXPECT_EQ(s.ids, want) << body;
    std::vector<uint8_t> mask(40, 0);
    for (size_t i = head.size(); i < head.size() + tail.size() + 1; ++i) mask[i] = 1;
    EXPECT_EQ(s.counted, mask) << body;
  };
  expect_layout(e.caption, "Cap:", "a red circle left of a blue square");
  expect_layout(e.referring, "ARef:", "red circle : 50 100 250 300");
  expect_layout(e.grounded, "GCap:", "50 100 250 300 : red circle");
}

TEST(LoccaTargets, NoRegionMeansWholeImageAndCaption) {
  const Tokenizer& tok = testing::test_tokenizer();
  LoccaTargetsConfig c;
  c.length = 40;
  DataRng rng(0);
  const LoccaExample e = make_locca_example("a blue star", {}, tok, c, rng);
  EXPECT_EQ(e.referring.ids, layout_sequence(tok, "ARef:", "a blue star : 0 0 499 499", 40).ids);
  EXPECT_EQ(e.grounded.ids, layout_sequence(tok, "GCap:", "0 0 499 499 : a blue star", 40).ids);
}

TEST(LoccaTargets, LongCaptionLosesWordsNotTheBox) {
  const Tokenizer& tok = testing::test_tokenizer();
  LoccaTargetsConfig c;
  c.length = 20;
  const std::string caption = "a large red circle left of a small blue triangle above a large green star";
  const std::vector<Region> regions = {{{0.1f, 0.2f, 0.5f, 0.6f}, caption}};
  DataRng rng(0);
  const LoccaExample e = make_locca_example(caption, regions, tok, c, rng);
  const auto eos_at = std::find(e.referring.ids.begin(), e.referring.ids.end(), tok.config().eos_id);
  ASSERT_NE(eos_at, e.referring.ids.end());
  // The box text ends the body; the caption part was shortened by whole words.
  sentencepiece::SentencePieceProcessor spm;
  ASSERT_TRUE(spm.Load(tok.config().model_file).ok());
  std::string decoded;
  ASSERT_TRUE(spm.Decode(std::vector<int>(e.referring.ids.begin(), eos_at), &decoded).ok());
  EXPECT_THAT(decoded, ::testing::EndsWith(": 50 100 250 300"));
  EXPECT_THAT(decoded, ::testing::HasSubstr("a large red"));
  // Captioning is simply cut, EOS kept at the last position.
  const LoccaSequence cut = layout_sequence(tok, "Cap:", caption, 8);
  std::vector<int64_t> want = cat(tok.pieces("Cap:"), tok.pieces(caption));
  want.resize(7);
  want.push_back(tok.config().eos_id);
  EXPECT_EQ(cut.ids, want);
  EXPECT_EQ(cut.counted.back(), 1);
}

TEST(LoccaTargets, StackedTensorsAndParallelProbability) {
  const Tokenizer& tok = testing::test_tokenizer();
  LoccaTargetsConfig c;
  c.length = 24;
  std::vector<LoccaExample> examples;
  DataRng rng(11);
  for (int i = 0; i < 400; ++i) examples.push_back(make_locca_example("a red circle", {}, tok, c, rng));
  const LoccaTargets t = stack_locca(examples);
  EXPECT_EQ(t.caption.targets.sizes(), (std::vector<int64_t>{400, 24}));
  EXPECT_EQ(t.referring.loss_mask.scalar_type(), torch::kBool);
  EXPECT_EQ(t.caption.parallel.sizes(), (std::vector<int64_t>{400}));
  EXPECT_FALSE(t.referring.parallel.defined());
  const double share = t.caption.parallel.to(torch::kFloat).mean().item<double>();
  EXPECT_NEAR(share, 0.5, 0.08);
  EXPECT_EQ(t.caption.targets[7].sum().item<int64_t>(),
            std::accumulate(examples[7].caption.ids.begin(), examples[7].caption.ids.end(), int64_t(0)));
  c.parallel_probability = 0;
  EXPECT_FALSE(make_locca_example("x", {}, tok, c, rng).parallel);
  c.parallel_probability = 1;
  EXPECT_TRUE(make_locca_example("x", {}, tok, c, rng).parallel);
}

TEST(LoccaTargets, RegionsDrawnFromTheSeed) {
  const Tokenizer& tok = testing::test_tokenizer();
  LoccaTargetsConfig c;
  const std::vector<Region> regions = {{{0.f, 0.f, .5f, .5f}, "one"}, {{.5f, .5f, 1.f, 1.f}, "two"}};
  std::set<std::vector<int64_t>> seen;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    DataRng a(seed), b(seed);
    const LoccaExample x = make_locca_example("cap", regions, tok, c, a);
    EXPECT_EQ(x.referring.ids, make_locca_example("cap", regions, tok, c, b).referring.ids);
    seen.insert(x.referring.ids);
  }
  EXPECT_EQ(seen.size(), 2u);  // both regions get picked
}

}  // namespace
}  // namespace siglip2
