#include "data/webdataset.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "common/error.hpp"
#include "common/json_limits.hpp"
#include "data/image.hpp"
#include "data/image_header.hpp"
#include "data/tar.hpp"

namespace siglip2 {
namespace {

// "dir/abc.x.jpg" -> key "dir/abc", extension "x.jpg" (lowercased).
std::pair<std::string, std::string> split_name(const std::string& name) {
  const size_t slash = name.rfind('/');
  const size_t base = slash == std::string::npos ? 0 : slash + 1;
  const size_t dot = name.find('.', base);
  if (dot == std::string::npos) return {name, ""};
  std::string ext = name.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return {name.substr(0, dot), ext};
}

bool is_image_ext(const std::string& ext) {
  return ext == "jpg" || ext == "jpeg" || ext == "png" || ext == "webp";
}

bool is_blank(const std::string& s) {
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) return false;
  return true;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::optional<Region> parse_region(const nlohmann::json& r) {
  if (!r.is_object() || !r.contains("box") || !r.contains("caption")) return std::nullopt;
  const auto& box = r["box"];
  const auto& caption = r["caption"];
  if (!box.is_array() || box.size() != 4 || !caption.is_string()) return std::nullopt;
  Region region;
  for (size_t i = 0; i < 4; ++i) {
    if (!box[i].is_number()) return std::nullopt;
    const double v = box[i].get<double>();
    constexpr double kSlack = 1e-3;  // rounding in writers; clamped below
    if (!std::isfinite(v) || v < -kSlack || v > 1 + kSlack) return std::nullopt;
    region.box[i] = static_cast<float>(std::min(1.0, std::max(0.0, v)));
  }
  if (!(region.box[0] < region.box[2]) || !(region.box[1] < region.box[3])) return std::nullopt;
  region.caption = trim(caption.get<std::string>());
  if (region.caption.empty()) return std::nullopt;
  return region;
}

}  // namespace

ShardReader::ShardReader(const std::string& path, int64_t max_entry_bytes, bool read_data,
                         const RemoteOptions& remote, const std::atomic<bool>* stop, int64_t offset, bool seek)
    : path_(path),
      tar_(std::make_unique<TarReader>(path, remote, stop, offset, seek)),
      max_entry_bytes_(max_entry_bytes),
      read_data_(read_data),
      start_(offset) {}

ShardReader::~ShardReader() = default;

void ShardReader::want_only(std::vector<int64_t> offsets, int64_t from) {
  filtered_ = true;
  wanted_ = std::move(offsets);
  wanted_from_ = from;
  // The sample already begun keeps its own decision (it was read whole or not at all).
  if (pending_ && !wanted(pending_->offset)) pending_.reset();
}

bool ShardReader::wanted(int64_t offset) const {
  return !filtered_ || offset >= wanted_from_ || std::binary_search(wanted_.begin(), wanted_.end(), offset);
}

bool ShardReader::seekable() const { return tar_->seekable(); }

int64_t ShardReader::next_offset() const {
  if (pending_) return pending_->offset;
  return done_ ? -1 : start_;  // before the first entry: where it was opened
}

std::optional<RawSample> ShardReader::next() {
  // Entries of a sample that is not wanted are passed over unread; a new key starts a new sample.
  auto want_data = [this](const TarEntry& e) {
    const std::string key = split_name(e.name).first;
    if (key != current_key_ || current_key_.empty()) {
      current_key_ = key;
      current_wanted_ = wanted(e.offset);
    }
    return read_data_ && current_wanted_;
  };
  while (!done_) {
    TarEntry entry;
    try {
      if (!tar_->next(entry, want_data, max_entry_bytes_)) {
        done_ = true;
        break;
      }
    } catch (const Error& e) {
      done_ = true;
      error_ = e.what();
      // The pending sample is complete if the broken entry belongs to the next one.
      std::optional<RawSample> last;
      if (pending_ && !entry.name.empty() && split_name(entry.name).first != pending_->key) last = std::move(*pending_);
      pending_.reset();
      return last;
    }
    const size_t slash = entry.name.rfind('/');
    const size_t base = slash == std::string::npos ? 0 : slash + 1;
    if (base >= entry.name.size() || entry.name[base] == '.') continue;  // hidden files (.DS_Store, ...)
    auto [key, ext] = split_name(entry.name);
    std::optional<RawSample> finished;
    if (pending_ && pending_->key != key) {
      finished = std::move(pending_);
      pending_.reset();
    }
    if (!current_wanted_) {
      if (finished) return finished;
      continue;
    }
    if (!pending_) {
      pending_.emplace();
      pending_->key = key;
      pending_->shard = path_;
      pending_->offset = entry.offset;
    }
    RawSample& s = *pending_;
    if (read_data_ && !entry.data_read) {
      s.too_large = true;
    } else if (is_image_ext(ext) && s.image_ext.empty()) {
      s.image = std::move(entry.data);
      s.image_ext = ext;
    } else if (ext == "txt") {
      s.caption = std::move(entry.data);
    } else if (ext == "json") {
      s.json = std::move(entry.data);
    } else if (ext == "cls") {
      s.cls = std::move(entry.data);
    }
    if (finished) return finished;
  }
  std::optional<RawSample> last = std::move(pending_);
  pending_.reset();
  return last;
}

std::vector<Region> parse_regions(const std::string& json_text, int64_t& bad_boxes) {
  nlohmann::json doc = nlohmann::json::parse(json_text, json_depth_limit("JSON"), /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw Error("invalid JSON");
  if (!doc.is_object()) throw Error("JSON is not an object");
  std::vector<Region> regions;
  if (!doc.contains("regions")) return regions;
  const auto& list = doc["regions"];
  if (!list.is_array()) throw Error("\"regions\" is not a list");
  for (const auto& r : list) {
    if (auto region = parse_region(r)) {
      regions.push_back(std::move(*region));
    } else {
      ++bad_boxes;
    }
  }
  return regions;
}

std::string decode_sample(const RawSample& raw, int64_t max_pixels, Sample& out, SkipCounts& skipped,
                          const DecodeReduction& reduction, bool exif_orientation) {
  if (raw.too_large) return skip::kEntryTooLarge;
  if (raw.image_ext.empty()) return skip::kNoImage;
  if (!raw.caption || is_blank(*raw.caption)) return skip::kNoCaption;
  out = Sample();
  out.key = raw.key;
  out.caption = trim(*raw.caption);
  if (raw.json) {
    int64_t bad = 0;
    try {
      out.regions = parse_regions(*raw.json, bad);
    } catch (const Error&) {
      return skip::kBadJson;
    }
    if (bad) skipped[skip::kBadBox] += bad;
  }
  if (raw.cls) {
    const std::string text = trim(*raw.cls);
    char* end = nullptr;
    const long long label = std::strtoll(text.c_str(), &end, 10);
    if (!text.empty() && end == text.c_str() + text.size() && label >= 0) out.label = label;
  }
  if (raw.image.empty()) return skip::kEmptyImage;
  const std::optional<ImageSize> size = probe_image_size(raw.image);
  if (!size) return skip::kUndecodable;
  if (size->width == 0 || size->height == 0) return skip::kEmptyImage;
  if (size->width * size->height > max_pixels) return skip::kTooManyPixels;
  try {
    const int64_t r = reduction ? reduction(size->height, size->width) : 1;
    out.image = decode_image_bytes(raw.image, raw.shard + ":" + raw.key + "." + raw.image_ext, r, exif_orientation);
  } catch (const std::exception&) {
    return skip::kUndecodable;
  }
  return "";
}

ShardStats inspect_shards(const std::vector<std::string>& shards, int64_t max_pixels, const RemoteOptions& remote) {
  ShardStats stats;
  for (const auto& path : shards) {
    ++stats.shards;
    std::unique_ptr<ShardReader> reader;
    try {
      reader = std::make_unique<ShardReader>(path, int64_t(1) << 30, true, remote);
    } catch (const Error& e) {
      ++stats.skipped[skip::kUnreadableShard];
      stats.errors.push_back(e.what());
      continue;
    }
    while (auto raw = reader->next()) {
      Sample sample;
      const std::string reason = decode_sample(*raw, max_pixels, sample, stats.skipped);
      if (!reason.empty()) {
        ++stats.skipped[reason];
        continue;
      }
      ++stats.samples;
      stats.regions += static_cast<int64_t>(sample.regions.size());
      if (!sample.regions.empty()) ++stats.with_regions;
      if (sample.label >= 0) ++stats.with_label;
    }
    if (!reader->error().empty()) {
      ++stats.skipped[skip::kTruncatedShard];
      stats.errors.push_back(reader->error());
    }
  }
  return stats;
}

}  // namespace siglip2
