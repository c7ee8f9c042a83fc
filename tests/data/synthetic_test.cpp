#include "data/synthetic.hpp"

#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <fstream>

#include "data/shard_list.hpp"
#include "data/tokenizer.hpp"
#include "data_test_util.hpp"

namespace siglip2 {
namespace {

using testing::TempDir;

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

SynthConfig small(const std::string& out, int64_t seed) {
  SynthConfig c;
  c.out = out;
  c.train_shards = 3;
  c.eval_shards = 2;
  c.per_shard = 12;
  c.seed = seed;
  c.image_size = 64;
  c.vocab_size = 512;
  return c;
}

TEST(Synthetic, WritesTheRequestedShardsAndReadsBack) {
  TempDir dir("synth");
  const SynthSummary s = write_synthetic(small(dir.str("a"), 1));
  EXPECT_EQ(s.train_pattern, dir.str("a/train/{000000..000002}.tar"));
  EXPECT_EQ(s.train_samples, 36);
  EXPECT_EQ(s.eval_samples, 24);
  const ShardStats train = inspect_shards(expand_braces(s.train_pattern), 1 << 20);
  EXPECT_EQ(train.shards, 3);
  EXPECT_EQ(train.samples, 36);
  EXPECT_EQ(train.with_regions, 36);
  EXPECT_GE(train.regions, 36);
  EXPECT_EQ(train.with_label, 0);
  EXPECT_TRUE(train.skipped.empty());
  const ShardStats eval = inspect_shards(expand_braces(s.eval_pattern), 1 << 20);
  EXPECT_EQ(eval.samples, 24);
  EXPECT_EQ(eval.with_label, 24);
  EXPECT_EQ(eval.regions, 24);  // one shape each

  EXPECT_EQ(read(dir.str("a/classnames.txt")).substr(0, 22), "red circle\nred square\n");
  const std::string templates = read(dir.str("a/templates.txt"));
  EXPECT_NE(templates.find("a photo of a {}."), std::string::npos);
  TokenizerConfig tc;
  tc.model_file = dir.str("a/tokenizer.model");
  const Tokenizer tok = Tokenizer::load(tc);
  // Words of the captions are whole pieces, not bytes.
  EXPECT_LE(tok.pieces("a large red circle left of a small blue triangle").size(), 14u);
}

TEST(Synthetic, DeterministicForASeed) {
  TempDir dir("synth_det");
  write_synthetic(small(dir.str("a"), 7));
  write_synthetic(small(dir.str("b"), 7));
  write_synthetic(small(dir.str("c"), 8));
  for (const std::string f : {"train/000000.tar", "train/000002.tar", "eval/000001.tar", "classnames.txt"})
    EXPECT_EQ(read(dir.str("a/" + f)), read(dir.str("b/" + f))) << f;
  // The model file records its training paths; its pieces must be the same.
  sentencepiece::SentencePieceProcessor a, b;
  ASSERT_TRUE(a.Load(dir.str("a/tokenizer.model")).ok());
  ASSERT_TRUE(b.Load(dir.str("b/tokenizer.model")).ok());
  ASSERT_EQ(a.GetPieceSize(), b.GetPieceSize());
  for (int i = 0; i < a.GetPieceSize(); ++i) EXPECT_EQ(a.IdToPiece(i), b.IdToPiece(i));
  EXPECT_NE(read(dir.str("a/train/000000.tar")), read(dir.str("c/train/000000.tar")));
}

TEST(Synthetic, CaptionsNameTheShapesAndLabelsMatch) {
  DataRng rng(3);
  const auto names = synthetic_class_names();
  ASSERT_EQ(names.size(), 36u);
  for (int i = 0; i < 50; ++i) {
    const SynthExample e = make_synthetic_example(rng, 64, 90, /*single_shape=*/true);
    ASSERT_GE(e.label, 0);
    ASSERT_EQ(e.regions.size(), 1u);
    // "a large red circle" names the class "red circle".
    EXPECT_NE(e.caption.find(names[e.label]), std::string::npos) << e.caption;
    for (const auto& r : e.regions) {
      EXPECT_LT(r.box[0], r.box[2]);
      EXPECT_LT(r.box[1], r.box[3]);
    }
  }
  for (int i = 0; i < 50; ++i) {
    const SynthExample e = make_synthetic_example(rng, 64, 90, false);
    EXPECT_GE(e.regions.size(), 1u);
    EXPECT_LE(e.regions.size(), 3u);
    for (const auto& r : e.regions) EXPECT_NE(e.caption.find(r.caption), std::string::npos) << e.caption;
  }
}

}  // namespace
}  // namespace siglip2
