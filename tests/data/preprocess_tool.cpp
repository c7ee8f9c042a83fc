// Drives src/data from tests/data/preprocess_parity.py and tokenizer_parity.py:
//   preprocess_tool fixed IMAGE SIZE RESAMPLE OUT.safetensors   pixel_values [1,3,S,S], image [H,W,3]
//   preprocess_tool naflex IMAGE PATCH MAX_PATCHES OUT.safetensors
//                                           pixel_values [1,S,P*P*3], pixel_attention_mask, spatial_shapes, image
//   preprocess_tool sizes PATCH MAX_PATCHES < "H W" lines   prints "H' W'" lines (naflex_target_size)
//   preprocess_tool tokenize MODEL gemma|siglip1 LOWERCASE LENGTH TEXTS.json OUT.safetensors   input_ids [N,L]
//   preprocess_tool text lower|lower_final_sigma|ascii|canonicalize IN OUT   normalises a UTF-8 file
//   preprocess_tool batch                   runs the commands on stdin, one JSON array of arguments per line
// IMAGE is decoded with decode_image, or, when it ends in .safetensors, read from its uint8 [H,W,3] "image"
// (pixels decoded elsewhere, e.g. by PIL).
#include <torch/torch.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/safetensors.hpp"
#include "data/image.hpp"
#include "data/text_normalize.hpp"
#include "data/tokenizer.hpp"

namespace {

using siglip2::Error;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

at::Tensor load_image(const std::string& path) {
  if (ends_with(path, ".safetensors")) return siglip2::safetensors::load(path).at("image").contiguous();
  return siglip2::decode_image(path);
}

int run(const std::vector<std::string>& args) {
  const std::string& command = args.at(0);
  if (command == "fixed" && args.size() == 5) {
    const at::Tensor image = load_image(args[1]);
    const at::Tensor pixels = siglip2::preprocess_fixed(image, std::stoll(args[2]), args[3]);
    siglip2::safetensors::save(args[4], {{"pixel_values", siglip2::stack_fixed({pixels})}, {"image", image}});
  } else if (command == "naflex" && args.size() == 5) {
    const at::Tensor image = load_image(args[1]);
    const auto batch =
        siglip2::stack_naflex({siglip2::preprocess_naflex(image, std::stoll(args[2]), std::stoll(args[3]))});
    siglip2::safetensors::save(args[4], {{"pixel_values", batch.pixel_values},
                                         {"pixel_attention_mask", batch.pixel_attention_mask},
                                         {"spatial_shapes", batch.spatial_shapes},
                                         {"image", image}});
  } else if (command == "sizes" && args.size() == 3) {
    int64_t height, width;
    while (std::cin >> height >> width) {
      const auto [h, w] = siglip2::naflex_target_size(height, width, std::stoll(args[1]), std::stoll(args[2]));
      std::cout << h << " " << w << "\n";
    }
  } else if (command == "tokenize" && args.size() == 7) {
    siglip2::TokenizerConfig config;
    config.model_file = args[1];
    config.siglip1 = args[2] == "siglip1";
    if (config.siglip1) config.pad_id = 1;
    config.lowercase = args[3];
    config.length = std::stoll(args[4]);
    const std::vector<std::string> texts = nlohmann::json::parse(read_file(args[5])).get<std::vector<std::string>>();
    siglip2::safetensors::save(args[6], {{"input_ids", siglip2::Tokenizer::load(config).encode(texts)}});
  } else if (command == "text" && args.size() == 4) {
    const std::string text = read_file(args[2]), mode = args[1];
    std::string out;
    if (mode == "lower") {
      out = siglip2::unicode_lower(text, false);
    } else if (mode == "lower_final_sigma") {
      out = siglip2::unicode_lower(text, true);
    } else if (mode == "ascii") {
      out = siglip2::ascii_lower(text);
    } else if (mode == "canonicalize") {
      out = siglip2::siglip1_canonicalize(text);
    } else {
      throw Error("unknown text mode " + mode);
    }
    std::ofstream(args[3], std::ios::binary) << out;
  } else if (command == "batch" && args.size() == 1) {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (const int rc = run(nlohmann::json::parse(line).get<std::vector<std::string>>()); rc != 0) return rc;
    }
  } else {
    std::cerr << "usage: see the header of tests/data/preprocess_tool.cpp\n";
    return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "preprocess_tool: " << e.what() << "\n";
    return 1;
  }
}
