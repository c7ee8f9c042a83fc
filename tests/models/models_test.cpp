#include "models/siglip2.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <set>

#include "tiny_model.hpp"

namespace siglip2 {
namespace {

ModelConfig tiny(bool naflex) {
  return testing::tiny_model(naflex);
}

std::map<std::string, std::vector<int64_t>> shapes_of(Siglip2ModelImpl& m) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().sizes().vec();
  return out;
}

TEST(Siglip2Model, ParameterNamesAndShapesAreTheHuggingFaceOnes) {
  Siglip2Model fixed(tiny(false));
  auto s = shapes_of(*fixed);
  // 2 + 1 + 16 per layer + 2 + 11 (MAP head) vision tensors; 2 + 16 per layer + 2 + 2 text; 2 scalars.
  EXPECT_EQ(s.size(), (3u + 32u + 2u + 11u) + (2u + 32u + 2u + 2u) + 2u);
  using V = std::vector<int64_t>;
  EXPECT_EQ(s.at("vision_model.embeddings.patch_embedding.weight"), (V{32, 3, 4, 4}));
  EXPECT_EQ(s.at("vision_model.embeddings.position_embedding.weight"), (V{16, 32}));
  EXPECT_EQ(s.at("vision_model.encoder.layers.1.self_attn.q_proj.weight"), (V{32, 32}));
  EXPECT_EQ(s.at("vision_model.encoder.layers.0.mlp.fc1.weight"), (V{64, 32}));
  EXPECT_EQ(s.at("vision_model.encoder.layers.0.layer_norm2.bias"), (V{32}));
  EXPECT_EQ(s.at("vision_model.post_layernorm.weight"), (V{32}));
  EXPECT_EQ(s.at("vision_model.head.probe"), (V{1, 1, 32}));
  EXPECT_EQ(s.at("vision_model.head.attention.in_proj_weight"), (V{96, 32}));
  EXPECT_EQ(s.at("vision_model.head.attention.in_proj_bias"), (V{96}));
  EXPECT_EQ(s.at("vision_model.head.attention.out_proj.weight"), (V{32, 32}));
  EXPECT_EQ(s.at("vision_model.head.layernorm.weight"), (V{32}));
  EXPECT_EQ(s.at("vision_model.head.mlp.fc2.weight"), (V{32, 64}));
  EXPECT_EQ(s.at("text_model.embeddings.token_embedding.weight"), (V{50, 24}));
  EXPECT_EQ(s.at("text_model.embeddings.position_embedding.weight"), (V{8, 24}));
  EXPECT_EQ(s.at("text_model.encoder.layers.1.self_attn.out_proj.bias"), (V{24}));
  EXPECT_EQ(s.at("text_model.final_layer_norm.weight"), (V{24}));
  EXPECT_EQ(s.at("text_model.head.weight"), (V{32, 24}));
  EXPECT_EQ(s.at("logit_scale"), (V{1}));
  EXPECT_EQ(s.at("logit_bias"), (V{1}));
  Siglip2Model naflex(tiny(true));
  EXPECT_EQ(shapes_of(*naflex).at("vision_model.embeddings.patch_embedding.weight"), (V{32, 48}));
}

// Counting from a config builds the modules with meta kernels; the same constructors built for real must
// give the same counts (nothing is lost or added by that path), and the B/16 numbers below are the outside
// truth (model_info_parity compares every preset's names and shapes with transformers).
TEST(Siglip2Model, CountsFromConfigEqualAllocatedParameters) {
  for (bool naflex : {false, true}) {
    ModelConfig c = tiny(naflex);
    Siglip2Model m(c);
    ParameterCounts a = count_parameters(*m), b = count_parameters(c);
    EXPECT_EQ(a.vision, b.vision);
    EXPECT_EQ(a.text, b.text);
    EXPECT_EQ(a.total, b.total);
  }
  // Counting builds the modules with the meta kernels on; afterwards this thread computes on the CPU again.
  EXPECT_EQ(torch::ones({3}).sum().item<float>(), 3.0f);
  // The B/16 numbers transformers reports (spec: hf_interop.md §2.3).
  ModelConfig base;
  ParameterCounts b = count_parameters(base);
  EXPECT_EQ(b.vision, 92930304);
  EXPECT_EQ(b.text, 282303744);
  EXPECT_EQ(b.total, 375234050);
}

TEST(Siglip2Model, InitialisationFollowsTheRecipe) {
  ModelConfig c = tiny(false);
  c.vision.hidden_size = 256;
  c.vision.num_attention_heads = 4;
  c.text.hidden_size = 128;
  Siglip2Model m(c);
  torch::NoGradGuard g;
  EXPECT_NEAR(m->logit_scale.item<double>(), std::log(10.0), 1e-7);
  EXPECT_DOUBLE_EQ(m->logit_bias.item<double>(), -10.0);
  auto& pe = m->vision_model->embeddings->position_embedding->weight;
  EXPECT_NEAR(pe.std().item<double>(), 1.0 / 16.0, 0.01);  // N(0, 1/sqrt(width))
  auto& q = m->vision_model->encoder->layers[0]->as<EncoderLayerImpl>()->self_attn->q_proj;
  double bound = std::sqrt(6.0 / (256 + 256));  // xavier_uniform
  EXPECT_LE(q->weight.abs().max().item<double>(), bound);
  EXPECT_GT(q->weight.abs().max().item<double>(), 0.95 * bound);
  EXPECT_EQ(q->bias.abs().max().item<double>(), 0.0);
  auto& fc1 = m->vision_model->encoder->layers[0]->as<EncoderLayerImpl>()->mlp->fc1;
  EXPECT_LT(fc1->bias.abs().max().item<double>(), 1e-5);  // N(0, 1e-6)
  EXPECT_GT(fc1->bias.abs().max().item<double>(), 0.0);
  auto& head = m->text_model->head->weight;  // lecun normal: std sqrt(1/fan_in), truncated at 2 std
  double std = std::sqrt(1.0 / 128);
  EXPECT_NEAR(head.std().item<double>(), std, 0.1 * std);
  EXPECT_LE(head.abs().max().item<double>(), 2.0 * std / 0.87962566103423978 + 1e-6);
  EXPECT_EQ(m->vision_model->post_layernorm->weight.min().item<double>(), 1.0);
  // Same seed, same parameters; another seed, others.
  Siglip2Model a(c), b(c);
  b->reset_parameters(1);
  EXPECT_TRUE(torch::equal(m->text_model->head->weight, a->text_model->head->weight));
  EXPECT_FALSE(torch::equal(a->text_model->head->weight, b->text_model->head->weight));
}

TEST(Siglip2Model, LogitsAreScaledCosineSimilaritiesPlusBias) {
  Siglip2Model m(tiny(false));
  m->eval();
  torch::NoGradGuard g;
  m->logit_scale.fill_(std::log(7.0));
  m->logit_bias.fill_(-3.0);
  VisionInput img{torch::rand({3, 3, 16, 16}) * 2 - 1, {}, {}};
  at::Tensor ids = torch::randint(0, 50, {2, 8}, torch::kLong);
  SiglipOutput out = m->forward(img, ids);
  at::Tensor i = m->encode_image(img).pooler_output, t = m->encode_text(ids).pooler_output;
  for (int64_t a = 0; a < 3; ++a)
    for (int64_t b = 0; b < 2; ++b) {
      double cos = (torch::dot(i[a], t[b]) / (i[a].norm() * t[b].norm())).item<double>();
      EXPECT_NEAR(out.logits_per_image[a][b].item<double>(), 7.0 * cos - 3.0, 1e-5);
    }
  EXPECT_NEAR(out.image_embeds.norm(2, 1).min().item<double>(), 1.0, 1e-6);
}

TEST(Siglip2Model, TextPoolsTheLastPositionOfThePaddedSequence) {
  Siglip2Model m(tiny(false));
  m->eval();
  torch::NoGradGuard g;
  at::Tensor ids = torch::tensor({{5, 6, 1, 0, 0, 0, 0, 0}}, torch::kLong);
  TextOutput out = m->encode_text(ids);
  at::Tensor want = m->text_model->head(out.last_hidden_state.select(1, 7));
  EXPECT_TRUE(torch::allclose(out.pooler_output, want));
  // No attention mask: changing a pad token changes the pooled output (as released; hf_interop §3.5).
  at::Tensor other = ids.clone();
  other[0][4] = 7;
  EXPECT_FALSE(torch::allclose(m->encode_text(other).pooler_output, out.pooler_output, 1e-4, 1e-4));
}

// A NaFlex image padded to a longer sequence, with garbage in the padding, gives the same
// pooled output and the same valid tokens as the unpadded sequence.
TEST(Siglip2Model, NaflexPaddingDoesNotChangeTheResult) {
  Siglip2Model m(tiny(true));
  m->eval();
  torch::NoGradGuard g;
  const int64_t rows = 3, cols = 5, n = rows * cols, ppc = 48;
  at::Tensor patches = torch::rand({1, n, ppc}) * 2 - 1;
  at::Tensor shapes = torch::tensor({{rows, cols}}, torch::kLong);
  VisionOutput tight = m->encode_image({patches, torch::ones({1, n}, torch::kInt), shapes});
  at::Tensor padded = torch::cat({patches, torch::randn({1, 9, ppc}) * 5}, 1);
  at::Tensor mask = torch::cat({torch::ones({1, n}, torch::kInt), torch::zeros({1, 9}, torch::kInt)}, 1);
  VisionOutput loose = m->encode_image({padded, mask, shapes});
  EXPECT_LT((tight.pooler_output - loose.pooler_output).abs().max().item<double>(), 1e-5);
  EXPECT_LT((tight.last_hidden_state - loose.last_hidden_state.slice(1, 0, n)).abs().max().item<double>(), 1e-5);
  // Two images of different shapes in one batch each give what they give alone.
  at::Tensor p2 = torch::rand({1, 24, ppc});
  VisionOutput alone2 =
      m->encode_image({p2, torch::ones({1, 24}, torch::kInt), torch::tensor({{int64_t{4}, int64_t{6}}}, torch::kLong)});
  at::Tensor batch = torch::cat({padded.slice(1, 0, 24), p2}, 0);
  at::Tensor bmask = torch::cat({mask.slice(1, 0, 24), torch::ones({1, 24}, torch::kInt)}, 0);
  VisionOutput both =
      m->encode_image({batch, bmask, torch::tensor({{rows, cols}, {int64_t{4}, int64_t{6}}}, torch::kLong)});
  EXPECT_LT((both.pooler_output[0] - tight.pooler_output[0]).abs().max().item<double>(), 1e-5);
  EXPECT_LT((both.pooler_output[1] - alone2.pooler_output[0]).abs().max().item<double>(), 1e-5);
}

// At the table's own grid size the resize is the identity, so a NaFlex tower whose Linear patch
// embedding is the fixed tower's Conv2d kernel in (row, col, channel) order computes the same function.
TEST(Siglip2Model, NaflexMatchesFixedResolutionAtTheNativeGrid) {
  ModelConfig fc = tiny(false), nc = tiny(true);
  Siglip2Model fixed(fc), naflex(nc);
  fixed->eval();
  naflex->eval();
  torch::NoGradGuard g;
  auto dst = naflex->named_parameters();
  for (const auto& p : fixed->named_parameters()) {
    at::Tensor v = p.value();
    if (p.key() == "vision_model.embeddings.patch_embedding.weight") v = v.permute({0, 2, 3, 1}).reshape({32, 48});
    dst[p.key()].copy_(v);
  }
  EXPECT_TRUE(torch::equal(naflex->vision_model->embeddings->resized_positions(4, 4),
                           naflex->vision_model->embeddings->position_embedding->weight));
  at::Tensor img = torch::rand({2, 3, 16, 16}) * 2 - 1;
  at::Tensor patches = img.reshape({2, 3, 4, 4, 4, 4}).permute({0, 2, 4, 3, 5, 1}).reshape({2, 16, 48});
  VisionOutput a = fixed->encode_image({img, {}, {}});
  VisionOutput b =
      naflex->encode_image({patches, torch::ones({2, 16}, torch::kInt), torch::full({2, 2}, 4, torch::kLong)});
  EXPECT_LT((a.pooler_output - b.pooler_output).abs().max().item<double>(), 1e-5);
}

TEST(Siglip2Model, WrongInputShapesAreNamed) {
  Siglip2Model m(tiny(false));
  try {
    m->encode_image({torch::zeros({1, 3, 32, 32}), {}, {}});
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("this model takes 16x16 images, got 32x32"), std::string::npos);
  }
  EXPECT_THROW(m->encode_text(torch::zeros({1, 9}, torch::kLong)), c10::Error);
}

}  // namespace
}  // namespace siglip2
