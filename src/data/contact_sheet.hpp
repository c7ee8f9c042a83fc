#pragma once
// `siglip2 data inspect --sheet`: the first samples of a set of shards drawn as one PNG, a grid of
// thumbnails with the caption under each and the regions' boxes drawn on top, to see at a glance what
// a dataset holds and whether its boxes land on the right things.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace siglip2 {

// The grid. Cell (column c, row r) has its top-left corner at (c * cell_width(), r * cell_height()); the
// thumbnail (the image scaled to fit thumb x thumb, aspect kept) is centred in the square of side thumb
// at (margin, margin) inside it, the caption (caption_lines lines at most) under that square.
struct ContactSheetConfig {
  int64_t count = 16;   // samples drawn: the first usable ones, in shard order
  int64_t columns = 8;  // at most; fewer when there are fewer samples
  int64_t thumb = 160;
  int64_t margin = 8;
  int64_t caption_lines = 3;
  int64_t line_height = 14;
  int64_t max_pixels = 64 * 1024 * 1024;  // larger images are skipped, as in the loader

  int64_t cell_width() const { return thumb + 2 * margin; }
  int64_t cell_height() const { return thumb + 2 * margin + caption_lines * line_height; }
};

// Box colours (RGB), region i of a sample in colour i mod 3, region 0 drawn last (on top).
inline constexpr std::array<std::array<uint8_t, 3>, 3> kSheetBoxColours{{{255, 0, 255}, {0, 255, 255}, {255, 255, 0}}};

struct ContactSheetSummary {
  int64_t samples = 0;
  int64_t columns = 0, rows = 0;
  int64_t width = 0, height = 0;  // pixels
};

// Reads the shards in order, draws the first config.count usable samples and writes png_path.
// Throws siglip2::Error when no sample is usable or the file cannot be written.
ContactSheetSummary write_contact_sheet(const std::vector<std::string>& shards, const std::string& png_path,
                                        const ContactSheetConfig& config);

}  // namespace siglip2
