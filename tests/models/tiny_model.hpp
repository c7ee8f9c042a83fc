#pragma once
// The small two-tower config the model tests build: 16 px images of 4 px patches (a 4x4 grid; NaFlex: 16
// positions), widths 32 and 24, `layers` blocks in each tower.
#include "models/config.hpp"

namespace siglip2::testing {

inline ModelConfig tiny_model(bool naflex, int64_t layers = 2) {
  ModelConfig c;
  c.vision.hidden_size = 32;
  c.vision.intermediate_size = 64;
  c.vision.num_hidden_layers = layers;
  c.vision.num_attention_heads = 4;
  c.vision.patch_size = 4;
  c.vision.image_size = 16;
  c.vision.naflex = naflex;
  c.vision.num_patches = 16;
  c.text.vocab_size = 50;
  c.text.hidden_size = 24;
  c.text.intermediate_size = 48;
  c.text.num_hidden_layers = layers;
  c.text.num_attention_heads = 2;
  c.text.max_position_embeddings = 8;
  c.text.projection_size = 32;
  return c;
}

}  // namespace siglip2::testing
