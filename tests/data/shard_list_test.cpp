#include "data/shard_list.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "data/remote.hpp"

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

TEST(ShardKinds, FilesCommandsAndUrls) {
  EXPECT_TRUE(is_local_shard("data/000000.tar"));
  EXPECT_TRUE(is_local_shard("s3/000000.tar"));  // a folder named s3
  EXPECT_TRUE(is_pipe_shard("pipe:cat x.tar"));
  for (const char* url : {"http://h/x.tar", "https://h/x.tar", "s3://b/x.tar"}) {
    EXPECT_TRUE(is_remote_shard(url)) << url;
    EXPECT_FALSE(is_local_shard(url)) << url;
  }
}

// The environment of s3_request, restored after each case.
class S3RequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kNames) {
      const char* v = std::getenv(name);
      saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
      ::unsetenv(name);
    }
  }
  void TearDown() override {
    for (const auto& [name, value] : saved_) {
      if (value) ::setenv(name, value->c_str(), 1);
      else ::unsetenv(name);
    }
  }
  static constexpr const char* kNames[] = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
                                          "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"};
  std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

TEST_F(S3RequestTest, AwsVirtualHostWithTheRegionAndAnEncodedKey) {
  S3Request r = s3_request("s3://laion/part 1/\xc3\xa9+=.tar");
  EXPECT_EQ(r.url, "https://laion.s3.us-east-1.amazonaws.com/part%201/%C3%A9%2B%3D.tar");
  EXPECT_EQ(r.region, "us-east-1");
  EXPECT_FALSE(r.sign);
  ::setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
  EXPECT_EQ(s3_request("s3://b/k.tar").url, "https://b.s3.eu-west-1.amazonaws.com/k.tar");
  ::setenv("AWS_REGION", "ap-south-1", 1);  // AWS_REGION first, as the AWS SDKs
  EXPECT_EQ(s3_request("s3://b/k.tar").region, "ap-south-1");
  ::setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
  EXPECT_FALSE(s3_request("s3://b/k.tar").sign);  // the secret is missing
  ::setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
  EXPECT_TRUE(s3_request("s3://b/k.tar").sign);
}

TEST_F(S3RequestTest, AnEndpointIsAddressedPathStyle) {
  ::setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/", 1);
  EXPECT_EQ(s3_request("s3://b/dir/k.tar").url, "http://127.0.0.1:9000/b/dir/k.tar");
  ::setenv("AWS_ENDPOINT_URL_S3", "https://storage.googleapis.com", 1);  // the S3-specific one wins
  EXPECT_EQ(s3_request("s3://b/dir/k.tar").url, "https://storage.googleapis.com/b/dir/k.tar");
}

TEST_F(S3RequestTest, AUrlWithoutBucketOrKeyIsAnError) {
  for (const char* bad : {"s3://bucket", "s3://bucket/", "s3:///key", "http://h/k"})
    EXPECT_THROW(s3_request(bad), Error) << bad;
}

}  // namespace
}  // namespace siglip2
