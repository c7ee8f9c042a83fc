#include "data/synthetic.hpp"

#include <sentencepiece_trainer.h>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/error.hpp"
#include "data/tar.hpp"

namespace siglip2 {
namespace {

namespace fs = std::filesystem;

struct Colour {
  const char* name;
  int r, g, b;
};
// Saturated colours, far from the grey-ish backgrounds.
const Colour kColours[] = {{"red", 220, 30, 30},     {"green", 30, 170, 50},   {"blue", 30, 70, 220},
                           {"yellow", 240, 210, 30}, {"purple", 140, 50, 180}, {"orange", 245, 130, 20}};
const char* kShapes[] = {"circle", "square", "triangle", "star", "diamond", "hexagon"};
constexpr int kNumColours = 6, kNumShapes = 6;

struct Shape {
  int shape, colour;
  bool large;
  double cx, cy, r;  // pixels
  std::array<float, 4> box;
};

std::string describe(const Shape& s) {
  return std::string("a ") + (s.large ? "large " : "small ") + kColours[s.colour].name + " " + kShapes[s.shape];
}

std::vector<cv::Point> polygon(const Shape& s) {
  std::vector<cv::Point> pts;
  auto at = [&](double angle, double radius) {
    pts.emplace_back(static_cast<int>(std::lround(s.cx + radius * std::cos(angle))),
                     static_cast<int>(std::lround(s.cy + radius * std::sin(angle))));
  };
  const double up = -M_PI / 2;
  switch (s.shape) {
    case 1:  // square
      for (int k = 0; k < 4; ++k) at(M_PI / 4 + k * M_PI / 2, s.r);
      break;
    case 2:  // triangle
      for (int k = 0; k < 3; ++k) at(up + k * 2 * M_PI / 3, s.r);
      break;
    case 3:  // star
      for (int k = 0; k < 10; ++k) at(up + k * M_PI / 5, k % 2 ? s.r * 0.45 : s.r);
      break;
    case 4:  // diamond
      for (int k = 0; k < 4; ++k) at(up + k * M_PI / 2, s.r);
      break;
    case 5:  // hexagon
      for (int k = 0; k < 6; ++k) at(k * M_PI / 3, s.r);
      break;
  }
  return pts;
}

std::array<float, 4> bounding_box(const Shape& s, int size) {
  double x0 = s.cx - s.r, y0 = s.cy - s.r, x1 = s.cx + s.r, y1 = s.cy + s.r;
  if (s.shape != 0) {
    const auto pts = polygon(s);
    x0 = y0 = 1e9;
    x1 = y1 = -1e9;
    for (const auto& p : pts) {
      x0 = std::min<double>(x0, p.x), y0 = std::min<double>(y0, p.y);
      x1 = std::max<double>(x1, p.x), y1 = std::max<double>(y1, p.y);
    }
  }
  auto rel = [size](double v) { return static_cast<float>(std::clamp(v / size, 0.0, 1.0)); };
  return {rel(x0), rel(y0), rel(x1), rel(y1)};
}

cv::Mat background(DataRng& rng, int size) {
  // A tinted grey with a linear gradient and a little noise: varied, never a saturated colour.
  const double base = uniform(rng, 70, 200);
  cv::Vec3d tint(uniform(rng, -25, 25), uniform(rng, -25, 25), uniform(rng, -25, 25));
  const double angle = uniform(rng, 0, 2 * M_PI), strength = uniform(rng, 0, 50);
  cv::Mat img(size, size, CV_8UC3);
  DataRng noise(rng());
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const double t = ((x - size / 2.0) * std::cos(angle) + (y - size / 2.0) * std::sin(angle)) / size;
      const double v = base + strength * t + uniform(noise, -6, 6);
      auto& px = img.at<cv::Vec3b>(y, x);
      for (int c = 0; c < 3; ++c) px[c] = cv::saturate_cast<uchar>(v + tint[c]);
    }
  }
  return img;
}

bool overlaps(const Shape& a, const Shape& b) {
  return std::hypot(a.cx - b.cx, a.cy - b.cy) < (a.r + b.r) * 1.1;
}

std::string relation(const Shape& a, const Shape& b) {
  const double dx = b.cx - a.cx, dy = b.cy - a.cy;
  if (std::abs(dx) >= std::abs(dy)) return dx > 0 ? "left of" : "right of";
  return dy > 0 ? "above" : "below";
}

std::string shard_name(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%06lld", static_cast<long long>(i));
  return buf;
}

std::string pattern(const fs::path& dir, int64_t n) {
  if (n == 1) return (dir / (shard_name(0) + ".tar")).string();
  return (dir / ("{" + shard_name(0) + ".." + shard_name(n - 1) + "}.tar")).string();
}

std::string regions_json(const std::vector<Region>& regions) {
  nlohmann::json j;
  j["regions"] = nlohmann::json::array();
  for (const auto& r : regions) {
    std::vector<double> box;
    for (float v : r.box) box.push_back(std::round(double(v) * 1e4) / 1e4);
    j["regions"].push_back({{"box", box}, {"caption", r.caption}});
  }
  return j.dump();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw Error(path.string() + ": cannot write");
}

}  // namespace

std::vector<std::string> synthetic_class_names() {
  std::vector<std::string> names;
  for (const auto& c : kColours)
    for (const char* s : kShapes) names.push_back(std::string(c.name) + " " + s);
  return names;
}

std::vector<std::string> synthetic_prompt_templates() {
  return {"a {}.", "a photo of a {}.", "a drawing of a {}.", "a large {}.", "a small {}."};
}

SynthExample make_synthetic_example(DataRng& rng, int64_t image_size, int64_t jpeg_quality, bool single_shape) {
  const int size = static_cast<int>(image_size);
  cv::Mat img = background(rng, size);
  const int wanted = single_shape ? 1 : 1 + static_cast<int>(below(rng, 3));
  std::vector<Shape> shapes;
  for (int attempt = 0; attempt < 50 && static_cast<int>(shapes.size()) < wanted; ++attempt) {
    Shape s;
    s.shape = static_cast<int>(below(rng, kNumShapes));
    s.colour = static_cast<int>(below(rng, kNumColours));
    s.large = bernoulli(rng, 0.5);
    s.r = size * (s.large ? uniform(rng, 0.2, 0.26) : uniform(rng, 0.09, 0.13));
    s.cx = uniform(rng, s.r, size - s.r);
    s.cy = uniform(rng, s.r, size - s.r);
    bool clash = false;
    for (const auto& o : shapes) clash = clash || overlaps(s, o) || (o.shape == s.shape && o.colour == s.colour);
    if (clash) continue;
    s.box = bounding_box(s, size);
    shapes.push_back(s);
  }
  for (const auto& s : shapes) {
    const auto& c = kColours[s.colour];
    const cv::Scalar bgr(c.b, c.g, c.r);
    if (s.shape == 0) {
      cv::circle(img, cv::Point(int(std::lround(s.cx)), int(std::lround(s.cy))), int(std::lround(s.r)), bgr, cv::FILLED,
                 cv::LINE_AA);
    } else {
      const std::vector<std::vector<cv::Point>> polys{polygon(s)};
      cv::fillPoly(img, polys, bgr, cv::LINE_AA);
    }
  }
  SynthExample e;
  for (const auto& s : shapes) e.regions.push_back(Region{s.box, describe(s)});
  if (shapes.size() == 1) {
    e.caption = describe(shapes[0]);
  } else if (shapes.size() == 2) {
    e.caption = describe(shapes[0]) + " " + relation(shapes[0], shapes[1]) + " " + describe(shapes[1]);
  } else {
    std::vector<Shape> ordered = shapes;
    std::sort(ordered.begin(), ordered.end(), [](const Shape& a, const Shape& b) { return a.cx < b.cx; });
    e.caption =
        describe(ordered[0]) + ", " + describe(ordered[1]) + " and " + describe(ordered[2]) + ", from left to right";
  }
  if (single_shape) e.label = shapes[0].colour * kNumShapes + shapes[0].shape;
  std::vector<uchar> buf;
  if (!cv::imencode(".jpg", img, buf, {cv::IMWRITE_JPEG_QUALITY, static_cast<int>(jpeg_quality)}))
    throw Error("synthetic data: JPEG encoding failed");
  e.jpeg.assign(buf.begin(), buf.end());
  return e;
}

void train_tokenizer(const std::vector<std::string>& corpus, const std::string& model_path, int64_t vocab_size) {
  const std::string suffix = ".model";
  if (model_path.size() <= suffix.size() ||
      model_path.compare(model_path.size() - suffix.size(), suffix.size(), suffix))
    throw UsageError("tokenizer: the output must end in .model, got '" + model_path + "'");
  if (corpus.empty()) throw UsageError("tokenizer: the corpus has no text");
  const std::string prefix = model_path.substr(0, model_path.size() - suffix.size());
  const std::string corpus_path = prefix + ".corpus.txt";
  std::string text;
  for (auto line : corpus) {
    std::transform(line.begin(), line.end(), line.begin(), [](unsigned char ch) { return std::tolower(ch); });
    text += line + "\n";
  }
  write_text(corpus_path, text);
  // Gemma's special ids (pad 0, eos 1, bos 2, unk 3) and settings (SigLIP 2): BPE, byte fallback for any
  // other text, identity normalisation, no dummy prefix, spaces kept; exported as an exact tokenizer.json.
  const std::string args = "--input=" + corpus_path + " --model_prefix=" + prefix +
                           " --model_type=bpe --vocab_size=" + std::to_string(vocab_size) +
                           " --hard_vocab_limit=false --byte_fallback=true --character_coverage=1.0"
                           " --normalization_rule_name=identity --add_dummy_prefix=false"
                           " --remove_extra_whitespaces=false"
                           " --pad_id=0 --eos_id=1 --bos_id=2 --unk_id=3 --pad_piece=<pad> --eos_piece=<eos>"
                           " --bos_piece=<bos> --unk_piece=<unk> --num_threads=1 --minloglevel=2";
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  std::error_code ec;
  fs::remove(corpus_path, ec);
  fs::remove(prefix + ".vocab", ec);
  if (!status.ok()) throw Error("tokenizer: training the sentencepiece model failed (" + status.ToString() + ")");
}

SynthSummary write_synthetic(const SynthConfig& c) {
  if (c.out.empty()) throw UsageError("synthetic data: no output directory");
  if (c.train_shards < 1 || c.eval_shards < 0 || c.per_shard < 1 || c.image_size < 16)
    throw UsageError("synthetic data: need train shards >= 1, eval shards >= 0, per shard >= 1, image size >= 16");
  const fs::path out = c.out;
  std::error_code ec;
  fs::create_directories(out / "train", ec);
  if (!ec && c.eval_shards > 0) fs::create_directories(out / "eval", ec);
  if (ec) throw Error(out.string() + ": cannot create directories (" + ec.message() + ")");

  std::vector<std::string> corpus;
  SynthSummary summary;
  for (int split = 0; split < 2; ++split) {
    const bool eval = split == 1;
    const int64_t shards = eval ? c.eval_shards : c.train_shards;
    for (int64_t shard = 0; shard < shards; ++shard) {
      DataRng rng(mix_seed({uint64_t(c.seed), uint64_t(split), uint64_t(shard)}));
      const fs::path path = out / (eval ? "eval" : "train") / (shard_name(shard) + ".tar");
      TarWriter tar((path.string() + ".tmp"));
      for (int64_t i = 0; i < c.per_shard; ++i) {
        const SynthExample e = make_synthetic_example(rng, c.image_size, c.jpeg_quality, eval);
        const std::string key = shard_name(shard) + "_" + shard_name(i);
        tar.add(key + ".jpg", e.jpeg);
        tar.add(key + ".txt", e.caption);
        tar.add(key + ".json", regions_json(e.regions));
        if (eval) tar.add(key + ".cls", std::to_string(e.label));
        if (!eval) {
          corpus.push_back(e.caption);
          for (const auto& r : e.regions) corpus.push_back(r.caption);
        }
      }
      tar.close();
      fs::rename(path.string() + ".tmp", path, ec);
      if (ec) throw Error(path.string() + ": cannot rename (" + ec.message() + ")");
      (eval ? summary.eval_samples : summary.train_samples) += c.per_shard;
    }
  }
  summary.train_pattern = pattern(out / "train", c.train_shards);
  if (c.eval_shards > 0) summary.eval_pattern = pattern(out / "eval", c.eval_shards);

  std::string names, templates;
  for (const auto& n : synthetic_class_names()) names += n + "\n";
  for (const auto& t : synthetic_prompt_templates()) templates += t + "\n";
  write_text(out / "classnames.txt", names);
  write_text(out / "templates.txt", templates);

  if (c.tokenizer) {
    // Prompts, LocCa prefixes and box numbers are in the corpus too, so that none falls back to bytes.
    for (const auto& n : synthetic_class_names())
      for (const auto& t : synthetic_prompt_templates())
        corpus.push_back(t.substr(0, t.find("{}")) + n + t.substr(t.find("{}") + 2));
    for (int k = 0; k < 500; k += 10) {
      std::string line = "cap: aref: gcap:";
      for (int j = k; j < k + 10; ++j) line += " " + std::to_string(j) + " :";
      corpus.push_back(line);
    }
    train_tokenizer(corpus, (out / "tokenizer.model").string(), c.vocab_size);
  }

  nlohmann::json info;
  info["train"] = {{"shards", summary.train_pattern}, {"samples", summary.train_samples}};
  if (c.eval_shards > 0) info["eval"] = {{"shards", summary.eval_pattern}, {"samples", summary.eval_samples}};
  info["classnames"] = "classnames.txt";
  info["templates"] = "templates.txt";
  if (c.tokenizer) info["tokenizer"] = "tokenizer.model";
  info["seed"] = c.seed;
  info["image_size"] = c.image_size;
  write_text(out / "info.json", info.dump(2) + "\n");
  return summary;
}

}  // namespace siglip2
