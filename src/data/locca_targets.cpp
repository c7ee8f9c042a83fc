#include "data/locca_targets.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>

#include "common/error.hpp"
#include "data/tokenizer.hpp"

namespace siglip2 {
namespace {

std::vector<std::string> split_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::string join_words(const std::vector<std::string>& words, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += (i ? " " : "") + words[i];
  return out;
}

// The body with as many caption words as fit (at least one).
LoccaSequence layout_fitting(const Tokenizer& tokenizer, const std::string& prefix, const std::string& caption,
                             const std::function<std::string(const std::string&)>& body, int64_t length) {
  const std::vector<std::string> words = split_words(caption);
  const int64_t room = length - 1 - static_cast<int64_t>(tokenizer.pieces(prefix).size());
  for (size_t n = words.size(); n > 1; --n) {
    const std::string text = body(join_words(words, n));
    if (static_cast<int64_t>(tokenizer.pieces(text).size()) <= room)
      return layout_sequence(tokenizer, prefix, text, length);
  }
  return layout_sequence(tokenizer, prefix, body(join_words(words, std::min<size_t>(1, words.size()))), length);
}

DecoderTask stack(const std::vector<const LoccaSequence*>& rows) {
  const auto b = static_cast<int64_t>(rows.size());
  const auto l = b ? static_cast<int64_t>(rows[0]->ids.size()) : 0;
  DecoderTask out;
  out.targets = torch::empty({b, l}, torch::kLong);
  out.loss_mask = torch::empty({b, l}, torch::kBool);
  auto t = out.targets.accessor<int64_t, 2>();
  auto m = out.loss_mask.accessor<bool, 2>();
  for (int64_t i = 0; i < b; ++i) {
    TORCH_CHECK(static_cast<int64_t>(rows[i]->ids.size()) == l, "LocCa rows differ in length");
    for (int64_t j = 0; j < l; ++j) {
      t[i][j] = rows[i]->ids[j];
      m[i][j] = rows[i]->counted[j] != 0;
    }
  }
  return out;
}

}  // namespace

std::string format_box(const std::array<float, 4>& box, int64_t bins) {
  std::string out;
  for (size_t i = 0; i < 4; ++i) {
    const auto q = std::clamp<int64_t>(static_cast<int64_t>(std::floor(double(box[i]) * double(bins))), 0, bins - 1);
    out += (i ? " " : "") + std::to_string(q);
  }
  return out;
}

LoccaSequence layout_sequence(const Tokenizer& tokenizer, const std::string& prefix, const std::string& body,
                              int64_t length) {
  const std::vector<int> head = tokenizer.pieces(prefix);
  std::vector<int> tail = tokenizer.pieces(body);
  const auto room = length - 1 - static_cast<int64_t>(head.size());
  if (room < 0) {
    throw Error("LocCa prefix '" + prefix + "' needs " + std::to_string(head.size() + 1) +
                " tokens with EOS; locca_targets.length is " + std::to_string(length));
  }
  if (static_cast<int64_t>(tail.size()) > room) tail.resize(static_cast<size_t>(room));
  const TokenizerConfig& tc = tokenizer.config();
  LoccaSequence s;
  s.ids.assign(head.begin(), head.end());
  s.counted.assign(head.size(), 0);
  s.ids.insert(s.ids.end(), tail.begin(), tail.end());
  s.ids.push_back(tc.eos_id);
  s.counted.resize(s.ids.size(), 1);
  s.ids.resize(static_cast<size_t>(length), tc.pad_id);
  s.counted.resize(static_cast<size_t>(length), 0);
  return s;
}

LoccaExample make_locca_example(const std::string& caption, const std::vector<Region>& regions,
                                const Tokenizer& tokenizer, const LoccaTargetsConfig& c, DataRng& rng) {
  const Region whole{{0.f, 0.f, 1.f, 1.f}, caption};
  const Region& aref = regions.empty() ? whole : regions[below(rng, regions.size())];
  const Region& gcap = regions.empty() ? whole : regions[below(rng, regions.size())];
  LoccaExample e;
  e.parallel = bernoulli(rng, c.parallel_probability);
  e.caption = layout_sequence(tokenizer, c.caption_prefix, caption, c.length);
  const std::string aref_box = format_box(aref.box, c.box_bins);
  const std::string gcap_box = format_box(gcap.box, c.box_bins);
  e.referring = layout_fitting(
      tokenizer, c.referring_prefix, aref.caption, [&](const std::string& t) { return t + " : " + aref_box; },
      c.length);
  e.grounded = layout_fitting(
      tokenizer, c.grounded_prefix, gcap.caption, [&](const std::string& t) { return gcap_box + " : " + t; }, c.length);
  return e;
}

LoccaTargets stack_locca(const std::vector<LoccaExample>& examples) {
  std::vector<const LoccaSequence*> cap, ref, gnd;
  for (const auto& e : examples) {
    cap.push_back(&e.caption);
    ref.push_back(&e.referring);
    gnd.push_back(&e.grounded);
  }
  LoccaTargets out{stack(cap), stack(ref), stack(gnd)};
  out.caption.parallel = torch::empty({static_cast<int64_t>(examples.size())}, torch::kBool);
  auto p = out.caption.parallel.accessor<bool, 1>();
  for (size_t i = 0; i < examples.size(); ++i) p[static_cast<int64_t>(i)] = examples[i].parallel;
  return out;
}

}  // namespace siglip2
