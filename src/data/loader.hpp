#pragma once
// The training data stream of one rank (docs/data.md): WebDataset shards split over ranks and loader
// threads, reshuffled each epoch, mixed by weight, shuffled again through a buffer, decoded and turned
// into batches by the threads in parallel. Batches are taken from the threads in turn, so the stream is a
// function of (seed, epoch, rank, worker) alone, and a LoaderState saved after any batch resumes it exactly.
#include <ATen/core/Tensor.h>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/batch.hpp"
#include "data/config.hpp"
#include "data/locca_targets.hpp"
#include "data/webdataset.hpp"

namespace siglip2 {

class Tokenizer;

// Where one source's stream of one worker stands inside its epoch, so that a resume reads its shuffle buffer's
// samples and the shard it was in, not the epoch up to there (docs/data.md, "Resume").
struct SourcePosition {
  int64_t shard = 0;        // index in the epoch's shard list (worker_shards) of the shard being read, or next to open
  int64_t offset = 0;       // in that shard, where the next sample's first header is (0: its start)
  int64_t read = 0;         // samples read into the shuffle buffer this epoch
  bool input_done = false;  // the epoch's shards are all read; the buffer drains
  std::vector<int64_t> buffer_shards;   // the shuffle buffer, in its order: each sample's shard index ...
  std::vector<int64_t> buffer_offsets;  // ... and offset (RawSample::offset)
  std::vector<int64_t> seekable;        // sorted: those shard indices that can be opened at an offset
  // A hand-over epoch (the rest of an epoch of a run with another number of ranks, hand_over_loader_state):
  // its shard list, each shard read from its offset, or only the sample at it (single != 0). Empty: the
  // epoch's list is worker_shards'. Indices above (shard, buffer_shards, seekable) are into this list then.
  std::vector<std::string> handover_shards;
  std::vector<int64_t> handover_offsets, handover_single, handover_seekable;
};

struct LoaderWorkerState {
  int64_t pulls = 0;                            // samples taken from the mixed stream, skipped ones included
  std::vector<int64_t> source_epoch;            // per source: the epoch being read
  std::vector<int64_t> source_emitted;          // per source: samples its shuffle buffer gave out in that epoch
  std::vector<SourcePosition> source_position;  // per source (empty in states of older versions: replayed)
  SkipCounts skipped;
  int64_t batches = 0;  // batches this worker produced (their NaFlex sequence lengths follow from it)
  bool done = false;    // finite epochs: nothing left
};

// Everything a resume needs; serialise with loader_state_to_json.
struct LoaderState {
  int64_t seed = 0;
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t batches = 0;      // handed out so far
  int64_t next_worker = 0;  // whose batch comes next
  std::vector<LoaderWorkerState> workers;

  SkipCounts skipped() const;  // summed over workers
};
std::string loader_state_to_json(const LoaderState& state);
LoaderState loader_state_from_json(const std::string& json);  // throws siglip2::Error when malformed

// Resuming on another number of ranks (or loader workers): this rank's state, built from the states of every
// rank of the saved run (`saved`, one per old rank, in rank order). Per source, what each old worker had not
// yet given out (its shuffle buffer's samples, the rest of the shard it was reading from the saved offset,
// the shards it had not opened, and for a worker an epoch behind the latest one any old worker reached, its
// whole shares of the epochs up to that) is dealt over the new ranks' workers as a hand-over epoch; after it
// each worker goes on with the next epoch, dealt for the new layout. So no sample is given out twice or lost.
// Not preserved: the order of the samples, and the draws seeded per rank and worker (mixing, augmentations),
// which go on from past every old worker's pull count. Resampled sources (data.resampled) start fresh draws.
// Throws siglip2::Error when the states disagree (seed, number of sources, batches handed out) or lack
// positions (an older version's state).
LoaderState hand_over_loader_state(const std::vector<LoaderState>& saved, const LoaderConfig& config, int64_t rank,
                                   int64_t world_size);

// The shards one worker reads in one epoch of one source (exposed for tests and `data inspect`).
std::vector<std::string> worker_shards(const std::vector<std::string>& shards, int64_t seed, int64_t source,
                                       int64_t epoch, int64_t rank, int64_t world_size, int64_t worker,
                                       int64_t workers);

// NaFlex training with image.naflex_sequence_lengths: the sequence length of the loader's batch number
// `batch` (counted over all workers, round-robin), the same on every rank so that ranks agree per step.
// Lengths at or above naflex_half_batch_length weigh double (their batches are half size). Without a
// list: max_num_patches.
int64_t naflex_sequence_length(const ImageConfig& image, int64_t seed, int64_t batch);

// Thrown by DataLoader::next when its interrupt function asked it to stop waiting. The state is that of the last
// batch returned, so a checkpoint taken now resumes exactly.
struct LoaderInterrupted : std::exception {
  const char* what() const noexcept override { return "data loader: interrupted while waiting for a batch"; }
};

class DataLoader {
 public:
  // Starts the worker threads. `resume`: a state from a loader with the same seed, rank, world size and
  // number of workers (else siglip2::Error); a resumed worker re-reads (without decoding) the samples of its
  // shuffle buffer, from the shards and offsets the state lists, and reopens the shard it was reading at the
  // sample it had reached.
  // When CUDA is available at run time, the batch tensors are allocated in pinned memory, so copies to
  // the GPU can be asynchronous.
  DataLoader(const LoaderConfig& config, const ImageConfig& image, const Tokenizer& tokenizer, int64_t rank,
             int64_t world_size, const LoaderState* resume = nullptr);
  // Without a tokenizer (nullptr) batches carry images, keys and labels only: input_ids stays undefined,
  // and config.locca must be false (benchmarks of decoding alone).
  DataLoader(const LoaderConfig& config, const ImageConfig& image, const Tokenizer* tokenizer, int64_t rank,
             int64_t world_size, const LoaderState* resume = nullptr);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch; nullopt when finite epochs are exhausted. The last batch of each worker may be short.
  // A worker's error (e.g. a source with no readable sample) is rethrown here.
  // Waiting for a batch throws LoaderInterrupted when the interrupt function (set_interrupt), polled every
  // 0.2 s with the seconds waited so far, returns true; and siglip2::Error naming the worker and what it is
  // doing when that worker has made no progress (no shard opened, no sample read) for data.stall_timeout_s.
  std::optional<Batch> next();
  const LoaderState& state() const;  // as of the last batch returned
  // A stop request to honour while waiting (the trainer's SIGTERM / SIGINT flag), given the seconds waited.
  void set_interrupt(std::function<bool(double)> interrupted);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with the worker threads
};

}  // namespace siglip2
