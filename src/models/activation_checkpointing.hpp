#pragma once
// Activation checkpointing (train.activation_checkpointing): a transformer block runs its forward without
// keeping the activations backward would need, only its inputs; backward runs the block again with
// gradients on and backpropagates through that recomputation. Memory for activations falls from one set per
// block to one block's worth plus each block's input, for one more forward of the checkpointed blocks.
//
// This is torch.utils.checkpoint's reentrant variant (use_reentrant=True) written as a LibTorch custom
// autograd function, since LibTorch C++ has no torch.utils.checkpoint. As there: the random-number state of
// the CPU generator and of the input's CUDA device is saved before the forward and restored for the
// recomputation (dropout draws the same masks twice), and so is the autocast state of the input's device,
// which the recomputation would otherwise not see (on CUDA it runs on an autograd device thread; on the CPU
// after the step's autocast scope has closed). The block's parameters are inputs of the recorded
// node, and the recomputation's gradients (for x, context and parameters) are its outputs: each parameter
// is accumulated once per backward, from every use, as without checkpointing (train/grad_sync's bucket
// hooks see a complete gradient; torch.utils.checkpoint's reentrant variant would accumulate per block
// and per use, which DDP reports as a parameter "marked ready twice").
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace siglip2 {

// Which blocks of an encoder or decoder stack recompute in backward.
struct ActivationCheckpointing {
  int64_t every_n = 0;  // 0: none; 1: every block ("blocks"); N: blocks 0, N, 2N, … ("every_n")
  bool applies(int64_t block) const { return every_n > 0 && block % every_n == 0; }
};

// A block: y = block(x, context). `context` is a second differentiable input (the image features a decoder
// layer cross-attends to), or undefined. Masks and parameters are captured by the function itself; the
// parameters are also passed to checkpointed().
using CheckpointedBlock = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& context)>;

// block(x, context) with its activations recomputed in backward; `parameters` are every tensor of the block
// that may need a gradient (those that do not are skipped). Outside grad mode it is block(x, context) itself.
// The result and the gradients equal the plain call's, on the CPU bit for bit (tests/models/
// activation_checkpointing_test.cpp; a decoder needs one alias per layer for that, see text_decoder.cpp).
at::Tensor checkpointed(const CheckpointedBlock& block, const std::vector<at::Tensor>& parameters, const at::Tensor& x,
                        const at::Tensor& context = {});

}  // namespace siglip2
