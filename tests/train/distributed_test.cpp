#include "train/distributed.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>

#include "common/error.hpp"

namespace siglip2 {
namespace {

TEST(SlurmNodeList, FirstHost) {
  EXPECT_EQ(first_slurm_host("node17"), "node17");
  EXPECT_EQ(first_slurm_host("gpu[003-004,007],login1"), "gpu003");
  EXPECT_EQ(first_slurm_host("a1,b2"), "a1");
  EXPECT_EQ(first_slurm_host("rack[12,3]-n[1-4]"), "rack12-n[1-4]");
  EXPECT_EQ(first_slurm_host("x[9]"), "x9");
}

class EnvGuard {
 public:
  explicit EnvGuard(std::vector<std::pair<std::string, std::string>> vars) {
    for (const char* n : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                          "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT", "SLURM_PROCID", "SLURM_NTASKS",
                          "SLURM_LOCALID", "SLURM_JOB_NODELIST", "SLURM_NODELIST", "SLURM_NTASKS_PER_NODE"}) {
      const char* old = std::getenv(n);
      saved_.emplace_back(n, old ? std::optional<std::string>(old) : std::nullopt);
      unsetenv(n);
    }
    for (auto& [k, v] : vars) setenv(k.c_str(), v.c_str(), 1);
  }
  ~EnvGuard() {
    for (auto& [k, v] : saved_) v ? (void)setenv(k.c_str(), v->c_str(), 1) : (void)unsetenv(k.c_str());
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST(DistEnv, SingleProcessWithoutLauncher) {
  EnvGuard g({});
  DistEnv e = dist_env_from_environment();
  EXPECT_EQ(e.launcher, "none");
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.rank, 0);
}

TEST(DistEnv, Torchrun) {
  EnvGuard g({{"RANK", "3"},
              {"WORLD_SIZE", "8"},
              {"LOCAL_RANK", "1"},
              {"MASTER_ADDR", "10.1.2.3"},
              {"MASTER_PORT", "1234"},
              {"TORCHELASTIC_USE_AGENT_STORE", "True"},
              {"TORCHELASTIC_RESTART_COUNT", "2"}});
  DistEnv e = dist_env_from_environment();
  EXPECT_EQ(e.launcher, "torchrun");
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "10.1.2.3");
  EXPECT_EQ(e.master_port, 1234);
  EXPECT_TRUE(e.agent_store);
  EXPECT_EQ(e.restart_count, 2);
}

TEST(DistEnv, Slurm) {
  EnvGuard g(
      {{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "5"}, {"SLURM_JOB_NODELIST", "gpu[010-011]"}});
  DistEnv e = dist_env_from_environment();
  EXPECT_EQ(e.launcher, "slurm");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 16);
  EXPECT_EQ(e.master_addr, "gpu010");
  EXPECT_EQ(e.master_port, 29500);
}

TEST(DistEnv, InconsistentValuesNameTheVariable) {
  {
    EnvGuard g({{"RANK", "2"}, {"WORLD_SIZE", "2"}});
    EXPECT_THROW(dist_env_from_environment(), ConfigError);
  }
  {
    EnvGuard g({{"RANK", "0"}, {"WORLD_SIZE", "two"}});
    try {
      dist_env_from_environment();
      FAIL();
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("WORLD_SIZE='two'"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace siglip2
