#pragma once
// A synthetic WebDataset (docs/data.md "Synthetic data") so the demo and the tests run anywhere: JPEG
// images of one to three coloured shapes on varied backgrounds, captions that name them and their layout
// ("a large red circle left of a small blue triangle"), a region (box + caption) per shape, a held-out
// split of single shapes with class labels for zero-shot evaluation, and a sentencepiece model trained on
// the texts. Everything is a function of the seed.
#include <cstdint>
#include <string>
#include <vector>

#include "data/rng.hpp"
#include "data/webdataset.hpp"

namespace siglip2 {

struct SynthConfig {
  std::string out;
  int64_t train_shards = 8;
  int64_t eval_shards = 2;
  int64_t per_shard = 256;
  int64_t seed = 0;
  int64_t image_size = 128;
  int64_t jpeg_quality = 90;
  int64_t vocab_size = 512;
  bool tokenizer = true;  // train out/tokenizer.model
};

struct SynthExample {
  std::string jpeg;
  std::string caption;
  std::vector<Region> regions;
  int64_t label = -1;  // evaluation split: colour * shapes + shape
};

// Class names of the evaluation split, index = label ("red circle", ...), and the zero-shot prompts.
std::vector<std::string> synthetic_class_names();
std::vector<std::string> synthetic_prompt_templates();  // "{}" marks the class name

SynthExample make_synthetic_example(DataRng& rng, int64_t image_size, int64_t jpeg_quality, bool single_shape);

struct SynthSummary {
  std::string train_pattern, eval_pattern;  // brace patterns of the written shards
  int64_t train_samples = 0, eval_samples = 0;
};

// Trains a sentencepiece model with Gemma's settings on `corpus` (lowercased) into model_path (NAME.model).
void train_tokenizer(const std::vector<std::string>& corpus, const std::string& model_path, int64_t vocab_size);

// Writes OUT/train/NNNNNN.tar, OUT/eval/NNNNNN.tar, OUT/classnames.txt, OUT/templates.txt,
// OUT/tokenizer.model and OUT/info.json. Throws siglip2::Error on I/O failures.
SynthSummary write_synthetic(const SynthConfig& config);

}  // namespace siglip2
