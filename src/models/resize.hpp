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

// Weights [out, in] (float64) of resampling one axis of `in` samples to `out` with the triangle
// (linear) filter: row i holds the weights of output i and sums to 1. Bilinear resizing of a grid is
// this matrix applied to rows and to columns (resize_grid). The definition (PIL, torch
// F.interpolate(mode="bilinear"), jax.image.resize(method="linear"), transformers' Siglip2 position resize):
//   centre c_i = (i + 0.5) * s - 0.5 with s = in / out (align_corners false: half-pixel centres), or
//   c_i = i * (in - 1) / (out - 1) (align_corners true; c_0 = 0 when out == 1);
//   w_ij = max(0, 1 - |j - c_i| / r) / Σ_j (...), with support r = max(s, 1) when antialias (the filter
//   widened when shrinking) and r = 1 otherwise (plain bilinear, clamped at the edges).
// Written out rather than taken from LibTorch's interpolate, whose antialiased CPU kernel is wrong when
// the output is one sample wide and the height changes (8x8 -> 2x1 gives equal rows).
at::Tensor linear_resize_weights(int64_t in, int64_t out, bool align_corners, bool antialias);

// A grid [H, W, ...] resized to [rows, cols, ...] with linear_resize_weights on each axis, applied with
// two matrix products in the grid's dtype and on its device (the weights are cast to them).
at::Tensor resize_grid(const at::Tensor& grid, int64_t rows, int64_t cols, bool align_corners, bool antialias);

// [side*side, D] learned positions -> [rows*cols, D]. Bilinear with corner-aligned sampling
// (align_corners=True) and no antialias: what big_vision's resample_posemb does when it loads a
// checkpoint at another resolution (scipy.ndimage.zoom, order 1), so the corner positions are kept.
at::Tensor resize_position_grid(const at::Tensor& positions, int64_t rows, int64_t cols);

// The matrix B [n*n, p*p] of bilinear resizing (half-pixel centres, no antialias) from p x p to n x n
// (the Kronecker product of the two axes' linear_resize_weights):
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
