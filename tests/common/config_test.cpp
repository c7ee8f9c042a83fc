#include "common/config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "train/config.hpp"

namespace siglip2 {
namespace {

namespace fs = std::filesystem;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("siglip2_config_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  // Loads a RunConfig and returns the ConfigError message ("" when it loads).
  std::string error_of(const std::string& file, const std::vector<std::string>& overrides = {}) {
    try {
      config::load<RunConfig>(file, overrides);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;
};

TEST_F(ConfigTest, DefaultsAndValuesAreRead) {
  auto f =
      write("run.yaml",
            "train:\n  total_steps: 100\n  batch_size: 64\noptimizer:\n  lr: 3.0e-4\nschedule:\n  warmup_steps: 10\n");
  RunConfig c = config::load<RunConfig>(f);
  EXPECT_EQ(c.train.total_steps, 100);
  EXPECT_EQ(c.train.batch_size, 64);
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 3e-4);
  EXPECT_DOUBLE_EQ(c.optimizer.beta2, 0.95);  // default kept
  EXPECT_EQ(c.schedule.type, "cosine");
}

TEST_F(ConfigTest, TypoNamesKeyLocationAndSuggestion) {
  auto f = write("run.yaml", "train:\n  total_steps: 10\noptimiser:\n  lr: 1.0\n");
  std::string e = error_of(f);
  EXPECT_NE(e.find(f + ":3:1: optimiser: unknown key"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'optimizer'?"), std::string::npos) << e;
}

// A misspelt section hides a required key: the misspelling is named first, not the key it hid.
TEST_F(ConfigTest, MisspeltSectionIsNamedBeforeTheRequiredKeyItHides) {
  auto f = write("run.yaml", "trian:\n  total_steps: 10\n");
  std::string e = error_of(f);
  EXPECT_NE(e.find(f + ":1:1: trian: unknown key; did you mean 'train'?"), std::string::npos) << e;
  // Without a misspelling the missing value is still reported, in a section given empty too.
  e = error_of(write("b.yaml", "train:\noptimizer:\n  lr: 0.1\n"));
  EXPECT_NE(e.find("train.total_steps: required value is missing"), std::string::npos) << e;
}

// Keys the trainer sets from other sections are refused in a training config, each naming its source;
// the same keys stay valid where the loader's config stands alone.
TEST_F(ConfigTest, LoaderKeysTheTrainerSetsAreRefusedInATrainingConfig) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"data:\n  batch_size: 8\n", "data.batch_size: set by the trainer: train.batch_size (the global batch)"},
      {"data:\n  locca: false\n", "data.locca: set by the trainer from train.locca"},
      {"data:\n  self_distillation: true\n", "data.self_distillation: set by the trainer from train.self_distillation"},
      {"data:\n  ssl_views: true\n", "data.ssl_views: set by the trainer from train.self_distillation"},
      {"data:\n  ssl:\n    local_size: 16\n", "data.ssl: renamed data.self_distillation_views"},
      {"data:\n  locca_targets:\n    length: 16\n",
       "data.locca_targets.length: set by the trainer from "
       "model.decoder.max_length"},
      {"data:\n  locca_targets:\n    parallel_probability: 0.1\n",
       "data.locca_targets.parallel_probability: set by the trainer from loss.locca.parallel_probability"},
  };
  for (const auto& [yaml, expected] : cases) {
    const std::string f = write("run.yaml", "train:\n  total_steps: 10\nschedule:\n  warmup_steps: 1\n" + yaml);
    const std::string e = error_of(f);
    EXPECT_NE(e.find(expected), std::string::npos) << yaml << " -> " << e;
  }
  // Other keys of those sections are still read; what `config show` prints (and checkpoints keep as
  // config.yaml) loads again.
  RunConfig c = config::load<RunConfig>(write("ok.yaml",
                                              "train:\n  total_steps: 10\nschedule:\n  warmup_steps: 1\ndata:\n  "
                                              "workers: 3\n  locca_targets:\n    box_bins: 100\n"));
  EXPECT_EQ(c.data.workers, 3);
  EXPECT_EQ(c.data.locca_targets.box_bins, 100);
  const std::string shown = config::dump(c);
  EXPECT_EQ(error_of(write("shown.yaml", shown)), "") << shown;
  EXPECT_EQ(shown.find("ssl"), std::string::npos) << shown;
  EXPECT_NE(shown.find("self_distillation_views:"), std::string::npos) << shown;
  const LoaderConfig alone = config::from_tree<LoaderConfig>(
      load_config_tree(write("loader.yaml",
                             "batch_size: 8\nlocca: false\nself_distillation: true\nlocca_targets:\n  "
                             "length: 16\nself_distillation_views:\n  local_size: 32\n")));
  EXPECT_EQ(alone.batch_size, 8);
  EXPECT_FALSE(alone.locca);
  EXPECT_EQ(alone.locca_targets.length, 16);
  EXPECT_TRUE(alone.self_distillation);
  EXPECT_EQ(alone.self_distillation_views.local_size, 32);
  try {
    config::from_tree<LoaderConfig>(load_config_tree(write("old_loader.yaml", "ssl_views: true\n")));
    ADD_FAILURE() << "ssl_views was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ssl_views: renamed data.self_distillation"), std::string::npos) << e.what();
  }
  // A checkpoint written before these keys were refused still loads (caption, adapt-resolution).
  const std::string old = write("ckpt/config.yaml",
                                "train:\n  total_steps: 10\nschedule:\n  warmup_steps: 1\ndata:\n  batch_size: 8\n  "
                                "locca: true\n  ssl_views: false\n"
                                "  workers: 3\n  locca_targets:\n    length: 16\n    parallel_probability: 0.5\n"
                                "    box_bins: 100\n  ssl:\n    local_size: 48\n");
  EXPECT_NE(error_of(old), "");
  const RunConfig from_checkpoint = load_checkpoint_config(old);
  EXPECT_EQ(from_checkpoint.data.workers, 3);
  EXPECT_EQ(from_checkpoint.data.locca_targets.box_bins, 100);
  EXPECT_EQ(from_checkpoint.data.self_distillation_views.local_size, 48);  // the old section's values, kept
}

// The image section says how images are preprocessed; it must agree with the tower it feeds.
TEST_F(ConfigTest, ImageSectionMustAgreeWithTheModel) {
  std::string e =
      error_of(write("a.yaml", "train:\n  total_steps: 10\nschedule:\n  warmup_steps: 1\nimage:\n  naflex: true\n"));
  EXPECT_NE(e.find("image.naflex is true but the model has a fixed-resolution vision tower"), std::string::npos) << e;
  e = error_of(write("b.yaml", "train:\n  total_steps: 10\nschedule:\n  warmup_steps: 1\nimage:\n  image_size: 384\n"));
  EXPECT_NE(e.find("image.image_size (384) differs from model.vision.image_size (256)"), std::string::npos) << e;
}

TEST_F(ConfigTest, NestedTypoSuggestsWithinSection) {
  auto f = write("run.yaml", "train:\n  total_steps: 10\n  batch_sise: 8\n");
  std::string e = error_of(f);
  EXPECT_NE(e.find(f + ":3:3: train.batch_sise: unknown key; did you mean 'batch_size'?"), std::string::npos) << e;
}

TEST_F(ConfigTest, FarOffKeyListsValidKeys) {
  auto f = write("run.yaml", "train:\n  total_steps: 10\nschedule:\n  zzzzzzzzzz: 1\n");
  std::string e = error_of(f);
  EXPECT_NE(e.find("valid keys: type, warmup_steps, end_fraction"), std::string::npos) << e;
}

TEST_F(ConfigTest, WrongTypesAreNamed) {
  EXPECT_NE(error_of(write("a.yaml", "train:\n  total_steps: ten\n"))
                .find(":2:16: train.total_steps: expected an integer, got 'ten'"),
            std::string::npos);
  EXPECT_NE(error_of(write("b.yaml", "train:\n  total_steps: 5\noptimizer:\n  lr: \"0.1\"\n"))
                .find("optimizer.lr: expected a finite number, got '0.1'"),
            std::string::npos);
  EXPECT_NE(error_of(write("c.yaml", "train:\n  total_steps: 5\n  batch_size: [1, 2]\n"))
                .find("train.batch_size: expected an integer, got a list"),
            std::string::npos);
  EXPECT_NE(error_of(write("d.yaml", "train: 5\n")).find("train: expected a section"), std::string::npos);
  EXPECT_NE(error_of(write("e.yaml", "train:\n  total_steps: 5\nmodel:\n  vision:\n    naflex: yes\n"))
                .find("model.vision.naflex: expected true or false, got 'yes'"),
            std::string::npos);
}

TEST_F(ConfigTest, RangeChecksAndRequiredValues) {
  std::string e = error_of(write("a.yaml", "train:\n  total_steps: 5\noptimizer:\n  beta2: 1.5\n"));
  EXPECT_NE(e.find(":4:10: optimizer.beta2: must be in [0.000000, 1.000000] (got 1.5)"), std::string::npos) << e;
  e = error_of(write("b.yaml", "optimizer:\n  lr: 0.1\n"));
  EXPECT_NE(e.find("train.total_steps: required value is missing"), std::string::npos) << e;
  e = error_of(write("c.yaml", "train:\n  total_steps: 5\nschedule:\n  type: linear\n"));
  EXPECT_NE(e.find("schedule.type: must be one of: cosine, rsqrt, constant (got linear)"), std::string::npos) << e;
  e = error_of(write("d.yaml", "train:\n  total_steps: 5\nmodel:\n  vision:\n    hidden_size: 100\n"));
  EXPECT_NE(e.find("model.vision: num_attention_heads must divide hidden_size"), std::string::npos) << e;
  // Found by a demo trial: the mismatch used to surface as a tensor-shape error at the first step.
  e = error_of(
      write("d2.yaml",
            "train:\n  total_steps: 5\nmodel:\n  vision:\n    hidden_size: 128\n    num_attention_heads: 2\n  text:\n"
            "    hidden_size: 64\n    num_attention_heads: 2\n"));
  EXPECT_NE(e.find("model: the text embedding width (text.projection_size, or text.hidden_size when it is 0: 64) "
                   "must equal vision.hidden_size (128)"),
            std::string::npos)
      << e;
  e = error_of(write("e.yaml", "train:\n  total_steps: 5\nschedule:\n  warmup_steps: 6\n"));
  EXPECT_NE(e.find("schedule.warmup_steps (6) exceeds train.total_steps (5)"), std::string::npos) << e;
}

TEST_F(ConfigTest, BaseInheritanceMergesMapsAndReplacesLists) {
  write(
      "models/tiny.yaml",
      "model:\n  name: tiny\n  vision:\n    hidden_size: 64\n    num_attention_heads: 2\n  text:\n    hidden_size: 64\n"
      "    num_attention_heads: 2\n");
  write("common.yaml",
        "optimizer:\n  lr: 0.5\n  frozen: ['a', 'b']\ntrain:\n  total_steps: 7\nschedule:\n  warmup_steps: 0\n");
  auto f = write("run.yaml",
                 "base: [models/tiny.yaml, common.yaml]\noptimizer:\n  frozen: ['c']\nmodel:\n  vision:\n    "
                 "patch_size: 8\n");
  RunConfig c = config::load<RunConfig>(f);
  EXPECT_EQ(c.model.name, "tiny");
  EXPECT_EQ(c.model.vision.hidden_size, 64);
  EXPECT_EQ(c.model.vision.patch_size, 8);
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.5);
  EXPECT_EQ(c.optimizer.frozen, std::vector<std::string>({"c"}));
  EXPECT_EQ(c.train.total_steps, 7);
}

TEST_F(ConfigTest, ErrorsPointIntoTheBaseFileThatSetTheValue) {
  auto base = write("base.yaml", "train:\n  total_steps: 5\n  log_every: -1\n");
  auto f = write("run.yaml", "base: base.yaml\n");
  std::string e = error_of(f);
  EXPECT_NE(e.find(base + ":3:14: train.log_every: must be greater than 0"), std::string::npos) << e;
}

TEST_F(ConfigTest, BaseCyclesAndMissingBasesAreErrors) {
  write("a.yaml", "base: b.yaml\n");
  write("b.yaml", "base: a.yaml\n");
  EXPECT_NE(error_of((dir_ / "a.yaml").string()).find("cycle in base"), std::string::npos);
  auto f = write("c.yaml", "base: nowhere.yaml\n");
  EXPECT_NE(error_of(f).find(f + ":1:7: base file"), std::string::npos);
  EXPECT_NE(error_of((dir_ / "missing.yaml").string()).find("config file not found"), std::string::npos);
}

TEST_F(ConfigTest, OverridesApplyInOrderAndAreNamedInErrors) {
  auto f = write("run.yaml", "train:\n  total_steps: 5\nschedule:\n  warmup_steps: 1\n");
  RunConfig c =
      config::load<RunConfig>(f, {"optimizer.lr=2e-3", "optimizer.frozen=[x, y]", "optimizer.lr=4e-3",
                                  "model.vision.naflex=true", "image.naflex=true", "train.self_distillation=false"});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 4e-3);
  EXPECT_EQ(c.optimizer.frozen, std::vector<std::string>({"x", "y"}));
  EXPECT_TRUE(c.model.vision.naflex);
  std::string e = error_of(f, {"optimizer.lrr=1"});
  EXPECT_NE(e.find("--set optimizer.lrr=1: optimizer.lrr: unknown key; did you mean 'lr'?"), std::string::npos) << e;
  EXPECT_NE(error_of(f, {"novalue"}).find("expected KEY=VALUE"), std::string::npos);
  // An empty value is the empty string, as a shell user means `--set eval.shards=`, not YAML's null.
  auto g =
      write("eval.yaml", "train:\n  total_steps: 5\nschedule:\n  warmup_steps: 1\neval:\n  shards: data/eval.tar\n");
  EXPECT_EQ(config::load<RunConfig>(g, {"eval.shards="}).eval.shards, "");
  EXPECT_EQ(config::load<RunConfig>(g, {"eval.shards= "}).eval.shards, "");
  std::string n = error_of(f, {"train.total_steps="});
  EXPECT_NE(n.find("--set train.total_steps=: train.total_steps"), std::string::npos) << n;
}

TEST_F(ConfigTest, DuplicateKeysAndInvalidYamlAreErrors) {
  auto f = write("dup.yaml", "train:\n  total_steps: 5\n  total_steps: 6\n");
  EXPECT_NE(error_of(f).find(":3:3: duplicate key 'total_steps'"), std::string::npos) << error_of(f);
  auto g = write("bad.yaml", "train: [1, 2\n");
  EXPECT_NE(error_of(g).find("invalid YAML"), std::string::npos);
}

// Found by the run_config fuzz target: an alias inside its own anchor recursed until the stack overflowed.
TEST_F(ConfigTest, SelfContainingAliasesAndAliasBombsAreErrors) {
  auto f = write("cycle.yaml", "a: &x {l: *x}\no: *x\n");
  EXPECT_NE(error_of(f).find("cycle.yaml:1:4: nested more than 64 levels deep (is it an alias that contains itself?)"),
            std::string::npos)
      << error_of(f);
  // Each anchor lists the previous one ten times: 10^6 values from nine short lines.
  std::string bomb = "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int i = 1; i < 6; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev;
    for (int k = 1; k < 10; ++k) bomb += ", " + prev;
    bomb += "]\n";
  }
  auto g = write("bomb.yaml", bomb);
  EXPECT_NE(error_of(g).find("more than 100000 values once YAML aliases are expanded"), std::string::npos)
      << error_of(g);
  // Aliases within the bounds still work, and a deep but finite nesting is fine.
  auto h = write("ok.yaml", "a: &x {l: 1}\nb: *x\nc: [[[[[[[[1]]]]]]]]\n");
  EXPECT_NO_THROW(load_config_tree(h));
}

TEST_F(ConfigTest, DumpReloadsToTheSameConfig) {
  auto f = write("run.yaml",
                 "train:\n  total_steps: 5\n  out_dir: '123'\nschedule:\n  warmup_steps: 2\noptimizer:\n  lr: 1.0\n  "
                 "frozen: ['^vision_model\\.']\n");
  RunConfig c = config::load<RunConfig>(f);
  std::string dumped = config::dump(c);
  auto g = write("dumped.yaml", dumped);
  RunConfig d = config::load<RunConfig>(g);
  EXPECT_EQ(config::dump(d), dumped);
  EXPECT_EQ(d.train.out_dir, "123");  // a string that looks like a number stays a string
  EXPECT_DOUBLE_EQ(d.optimizer.lr, 1.0);
  EXPECT_NE(dumped.find("lr: 1.0\n"), std::string::npos) << dumped;  // floats keep their decimal point
}

TEST_F(ConfigTest, KeyListCoversEveryField) {
  auto keys = config::list_keys<RunConfig>();
  auto has = [&](const std::string& p) {
    return std::any_of(keys.begin(), keys.end(), [&](const config::KeyInfo& k) { return k.path == p; });
  };
  EXPECT_TRUE(has("optimizer.lr"));
  EXPECT_TRUE(has("model.vision.patch_size"));
  EXPECT_TRUE(has("dist.backend"));
  auto steps =
      std::find_if(keys.begin(), keys.end(), [](const config::KeyInfo& k) { return k.path == "train.total_steps"; });
  ASSERT_NE(steps, keys.end());
  EXPECT_TRUE(steps->required);
  EXPECT_EQ(steps->type, "int");
}

}  // namespace
}  // namespace siglip2
