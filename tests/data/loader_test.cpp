#include "data/loader.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/error.hpp"
#include "data/shard_list.hpp"
#include "data_test_util.hpp"

namespace siglip2 {
namespace {

using testing::TempDir;

// `shards` shards "s{i}.tar" in `dir` with sizes 5, 6, 7, ... samples, keys "src_s{i}_{j}".
std::string make_source(const TempDir& dir, const std::string& src, int shards) {
  for (int i = 0; i < shards; ++i)
    testing::write_tar(dir.str(src + std::to_string(i) + ".tar"),
                       testing::good_samples(src + "_s" + std::to_string(i), 5 + i));
  return dir.str(src + "{0.." + std::to_string(shards - 1) + "}.tar");
}

// dir/cat_logged.sh FILE: appends FILE to `log`, then prints FILE (a pipe: shard whose runs can be counted).
void write_logging_cat(const TempDir& dir, const std::string& log) {
  std::ofstream script(dir.str("cat_logged.sh"));
  script << "echo \"$1\" >> '" << log << "'\nexec cat \"$1\"\n";
}

class LoaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("loader");
    pattern_a_ = make_source(*dir_, "a", 8);  // 5 + ... + 12 = 68 samples
    pattern_b_ = make_source(*dir_, "b", 4);
  }
  static void TearDownTestSuite() { delete dir_; }

  static LoaderConfig config() {
    LoaderConfig c;
    c.shards = {pattern_a_};
    c.batch_size = 3;
    c.workers = 2;
    c.shuffle_buffer = 10;
    c.seed = 5;
    return c;
  }
  // With two self-distillation crops of 16 px per image (patches of 8).
  static LoaderConfig crops_config() {
    LoaderConfig c = config();
    c.self_distillation = true;
    c.self_distillation_views.local_crops = 2;
    c.self_distillation_views.local_size = 16;
    return c;
  }
  static ImageConfig crops_image() {
    ImageConfig i = image();
    i.patch_size = 8;
    return i;
  }
  static ImageConfig image() {
    ImageConfig i;
    i.image_size = 16;
    return i;
  }
  static std::vector<std::string> keys(DataLoader& loader, int batches) {
    std::vector<std::string> out;
    for (int i = 0; i < batches; ++i) {
      auto b = loader.next();
      if (!b) break;
      out.insert(out.end(), b->keys.begin(), b->keys.end());
    }
    return out;
  }

  static inline TempDir* dir_ = nullptr;
  static inline std::string pattern_a_, pattern_b_;
};

TEST_F(LoaderTest, WorkerShardsPartitionEachEpoch) {
  std::vector<std::string> shards;
  for (int i = 0; i < 23; ++i) shards.push_back("s" + std::to_string(i));
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::multiset<std::string> all;
    for (int64_t rank = 0; rank < 3; ++rank)
      for (int64_t w = 0; w < 2; ++w)
        for (const auto& s : worker_shards(shards, 1, 0, epoch, rank, 3, w, 2)) all.insert(s);
    EXPECT_EQ(all, std::multiset<std::string>(shards.begin(), shards.end()));
  }
  EXPECT_NE(worker_shards(shards, 1, 0, 0, 0, 3, 0, 2), worker_shards(shards, 1, 0, 1, 0, 3, 0, 2));
}

TEST_F(LoaderTest, RanksAndWorkersSeeEverySampleOncePerEpoch) {
  for (int64_t epochs : {1, 2}) {
    LoaderConfig c = config();
    c.epochs = epochs;
    std::map<std::string, int> seen;
    for (int64_t rank = 0; rank < 2; ++rank) {
      DataLoader loader(c, image(), testing::test_tokenizer(), rank, 2);
      for (const auto& k : keys(loader, 1000)) ++seen[k];
    }
    EXPECT_EQ(seen.size(), 68u);
    for (const auto& [key, n] : seen) EXPECT_EQ(n, epochs) << key;
  }
}

TEST_F(LoaderTest, BatchesCarryEveryOutput) {
  LoaderConfig c = crops_config();
  ImageConfig i = crops_image();
  DataLoader loader(c, i, testing::test_tokenizer(), 0, 1);
  auto b = loader.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->pixel_values.sizes(), (std::vector<int64_t>{3, 3, 16, 16}));
  EXPECT_EQ(b->input_ids.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(b->labels.sizes(), (std::vector<int64_t>{3}));
  ASSERT_TRUE(b->locca);
  EXPECT_EQ(b->locca->grounded.targets.sizes(), (std::vector<int64_t>{3, 64}));
  EXPECT_EQ(b->local_views.sizes(), (std::vector<int64_t>{6, 3, 16, 16}));
}

// The trainer asks for crops only from the batch of the step where self-distillation starts: the batches
// before it have none, and from it on every batch (every worker's) equals the one a loader making crops
// throughout gives, crops, images and LocCa targets alike.
TEST_F(LoaderTest, CropsStartAtTheirBatchAndEqualThoseOfALoaderMakingThemThroughout) {
  LoaderConfig c = crops_config();
  ImageConfig i = crops_image();
  DataLoader always(c, i, testing::test_tokenizer(), 0, 1);
  c.self_distillation_from_batch = 3;
  DataLoader later(c, i, testing::test_tokenizer(), 0, 1);
  for (int n = 0; n < 7; ++n) {
    auto a = always.next(), b = later.next();
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->keys, b->keys);
    EXPECT_TRUE(torch::equal(a->pixel_values, b->pixel_values));
    EXPECT_TRUE(torch::equal(a->locca->referring.targets, b->locca->referring.targets));
    ASSERT_TRUE(a->local_views.defined());
    EXPECT_EQ(b->local_views.defined(), n >= 3) << "batch " << n;
    if (n >= 3) {
      EXPECT_TRUE(torch::equal(a->local_views, b->local_views)) << "batch " << n;
    }
  }
  // Resumed after two batches (the trainer sets from_batch = handed + (start step - step) = 2 + 1): the same
  // crops from batch 3 on. A state without per-worker batch counts (older versions) gets them round-robin.
  LoaderState saved;
  {
    DataLoader first(c, i, testing::test_tokenizer(), 0, 1);
    ASSERT_TRUE(first.next() && first.next());
    saved = first.state();
  }
  for (bool legacy : {false, true}) {
    nlohmann::json j = nlohmann::json::parse(loader_state_to_json(saved));
    if (legacy)
      for (auto& w : j["workers"]) w.erase("batches");
    const LoaderState state = loader_state_from_json(j.dump());
    EXPECT_EQ(state.workers[0].batches, saved.workers[0].batches);
    EXPECT_EQ(state.workers[1].batches, saved.workers[1].batches);
    DataLoader reference(c, i, testing::test_tokenizer(), 0, 1), resumed(c, i, testing::test_tokenizer(), 0, 1, &state);
    ASSERT_TRUE(reference.next() && reference.next());
    for (int n = 2; n < 6; ++n) {
      auto a = reference.next(), b = resumed.next();
      ASSERT_TRUE(a && b);
      EXPECT_EQ(a->keys, b->keys);
      ASSERT_EQ(b->local_views.defined(), n >= 3) << "batch " << n << (legacy ? " (legacy state)" : "");
      if (n >= 3) {
        EXPECT_TRUE(torch::equal(a->local_views, b->local_views)) << "batch " << n;
      }
    }
  }
}

TEST_F(LoaderTest, NaflexBatches) {
  ImageConfig i = image();
  i.naflex = true;
  i.patch_size = 4;
  i.max_num_patches = 20;
  DataLoader loader(config(), i, testing::test_tokenizer(), 0, 1);
  auto b = loader.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->pixel_values.sizes(), (std::vector<int64_t>{3, 20, 48}));
  EXPECT_EQ(b->pixel_attention_mask.sizes(), (std::vector<int64_t>{3, 20}));
  EXPECT_EQ(b->spatial_shapes.sizes(), (std::vector<int64_t>{3, 2}));
}

// SigLIP 2's NaFlex stage: a sequence length drawn per batch, the same on every rank; the longest
// lengths come in half batches, drawn twice as often; resuming keeps the draws.
TEST_F(LoaderTest, NaflexSequenceLengthPerBatch) {
  ImageConfig i = image();
  i.naflex = true;
  i.patch_size = 4;
  i.naflex_sequence_lengths = {8, 16, 24};
  i.naflex_half_batch_length = 24;
  LoaderConfig c = config();
  c.batch_size = 4;
  std::map<int64_t, int> seen;
  for (int64_t k = 0; k < 4000; ++k) seen[naflex_sequence_length(i, c.seed, k)]++;
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_NEAR(seen[24] / 4000.0, 0.5, 0.03);  // weights 1, 1, 2
  EXPECT_NEAR(seen[8] / 4000.0, 0.25, 0.03);
  std::vector<std::pair<int64_t, int64_t>> shapes[2];
  std::string saved;
  for (int rank = 0; rank < 2; ++rank) {
    DataLoader loader(c, i, testing::test_tokenizer(), rank, 2);
    for (int64_t k = 0; k < 6; ++k) {
      auto b = loader.next();
      ASSERT_TRUE(b);
      const int64_t seq = b->pixel_values.size(1);
      EXPECT_EQ(seq, naflex_sequence_length(i, c.seed, k)) << "batch " << k;
      EXPECT_EQ(b->pixel_values.size(0), seq >= 24 ? 2 : 4);
      shapes[rank].emplace_back(b->pixel_values.size(0), seq);
      if (rank == 0 && k == 2) saved = loader_state_to_json(loader.state());
    }
  }
  EXPECT_EQ(shapes[0], shapes[1]);  // ranks agree on every step's batch shape
  const LoaderState state = loader_state_from_json(saved);
  DataLoader resumed(c, i, testing::test_tokenizer(), 0, 2, &state);
  for (size_t k = 3; k < 6; ++k) {
    auto b = resumed.next();
    ASSERT_TRUE(b);
    EXPECT_EQ(std::make_pair(b->pixel_values.size(0), b->pixel_values.size(1)), shapes[0][k]) << "batch " << k;
  }
}

// Without a tokenizer (`data bench`) the images are those of the full loader; there are no texts.
TEST_F(LoaderTest, WithoutTokenizerSameImagesNoTexts) {
  LoaderConfig c = config();
  c.locca = false;
  DataLoader with(c, image(), testing::test_tokenizer(), 0, 1);
  DataLoader without(c, image(), nullptr, 0, 1);
  for (int i = 0; i < 3; ++i) {
    auto a = with.next(), b = without.next();
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->keys, b->keys);
    EXPECT_TRUE(torch::equal(a->pixel_values, b->pixel_values));
    EXPECT_TRUE(a->input_ids.defined());
    EXPECT_FALSE(b->input_ids.defined());
    EXPECT_FALSE(b->locca);
  }
  c.locca = true;
  EXPECT_THROW(DataLoader(c, image(), nullptr, 0, 1), ConfigError);
}

TEST_F(LoaderTest, SameSeedSameStreamOtherSeedOtherStream) {
  DataLoader a(config(), image(), testing::test_tokenizer(), 0, 1);
  DataLoader b(config(), image(), testing::test_tokenizer(), 0, 1);
  LoaderConfig other = config();
  other.seed = 6;
  DataLoader c(other, image(), testing::test_tokenizer(), 0, 1);
  const auto ka = keys(a, 10);
  EXPECT_EQ(ka, keys(b, 10));
  EXPECT_NE(ka, keys(c, 10));
}

// Stop after N batches, save the state as JSON, start a new loader from it: the following batches are
// exactly those of the run that never stopped, across epoch boundaries, images and LocCa targets included.
TEST_F(LoaderTest, ResumeContinuesTheUninterruptedStream) {
  LoaderConfig c = config();
  c.shards = {pattern_a_, pattern_b_};
  c.weights = {2, 1};
  c.self_distillation = true;
  c.self_distillation_views.local_crops = 1;
  c.self_distillation_views.local_size = 16;
  ImageConfig i = image();
  i.patch_size = 8;
  std::vector<Batch> full;
  {
    DataLoader loader(c, i, testing::test_tokenizer(), 0, 1);
    for (int n = 0; n < 50; ++n) full.push_back(*loader.next());  // 150 samples: past one epoch of both
  }
  for (int stop : {1, 7, 24}) {
    std::string saved;
    {
      DataLoader loader(c, i, testing::test_tokenizer(), 0, 1);
      for (int n = 0; n < stop; ++n) loader.next();
      saved = loader_state_to_json(loader.state());
    }
    const LoaderState state = loader_state_from_json(saved);
    EXPECT_EQ(state.batches, stop);
    DataLoader resumed(c, i, testing::test_tokenizer(), 0, 1, &state);
    for (int n = stop; n < 50; ++n) {
      auto b = resumed.next();
      ASSERT_TRUE(b);
      ASSERT_EQ(b->keys, full[n].keys) << "batch " << n << " after resuming at " << stop;
      EXPECT_TRUE(torch::equal(b->pixel_values, full[n].pixel_values));
      EXPECT_TRUE(torch::equal(b->locca->referring.targets, full[n].locca->referring.targets));
      EXPECT_TRUE(torch::equal(b->locca->caption.parallel, full[n].locca->caption.parallel));
      EXPECT_TRUE(torch::equal(b->local_views, full[n].local_views));
    }
  }
}

// Resuming on another number of ranks (and loader workers): the samples the old ranks had not given out of
// the current epoch are given out once by the new ranks, none twice, none lost, also when some old workers had
// already started the next epoch (8 and 11 batches taken); then the next epoch is whole; the new ranks get
// about the same number of samples;
// and a resume inside the hand-over epoch goes on as the uninterrupted stream.
TEST_F(LoaderTest, HandOverToAnotherNumberOfRanksRepeatsNoSampleOfTheEpoch) {
  struct Layout {
    int64_t old_world, new_world, new_workers;
    int taken;  // batches each old rank gave out before the checkpoint
  };
  for (const Layout& l : {Layout{2, 3, 2, 5}, Layout{3, 2, 3, 4}, Layout{2, 1, 2, 9}, Layout{2, 3, 2, 0},
                          Layout{2, 3, 2, 8}, Layout{2, 1, 2, 11}, Layout{2, 2, 3, 5}}) {
    for (int64_t epochs : {1, 2}) {
      SCOPED_TRACE(::testing::Message() << l.old_world << " -> " << l.new_world << " ranks, " << l.taken
                                        << " batches taken, " << epochs << " epoch(s)");
      LoaderConfig c = config();
      c.epochs = epochs;
      std::map<std::string, int> seen;
      std::vector<LoaderState> saved;
      for (int64_t r = 0; r < l.old_world; ++r) {
        DataLoader loader(c, image(), testing::test_tokenizer(), r, l.old_world);
        for (const auto& k : keys(loader, l.taken)) ++seen[k];
        saved.push_back(loader_state_from_json(loader_state_to_json(loader.state())));
      }
      LoaderConfig n = c;
      n.workers = l.new_workers;
      n.shuffle_buffer = 2;  // smaller than the buffered samples handed over: saves land inside their runs
      std::vector<std::string> rank0;
      for (int64_t r = 0; r < l.new_world; ++r) {
        const LoaderState state = hand_over_loader_state(saved, n, r, l.new_world);
        DataLoader loader(n, image(), testing::test_tokenizer(), r, l.new_world, &state);
        const std::vector<std::string> got = keys(loader, 1000);
        for (const auto& k : got) ++seen[k];
        if (r == 0) rank0 = got;
      }
      EXPECT_EQ(seen.size(), 68u);
      for (const auto& [key, count] : seen) EXPECT_EQ(count, epochs) << key;

      // Saved inside the hand-over epoch and resumed: the same stream as without the interruption.
      const LoaderState state = hand_over_loader_state(saved, n, 0, l.new_world);
      std::vector<std::string> before;
      LoaderState middle;
      {
        DataLoader loader(n, image(), testing::test_tokenizer(), 0, l.new_world, &state);
        before = keys(loader, 2);
        middle = loader_state_from_json(loader_state_to_json(loader.state()));
      }
      DataLoader resumed(n, image(), testing::test_tokenizer(), 0, l.new_world, &middle);
      std::vector<std::string> after = keys(resumed, 1000);
      before.insert(before.end(), after.begin(), after.end());
      EXPECT_EQ(before, rank0);
    }
  }
  // Resampled sources start fresh draws: the new ranks do not replay the run's first batches.
  {
    LoaderConfig c = config();
    c.resampled = true;
    std::vector<LoaderState> saved;
    std::set<std::vector<std::string>> first_batches;
    for (int64_t r = 0; r < 2; ++r) {
      DataLoader loader(c, image(), testing::test_tokenizer(), r, 2);
      for (int n = 0; n < 4; ++n) first_batches.insert(loader.next()->keys);
      saved.push_back(loader_state_from_json(loader_state_to_json(loader.state())));
    }
    for (int64_t r = 0; r < 3; ++r) {
      const LoaderState state = hand_over_loader_state(saved, c, r, 3);
      DataLoader loader(c, image(), testing::test_tokenizer(), r, 3, &state);
      for (int n = 0; n < 4; ++n) EXPECT_EQ(first_batches.count(loader.next()->keys), 0u) << "rank " << r;
    }
  }
  // Another seed is refused with a message naming it.
  LoaderConfig c = config();
  std::vector<LoaderState> saved;
  {
    DataLoader loader(c, image(), testing::test_tokenizer(), 0, 1);
    keys(loader, 1);
    saved.push_back(loader.state());
  }
  c.seed = 6;
  EXPECT_THROW(
      {
        try {
          hand_over_loader_state(saved, c, 0, 2);
        } catch (const Error& e) {
          EXPECT_THAT(e.what(), ::testing::HasSubstr("data.seed 5"));
          throw;
        }
      },
      Error);
}

// The hand-over reads each shard's buffered samples in one pass per worker: through a pipe: command that logs
// its runs, 4 shards of 30 samples, buffers of 40 (so most buffered samples share a shard), 2 workers handed
// over to 3.
TEST(LoaderHandOver, OpensEachShardOncePerWorkerForItsBufferedSamples) {
  TempDir dir("loader_handover");
  for (int i = 0; i < 4; ++i)
    testing::write_tar(dir.str("h" + std::to_string(i) + ".tar"), testing::good_samples("h" + std::to_string(i), 30));
  const std::string log = dir.str("runs.log");
  write_logging_cat(dir, log);
  ImageConfig image;
  image.image_size = 16;
  LoaderConfig c;
  c.shards = {"pipe:sh " + dir.str("cat_logged.sh") + " " + dir.str("h{0..3}.tar")};
  c.batch_size = 5;
  c.workers = 2;
  c.shuffle_buffer = 40;
  c.seed = 3;
  c.epochs = 1;
  c.locca = false;
  std::map<std::string, int> seen;
  std::vector<LoaderState> saved;
  {
    DataLoader loader(c, image, testing::test_tokenizer(), 0, 1);
    for (int n = 0; n < 4; ++n) {
      const std::optional<Batch> b = loader.next();
      ASSERT_TRUE(b);
      for (const auto& k : b->keys) ++seen[k];
    }
    saved.push_back(loader_state_from_json(loader_state_to_json(loader.state())));
  }
  LoaderConfig one = c;
  one.workers = 3;
  const LoaderState state = hand_over_loader_state(saved, one, 0, 1);
  // At most one run per worker for each shard its buffered samples come from, and one per other piece.
  size_t singles = 0, others = 0, bound = 0;
  for (const auto& w : state.workers) {
    const SourcePosition& p = w.source_position.at(0);
    std::set<std::string> single_shards;
    for (size_t i = 0; i < p.handover_shards.size(); ++i) {
      if (p.handover_single[i] != 0) {
        ++singles;
        single_shards.insert(p.handover_shards[i]);
      } else {
        ++others;
      }
    }
    bound += single_shards.size();
  }
  bound += others;
  ASSERT_GT(singles, 20u);  // the buffers' samples
  std::filesystem::remove(log);
  DataLoader loader(one, image, testing::test_tokenizer(), 0, 1, &state);
  while (auto b = loader.next())
    for (const auto& k : b->keys) ++seen[k];
  EXPECT_EQ(seen.size(), 120u);
  for (const auto& [key, n] : seen) EXPECT_EQ(n, 1) << key;
  size_t runs = 0;
  {
    std::ifstream in(log);
    for (std::string line; std::getline(in, line);) ++runs;
  }
  EXPECT_LE(runs, bound) << singles << " buffered samples";
}

// 1,000 small shards (4 samples each), a shuffle buffer of 3, stopped at 90% of the epoch: the resumed worker
// opens at most 2 shards before its first batch (the shards of its buffered samples and the one it was in;
// counted through a pipe: command that logs each open) instead of the ~450 a replay of the epoch reads, and
// the stream goes on as the uninterrupted one, batch for batch. Files (opened at the saved offsets, later
// epochs included) and pipes (read from their start, the samples before the offsets skipped unread) alike.
TEST(LoaderResume, ReadsTheBufferAndTheCurrentShardNotTheEpoch) {
  TempDir dir("loader_resume");
  for (int i = 0; i < 1000; ++i)
    testing::write_tar(dir.str("s" + std::to_string(i) + ".tar"), testing::good_samples("s" + std::to_string(i), 4));
  const std::string log = dir.str("opens.log");
  write_logging_cat(dir, log);
  ImageConfig image;
  image.image_size = 16;
  for (const bool pipe : {true, false}) {
    LoaderConfig c;
    c.shards = {pipe ? "pipe:sh " + dir.str("cat_logged.sh") + " " + dir.str("s{0..999}.tar")
                     : dir.str("s{0..999}.tar")};
    c.batch_size = 10;
    c.workers = 2;
    c.shuffle_buffer = 3;
    c.seed = 11;
    c.locca = false;
    const int epoch_batches = 4000 / 10, stop = epoch_batches * 9 / 10, more = pipe ? 60 : epoch_batches;
    std::vector<Batch> full;
    {
      DataLoader loader(c, image, testing::test_tokenizer(), 0, 1);
      for (int n = 0; n < stop + more; ++n) full.push_back(*loader.next());
    }
    std::string saved;
    {
      DataLoader loader(c, image, testing::test_tokenizer(), 0, 1);
      for (int n = 0; n < stop; ++n) loader.next();
      saved = loader_state_to_json(loader.state());
    }
    const LoaderState state = loader_state_from_json(saved);
    std::filesystem::remove(log);
    DataLoader resumed(c, image, testing::test_tokenizer(), 0, 1, &state);
    for (int n = stop; n < stop + more; ++n) {
      auto b = resumed.next();
      if (n == stop && pipe) {
        // The opens of the restore: shards at or before the one each worker was in (its epoch's list); what it
        // opens after them is new reading, which the uninterrupted run does too.
        std::vector<std::string> opened;
        {
          std::ifstream in(log);
          for (std::string line; std::getline(in, line);)
            opened.push_back("pipe:sh " + dir.str("cat_logged.sh") + " " + line);
        }
        for (int64_t w = 0; w < c.workers; ++w) {
          const SourcePosition& p = state.workers[static_cast<size_t>(w)].source_position.at(0);
          const auto list = worker_shards(expand_shard_patterns(c.shards), c.seed, 0,
                                          state.workers[static_cast<size_t>(w)].source_epoch.at(0), 0, 1, w, c.workers);
          const std::set<std::string> before(list.begin(), list.begin() + p.shard + 1);
          const auto restore_opens =
              std::count_if(opened.begin(), opened.end(), [&](const std::string& o) { return before.count(o) > 0; });
          EXPECT_LE(restore_opens, 2) << "worker " << w << " was in shard " << p.shard << " of " << list.size();
          EXPECT_GE(p.shard, static_cast<int64_t>(list.size()) * 8 / 10);  // a replay would open all of those
        }
      }
      ASSERT_TRUE(b);
      ASSERT_EQ(b->keys, full[n].keys) << (pipe ? "pipe" : "files") << ": batch " << n << " after resuming at " << stop;
      EXPECT_TRUE(torch::equal(b->pixel_values, full[n].pixel_values));
    }
  }
}

// The same shards through pipe:cat give the same stream, batch for batch.
TEST_F(LoaderTest, PipeShardsGiveTheStreamOfTheFiles) {
  LoaderConfig files = config();
  LoaderConfig piped = config();
  piped.shards = {"pipe:cat " + pattern_a_};
  DataLoader a(files, image(), testing::test_tokenizer(), 0, 1);
  DataLoader b(piped, image(), testing::test_tokenizer(), 0, 1);
  for (int n = 0; n < 30; ++n) {  // 90 samples: past the first epoch of 68
    auto x = a.next();
    auto y = b.next();
    ASSERT_TRUE(x && y);
    ASSERT_EQ(x->keys, y->keys) << "batch " << n;
    EXPECT_TRUE(torch::equal(x->pixel_values, y->pixel_values));
  }
  EXPECT_TRUE(b.state().skipped().empty());
}

TEST_F(LoaderTest, ResumeRejectsAnotherLayout) {
  DataLoader loader(config(), image(), testing::test_tokenizer(), 0, 1);
  loader.next();
  const LoaderState state = loader.state();
  LoaderConfig c = config();
  c.workers = 1;
  EXPECT_THROW(DataLoader(c, image(), testing::test_tokenizer(), 0, 1, &state), Error);
  EXPECT_THROW(DataLoader(config(), image(), testing::test_tokenizer(), 0, 2, &state), Error);
  EXPECT_THROW(loader_state_from_json("{\"seed\": 1}"), Error);
}

TEST_F(LoaderTest, WeightedMixing) {
  LoaderConfig c = config();
  c.shards = {pattern_a_, pattern_b_};
  c.weights = {3, 1};
  c.shuffle_buffer = 0;
  DataLoader loader(c, image(), testing::test_tokenizer(), 0, 1);
  const auto ks = keys(loader, 200);
  ASSERT_EQ(ks.size(), 600u);
  double from_a = 0;
  for (const auto& k : ks) from_a += k[0] == 'a';
  EXPECT_NEAR(from_a / ks.size(), 0.75, 0.05);

  c.weights = {0, 1};
  DataLoader only_b(c, image(), testing::test_tokenizer(), 0, 1);
  for (const auto& k : keys(only_b, 20)) EXPECT_EQ(k[0], 'b');
}

// data.resampled (open_clip's --dataset-resampled): 4 shards for 2 ranks x 3 workers; every rank and worker
// draws from all of them, with replacement, each draw uniform; the stream resumes exactly; finite epochs are
// virtual, of samples_per_epoch.
TEST_F(LoaderTest, ResampledStreamsDrawShardsWithReplacement) {
  LoaderConfig c = config();
  c.shards = {pattern_b_};  // 4 shards of 5..8 samples: fewer than ranks x workers
  c.workers = 3;
  c.resampled = true;
  c.shuffle_buffer = 4;
  std::map<std::string, int> per_shard;
  std::vector<std::string> rank_keys[2];
  for (int64_t rank : {0, 1}) {
    DataLoader loader(c, image(), testing::test_tokenizer(), rank, 2);
    rank_keys[rank] = keys(loader, 200);  // 600 samples
    for (const auto& k : rank_keys[rank]) ++per_shard[k.substr(0, k.rfind('_'))];
  }
  EXPECT_EQ(rank_keys[0].size(), 600u);
  EXPECT_NE(rank_keys[0], rank_keys[1]);
  // Uniform draws: samples per shard in proportion to its size (5, 6, 7, 8 of 26), within 25% over 1,200.
  ASSERT_EQ(per_shard.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const double expected = 1200.0 * (5 + i) / 26.0;
    EXPECT_NEAR(per_shard["b_s" + std::to_string(i)], expected, 0.25 * expected) << "shard " << i;
  }

  // Exact resume, mid-shard and past many draws.
  std::vector<Batch> full;
  {
    DataLoader loader(c, image(), testing::test_tokenizer(), 1, 2);
    for (int n = 0; n < 60; ++n) full.push_back(*loader.next());
  }
  for (int stop : {5, 37}) {
    LoaderState state;
    {
      DataLoader loader(c, image(), testing::test_tokenizer(), 1, 2);
      for (int n = 0; n < stop; ++n) loader.next();
      state = loader_state_from_json(loader_state_to_json(loader.state()));
    }
    DataLoader resumed(c, image(), testing::test_tokenizer(), 1, 2, &state);
    for (int n = stop; n < 60; ++n) {
      auto b = resumed.next();
      ASSERT_TRUE(b);
      ASSERT_EQ(b->keys, full[n].keys) << "batch " << n << " after resuming at " << stop;
      EXPECT_TRUE(torch::equal(b->pixel_values, full[n].pixel_values));
    }
  }

  // Two virtual epochs of 60 samples over 2 ranks x 3 workers: 10 per worker and epoch, 20 in all.
  c.epochs = 2;
  EXPECT_NE(c.check(), "");  // finite epochs need samples_per_epoch
  c.samples_per_epoch = 60;
  EXPECT_EQ(c.check(), "");
  DataLoader finite(c, image(), testing::test_tokenizer(), 0, 2);
  size_t samples = 0;
  while (auto b = finite.next()) samples += b->keys.size();
  EXPECT_EQ(samples, 60u);  // 3 workers x 20
}

TEST_F(LoaderTest, TooFewShardsForRanksTimesWorkers) {
  LoaderConfig c = config();
  c.shards = {pattern_b_};  // 4 shards
  c.workers = 3;
  EXPECT_THROW(DataLoader(c, image(), testing::test_tokenizer(), 0, 2), ConfigError);
}

}  // namespace
}  // namespace siglip2
