#include "train/checkpoint.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>
#include <string>

namespace siglip2 {
namespace {

namespace fs = std::filesystem;

struct RunDir {
  fs::path path = fs::temp_directory_path() / ("siglip2_checkpoint_test_" + std::to_string(::getpid()));
  RunDir() { fs::remove_all(path); }
  ~RunDir() { fs::remove_all(path); }
};

// A checkpoint written before the self-distillation tensors were renamed ("ssl." → "self_distillation.")
// resumes: its heads, centres and Adam moments load under today's names, values unchanged, and no
// other name is touched.
TEST(Checkpoint, OldSelfDistillationNamesLoadUnderTodaysNames) {
  RunDir run;
  CheckpointContents c;
  const at::Tensor head = torch::arange(6, torch::kFloat).reshape({2, 3});
  const at::Tensor centre = torch::full({4}, 0.5);
  c.model = {{"logit_scale", torch::ones({1})}, {"ssl.global_head.weight", head}};
  c.teacher = {{"vision_model.post_layernorm.bias", torch::zeros({2})}, {"ssl.center_global", centre}};
  c.optimizer = {{"step", torch::full({1}, 3.0)},
                 {"exp_avg/ssl.global_head.weight", head * 2},
                 {"exp_avg_sq/ssl.global_head.weight", head * 3},
                 {"exp_avg/logit_scale", torch::ones({1})}};
  c.state.step = 3;
  c.state.self_distillation = true;
  const std::string dir = save_checkpoint(run.path.string(), c, 2);

  LoadedCheckpoint l = load_checkpoint(dir);
  EXPECT_TRUE(torch::equal(l.model.at("self_distillation.global_head.weight"), head));
  EXPECT_TRUE(l.model.count("logit_scale"));
  EXPECT_FALSE(l.model.count("ssl.global_head.weight"));
  EXPECT_TRUE(torch::equal(l.teacher.at("self_distillation.center_global"), centre));
  EXPECT_TRUE(l.teacher.count("vision_model.post_layernorm.bias"));
  EXPECT_TRUE(torch::equal(l.optimizer.at("exp_avg/self_distillation.global_head.weight"), head * 2));
  EXPECT_TRUE(torch::equal(l.optimizer.at("exp_avg_sq/self_distillation.global_head.weight"), head * 3));
  EXPECT_TRUE(l.optimizer.count("exp_avg/logit_scale"));
  EXPECT_TRUE(l.optimizer.count("step"));
  EXPECT_EQ(l.model.size(), 2u);
  EXPECT_EQ(l.optimizer.size(), 4u);
}

}  // namespace
}  // namespace siglip2
