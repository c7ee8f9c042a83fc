#include "models/resize.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "common/error.hpp"

namespace siglip2 {
namespace {

int64_t square_side(int64_t n, const std::string& what) {
  auto side = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(n))));
  if (side * side != n) throw Error(what + ": " + std::to_string(n) + " positions are not a square grid");
  return side;
}

int64_t fixed_grid(const VisionConfig& v) {
  return v.image_size / v.patch_size;
}

}  // namespace

at::Tensor linear_resize_weights(int64_t in, int64_t out, bool align_corners, bool antialias) {
  TORCH_CHECK(in > 0 && out > 0, "linear_resize_weights: sizes must be positive, got ", in, " -> ", out);
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double support = antialias ? std::max(scale, 1.0) : 1.0;
  at::Tensor w = at::zeros({out, in}, at::kDouble);
  auto acc = w.accessor<double, 2>();
  for (int64_t i = 0; i < out; ++i) {
    double centre = (static_cast<double>(i) + 0.5) * scale - 0.5;
    if (align_corners) centre = out > 1 ? static_cast<double>(i * (in - 1)) / static_cast<double>(out - 1) : 0.0;
    double sum = 0;
    for (int64_t j = 0; j < in; ++j) {
      acc[i][j] = std::max(0.0, 1.0 - std::abs(static_cast<double>(j) - centre) / support);
      sum += acc[i][j];
    }
    TORCH_CHECK(sum > 0, "linear_resize_weights: output ", i, " has no input in its support");
    for (int64_t j = 0; j < in; ++j) acc[i][j] /= sum;
  }
  return w;
}

at::Tensor resize_grid(const at::Tensor& grid, int64_t rows, int64_t cols, bool align_corners, bool antialias) {
  TORCH_CHECK(grid.dim() >= 2, "resize_grid: a grid [H, W, ...] is needed, got ", grid.sizes());
  const int64_t h = grid.size(0), w = grid.size(1);
  const auto options = grid.options();
  const at::Tensor wr = linear_resize_weights(h, rows, align_corners, antialias).to(options);
  const at::Tensor wc = linear_resize_weights(w, cols, align_corners, antialias).to(options);
  std::vector<int64_t> shape(grid.sizes().begin(), grid.sizes().end());
  const at::Tensor flat = grid.reshape({h, w, -1});                             // [H, W, D]
  at::Tensor r = at::matmul(wr, flat.reshape({h, -1})).reshape({rows, w, -1});  // [rows, W, D]
  r = at::matmul(wc, r);                                                        // [rows, cols, D]
  shape[0] = rows;
  shape[1] = cols;
  return r.reshape(shape);
}

at::Tensor resize_position_grid(const at::Tensor& positions, int64_t rows, int64_t cols) {
  const int64_t side = square_side(positions.size(0), "position embedding"), d = positions.size(1);
  if (rows == side && cols == side) return positions.clone();
  const at::Tensor grid = positions.to(at::kDouble).reshape({side, side, d});
  return resize_grid(grid, rows, cols, /*align_corners=*/true, /*antialias=*/false)
      .reshape({rows * cols, d})
      .to(positions.scalar_type());
}

at::Tensor bilinear_resize_matrix(int64_t p, int64_t n) {
  const at::Tensor w = linear_resize_weights(p, n, /*align_corners=*/false, /*antialias=*/false);  // [n, p]
  return at::kron(w, w);  // [n*n, p*p]: output (r, c) from input (a, b) with weight w[r][a] * w[c][b]
}

at::Tensor pi_resize_patch_embedding(const at::Tensor& weight, int64_t new_patch) {
  TORCH_CHECK(weight.dim() == 4 && weight.size(2) == weight.size(3), "a patch embedding [D, C, p, p] is needed, got ",
              weight.sizes());
  const int64_t p = weight.size(2), d = weight.size(0), c = weight.size(1);
  if (p == new_patch) return weight.clone();
  at::Tensor b = bilinear_resize_matrix(p, new_patch);              // [n², p²]
  at::Tensor solve = at::linalg_pinv(b.transpose(0, 1));            // [n², p²]
  at::Tensor old = weight.to(at::kDouble).reshape({d * c, p * p});  // rows: one kernel slice each
  at::Tensor out = at::matmul(old, solve.transpose(0, 1));          // [D*C, n²]
  return out.reshape({d, c, new_patch, new_patch}).to(weight.scalar_type());
}

at::Tensor conv_to_linear_patch_embedding(const at::Tensor& w) {
  TORCH_CHECK(w.dim() == 4, "a Conv2d patch embedding [D, C, p, p] is needed, got ", w.sizes());
  return w.permute({0, 2, 3, 1}).reshape({w.size(0), -1}).contiguous();
}

std::vector<std::string> adapt_vision_tensors(std::map<std::string, at::Tensor>& tensors, const std::string& prefix,
                                              const VisionConfig& from, const VisionConfig& to) {
  if (from.naflex && !to.naflex) throw Error("a NaFlex tower cannot be turned back into a fixed-resolution one");
  if (from.naflex && from.patch_size != to.patch_size)
    throw Error("the patch size of a NaFlex tower cannot be changed here");
  if (from.hidden_size != to.hidden_size || from.num_channels != to.num_channels)
    throw Error("resolution adaptation keeps the tower's width and channels");
  const std::string patch = prefix + "embeddings.patch_embedding.weight";
  const std::string pos = prefix + "embeddings.position_embedding.weight";
  auto find = [&](const std::string& name) -> at::Tensor& {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw Error("tensor '" + name + "' is missing");
    return it->second;
  };
  std::vector<std::string> changed;
  at::Tensor& w = find(patch);
  at::Tensor& positions = find(pos);
  const int64_t grid_rows = to.naflex ? square_side(to.num_patches, "num_patches") : fixed_grid(to);
  if (!from.naflex) {
    if (to.patch_size != from.patch_size) {
      w = pi_resize_patch_embedding(w, to.patch_size);
      changed.push_back(patch);
    }
    if (to.naflex) {
      w = conv_to_linear_patch_embedding(w);
      if (std::find(changed.begin(), changed.end(), patch) == changed.end()) changed.push_back(patch);
    }
  }
  if (positions.size(0) != grid_rows * grid_rows) {
    positions = resize_position_grid(positions, grid_rows, grid_rows);
    changed.push_back(pos);
  }
  return changed;
}

}  // namespace siglip2
