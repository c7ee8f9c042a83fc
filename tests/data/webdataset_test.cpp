#include "data/webdataset.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iterator>

#include "common/error.hpp"
#include "data/loader.hpp"
#include "data_test_util.hpp"

namespace siglip2 {
namespace {

using testing::encode_image;
using testing::Entries;
using testing::TempDir;
using testing::write_tar;

TEST(ShardReader, GroupsEntriesByKey) {
  TempDir dir("wds_group");
  write_tar(dir.str("a.tar"), {{"x/k1.jpg", encode_image(8, 8)},
                               {"x/k1.txt", "one"},
                               {"x/k1.json", "{}"},
                               {"x/k2.PNG", encode_image(8, 8, ".png")},
                               {"x/k2.txt", "two"},
                               {"x/k2.cls", "7"},
                               {"x/.hidden", "?"}});
  ShardReader reader(dir.str("a.tar"), 1 << 20);
  auto s1 = reader.next();
  ASSERT_TRUE(s1);
  EXPECT_EQ(s1->key, "x/k1");
  EXPECT_EQ(s1->image_ext, "jpg");
  EXPECT_EQ(*s1->caption, "one");
  EXPECT_EQ(*s1->json, "{}");
  auto s2 = reader.next();
  ASSERT_TRUE(s2);
  EXPECT_EQ(s2->key, "x/k2");
  EXPECT_EQ(s2->image_ext, "png");
  EXPECT_EQ(*s2->cls, "7");
  EXPECT_FALSE(reader.next());
  EXPECT_TRUE(reader.error().empty());

  Sample sample;
  SkipCounts skipped;
  EXPECT_EQ(decode_sample(*s2, 1000, sample, skipped), "");
  EXPECT_EQ(sample.label, 7);
  EXPECT_EQ(sample.image.sizes(), (std::vector<int64_t>{8, 8, 3}));
}

// pipe:COMMAND shards (webdataset's convention): the tar is read from the command's standard output.
std::vector<std::string> shard_keys(const std::string& path, std::string* error = nullptr) {
  std::vector<std::string> keys;
  ShardReader reader(path, 1 << 20);
  while (auto s = reader.next()) keys.push_back(s->key);
  if (error) *error = reader.error();
  return keys;
}

TEST(PipeShards, ACommandsOutputReadsAsTheFile) {
  TempDir dir("wds_pipe");
  write_tar(dir.str("a.tar"), testing::good_samples("p", 4));
  std::string error;
  const auto want = shard_keys(dir.str("a.tar"));
  ASSERT_EQ(want.size(), 4u);
  EXPECT_EQ(shard_keys("pipe:cat '" + dir.str("a.tar") + "'", &error), want);
  EXPECT_EQ(error, "");
  EXPECT_EQ(shard_keys("pipe:gzip -c < '" + dir.str("a.tar") + "'", &error), want);  // filters stream too
  EXPECT_EQ(error, "");
}

TEST(PipeShards, ACommandThatFailsCannotBeOpened) {
  try {
    ShardReader reader("pipe:exit 3", 1 << 20);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "shard pipe:exit 3: cannot open (the command exited with status 3)");
  }
}

TEST(PipeShards, ACommandThatFailsAfterItsOutputEndsTheShardWithAnError) {
  TempDir dir("wds_pipe_fail");
  write_tar(dir.str("a.tar"), testing::good_samples("p", 4));
  std::string error;
  // The last sample is complete, but the failure may have cut what followed: the shard counts as truncated.
  const auto keys = shard_keys("pipe:cat '" + dir.str("a.tar") + "'; exit 4", &error);
  EXPECT_EQ(keys, (std::vector<std::string>{"p_0", "p_1", "p_2"}));
  EXPECT_THAT(error, ::testing::HasSubstr("the command exited with status 4"));
}

TEST(PipeShards, ClosingEarlyStopsTheCommand) {
  TempDir dir("wds_pipe_early");
  write_tar(dir.str("a.tar"), testing::good_samples("p", 4));
  const auto start = std::chrono::steady_clock::now();
  {
    ShardReader reader("pipe:cat '" + dir.str("a.tar") + "'; exec sleep 60", 1 << 20);
    ASSERT_TRUE(reader.next());
  }  // the command still runs: it is stopped
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(ParseRegions, ValidBadAndMalformed) {
  int64_t bad = 0;
  const auto regions = parse_regions(
      R"({"regions": [{"box": [0.1, 0.2, 0.5, 0.6], "caption": " a cat "},
                      {"box": [0.5, 0.2, 0.1, 0.6], "caption": "inverted"},
                      {"box": [0.1, 0.2, 0.5], "caption": "three numbers"},
                      {"box": [0.1, 0.2, 0.5, 1.7], "caption": "outside"},
                      {"box": [0.1, 0.2, 0.5, 0.6], "caption": ""},
                      {"box": [0.0, 0.0, 1.0, 1.0005], "caption": "rounding slack"}]})",
      bad);
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0].caption, "a cat");
  EXPECT_FLOAT_EQ(regions[0].box[3], 0.6f);
  EXPECT_FLOAT_EQ(regions[1].box[3], 1.0f);
  EXPECT_EQ(bad, 4);
  EXPECT_THROW(parse_regions("{not json", bad), Error);
  EXPECT_THROW(parse_regions("[1, 2]", bad), Error);
  EXPECT_THROW(parse_regions(R"({"regions": 3})", bad), Error);
  EXPECT_TRUE(parse_regions("{}", bad).empty());
  EXPECT_THROW(parse_regions("{\"regions\": " + std::string(100000, '[') + std::string(100000, ']') + "}", bad), Error);
}

// One shard of each kind of bad input; every problem is counted under its reason and nothing throws.
class MalformedShards : public ::testing::Test {
 protected:
  void SetUp() override {
    write_tar(dir_.str("good.tar"), testing::good_samples("good", 3));
    Entries bad = {
        {"nocap.jpg", encode_image(8, 8)},
        {"noimg.txt", "a caption without an image"},
        {"badjson.jpg", encode_image(8, 8)},
        {"badjson.txt", "fine"},
        {"badjson.json", "{\"regions\": [oops"},
        {"empty.jpg", ""},
        {"empty.txt", "zero bytes"},
        {"huge.png", encode_image(100, 90, ".png")},
        {"huge.txt", "too many pixels"},
        {"garbage.jpg", "\xFF\xD8 this is not really a jpeg"},
        {"garbage.txt", "undecodable"},
        {"blank.jpg", encode_image(8, 8)},
        {"blank.txt", "  \n"},
        {"onebadbox.jpg", encode_image(8, 8)},
        {"onebadbox.txt", "kept"},
        {"onebadbox.json",
         R"({"regions": [{"box": [0.1, 0.1, 0.2, 0.2], "caption": "ok"}, {"box": [1, 1, 0, 0], "caption": "x"}]})"},
    };
    write_tar(dir_.str("bad.tar"), bad);
    // Truncated in the middle of the second sample's image: the first sample survives.
    Entries t = testing::good_samples("trunc", 3);
    write_tar(dir_.str("full.tar"), t);
    const std::string full = read(dir_.str("full.tar"));
    const size_t cut = full.find("trunc_1.txt") - 700;
    std::ofstream(dir_.str("truncated.tar"), std::ios::binary) << full.substr(0, cut);
    std::filesystem::remove(dir_.str("full.tar"));
    shards_ = {dir_.str("good.tar"), dir_.str("bad.tar"), dir_.str("truncated.tar"), dir_.str("missing.tar")};
  }
  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  TempDir dir_{"wds_malformed"};
  std::vector<std::string> shards_;
  const int64_t max_pixels_ = 5000;  // 100 x 90 is over, 8 x 8 and 28 x 20 are not
};

TEST_F(MalformedShards, InspectCountsEachReason) {
  const ShardStats s = inspect_shards(shards_, max_pixels_);
  EXPECT_EQ(s.shards, 4);
  EXPECT_EQ(s.samples, 3 + 1 + 1);  // good.tar, onebadbox, first sample of truncated.tar
  EXPECT_EQ(s.with_regions, 5);
  const SkipCounts want = {{"no_caption", 2},  {"no_image", 1},        {"bad_json", 1},
                           {"empty_image", 1}, {"too_many_pixels", 1}, {"undecodable", 1},
                           {"bad_box", 1},     {"truncated_shard", 1}, {"unreadable_shard", 1}};
  EXPECT_EQ(s.skipped, want);
}

TEST_F(MalformedShards, LoaderSkipsAndKeepsCountsInItsState) {
  LoaderConfig c;
  c.shards = {"{" + shards_[0] + "," + shards_[1] + "," + shards_[2] + "," + shards_[3] + "}"};
  c.workers = 1;
  c.batch_size = 2;
  c.epochs = 1;
  c.max_pixels = max_pixels_;
  c.open_retries = 2;
  c.retry_delay_ms = 1;
  ImageConfig image;
  image.image_size = 16;
  DataLoader loader(c, image, testing::test_tokenizer(), 0, 1);
  std::vector<std::string> keys;
  while (auto b = loader.next()) keys.insert(keys.end(), b->keys.begin(), b->keys.end());
  EXPECT_THAT(keys, ::testing::UnorderedElementsAre("good_0", "good_1", "good_2", "onebadbox", "trunc_0"));
  const SkipCounts want = {{"no_caption", 2},  {"no_image", 1},        {"bad_json", 1},
                           {"empty_image", 1}, {"too_many_pixels", 1}, {"undecodable", 1},
                           {"bad_box", 1},     {"truncated_shard", 1}, {"unreadable_shard", 1}};
  EXPECT_EQ(loader.state().skipped(), want);
  const LoaderState round_trip = loader_state_from_json(loader_state_to_json(loader.state()));
  EXPECT_EQ(round_trip.skipped(), want);
  EXPECT_TRUE(round_trip.workers[0].done);
}

}  // namespace
}  // namespace siglip2
