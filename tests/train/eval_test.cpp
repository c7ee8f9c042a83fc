#include "train/eval.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace siglip2 {
namespace {

TEST(Retrieval, RecallByHand) {
  // Four pairs in 2-d; texts 2 and 3 are the same caption (equal token ids).
  at::Tensor img = at::tensor({1.0f, 0.0f, 0.0f, 1.0f, 0.6f, 0.8f, -1.0f, 0.0f}).view({4, 2});
  at::Tensor txt = at::tensor({0.0f, 1.0f, 1.0f, 0.0f, 0.8f, 0.6f, -0.6f, -0.8f}).view({4, 2});
  at::Tensor ids = at::tensor({5, 6, 7, 7}, at::kLong).view({4, 1});
  RetrievalResult r = retrieval_recall(img, txt, ids);
  EXPECT_EQ(r.pairs, 4);
  // Similarities (rows images, columns texts):
  //   [ 0    1    .8  -.6 ]   image 0: best text 1, not its caption 0
  //   [ 1    0    .6  -.8 ]   image 1: best text 0, not its caption 1
  //   [ .8   .6  .96  -1  ]   image 2: best text 2, a match
  //   [ 0   -1   -.8  .6  ]   image 3: best text 3, a match (texts 2 and 3 are both its caption)
  // Texts 2 and 3 are one distinct caption, represented by text 2 (its first occurrence); image 3's best
  // distinct caption is then text 0 (0, against -1 and -0.8 for texts 1 and 2): a miss.
  EXPECT_EQ(r.texts, 3);
  EXPECT_DOUBLE_EQ(r.image_to_text[0], 0.25);
  EXPECT_DOUBLE_EQ(r.image_to_text[1], 1.0);  // k = 5 covers all three captions
  // Columns: text 0 -> image 1 (wrong), text 1 -> image 0 (wrong), caption {2,3} -> image 2 (a match).
  EXPECT_DOUBLE_EQ(r.text_to_image[0], 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.text_to_image[2], 1.0);
  // A perfect model: every image's best text is its own.
  RetrievalResult perfect = retrieval_recall(img, img, at::arange(4, at::kLong).view({4, 1}));
  EXPECT_DOUBLE_EQ(perfect.image_to_text[0], 1.0);
  EXPECT_DOUBLE_EQ(perfect.text_to_image[0], 1.0);
}

}  // namespace
}  // namespace siglip2
