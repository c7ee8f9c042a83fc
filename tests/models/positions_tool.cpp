// Drives the NaFlex position resize (VisionEmbeddingsImpl::resized_positions) from
// tests/models/naflex_positions_test.py and from scripts/gpu_check.sh:
//   positions_tool IN.safetensors OUT.safetensors [cpu|cuda]
// IN holds "position_embedding" float32 [side*side, D] and "spatial_shapes" int64 [N, 2]; OUT holds, for
// each row (h, w), "HxW" float32 [h*w, D]: the table resized to that grid on the given device.
#include <torch/torch.h>

#include <iostream>
#include <string>

#include "common/safetensors.hpp"
#include "models/siglip2.hpp"

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::cerr << "usage: positions_tool IN.safetensors OUT.safetensors [cpu|cuda]\n";
    return 2;
  }
  try {
    const auto in = siglip2::safetensors::load(argv[1]);
    const at::Tensor table = in.at("position_embedding");
    const at::Tensor shapes = in.at("spatial_shapes").to(at::kLong).contiguous();
    const torch::Device device(argc == 4 ? argv[3] : "cpu");
    siglip2::VisionConfig config;
    config.naflex = true;
    config.num_patches = table.size(0);
    config.hidden_size = table.size(1);
    siglip2::VisionEmbeddings embeddings(config);
    {
      torch::NoGradGuard no_grad;
      embeddings->position_embedding->weight.copy_(table);
    }
    embeddings->to(device);
    std::vector<std::pair<std::string, at::Tensor>> out;
    auto rows = shapes.accessor<int64_t, 2>();
    torch::NoGradGuard no_grad;
    for (int64_t i = 0; i < shapes.size(0); ++i) {
      const int64_t h = rows[i][0], w = rows[i][1];
      out.emplace_back(std::to_string(h) + "x" + std::to_string(w),
                       embeddings->resized_positions(h, w).to(at::kCPU).contiguous());
    }
    siglip2::safetensors::save(argv[2], out);
  } catch (const std::exception& e) {
    std::cerr << "positions_tool: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
