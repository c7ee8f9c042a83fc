#pragma once
// WebDataset samples (the layout img2dataset writes): consecutive tar entries sharing a key, the key being
// the entry name up to the first '.' of its file name. KEY.jpg|jpeg|png|webp is the image, KEY.txt the
// caption, KEY.json optional regions {"regions": [{"box": [x0, y0, x1, y1], "caption": "..."}]} in
// relative coordinates, KEY.cls an optional integer class label (the synthetic evaluation split).
#include <ATen/core/Tensor.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/remote.hpp"

namespace siglip2 {

class TarReader;

// Why samples were skipped, by reason (names below); part of the loader state.
using SkipCounts = std::map<std::string, int64_t>;
namespace skip {
inline constexpr const char* kUnreadableShard = "unreadable_shard";  // could not be opened, after retries
inline constexpr const char* kTruncatedShard = "truncated_shard";    // read error mid-shard; rest of shard lost
inline constexpr const char* kNoImage = "no_image";
inline constexpr const char* kNoCaption = "no_caption";    // no KEY.txt, or only whitespace
inline constexpr const char* kBadJson = "bad_json";        // KEY.json unparseable or not {"regions": [...]}
inline constexpr const char* kBadBox = "bad_box";          // a region dropped (sample kept): box or caption invalid
inline constexpr const char* kEmptyImage = "empty_image";  // zero bytes, or zero width or height
inline constexpr const char* kTooManyPixels = "too_many_pixels";
inline constexpr const char* kUndecodable = "undecodable";  // header unknown or malformed, or decoder failed
inline constexpr const char* kEntryTooLarge = "entry_too_large";
}  // namespace skip

struct RawSample {
  std::string key;
  std::string shard;
  std::string image;      // bytes
  std::string image_ext;  // "" when there is no image entry
  std::optional<std::string> caption, json, cls;
  bool too_large = false;  // an entry was over the byte limit and not read
  int64_t offset = -1;     // of its first entry's header in the shard (TarEntry::offset)
};

// Groups the entries of one shard into samples, streaming.
class ShardReader {
 public:
  // Throws siglip2::Error when the shard cannot be opened. `remote` and `stop`: for URLs; `offset`, `seek`: start
  // at the sample whose first header is at `offset` (TarReader).
  ShardReader(const std::string& path, int64_t max_entry_bytes, bool read_data = true,
              const RemoteOptions& remote = {}, const std::atomic<bool>* stop = nullptr, int64_t offset = 0,
              bool seek = false);
  ~ShardReader();
  // The next sample; nullopt at the end. A read error ends the shard: nullopt, and error() says why.
  std::optional<RawSample> next();
  const std::string& error() const { return error_; }

  // From now on only samples whose offset is in `offsets` (sorted) or at least `from` are returned; the
  // entries of the others are passed over unread (a resumed loader refilling its shuffle buffer).
  void want_only(std::vector<int64_t> offsets, int64_t from);
  // Where the next sample returned starts (RawSample::offset); -1 when the shard has no more (exhausted()).
  int64_t next_offset() const;
  bool exhausted() const { return done_ && !pending_; }
  bool seekable() const;  // TarReader::seekable

 private:
  bool wanted(int64_t offset) const;

  std::string path_;
  std::unique_ptr<TarReader> tar_;
  int64_t max_entry_bytes_;
  bool read_data_;
  std::optional<RawSample> pending_;
  bool done_ = false;
  std::string error_;
  int64_t start_;                     // the offset it was opened at
  bool filtered_ = false;             // want_only is in force
  std::vector<int64_t> wanted_;       // want_only's offsets
  int64_t wanted_from_ = 0;           // want_only's `from`
  std::string current_key_;           // the sample the last entry belonged to
  bool current_wanted_ = true;
};

struct Region {
  std::array<float, 4> box{};  // x0, y0, x1, y1 in [0, 1], x0 < x1, y0 < y1
  std::string caption;
};

struct Sample {
  std::string key;
  at::Tensor image;  // uint8 [H, W, 3] RGB
  std::string caption;
  std::vector<Region> regions;
  int64_t label = -1;
};

// Regions of a KEY.json. Throws siglip2::Error when the JSON is unparseable or not an object whose
// optional "regions" is a list; regions with an invalid box or caption are dropped and counted in bad_boxes.
std::vector<Region> parse_regions(const std::string& json_text, int64_t& bad_boxes);

// Given the stored height and width, the reduction to decode a JPEG with (1, 2, 4 or 8; see decode_image_bytes).
using DecodeReduction = std::function<int64_t(int64_t height, int64_t width)>;

// Checks a raw sample and decodes its image. Returns "" and fills `out`, or the skip reason. The pixel
// limit is checked from the image header, before decoding. Dropped regions are added to skipped[kBadBox].
// exif_orientation: see decode_image_bytes.
std::string decode_sample(const RawSample& raw, int64_t max_pixels, Sample& out, SkipCounts& skipped,
                          const DecodeReduction& reduction = nullptr, bool exif_orientation = true);

// What `siglip2 data inspect` prints: every sample read, checked and decoded.
struct ShardStats {
  int64_t shards = 0;
  int64_t samples = 0;       // usable
  int64_t with_regions = 0;  // usable and with at least one region
  int64_t regions = 0;
  int64_t with_label = 0;
  SkipCounts skipped;
  std::vector<std::string> errors;  // why each unreadable or truncated shard was given up, in order
};
ShardStats inspect_shards(const std::vector<std::string>& shards, int64_t max_pixels, const RemoteOptions& remote = {});

}  // namespace siglip2
