#pragma once
// How images and texts become model inputs. Field names follow the Hugging Face processor files
// (preprocessor_config.json, tokenizer_config.json) where there is one.
#include <cstdint>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "data/remote.hpp"

namespace siglip2 {

struct ImageConfig {
  // Fixed resolution: resize to image_size x image_size (aspect ratio not kept).
  // NaFlex: aspect-preserving resize to at most max_num_patches patches of patch_size.
  int64_t image_size = 256;
  std::string resample = "bilinear";  // bilinear (SigLIP 2) or bicubic (SigLIP 1), antialiased
  bool naflex = false;
  int64_t patch_size = 16;
  int64_t max_num_patches = 256;
  std::vector<int64_t> naflex_sequence_lengths;  // NaFlex training: one drawn per batch (empty: max_num_patches)
  int64_t naflex_half_batch_length = 1024;       // batches this long or longer: half size, drawn twice as often
  // Decode large JPEGs at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when the result is still at least
  // as large as the resize target. Faster on photographs much larger than the target; the pixels then
  // differ slightly from the Hugging Face processors', so it is off by default.
  bool fast_decode = false;
  // EXIF orientation tags are applied by default: the model then sees photos upright, as transformers'
  // pipelines (load_image) show them at inference. Shards written by img2dataset carry no tag, so both
  // settings give the same pixels there. "ignore" keeps the stored pixels (PIL Image.open, tf.io.decode_jpeg).
  std::string exif_orientation = "apply";

  template <class V>
  void visit(V& v) {
    using config::greater_than;
    v("image_size", image_size, "fixed resolution: square input side in pixels", greater_than<int64_t>(0));
    v("resample", resample, "resize filter: bilinear (SigLIP 2) or bicubic (SigLIP 1)",
      config::one_of({"bilinear", "bicubic"}));
    v("naflex", naflex, "NaFlex: keep the aspect ratio, variable number of patches");
    v("patch_size", patch_size, "NaFlex: patch side in pixels", greater_than<int64_t>(0));
    v("max_num_patches", max_num_patches, "NaFlex: patches per image at most (sequence length)",
      greater_than<int64_t>(0));
    v("naflex_sequence_lengths", naflex_sequence_lengths,
      "NaFlex training: sequence lengths, one drawn per batch (SigLIP 2: [128, 256, 576, 784, 1024]); empty: "
      "max_num_patches",
      config::each(greater_than<int64_t>(0)));
    v("naflex_half_batch_length", naflex_half_batch_length,
      "NaFlex training: batches at this length or longer have half the batch size and are drawn twice as often "
      "(the same images per length)",
      greater_than<int64_t>(0));
    v("fast_decode", fast_decode,
      "decode large JPEGs at 1/2, 1/4 or 1/8 scale when still at least the resize target (faster; not "
      "bit-exact with the Hugging Face processors)");
    v("exif_orientation", exif_orientation,
      "apply: turn photos upright by their EXIF orientation tag, as transformers' pipelines do; ignore: keep "
      "the stored pixels (boxes in KEY.json refer to the image as decoded)",
      config::one_of({"apply", "ignore"}));
  }
  std::string check() const {
    if (!naflex_sequence_lengths.empty() && !naflex) return "naflex_sequence_lengths needs naflex: true";
    return "";
  }
};

struct TokenizerConfig {
  std::string model_file;  // sentencepiece model; relative paths are relative to the checkpoint
  int64_t length = 64;
  std::string lowercase = "unicode";  // unicode, ascii (big_vision's tf.strings.lower) or none
  int64_t pad_id = 0;                 // Gemma: pad 0, eos 1; SigLIP 1: pad = eos = 1
  int64_t eos_id = 1;
  bool siglip1 = false;  // SigLIP 1 text canonicalisation (punctuation removed, "▁" prefix)

  template <class V>
  void visit(V& v) {
    v("model_file", model_file, "sentencepiece model file (tokenizer.model / spiece.model)");
    v("length", length, "tokens per text: truncated keeping EOS, right-padded", config::greater_than<int64_t>(1));
    v("lowercase", lowercase, "lowercase texts first: unicode, ascii or none",
      config::one_of({"unicode", "ascii", "none"}));
    v("pad_id", pad_id, "padding token id", config::at_least<int64_t>(0));
    v("eos_id", eos_id, "end-of-sequence token id, appended to every text", config::at_least<int64_t>(0));
    v("siglip1", siglip1, "SigLIP 1 canonicalisation: strip punctuation, collapse spaces");
  }
};

// A section as a training config reads it: T::visit_keys(v, true), which refuses (ConfigReader::retired)
// the keys the trainer sets from other sections. Holds a reference: made on the fly inside a visit.
template <class T>
struct InTrainingRun {
  T& section;
  template <class V>
  void visit(V& v) {
    section.visit_keys(v, true);
  }
  std::string check() const {
    if constexpr (config::detail::has_check<T>::value)
      return section.check();
    else
      return "";
  }
};

// LocCa decoder targets (docs/data.md "LocCa targets"): three tasks per example, each "PREFIX BODY <eos>",
// the prefix not counted in the loss.
struct LoccaTargetsConfig {
  int64_t length = 64;                // tokens per target sequence, prefix and EOS included
  int64_t box_bins = 500;             // box coordinates as integers 0 .. box_bins - 1
  double parallel_probability = 0.5;  // captioning examples predicted in parallel (SigLIP 2: 0.5)
  std::string caption_prefix = "Cap:";
  std::string referring_prefix = "ARef:";
  std::string grounded_prefix = "GCap:";

  template <class V>
  void visit(V& v) {
    visit_keys(v, false);
  }
  // In a training config (`in_training_run`), length and parallel_probability come from other sections.
  template <class V>
  void visit_keys(V& v, bool in_training_run) {
    if (in_training_run)
      v.retired("length", "set by the trainer from model.decoder.max_length; remove it");
    else
      v("length", length, "tokens per LocCa target sequence (prefix and EOS included)",
        config::greater_than<int64_t>(4));
    v("box_bins", box_bins, "box coordinates are written as integers 0 .. box_bins - 1",
      config::greater_than<int64_t>(1));
    if (in_training_run)
      v.retired("parallel_probability", "set by the trainer from loss.locca.parallel_probability; remove it");
    else
      v("parallel_probability", parallel_probability,
        "probability that a captioning example is predicted in parallel from mask tokens (SigLIP 2: 0.5)",
        config::in_range(0.0, 1.0));
    v("caption_prefix", caption_prefix, "prefix of the captioning task (not counted in the loss)");
    v("referring_prefix", referring_prefix, "prefix of referring expressions: caption -> box");
    v("grounded_prefix", grounded_prefix, "prefix of grounded captioning: box -> caption");
  }
};

// Self-distillation views (SILC / DINO values; ssl_locca.md §2): the global view is the fixed-resolution
// image itself (pixel_values); these are the student's local crops.
struct SelfDistillationViewsConfig {
  int64_t local_crops = 8;          // SigLIP 2
  int64_t local_size = 112;         // DINO: 96 px at 224; a multiple of the patch size
  double local_scale_min = 0.05;    // SILC
  double local_scale_max = 0.4;     // SILC
  double flip_probability = 0.5;    // DINO
  double jitter_probability = 0.8;  // DINO: ColorJitter(0.4, 0.4, 0.2, 0.1) with p 0.8
  double brightness = 0.4;
  double contrast = 0.4;
  double saturation = 0.2;
  double hue = 0.1;
  double grayscale_probability = 0.2;  // DINO
  double blur_probability = 0.5;       // DINO, local crops
  double blur_sigma_min = 0.1;         // DINO
  double blur_sigma_max = 2.0;

  template <class V>
  void visit(V& v) {
    using config::at_least;
    using config::in_range;
    v("local_crops", local_crops, "local crops per image (SigLIP 2: 8)", config::greater_than<int64_t>(0));
    v("local_size", local_size, "local crop side in pixels, a multiple of the patch size (DINO: 96 at 224)",
      config::greater_than<int64_t>(0));
    v("local_scale_min", local_scale_min, "smallest crop area, as a fraction of the image (SILC: 0.05)",
      in_range(0.0, 1.0));
    v("local_scale_max", local_scale_max, "largest crop area, as a fraction of the image (SILC: 0.4)",
      in_range(0.0, 1.0));
    v("flip_probability", flip_probability, "horizontal flip probability (DINO: 0.5)", in_range(0.0, 1.0));
    v("jitter_probability", jitter_probability, "colour jitter probability (DINO: 0.8)", in_range(0.0, 1.0));
    v("brightness", brightness, "colour jitter: brightness factor range 1 +- this (DINO: 0.4)", at_least(0.0));
    v("contrast", contrast, "colour jitter: contrast factor range 1 +- this (DINO: 0.4)", at_least(0.0));
    v("saturation", saturation, "colour jitter: saturation factor range 1 +- this (DINO: 0.2)", at_least(0.0));
    v("hue", hue, "colour jitter: hue shift range +- this, in turns (DINO: 0.1)", in_range(0.0, 0.5));
    v("grayscale_probability", grayscale_probability, "grayscale probability (DINO: 0.2)", in_range(0.0, 1.0));
    v("blur_probability", blur_probability, "Gaussian blur probability (DINO local crops: 0.5)", in_range(0.0, 1.0));
    v("blur_sigma_min", blur_sigma_min, "Gaussian blur sigma range, pixels (DINO: 0.1 .. 2)",
      config::greater_than(0.0));
    v("blur_sigma_max", blur_sigma_max, "Gaussian blur sigma upper end, pixels", config::greater_than(0.0));
  }
  std::string check() const {
    if (local_scale_min > local_scale_max) return "local_scale_min must not exceed local_scale_max";
    if (blur_sigma_min > blur_sigma_max) return "blur_sigma_min must not exceed blur_sigma_max";
    return "";
  }
};

// The training data stream (docs/data.md). Each entry of `shards` is one source, a brace pattern; sources
// are mixed by `weights`. The stream of a rank is a function of (seed, epoch, rank, worker) alone.
struct LoaderConfig {
  std::vector<std::string> shards;
  std::vector<double> weights;  // empty: equal weights
  int64_t batch_size = 32;      // per rank
  int64_t workers = 2;          // loader threads per rank
  int64_t prefetch = 2;         // finished batches each worker may hold
  int64_t shuffle_buffer = 1000;
  int64_t seed = 0;
  int64_t epochs = 0;             // 0: repeat forever
  bool resampled = false;         // shards drawn with replacement (open_clip's --dataset-resampled)
  int64_t samples_per_epoch = 0;  // resampled: samples in a (virtual) epoch, all ranks together
  int64_t max_pixels = 64 * 1024 * 1024;
  int64_t max_entry_bytes = 256 * 1024 * 1024;
  int64_t open_retries = 3;
  int64_t retry_delay_ms = 200;
  double max_failed_shards = 0.5;  // share of a rank's last 20 shard opens that may fail before the run stops
  int64_t stall_timeout_s = 900;   // no batch for this long stops the run (0: wait forever)
  RemoteOptions remote;            // http(s):// and s3:// shards
  bool locca = true;
  bool self_distillation = false;  // produce the local crops (train.self_distillation in a training run)
  // Local crops only for the batches from this index on (counted over all workers, round-robin, as
  // naflex_sequence_length counts): the trainer sets the batch of the step where self-distillation starts, so
  // that the 80% of training before it does not pay for crops it would drop. Not a config key.
  int64_t self_distillation_from_batch = 0;
  LoccaTargetsConfig locca_targets;
  SelfDistillationViewsConfig self_distillation_views;

  template <class V>
  void visit(V& v) {
    visit_keys(v, false);
  }
  // The `data:` section of a training config (`in_training_run`; see InTrainingRun) leaves out what the
  // trainer sets from other sections, so that each fact has one source.
  template <class V>
  void visit_keys(V& v, bool in_training_run) {
    using config::at_least;
    using config::greater_than;
    v("shards", shards, "shard patterns, one per source, e.g. data/{000000..000999}.tar");
    v("weights", weights, "mixing weight per source (empty: equal)", config::each(at_least(0.0)));
    if (in_training_run)
      v.retired("batch_size",
                "set by the trainer: train.batch_size (the global batch) / the number of ranks; remove it");
    else
      v("batch_size", batch_size, "examples per batch on each rank", greater_than<int64_t>(0));
    v("workers", workers, "loader threads per rank; each reads its own shards", greater_than<int64_t>(0));
    v("prefetch", prefetch, "finished batches each worker may queue", greater_than<int64_t>(0));
    v("shuffle_buffer", shuffle_buffer, "samples in each worker's shuffle buffer (0 or 1: no shuffling)",
      at_least<int64_t>(0));
    v("seed", seed, "seed of the shard order, shuffle buffers and per-example randomness");
    v("epochs", epochs, "passes over the data (0: repeat forever)", at_least<int64_t>(0));
    v("resampled", resampled,
      "each worker draws its shards with replacement (open_clip's --dataset-resampled): any number of ranks x "
      "workers with few shards; epochs become virtual, of samples_per_epoch");
    v("samples_per_epoch", samples_per_epoch,
      "resampled: samples in one epoch over all ranks (open_clip's --train-num-samples); needed with finite epochs",
      at_least<int64_t>(0));
    v("max_pixels", max_pixels, "images with more pixels are skipped (checked from the header)",
      greater_than<int64_t>(0));
    v("max_entry_bytes", max_entry_bytes, "tar entries larger than this are skipped unread", greater_than<int64_t>(0));
    v("open_retries", open_retries, "retries before a shard that cannot be opened is skipped", at_least<int64_t>(0));
    v("retry_delay_ms", retry_delay_ms, "delay before the first retry (doubles each time)", at_least<int64_t>(0));
    v("max_failed_shards", max_failed_shards,
      "the run stops when more than this share of the last 20 shards a rank tried could not be opened, or of the "
      "shard files of a local pattern are missing at the start (1: only a pattern without any file)",
      config::in_range(0.0, 1.0));
    v("stall_timeout_s", stall_timeout_s, "seconds without a batch before the run stops with an error (0: never)",
      at_least<int64_t>(0));
    v("remote", remote, "http(s):// and s3:// shards: timeouts and retries");
    if (in_training_run) {
      v.retired("locca", "set by the trainer from train.locca; remove it");
      v.retired("self_distillation", "set by the trainer from train.self_distillation; remove it");
      v.retired("ssl_views", "set by the trainer from train.self_distillation; remove it");
      InTrainingRun<LoccaTargetsConfig> targets{locca_targets};
      v("locca_targets", targets, "LocCa target layout");
    } else {
      v("locca", locca, "produce LocCa decoder targets");
      v("self_distillation", self_distillation, "produce the self-distillation local crops");
      v.retired("ssl_views", "renamed data.self_distillation");
      v("locca_targets", locca_targets, "LocCa target layout");
    }
    v("self_distillation_views", self_distillation_views, "the self-distillation local crops");
    v.retired("ssl", "renamed data.self_distillation_views");
  }
  std::string check() const {
    if (!weights.empty() && weights.size() != shards.size())
      return "weights must be empty or have one entry per shards pattern";
    if (resampled && epochs > 0 && samples_per_epoch == 0)
      return "samples_per_epoch must be set when resampled is true and epochs is finite";
    if (!resampled && samples_per_epoch > 0)
      return "samples_per_epoch applies only with resampled: true (an epoch is otherwise one pass over the shards)";
    return "";
  }
};

}  // namespace siglip2
