#pragma once
// LocCa decoder targets (spec ssl_locca.md §4, recipe.md §3; layout in docs/data.md): for every example
//   captioning        "Cap: {caption}"
//   referring expr.   "ARef: {region caption} : {box}"
//   grounded caption  "GCap: {box} : {region caption}"
// each tokenised as [prefix ids][body ids][EOS][pad ...]; the loss counts the body and EOS only. A box is
// "x0 y0 x1 y1", each coordinate quantised to an integer in [0, box_bins).
#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/batch.hpp"
#include "data/config.hpp"
#include "data/rng.hpp"
#include "data/webdataset.hpp"

namespace siglip2 {

class Tokenizer;

struct LoccaSequence {
  std::vector<int64_t> ids;      // exactly `length`
  std::vector<uint8_t> counted;  // 1 where the loss counts
};

struct LoccaExample {
  LoccaSequence caption, referring, grounded;
  bool parallel = false;
};

// "x0 y0 x1 y1": floor(v * bins) clamped to bins - 1.
std::string format_box(const std::array<float, 4>& box, int64_t bins);

// [prefix][body][EOS][pad]; a body that does not fit is cut (EOS kept). Throws siglip2::Error when even
// the prefix and EOS do not fit.
LoccaSequence layout_sequence(const Tokenizer& tokenizer, const std::string& prefix, const std::string& body,
                              int64_t length);

// One region for ARef and one for GCap, drawn independently from `rng`; without regions, the whole image
// with the image caption. ARef and GCap bodies that do not fit lose caption words from the end first, so
// the box survives.
LoccaExample make_locca_example(const std::string& caption, const std::vector<Region>& regions,
                                const Tokenizer& tokenizer, const LoccaTargetsConfig& config, DataRng& rng);

LoccaTargets stack_locca(const std::vector<LoccaExample>& examples);

}  // namespace siglip2
