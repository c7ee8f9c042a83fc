#include "data/tokenizer.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace siglip2 {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// One small BPE model with byte fallback (Gemma-like ids: pad 0, eos 1, bos 2, unk 3), trained once.
class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("siglip2_tokenizer_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
    const std::vector<std::string> words = {"a",   "photo", "of",   "the",  "cat",   "dog",    "on",
                                            "red", "blue",  "city", "view", "night", "street", "mountain"};
    std::ofstream corpus(dir_ / "corpus.txt");
    for (int i = 0; i < 400; ++i) {
      for (int k = 0; k < 3 + i % 7; ++k) corpus << (k ? " " : "") << words[(i * 7 + k * 5 + k * k) % words.size()];
      corpus << "\n";
    }
    corpus.close();
    const std::string args = "--input=" + (dir_ / "corpus.txt").string() +
                             " --model_prefix=" + (dir_ / "bpe").string() +
                             " --model_type=bpe --vocab_size=320 --hard_vocab_limit=false --byte_fallback=true"
                             " --pad_id=0 --eos_id=1 --bos_id=2 --unk_id=3 --pad_piece=<pad> --eos_piece=<eos>"
                             " --bos_piece=<bos> --unk_piece=<unk> --normalization_rule_name=identity"
                             " --add_dummy_prefix=false --remove_extra_whitespaces=false --minloglevel=2";
    const auto status = sentencepiece::SentencePieceTrainer::Train(args);
    ASSERT_TRUE(status.ok()) << status.ToString();
    ASSERT_TRUE(spm_.Load((dir_ / "bpe.model").string()).ok());
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static TokenizerConfig config(int64_t length = 16) {
    TokenizerConfig c;
    c.model_file = (dir_ / "bpe.model").string();
    c.length = length;
    return c;
  }
  static std::vector<int> spm_ids(const std::string& text) {
    std::vector<int> ids;
    EXPECT_TRUE(spm_.Encode(text, &ids).ok());
    return ids;
  }

  static inline fs::path dir_;
  static inline sentencepiece::SentencePieceProcessor spm_;
};

TEST_F(TokenizerTest, AppendsEosAndPadsRight) {
  const Tokenizer tokenizer = Tokenizer::load(config());
  std::vector<int> want = spm_ids("a photo of the cat");
  ASSERT_LT(want.size(), 15u);
  want.push_back(1);
  want.resize(16, 0);
  EXPECT_THAT(tokenizer.encode_one("a photo of the cat"), ElementsAreArray(want));
  EXPECT_THAT(tokenizer.encode_one(""),
              ElementsAreArray(std::vector<int>{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
}

TEST_F(TokenizerTest, TruncationKeepsEos) {
  const Tokenizer tokenizer = Tokenizer::load(config(8));
  const std::string text = "the red cat on the blue mountain street at night";
  const std::vector<int> all = spm_ids(text);
  ASSERT_GT(all.size(), 8u);
  std::vector<int> want(all.begin(), all.begin() + 7);
  want.push_back(1);
  EXPECT_THAT(tokenizer.encode_one(text), ElementsAreArray(want));

  // Exactly length - 1 pieces: nothing is cut.
  std::vector<int> seven(all.begin(), all.begin() + 7);
  const std::string prefix = spm_.DecodeIds(seven);
  ASSERT_THAT(spm_ids(prefix), ElementsAreArray(seven));
  seven.push_back(1);
  EXPECT_THAT(tokenizer.encode_one(prefix), ElementsAreArray(seven));
}

TEST_F(TokenizerTest, Lowercases) {
  TokenizerConfig c = config();
  const Tokenizer unicode = Tokenizer::load(c);
  EXPECT_EQ(unicode.encode_one("A PHOTO Of The CAT"), unicode.encode_one("a photo of the cat"));
  c.lowercase = "none";
  EXPECT_NE(Tokenizer::load(c).encode_one("A PHOTO"), unicode.encode_one("a photo"));
  c.lowercase = "ascii";
  EXPECT_EQ(Tokenizer::load(c).encode_one("A PHOTO"), unicode.encode_one("a photo"));
}

TEST_F(TokenizerTest, EncodeStacksRows) {
  const Tokenizer tokenizer = Tokenizer::load(config());
  const at::Tensor ids = tokenizer.encode({"a cat", "the dog on the street", ""});
  ASSERT_EQ(ids.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(ids.scalar_type(), at::kLong);
  const std::vector<int> row = tokenizer.encode_one("the dog on the street");
  EXPECT_TRUE(torch::equal(ids[1], torch::tensor(std::vector<int64_t>(row.begin(), row.end()))));
  EXPECT_EQ(tokenizer.vocab_size(), spm_.GetPieceSize());
}

TEST_F(TokenizerTest, Siglip1CanonicalizesAndPadsWithEos) {
  TokenizerConfig c = config();
  c.siglip1 = true;
  c.pad_id = c.eos_id = 1;
  const Tokenizer tokenizer = Tokenizer::load(c);
  const std::vector<int> ids = tokenizer.encode_one("A photo, of  the \"cat\"!");
  EXPECT_EQ(ids, tokenizer.encode_one("a photo of the cat"));
  std::vector<int> want = spm_ids(
      "<unk>\xE2\x96\x81"
      "a photo of the cat");
  want.erase(want.begin(), want.begin() + static_cast<std::ptrdiff_t>(spm_ids("<unk>").size()));
  want.push_back(1);
  want.resize(16, 1);
  EXPECT_THAT(ids, ElementsAreArray(want));
}

TEST_F(TokenizerTest, LoadErrors) {
  TokenizerConfig c = config();
  c.model_file = "bpe.model";
  EXPECT_EQ(Tokenizer::load(c, dir_.string()).encode_one("a cat"), Tokenizer::load(config()).encode_one("a cat"));
  c.model_file = "missing.model";
  try {
    Tokenizer::load(c, dir_.string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr((dir_ / "missing.model").string() + ": cannot load the sentencepiece model"));
  }
  c = config();
  c.eos_id = 100000;
  EXPECT_THROW(Tokenizer::load(c), ConfigError);
}

}  // namespace
}  // namespace siglip2
