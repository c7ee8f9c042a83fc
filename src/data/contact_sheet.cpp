#include "data/contact_sheet.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "common/error.hpp"
#include "data/webdataset.hpp"

namespace siglip2 {
namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
constexpr double kFontScale = 0.38;

int text_width(const std::string& text) {
  int baseline = 0;
  return cv::getTextSize(text, kFont, kFontScale, 1, &baseline).width;
}

// Greedy word wrap to `width` pixels; the last line ends in "..." when the caption does not fit.
std::vector<std::string> wrap(const std::string& text, int width, size_t max_lines) {
  std::istringstream words(text);
  std::vector<std::string> lines;
  std::string word, line;
  bool cut = false;
  while (words >> word) {
    const std::string longer = line.empty() ? word : line + " " + word;
    if (line.empty() || text_width(longer) <= width) {
      line = longer;
      continue;
    }
    lines.push_back(line);
    line = word;
    if (lines.size() == max_lines) {
      cut = true;
      break;
    }
  }
  if (!cut && !line.empty()) lines.push_back(line);
  if (cut) {
    std::string& last = lines.back();
    while (!last.empty() && text_width(last + "...") > width) last.pop_back();
    last += "...";
  }
  return lines;
}

void draw_cell(cv::Mat& sheet, const Sample& sample, int64_t column, int64_t row, const ContactSheetConfig& c) {
  const int64_t height = sample.image.size(0), width = sample.image.size(1);
  const double scale = static_cast<double>(c.thumb) / static_cast<double>(std::max(height, width));
  const int tw = std::max(1, static_cast<int>(std::lround(static_cast<double>(width) * scale)));
  const int th = std::max(1, static_cast<int>(std::lround(static_cast<double>(height) * scale)));
  const int x = static_cast<int>(column * c.cell_width() + c.margin + (c.thumb - tw) / 2);
  const int y = static_cast<int>(row * c.cell_height() + c.margin + (c.thumb - th) / 2);

  const at::Tensor rgb = sample.image.contiguous();
  const cv::Mat image(static_cast<int>(height), static_cast<int>(width), CV_8UC3, rgb.data_ptr());
  cv::Mat thumb;
  cv::resize(image, thumb, cv::Size(tw, th), 0, 0, cv::INTER_AREA);
  thumb.copyTo(sheet(cv::Rect(x, y, tw, th)));

  // The sheet is RGB until it is written, so the colours are the documented RGB values.
  for (size_t i = sample.regions.size(); i-- > 0;) {
    const auto& box = sample.regions[i].box;
    const auto& colour = kSheetBoxColours[i % kSheetBoxColours.size()];
    const cv::Point top_left(x + static_cast<int>(std::lround(box[0] * tw)),
                             y + static_cast<int>(std::lround(box[1] * th)));
    const cv::Point bottom_right(x + static_cast<int>(std::lround(box[2] * tw)) - 1,
                                 y + static_cast<int>(std::lround(box[3] * th)) - 1);
    cv::rectangle(sheet, top_left, bottom_right, cv::Scalar(colour[0], colour[1], colour[2]), 2, cv::LINE_8);
  }

  const int text_x = static_cast<int>(column * c.cell_width() + c.margin);
  int baseline = static_cast<int>(row * c.cell_height() + 2 * c.margin + c.thumb);
  for (const std::string& line :
       wrap(sample.caption, static_cast<int>(c.thumb), static_cast<size_t>(c.caption_lines))) {
    baseline += static_cast<int>(c.line_height) - 2;
    cv::putText(sheet, line, cv::Point(text_x, baseline), kFont, kFontScale, cv::Scalar(20, 20, 20), 1, cv::LINE_AA);
    baseline += 2;
  }
}

}  // namespace

ContactSheetSummary write_contact_sheet(const std::vector<std::string>& shards, const std::string& png_path,
                                        const ContactSheetConfig& c) {
  TORCH_CHECK(c.count > 0 && c.columns > 0 && c.thumb > 0 && c.margin >= 0, "bad contact sheet config");
  std::vector<Sample> samples;
  SkipCounts skipped;
  for (const std::string& path : shards) {
    if (static_cast<int64_t>(samples.size()) >= c.count) break;
    std::unique_ptr<ShardReader> reader;
    try {
      reader = std::make_unique<ShardReader>(path, int64_t(1) << 30);
    } catch (const Error&) {
      continue;  // counted by the statistics that `data inspect` prints
    }
    while (static_cast<int64_t>(samples.size()) < c.count) {
      std::optional<RawSample> raw = reader->next();
      if (!raw) break;
      Sample sample;
      if (decode_sample(*raw, c.max_pixels, sample, skipped).empty()) samples.push_back(std::move(sample));
    }
  }
  if (samples.empty()) throw Error("contact sheet " + png_path + ": no usable sample in the shards");

  ContactSheetSummary out;
  out.samples = static_cast<int64_t>(samples.size());
  out.columns = std::min(c.columns, out.samples);
  out.rows = (out.samples + out.columns - 1) / out.columns;
  out.width = out.columns * c.cell_width();
  out.height = out.rows * c.cell_height();
  cv::Mat sheet(static_cast<int>(out.height), static_cast<int>(out.width), CV_8UC3, cv::Scalar(255, 255, 255));
  for (int64_t i = 0; i < out.samples; ++i) draw_cell(sheet, samples[i], i % out.columns, i / out.columns, c);

  cv::Mat bgr;
  cv::cvtColor(sheet, bgr, cv::COLOR_RGB2BGR);
  bool written = false;
  try {
    written = cv::imwrite(png_path, bgr);
  } catch (const cv::Exception& e) {
    throw Error("contact sheet " + png_path + ": cannot write it (" + e.what() + ")");
  }
  if (!written)
    throw Error("contact sheet " + png_path + ": cannot write it (is it a .png path in a writable directory?)");
  return out;
}

}  // namespace siglip2
