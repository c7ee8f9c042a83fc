#pragma once
// Resolution adaptation of a trained image tower (spec: recipe.md §5): the position table resized to
// a new grid, the patch embedding resized to a new patch size with FlexiViT's pseudo-inverse resize,
// and a fixed-resolution tower turned into a NaFlex one.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "models/config.hpp"

namespace siglip2 {

// [side*side, D] learned positions -> [rows*cols, D]. Bilinear with corner-aligned sampling
// (align_corners=True) and no antialias: what big_vision's resample_posemb does when it loads a
// checkpoint at another resolution (scipy.ndimage.zoom, order 1), so the corner positions are kept.
at::Tensor resize_position_grid(const at::Tensor& positions, int64_t rows, int64_t cols);

// The matrix B [n*n, p*p] of bilinear resizing (half-pixel centres, no antialias) from p x p to n x n:
// column k is the resized k-th basis patch, so resize(x) = B x for a flattened patch x.
at::Tensor bilinear_resize_matrix(int64_t p, int64_t n);

// FlexiViT's PI-resize of a patch embedding [D, C, p, p] -> [D, C, n, n]: w_new = pinv(Bᵀ) w_old, the
// least-squares solution of ⟨resize(x), w_new⟩ = ⟨x, w_old⟩ for all x. Exact when n >= p (B has full
// column rank); when shrinking it is exact on the smooth patches B's row space holds.
at::Tensor pi_resize_patch_embedding(const at::Tensor& weight, int64_t new_patch);

// A Conv2d patch embedding [D, C, p, p] as NaFlex's Linear weight [D, p*p*C] over patches flattened in
// (row, col, channel) order (hf_interop.md §2.4).
at::Tensor conv_to_linear_patch_embedding(const at::Tensor& conv_weight);

// Adapts the image-tower tensors named `prefix`embeddings.{patch_embedding,position_embedding}.* from
// tower `from` to tower `to` (image size, patch size, fixed -> NaFlex); all other tensors are returned
// unchanged. Throws siglip2::Error for a change that has no meaning (NaFlex -> fixed, other widths).
// Returns the names of the tensors whose shape changed.
std::vector<std::string> adapt_vision_tensors(std::map<std::string, at::Tensor>& tensors, const std::string& prefix,
                                              const VisionConfig& from, const VisionConfig& to);

}  // namespace siglip2
