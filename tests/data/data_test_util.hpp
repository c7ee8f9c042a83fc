#pragma once
// Helpers of the WebDataset tests: a temporary directory, small encoded images, hand-made tar shards and
// one small tokenizer (trained on synthetic captions once per process).
#include <unistd.h>

#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <utility>
#include <vector>

#include "data/synthetic.hpp"
#include "data/tar.hpp"
#include "data/tokenizer.hpp"

namespace siglip2::testing {

namespace fs = std::filesystem;

class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(fs::temp_directory_path() / ("siglip2_" + name + "_" + std::to_string(getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  std::string str(const std::string& rel) const { return (path_ / rel).string(); }

 private:
  fs::path path_;
};

inline std::string encode_image(int width, int height, const std::string& ext = ".jpg", int value = 128) {
  cv::Mat img(height, width, CV_8UC3, cv::Scalar(value, 255 - value, value / 2));
  std::vector<uchar> buf;
  cv::imencode(ext, img, buf);
  return std::string(buf.begin(), buf.end());
}

using Entries = std::vector<std::pair<std::string, std::string>>;

inline void write_tar(const std::string& path, const Entries& entries) {
  TarWriter tar(path);
  for (const auto& [name, data] : entries) tar.add(name, data);
  tar.close();
}

// n good samples "PREFIX_i" (jpg, txt, json with one region).
inline Entries good_samples(const std::string& prefix, int n) {
  Entries e;
  for (int i = 0; i < n; ++i) {
    const std::string key = prefix + "_" + std::to_string(i);
    e.emplace_back(key + ".jpg", encode_image(24 + i % 5, 20, ".jpg", 10 * i % 250));
    e.emplace_back(key + ".txt", "a red circle number " + std::to_string(i));
    e.emplace_back(key + ".json", R"({"regions": [{"box": [0.1, 0.2, 0.5, 0.6], "caption": "red circle"}]})");
  }
  return e;
}

inline const Tokenizer& test_tokenizer() {
  static TempDir dir("tokenizer_model");
  static const Tokenizer tokenizer = [] {
    SynthConfig c;
    c.out = dir.str("synth");
    c.train_shards = 1;
    c.eval_shards = 0;
    c.per_shard = 40;
    c.image_size = 32;
    c.vocab_size = 512;
    write_synthetic(c);
    TokenizerConfig tc;
    tc.model_file = c.out + "/tokenizer.model";
    tc.length = 16;
    return Tokenizer::load(tc);
  }();
  return tokenizer;
}

}  // namespace siglip2::testing
