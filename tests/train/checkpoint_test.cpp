#include "train/checkpoint.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include "common/error.hpp"

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

// Optimizer state written by two ranks, each its slices (ZeRO-1), loads as full tensors shaped as the
// parameters; a missing shard or a gap makes the checkpoint unreadable (the loader then falls back to
// the previous one) instead of resuming with zero moments.
TEST(Checkpoint, ShardedOptimizerStateLoadsAsFullTensors) {
  RunDir run;
  const at::Tensor w = torch::arange(12, torch::kFloat).reshape({3, 4}), b = torch::arange(5, torch::kFloat) + 100;
  auto save = [&](int64_t step, bool drop_rank1, bool gap) {
    begin_checkpoint(run.path.string(), step);
    const std::string tmp = checkpoint_tmp_dir(run.path.string(), step, ::getpid());
    // Rank 0: w[0:7], rank 1: w[7:12] and b (with a gap: b[1:5] only).
    write_optimizer_shard(tmp, 0, 2,
                          {{"step", torch::full({1}, step, torch::kLong)},
                           {"exp_avg/w@0", w.reshape(-1).narrow(0, 0, 7)},
                           {"exp_avg_sq/w@0", 2 * w.reshape(-1).narrow(0, 0, 7)}});
    if (!drop_rank1)
      write_optimizer_shard(tmp, 1, 2,
                            {{"step", torch::full({1}, step, torch::kLong)},
                             {"exp_avg/w@7", w.reshape(-1).narrow(0, 7, 5)},
                             {"exp_avg_sq/w@7", 2 * w.reshape(-1).narrow(0, 7, 5)},
                             {gap ? "exp_avg/b@1" : "exp_avg/b@0", gap ? b.narrow(0, 1, 4) : b},
                             {"exp_avg_sq/b@0", 2 * b}});
    CheckpointContents c;
    c.model = {{"w", torch::zeros({3, 4})}, {"b", torch::zeros({5})}};
    c.optimizer_shards = 2;
    c.state.step = step;
    return finish_checkpoint(run.path.string(), c, 5);
  };
  LoadedCheckpoint l = load_checkpoint(save(1, false, false));
  EXPECT_TRUE(torch::equal(l.optimizer.at("exp_avg/w"), w));
  EXPECT_TRUE(torch::equal(l.optimizer.at("exp_avg_sq/w"), 2 * w));
  EXPECT_TRUE(torch::equal(l.optimizer.at("exp_avg/b"), b));
  EXPECT_EQ(l.optimizer.at("step").item<int64_t>(), 1);
  EXPECT_EQ(l.optimizer.size(), 5u);

  const std::string missing = save(2, true, false);  // rank 1's file never appeared
  try {
    load_checkpoint(missing);
    FAIL() << "a checkpoint without one of its shards must not load";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer-00001-of-00002.safetensors: missing"), std::string::npos)
        << e.what();
  }
  const std::string gap = save(3, false, true);
  try {
    load_checkpoint(gap);
    FAIL() << "a gap in the slices must not load";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("do not cover 'exp_avg/b' exactly once"), std::string::npos) << e.what();
  }
  EXPECT_EQ(load_latest_checkpoint(run.path.string())->path, (run.path / "ckpt-00000001").string());
}

}  // namespace
}  // namespace siglip2
