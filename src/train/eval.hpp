#pragma once
// Zero-shot classification on held-out labelled shards (KEY.cls = class index): class embeddings are
// the normalised mean of the prompt templates' text embeddings; top-1 and top-5 accuracy. The same
// samples' captions give image-text retrieval recall.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "common/config.hpp"
#include "data/config.hpp"

namespace siglip2 {

struct Siglip2ModelImpl;
struct RunConfig;
class Tokenizer;
class TrainingLog;

struct EvalConfig {
  std::string shards;      // e.g. data/eval/{000000..000001}.tar; empty: no evaluation
  std::string classnames;  // one class name per line, in KEY.cls order
  std::string templates;   // one prompt per line, "{}" marks the class name
  int64_t every = 0;       // steps between evaluations during training (0: only at the end)
  int64_t batch_size = 64;
  int64_t retrieval_pairs = 5000;  // image-text retrieval on the first N captioned samples (0: off)

  template <class V>
  void visit(V& v) {
    v("shards", shards, "labelled held-out shards (KEY.cls); empty: no evaluation");
    v("classnames", classnames, "file with one class name per line, in label order");
    v("templates", templates, "file with one prompt template per line; {} marks the class name");
    v("every", every, "steps between evaluations during training (0: only at the end)", config::at_least<int64_t>(0));
    v("batch_size", batch_size, "images per evaluation batch", config::greater_than<int64_t>(0));
    v("retrieval_pairs", retrieval_pairs,
      "image-text retrieval (R@1/5/10 both ways) on the first N samples of the eval shards (0: off)",
      config::at_least<int64_t>(0));
  }
};

struct RetrievalResult {
  int64_t pairs = 0;
  int64_t texts = 0;                    // distinct captions among them
  double image_to_text[3] = {0, 0, 0};  // recall at 1, 5, 10
  double text_to_image[3] = {0, 0, 0};
};

struct ZeroShotResult {
  int64_t images = 0, classes = 0;
  double top1 = 0, top5 = 0;
  RetrievalResult retrieval;  // image-text retrieval on the same held-out samples and their captions
};

// Recall@{1,5,10} both ways for N image-text pairs (rows of `images` and `texts`, L2-normalised).
// Captions are deduplicated by token ids first (synthetic and web data repeat captions): image -> text
// ranks the distinct captions for each image; text -> image ranks the images for each distinct
// caption, and any image with that caption is a match.
RetrievalResult retrieval_recall(const at::Tensor& images, const at::Tensor& texts, const at::Tensor& input_ids);

ZeroShotResult zero_shot_accuracy(Siglip2ModelImpl& model, const Tokenizer& tokenizer, const ImageConfig& image,
                                  const EvalConfig& eval);

// Whether this build can evaluate (OpenCV, libarchive and sentencepiece).
bool evaluation_supported();
// Before training: a ConfigError when eval.shards is set but this build cannot evaluate, or a pattern
// matches no readable shard.
void check_evaluation_inputs(const RunConfig& config);

// The evaluation during training: zero_shot_accuracy on eval.shards with the run's tokenizer, reported
// through `log` at `step`. Does nothing without eval.shards or when `log` is null (ranks other than 0).
void evaluate_zero_shot(const RunConfig& config, Siglip2ModelImpl& model, TrainingLog* log, int64_t step);

}  // namespace siglip2
