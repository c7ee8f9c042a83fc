// The WebDataset shard reader: the input is a shard (tar, or anything libarchive's filters take);
// its samples are grouped, their image headers probed and their region JSON parsed, as
// `siglip2 data inspect` does before decoding.
#include "data/image_header.hpp"
#include "data/webdataset.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = siglip2::fuzz::write_input(data, size, ".tar");
  return siglip2::fuzz::expect_errors_only([&] {
    siglip2::ShardReader reader(path, int64_t(1) << 20);
    while (auto sample = reader.next()) {
      siglip2::probe_image_size(sample->image);
      if (sample->json) {
        int64_t bad_boxes = 0;
        try {
          siglip2::parse_regions(*sample->json, bad_boxes);
        } catch (const siglip2::Error&) {
        }
      }
    }
  });
}
