#include "data/loader.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>
#include <numeric>
#include <thread>
#include <tuple>
#include <unordered_set>

#include "common/error.hpp"
#include "common/logging.hpp"
#include "data/image.hpp"
#include "data/rng.hpp"
#include "data/self_distillation_views.hpp"
#include "data/shard_list.hpp"
#include "data/tokenizer.hpp"

namespace siglip2 {
namespace {

// Tags keep the seeds of different decisions apart.
constexpr uint64_t kShardOrderTag = 1, kBufferTag = 2, kMixTag = 3, kSampleTag = 4, kLengthTag = 5, kResampleTag = 6,
                   kHandoverTag = 7;

// Skipped samples are reported at most once per reason per interval, with the running count.
class SkipReporter {
 public:
  void report(const std::string& reason, const std::string& what, int64_t count) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = last_.find(reason);
    if (it != last_.end() && now - it->second < std::chrono::seconds(30)) return;
    last_[reason] = now;
    log_warn("data: skipped " + what + ": " + reason + " (" + std::to_string(count) +
             " so far on this worker; reported at most every 30 s)");
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_;
};

struct Shared {
  LoaderConfig config;
  ImageConfig image;
  std::shared_ptr<const Tokenizer> tokenizer;  // null: no texts in the batches
  int64_t rank = 0, world_size = 1;
  bool pin = false;                               // CUDA at run time: batches in page-locked memory
  std::vector<std::vector<std::string>> sources;  // expanded shard lists
  std::vector<double> weights;
  SkipReporter reporter;

  // Set when the loader shuts down: workers stop between samples and in retry delays.
  std::atomic<bool> stopping{false};

  // What each worker is doing, for the stall error ("opening 'x.tar' (attempt 2)", "reading 'x.tar'"), and
  // when it last made progress (a shard opened or a sample read; steady-clock nanoseconds).
  std::mutex activity_mutex;
  std::vector<std::string> activity;
  std::unique_ptr<std::atomic<int64_t>[]> progress;
  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void touch(int64_t worker) { progress[static_cast<size_t>(worker)].store(now_ns()); }
  void set_activity(int64_t worker, std::string what) {
    touch(worker);
    std::lock_guard<std::mutex> lock(activity_mutex);
    activity[static_cast<size_t>(worker)] = std::move(what);
  }
  std::string activity_of(int64_t worker) {
    std::lock_guard<std::mutex> lock(activity_mutex);
    return activity[static_cast<size_t>(worker)];
  }

  // Per source, the outcomes of this rank's last kShardWindow shard opens (all workers): true = opened.
  static constexpr size_t kShardWindow = 20;
  std::mutex opens_mutex;
  std::vector<std::deque<bool>> opens;
  std::unordered_set<std::string> missing_at_start;  // counted when skipped, but not against the source
  // Records an open; the share of failures in a full window, or -1 while the window fills.
  double record_open(size_t source, bool ok) {
    std::lock_guard<std::mutex> lock(opens_mutex);
    auto& w = opens[source];
    w.push_back(ok);
    if (w.size() > kShardWindow) w.pop_front();
    if (w.size() < kShardWindow) return -1;
    return static_cast<double>(std::count(w.begin(), w.end(), false)) / static_cast<double>(kShardWindow);
  }
};

// One source as one worker sees it: its shards of the epoch, in order, through a shuffle buffer.
class SourceStream {
 public:
  // Resumes where `position` says (its buffer re-read from where each sample lives), or, from a state without
  // positions, by replaying the epoch's first `emitted` samples.
  SourceStream(Shared& shared, int64_t source, int64_t worker, int64_t epoch, int64_t emitted,
               const SourcePosition* position, SkipCounts& skipped)
      : s_(shared), source_(source), worker_(worker), epoch_(epoch), skipped_(skipped) {
    finished_ = s_.config.epochs > 0 && epoch_ >= s_.config.epochs;
    if (finished_) return;
    if (position) {
      for (size_t i = 0; i < position->handover_shards.size(); ++i)
        handover_.push_back({position->handover_shards[i], position->handover_offsets.at(i),
                             position->handover_single.at(i) != 0, position->handover_seekable.at(i) != 0});
    }
    start_epoch();
    if (position) {
      restore(emitted, *position);
      return;
    }
    counting_ = false;  // replay: the counts of this part are already in the state
    for (int64_t i = 0; i < emitted && next(); ++i) {
    }
    counting_ = true;
  }

  std::optional<RawSample> next() {
    while (!finished_) {
      const size_t capacity = static_cast<size_t>(std::max<int64_t>(1, s_.config.shuffle_buffer));
      while (!input_done_ && buffer_.size() < capacity) {
        std::optional<RawSample> raw = next_input();
        if (!raw) {
          input_done_ = true;
        } else {
          buffer_.push_back(std::move(*raw));
          buffer_shard_.push_back(static_cast<int64_t>(shard_pos_) - 1);
          ++read_in_epoch_;
        }
      }
      if (buffer_.empty()) {
        end_epoch();
        continue;
      }
      const size_t j = below(rng_, buffer_.size());
      std::swap(buffer_[j], buffer_.back());
      std::swap(buffer_shard_[j], buffer_shard_.back());
      RawSample out = std::move(buffer_.back());
      buffer_.pop_back();
      buffer_shard_.pop_back();
      ++emitted_;
      return out;
    }
    return std::nullopt;
  }

  int64_t epoch() const { return epoch_; }
  int64_t emitted() const { return emitted_; }
  bool finished() const { return finished_; }

  // The shards of the epoch, by position: the worker's share of the reshuffled list, or with data.resampled an
  // endless sequence, draw i a uniform pick among all the source's shards seeded by (seed, source, rank, worker,
  // i), as webdataset's ResampledShards.
  size_t shard_count() const {
    if (!handover_.empty()) return handover_.size();
    return s_.config.resampled ? std::numeric_limits<size_t>::max() : shards_.size();
  }
  std::string shard_path(size_t i) const {
    if (!handover_.empty()) return handover_[i].path;
    if (!s_.config.resampled) return shards_[i];
    const auto& all = s_.sources[static_cast<size_t>(source_)];
    DataRng rng(mix_seed({uint64_t(s_.config.seed), kResampleTag, uint64_t(source_), uint64_t(s_.rank),
                          uint64_t(worker_), uint64_t(i)}));
    return all[below(rng, all.size())];
  }

  // Where the stream stands, for the loader state. A shard read to its end is closed first (its error, if any,
  // counted), in the uninterrupted run as in a resumed one.
  SourcePosition position() {
    SourcePosition p;
    if (reader_ && !lookahead_ && reader_->exhausted()) close_reader();
    if (reader_ && !single_reader_) {
      p.shard = static_cast<int64_t>(shard_pos_) - 1;
      p.offset = lookahead_ ? lookahead_->offset : reader_->next_offset();
    } else {
      p.shard = static_cast<int64_t>(shard_pos_);
    }
    p.read = read_in_epoch_;
    p.input_done = input_done_;
    p.buffer_shards = buffer_shard_;
    p.buffer_offsets.reserve(buffer_.size());
    for (const auto& raw : buffer_) p.buffer_offsets.push_back(raw.offset);
    std::vector<int64_t> shards = buffer_shard_;
    shards.push_back(p.shard);
    std::sort(shards.begin(), shards.end());
    shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
    for (int64_t k : shards)
      if (auto it = seekable_.find(k); it != seekable_.end() && it->second) p.seekable.push_back(k);
    for (const auto& piece : handover_) {
      p.handover_shards.push_back(piece.path);
      p.handover_offsets.push_back(piece.offset);
      p.handover_single.push_back(piece.single ? 1 : 0);
      p.handover_seekable.push_back(piece.seekable ? 1 : 0);
    }
    return p;
  }

 private:
  void start_epoch() {
    if (!s_.config.resampled && handover_.empty())
      shards_ = worker_shards(s_.sources[source_], s_.config.seed, source_, epoch_, s_.rank, s_.world_size, worker_,
                              s_.config.workers);
    shard_pos_ = 0;
    reader_.reset();
    single_reader_ = false;
    lookahead_.reset();
    buffer_.clear();
    buffer_shard_.clear();
    seekable_.clear();
    input_done_ = false;
    emitted_ = 0;
    read_in_epoch_ = 0;
    rng_.seed(mix_seed({uint64_t(s_.config.seed), handover_.empty() ? kBufferTag : kHandoverTag, uint64_t(source_),
                        uint64_t(epoch_), uint64_t(s_.rank), uint64_t(worker_)}));
  }

  // The shuffle buffer and reading position of a saved state, without re-reading the epoch: each shard that
  // holds buffered samples is opened once (at its first buffered sample when it can seek, else from its start)
  // and only those samples are read; the shard being read stays open at the saved offset.
  void restore(int64_t emitted, const SourcePosition& p) {
    emitted_ = emitted;
    rng_.discard(static_cast<unsigned long long>(emitted));  // one draw per sample given out (below)
    read_in_epoch_ = p.read;
    input_done_ = p.input_done;
    const size_t n = p.buffer_offsets.size();
    std::vector<std::optional<RawSample>> slots(n);
    // In a hand-over epoch several pieces name one shard (its buffered samples, the rest of it): each shard is
    // read once, under the index of its first piece.
    std::map<std::string, int64_t> first_piece;
    for (size_t k = 0; k < handover_.size(); ++k) first_piece.emplace(handover_[k].path, static_cast<int64_t>(k));
    auto group = [&](int64_t k) {
      return k >= 0 && static_cast<size_t>(k) < handover_.size() ? first_piece.at(handover_[k].path) : k;
    };
    std::map<int64_t, std::vector<int64_t>> wanted;  // shard -> offsets
    for (size_t i = 0; i < n; ++i) wanted[group(p.buffer_shards[i])].push_back(p.buffer_offsets[i]);
    const bool reading = !p.input_done && static_cast<size_t>(p.shard) < shard_count() && p.offset > 0;
    if (reading) wanted[group(p.shard)];  // the shard being read, even without buffered samples
    std::map<std::pair<int64_t, int64_t>, std::vector<size_t>> slot_of;  // (shard, offset) -> buffer slots
    for (size_t i = 0; i < n; ++i) slot_of[{group(p.buffer_shards[i]), p.buffer_offsets[i]}].push_back(i);
    for (auto& [k, offsets] : wanted) {
      std::sort(offsets.begin(), offsets.end());
      offsets.erase(std::unique(offsets.begin(), offsets.end()), offsets.end());
      if (k < 0 || static_cast<size_t>(k) >= shard_count()) continue;
      const bool current = reading && k == group(p.shard);
      const int64_t from = current ? p.offset : std::numeric_limits<int64_t>::max();
      const bool seek = std::binary_search(p.seekable.begin(), p.seekable.end(), current ? p.shard : k) ||
                        (static_cast<size_t>(k) < handover_.size() && handover_[k].seekable);
      const int64_t first = std::min(offsets.empty() ? from : offsets.front(), from);
      std::unique_ptr<ShardReader> reader = open_shard(shard_path(static_cast<size_t>(k)), first, seek);
      if (!reader) continue;
      seekable_[k] = seek;
      reader->want_only(offsets, from);
      size_t found = 0;
      while (current || found < offsets.size()) {
        std::optional<RawSample> raw = reader->next();
        if (!raw) break;
        s_.touch(worker_);
        if (current && raw->offset >= from) {
          lookahead_ = std::move(raw);
          break;
        }
        auto it = slot_of.find({k, raw->offset});
        if (it == slot_of.end()) continue;
        ++found;
        for (size_t i = 0; i + 1 < it->second.size(); ++i) slots[it->second[i]] = *raw;
        slots[it->second.back()] = std::move(*raw);
      }
      if (current) {
        reader_ = std::move(reader);
        shard_pos_ = static_cast<size_t>(p.shard) + 1;
      }
    }
    if (!reading) shard_pos_ = static_cast<size_t>(std::max<int64_t>(0, p.shard));
    int64_t lost = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!slots[i]) {
        ++lost;
        continue;
      }
      buffer_.push_back(std::move(*slots[i]));
      buffer_shard_.push_back(p.buffer_shards[i]);
    }
    if (lost > 0)
      log_warn("data: " + std::to_string(lost) + " samples of the saved shuffle buffer of source '" +
               s_.config.shards[source_] + "' could not be read again; the resumed stream differs from here on");
  }

  void end_epoch() {
    empty_epochs_ = read_in_epoch_ == 0 ? empty_epochs_ + 1 : 0;
    // Shards are dealt anew each epoch, so a worker may be unlucky once; many empty epochs in a row mean
    // the source has nothing readable, and repeating forever would hang the run.
    if (s_.config.epochs == 0 && empty_epochs_ >= 10) {
      throw Error("data source '" + s_.config.shards[source_] + "': worker " + std::to_string(worker_) + " of rank " +
                  std::to_string(s_.rank) + " read no sample in 10 epochs up to " + std::to_string(epoch_) +
                  " (shards missing, empty or unreadable; see the errors above)");
    }
    ++epoch_;
    handover_.clear();  // a hand-over epoch is followed by the next epoch, dealt for this layout
    if (s_.config.epochs > 0 && epoch_ >= s_.config.epochs) {
      finished_ = true;
      emitted_ = 0;
      return;
    }
    start_epoch();
  }

  // The current shard is done: a read error that ended it is counted (not a stop of the loader).
  void close_reader() {
    single_reader_ = false;
    if (!reader_->error().empty() && counting_ && !s_.stopping.load()) {
      ++skipped_[skip::kTruncatedShard];
      log_warn("data: " + reader_->error() + "; the rest of this shard is skipped");
    }
    reader_.reset();
  }

  // Opens a shard (at `offset`, seeking if `seek`), retrying data.open_retries times (a URL: data.remote.retries,
  // inside RemoteStream); nullptr when it cannot be opened (counted as unreadable_shard) or the loader stops.
  std::unique_ptr<ShardReader> open_shard(const std::string& path, int64_t offset, bool seek) {
    for (int64_t attempt = 0;; ++attempt) {
      s_.set_activity(worker_, "opening '" + path + "' (attempt " + std::to_string(attempt + 1) + ")");
      try {
        auto reader = std::make_unique<ShardReader>(path, s_.config.max_entry_bytes, true, s_.config.remote,
                                                    &s_.stopping, offset, seek);
        s_.set_activity(worker_, "reading '" + path + "'");
        record_open(true, "");
        return reader;
      } catch (const Error& e) {
        if (s_.stopping.load()) return nullptr;
        // A URL was already retried as data.remote says (or refused for good): no retries on top.
        const bool remote = dynamic_cast<const RemoteError*>(&e) != nullptr;
        if (attempt >= s_.config.open_retries || remote) {
          if (counting_) {
            ++skipped_[skip::kUnreadableShard];
            log_error("data: " + std::string(e.what()) +
                      (remote ? "; skipped" : "; skipped after " + std::to_string(attempt + 1) + " attempts"));
          }
          if (!s_.missing_at_start.count(path)) record_open(false, e.what());
          return nullptr;
        }
        const auto until = std::chrono::steady_clock::now() +
                           std::chrono::milliseconds(s_.config.retry_delay_ms << std::min<int64_t>(attempt, 10));
        while (std::chrono::steady_clock::now() < until && !s_.stopping.load())
          std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
              std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
        if (s_.stopping.load()) return nullptr;
      }
    }
  }

  std::optional<RawSample> next_input() {
    for (;;) {
      if (lookahead_) {
        std::optional<RawSample> raw = std::move(lookahead_);
        lookahead_.reset();
        return raw;
      }
      if (reader_ && single_reader_ && shard_pos_ >= single_run_end_) {  // a run of buffered samples is done
        reader_.reset();
        single_reader_ = false;
      }
      if (reader_) {
        if (std::optional<RawSample> raw = reader_->next()) {
          s_.touch(worker_);
          empty_draws_ = 0;
          if (!handover_.empty() && handover_[shard_pos_ - 1].single) {
            // One of a run of buffered samples: the pieces up to it are done (one not found is lost).
            while (shard_pos_ < single_run_end_ && handover_[shard_pos_ - 1].offset < raw->offset) ++shard_pos_;
            single_reader_ = true;
          }
          seekable_[static_cast<int64_t>(shard_pos_) - 1] = reader_->seekable();
          return raw;
        }
        close_reader();
      }
      if (shard_pos_ >= shard_count()) return std::nullopt;
      // Resampled streams never end: shards that give nothing, many in a row, mean nothing can be read.
      if (s_.config.resampled && ++empty_draws_ > kMaxEmptyDraws) {
        throw Error("data source '" + s_.config.shards[source_] + "': worker " + std::to_string(worker_) + " of rank " +
                    std::to_string(s_.rank) + " drew " + std::to_string(kMaxEmptyDraws) +
                    " shards in a row without a sample (shards empty or unreadable; see the errors above)");
      }
      const size_t k = shard_pos_++;
      const std::string path = shard_path(k);
      if (handover_.empty() || (handover_[k].offset == 0 && !handover_[k].single)) {
        reader_ = open_shard(path, 0, false);
      } else {  // a hand-over piece: from its offset, or only the sample at it
        const HandoverPiece& piece = handover_[k];
        reader_ = open_shard(path, piece.offset, piece.seekable);
        if (reader_ && piece.single) {
          // A run of buffered samples of this shard (dealt sorted by shard and offset) is read in one pass, so
          // a shard is opened once per worker, not once per sample (a pipe: shard runs its command once).
          std::vector<int64_t> offsets{piece.offset};
          single_run_end_ = k + 1;
          while (single_run_end_ < handover_.size() && handover_[single_run_end_].single &&
                 handover_[single_run_end_].path == path && handover_[single_run_end_].offset > offsets.back())
            offsets.push_back(handover_[single_run_end_++].offset);
          reader_->want_only(std::move(offsets), std::numeric_limits<int64_t>::max());
        } else if (reader_) {
          reader_->want_only({}, piece.offset);
        }
      }
      if (!reader_ && s_.stopping.load()) return std::nullopt;
    }
  }

  // Too many failed opens among this rank's last Shared::kShardWindow in this source stop the run: a source
  // that cannot be read must not be retried forever. (A full window: one lost shard among a few, dealt to the
  // same worker twice in a row, must not stop it.)
  void record_open(bool ok, const std::string& error) {
    const double failed = s_.record_open(static_cast<size_t>(source_), ok);
    if (ok || failed <= s_.config.max_failed_shards) return;
    const auto n = static_cast<int64_t>(Shared::kShardWindow);
    throw Error("data source '" + s_.config.shards[source_] +
                "': " + std::to_string(static_cast<int64_t>(std::lround(failed * static_cast<double>(n)))) +
                " of the last " + std::to_string(n) + " shards rank " + std::to_string(s_.rank) +
                " tried could not be read (data.max_failed_shards " + fmt::format("{:g}", s_.config.max_failed_shards) +
                "); the last: " + error);
  }

  struct HandoverPiece {
    std::string path;
    int64_t offset = 0;
    bool single = false, seekable = false;
  };

  Shared& s_;
  int64_t source_, worker_, epoch_;
  SkipCounts& skipped_;
  std::vector<std::string> shards_;
  std::vector<HandoverPiece> handover_;  // a hand-over epoch's pieces (SourcePosition), else empty
  bool single_reader_ = false;           // reader_ reads a run of buffered-sample pieces, up to single_run_end_
  size_t single_run_end_ = 0;
  size_t shard_pos_ = 0;  // the next shard of shards_ to open
  std::unique_ptr<ShardReader> reader_;
  std::optional<RawSample> lookahead_;  // a restored reader's first sample, read ahead
  std::vector<RawSample> buffer_;
  std::vector<int64_t> buffer_shard_;  // per buffered sample: its shard's index in shards_
  std::map<int64_t, bool> seekable_;   // per shard index opened this epoch: can it be opened at an offset
  static constexpr int64_t kMaxEmptyDraws = 100;
  int64_t empty_draws_ = 0;  // resampled: shards drawn in a row that gave no sample
  DataRng rng_;
  bool input_done_ = false, finished_ = false, counting_ = true;
  int64_t emitted_ = 0, read_in_epoch_ = 0, empty_epochs_ = 0;
};

at::Tensor pinned(const at::Tensor& t, bool pin) {
  return pin && t.defined() ? t.pin_memory() : t;
}

void pin_targets(DecoderTask& t) {
  t.targets = pinned(t.targets, true);
  t.loss_mask = pinned(t.loss_mask, true);
  t.parallel = pinned(t.parallel, true);
}

struct QueueItem {
  std::optional<Batch> batch;  // none: the worker is done
  LoaderWorkerState state;     // the worker's state after this item
  std::exception_ptr error;
};

class Worker {
 public:
  Worker(Shared& shared, int64_t index, const LoaderWorkerState& state) : s_(shared), index_(index), state_(state) {
    const size_t n = s_.sources.size();
    state_.source_epoch.resize(n, 0);
    state_.source_emitted.resize(n, 0);
    const bool positioned = state_.source_position.size() == n;
    for (size_t i = 0; i < n; ++i) {
      streams_.push_back(std::make_unique<SourceStream>(
          s_, static_cast<int64_t>(i), index_, state_.source_epoch[i], state_.source_emitted[i],
          positioned ? &state_.source_position[i] : nullptr, state_.skipped));
    }
    state_.source_position.resize(n);
  }

  // The next batch, or none when every source is finished.
  std::optional<Batch> produce() {
    std::vector<Sample> samples;
    std::vector<LoccaExample> locca;
    std::vector<at::Tensor> views;
    std::vector<int64_t> sources;  // index into data.shards, per sample
    auto batch_size = static_cast<size_t>(s_.config.batch_size);
    const int64_t index = state_.batches * s_.config.workers + index_;  // among the batches of all workers
    const bool with_views = s_.config.self_distillation && index >= s_.config.self_distillation_from_batch;
    int64_t sequence = s_.image.max_num_patches;
    if (s_.image.naflex && !s_.image.naflex_sequence_lengths.empty()) {
      sequence = naflex_sequence_length(s_.image, s_.config.seed, index);
      if (sequence >= s_.image.naflex_half_batch_length) batch_size = std::max<size_t>(1, batch_size / 2);
    }
    while (samples.size() < batch_size) {
      if (s_.stopping.load()) return std::nullopt;                          // shutting down: nobody takes this batch
      if (resampled_limit_ > 0 && state_.pulls >= resampled_limit_) break;  // the last virtual epoch is done
      const uint64_t pull = static_cast<uint64_t>(state_.pulls);
      size_t from = 0;
      std::optional<RawSample> raw = pull_mixed(pull, from);
      if (!raw) break;
      ++state_.pulls;
      Sample sample;
      const std::string reason = decode_sample(*raw, s_.config.max_pixels, sample, state_.skipped, reduction_,
                                               s_.image.exif_orientation == "apply");
      if (!reason.empty()) {
        const int64_t count = ++state_.skipped[reason];
        s_.reporter.report(reason, raw->shard + ":" + raw->key, count);
        continue;
      }
      DataRng rng(mix_seed({uint64_t(s_.config.seed), kSampleTag, uint64_t(s_.rank), uint64_t(index_), pull}));
      if (s_.config.locca)
        locca.push_back(
            make_locca_example(sample.caption, sample.regions, *s_.tokenizer, s_.config.locca_targets, rng));
      if (with_views) views.push_back(make_local_views(sample.image, s_.config.self_distillation_views, rng));
      samples.push_back(std::move(sample));
      sources.push_back(static_cast<int64_t>(from));
    }
    if (!samples.empty()) ++state_.batches;
    snapshot();
    if (samples.empty()) {
      state_.done = true;
      return std::nullopt;
    }
    Batch b = assemble(samples, locca, views, sequence);
    b.source = pinned(torch::tensor(sources, torch::kLong), s_.pin);
    return b;
  }

  const LoaderWorkerState& state() const { return state_; }

 private:
  // image.fast_decode: how far a JPEG may be scaled down while decoding and still cover what the
  // transforms need (the resize target; with self-distillation views also the smallest local crop at full resolution).
  DecodeReduction make_reduction() const {
    if (!s_.image.fast_decode) return nullptr;
    const ImageConfig image = s_.image;
    int64_t need = image.image_size;
    if (s_.config.self_distillation) {
      const double smallest_crop_side = std::sqrt(s_.config.self_distillation_views.local_scale_min);
      need = std::max(
          need, static_cast<int64_t>(
                    std::ceil(static_cast<double>(s_.config.self_distillation_views.local_size) / smallest_crop_side)));
    }
    return [image, need](int64_t height, int64_t width) {
      if (!image.naflex) return decode_reduction(height, width, need, need);
      int64_t longest = image.max_num_patches;
      for (int64_t n : image.naflex_sequence_lengths) longest = std::max(longest, n);
      const auto [h, w] = naflex_target_size(height, width, image.patch_size, longest);
      return decode_reduction(height, width, h, w);
    };
  }

  // The next sample of the mixture; `from` is set to the source it came from.
  std::optional<RawSample> pull_mixed(uint64_t pull, size_t& from) {
    const double u =
        static_cast<double>(
            splitmix64(mix_seed({uint64_t(s_.config.seed), kMixTag, uint64_t(s_.rank), uint64_t(index_), pull})) >>
            11) *
        0x1.0p-53;
    for (;;) {
      double total = 0;
      for (size_t i = 0; i < streams_.size(); ++i)
        if (!streams_[i]->finished()) total += s_.weights[i];
      if (total <= 0) return std::nullopt;
      double at = u * total;
      size_t pick = streams_.size();
      for (size_t i = 0; i < streams_.size(); ++i) {
        if (streams_[i]->finished() || s_.weights[i] <= 0) continue;
        pick = i;
        if (at < s_.weights[i]) break;
        at -= s_.weights[i];
      }
      if (std::optional<RawSample> raw = streams_[pick]->next()) {
        from = pick;
        return raw;
      }
    }
  }

  void snapshot() {
    for (size_t i = 0; i < streams_.size(); ++i) {
      state_.source_position[i] = streams_[i]->position();
      state_.source_epoch[i] = streams_[i]->epoch();
      state_.source_emitted[i] = streams_[i]->emitted();
    }
  }

  Batch assemble(const std::vector<Sample>& samples, const std::vector<LoccaExample>& locca,
                 const std::vector<at::Tensor>& views, int64_t sequence) const {
    Batch b;
    const auto n = static_cast<int64_t>(samples.size());
    b.labels = torch::empty({n}, torch::kLong);
    std::vector<std::string> captions;
    for (int64_t i = 0; i < n; ++i) {
      b.keys.push_back(samples[i].key);
      b.labels[i] = samples[i].label;
      captions.push_back(samples[i].caption);
    }
    if (s_.image.naflex) {
      std::vector<NaflexImage> images;
      for (const auto& s : samples) images.push_back(preprocess_naflex(s.image, s_.image.patch_size, sequence));
      NaflexBatch nb = stack_naflex(images, s_.pin);
      b.pixel_values = nb.pixel_values;
      b.pixel_attention_mask = nb.pixel_attention_mask;
      b.spatial_shapes = nb.spatial_shapes;
    } else {
      std::vector<at::Tensor> images;
      for (const auto& s : samples) images.push_back(preprocess_fixed(s.image, s_.image.image_size, s_.image.resample));
      b.pixel_values = stack_fixed(images, s_.pin);
    }
    if (s_.tokenizer) b.input_ids = pinned(s_.tokenizer->encode(captions), s_.pin);
    b.labels = pinned(b.labels, s_.pin);
    if (s_.config.locca) {
      b.locca = stack_locca(locca);
      if (s_.pin) {
        pin_targets(b.locca->caption);
        pin_targets(b.locca->referring);
        pin_targets(b.locca->grounded);
      }
    }
    if (!views.empty()) {
      std::vector<int64_t> shape = views.front().sizes().vec();
      shape[0] = 0;
      for (const auto& v : views) shape[0] += v.size(0);
      b.local_views = torch::empty(shape, views.front().options().pinned_memory(s_.pin));
      torch::cat_out(b.local_views, views);
    }
    return b;
  }

  Shared& s_;
  int64_t index_;
  LoaderWorkerState state_;
  // data.resampled with finite epochs: the samples this worker pulls in all (its share of
  // epochs x samples_per_epoch, rounded up); 0: no limit.
  int64_t resampled_limit_ = s_.config.resampled && s_.config.epochs > 0
                                 ? s_.config.epochs*((s_.config.samples_per_epoch + s_.world_size * s_.config.workers -
                                                      1) /
                                                     (s_.world_size * s_.config.workers))
                                 : 0;
  std::vector<std::unique_ptr<SourceStream>> streams_;
  DecodeReduction reduction_ = make_reduction();
};

void check_state(const LoaderState& st, const LoaderConfig& c, int64_t rank, int64_t world, size_t sources) {
  auto mismatch = [](const std::string& what, int64_t saved, int64_t now) {
    return Error("cannot resume the data loader: it was saved with " + what + " " + std::to_string(saved) +
                 ", this run has " + std::to_string(now));
  };
  if (st.seed != c.seed) throw mismatch("data.seed", st.seed, c.seed);
  if (st.rank != rank) throw mismatch("rank", st.rank, rank);
  if (st.world_size != world) throw mismatch("world size", st.world_size, world);
  if (static_cast<int64_t>(st.workers.size()) != c.workers)
    throw mismatch("data.workers", static_cast<int64_t>(st.workers.size()), c.workers);
  for (const auto& w : st.workers)  // empty: the worker had not delivered a batch yet
    if (w.source_epoch.size() != w.source_emitted.size() ||
        (!w.source_epoch.empty() && w.source_epoch.size() != sources))
      throw mismatch("shard sources", static_cast<int64_t>(w.source_epoch.size()), static_cast<int64_t>(sources));
  if (st.next_worker < 0 || st.next_worker >= c.workers) throw Error("cannot resume the data loader: bad next_worker");
}

}  // namespace

SkipCounts LoaderState::skipped() const {
  SkipCounts total;
  for (const auto& w : workers)
    for (const auto& [reason, n] : w.skipped) total[reason] += n;
  return total;
}

int64_t naflex_sequence_length(const ImageConfig& image, int64_t seed, int64_t batch) {
  const auto& lengths = image.naflex_sequence_lengths;
  if (lengths.empty()) return image.max_num_patches;
  uint64_t total = 0;
  for (int64_t n : lengths) total += n >= image.naflex_half_batch_length ? 2 : 1;
  DataRng rng(mix_seed({static_cast<uint64_t>(seed), kLengthTag, static_cast<uint64_t>(batch)}));
  uint64_t pick = below(rng, total);
  for (int64_t n : lengths) {
    const uint64_t weight = n >= image.naflex_half_batch_length ? 2 : 1;
    if (pick < weight) return n;
    pick -= weight;
  }
  return lengths.back();
}

std::string loader_state_to_json(const LoaderState& st) {
  nlohmann::json j;
  j["seed"] = st.seed;
  j["rank"] = st.rank;
  j["world_size"] = st.world_size;
  j["batches"] = st.batches;
  j["next_worker"] = st.next_worker;
  j["workers"] = nlohmann::json::array();
  for (const auto& w : st.workers) {
    nlohmann::json positions = nlohmann::json::array();
    for (const auto& p : w.source_position)
      positions.push_back({{"shard", p.shard},
                           {"offset", p.offset},
                           {"read", p.read},
                           {"input_done", p.input_done},
                           {"buffer_shards", p.buffer_shards},
                           {"buffer_offsets", p.buffer_offsets},
                           {"seekable", p.seekable},
                           {"handover_shards", p.handover_shards},
                           {"handover_offsets", p.handover_offsets},
                           {"handover_single", p.handover_single},
                           {"handover_seekable", p.handover_seekable}});
    j["workers"].push_back({{"pulls", w.pulls},
                            {"source_epoch", w.source_epoch},
                            {"source_emitted", w.source_emitted},
                            {"source_position", positions},
                            {"batches", w.batches},
                            {"skipped", w.skipped},
                            {"done", w.done}});
  }
  return j.dump();
}

LoaderState loader_state_from_json(const std::string& text) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    LoaderState st;
    st.seed = j.at("seed").get<int64_t>();
    st.rank = j.at("rank").get<int64_t>();
    st.world_size = j.at("world_size").get<int64_t>();
    st.batches = j.at("batches").get<int64_t>();
    st.next_worker = j.at("next_worker").get<int64_t>();
    for (const auto& w : j.at("workers")) {
      LoaderWorkerState ws;
      ws.pulls = w.at("pulls").get<int64_t>();
      ws.source_epoch = w.at("source_epoch").get<std::vector<int64_t>>();
      ws.source_emitted = w.at("source_emitted").get<std::vector<int64_t>>();
      if (w.contains("source_position")) {
        for (const auto& p : w.at("source_position")) {
          SourcePosition sp;
          sp.shard = p.at("shard").get<int64_t>();
          sp.offset = p.at("offset").get<int64_t>();
          sp.read = p.at("read").get<int64_t>();
          sp.input_done = p.at("input_done").get<bool>();
          sp.buffer_shards = p.at("buffer_shards").get<std::vector<int64_t>>();
          sp.buffer_offsets = p.at("buffer_offsets").get<std::vector<int64_t>>();
          sp.seekable = p.at("seekable").get<std::vector<int64_t>>();
          if (p.contains("handover_shards")) {
            sp.handover_shards = p.at("handover_shards").get<std::vector<std::string>>();
            sp.handover_offsets = p.at("handover_offsets").get<std::vector<int64_t>>();
            sp.handover_single = p.at("handover_single").get<std::vector<int64_t>>();
            sp.handover_seekable = p.at("handover_seekable").get<std::vector<int64_t>>();
            const size_t n = sp.handover_shards.size();
            if (sp.handover_offsets.size() != n || sp.handover_single.size() != n || sp.handover_seekable.size() != n)
              throw Error("data loader state: the handover_ lists differ in length");
          }
          if (sp.buffer_shards.size() != sp.buffer_offsets.size())
            throw Error("data loader state: buffer_shards and buffer_offsets differ in length");
          ws.source_position.push_back(std::move(sp));
        }
      }
      // States written before workers counted their batches: dealt round-robin from the total, as handed out.
      const auto workers = static_cast<int64_t>(j.at("workers").size());
      const int64_t index = static_cast<int64_t>(st.workers.size());
      ws.batches =
          w.contains("batches") ? w.at("batches").get<int64_t>() : (st.batches + workers - 1 - index) / workers;
      ws.skipped = w.at("skipped").get<SkipCounts>();
      ws.done = w.at("done").get<bool>();
      st.workers.push_back(std::move(ws));
    }
    return st;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("data loader state: malformed JSON (") + e.what() + ")");
  }
}

std::vector<std::string> worker_shards(const std::vector<std::string>& shards, int64_t seed, int64_t source,
                                       int64_t epoch, int64_t rank, int64_t world_size, int64_t worker,
                                       int64_t workers) {
  std::vector<size_t> order(shards.size());
  std::iota(order.begin(), order.end(), size_t(0));
  DataRng rng(mix_seed({uint64_t(seed), kShardOrderTag, uint64_t(source), uint64_t(epoch)}));
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[below(rng, i)]);
  const auto slots = static_cast<size_t>(world_size * workers);
  const auto slot = static_cast<size_t>(rank * workers + worker);
  std::vector<std::string> out;
  for (size_t i = slot; i < order.size(); i += slots) out.push_back(shards[order[i]]);
  return out;
}

LoaderState hand_over_loader_state(const std::vector<LoaderState>& saved, const LoaderConfig& config, int64_t rank,
                                   int64_t world_size) {
  if (saved.empty()) throw Error("data loader hand-over: no saved state");
  const int64_t old_world = static_cast<int64_t>(saved.size());
  for (int64_t r = 0; r < old_world; ++r) {
    const LoaderState& st = saved[static_cast<size_t>(r)];
    if (st.rank != r || st.world_size != old_world)
      throw Error("data loader hand-over: the saved states are not ranks 0.." + std::to_string(old_world - 1) +
                  " of one run");
    if (st.seed != config.seed)
      throw Error("cannot hand the data stream over: it was saved with data.seed " + std::to_string(st.seed) +
                  ", this run has " + std::to_string(config.seed));
    if (st.batches != saved[0].batches)
      throw Error("cannot hand the data stream over: the saved ranks handed out different numbers of batches (" +
                  std::to_string(saved[0].batches) + " and " + std::to_string(st.batches) + ")");
    for (const auto& w : st.workers)
      if (!w.source_epoch.empty() && w.source_epoch.size() != config.shards.size())
        throw Error("cannot hand the data stream over: it was saved with " + std::to_string(w.source_epoch.size()) +
                    " data sources, this run has " + std::to_string(config.shards.size()));
  }
  const size_t sources = config.shards.size();
  const auto slots = static_cast<size_t>(world_size * config.workers);
  LoaderState out;
  out.seed = config.seed;
  out.rank = rank;
  out.world_size = world_size;
  out.batches = saved[0].batches;  // the same on every rank: NaFlex lengths keep agreeing per step
  out.next_worker = out.batches % config.workers;
  out.workers.resize(static_cast<size_t>(config.workers));
  for (int64_t w = 0; w < config.workers; ++w) {
    LoaderWorkerState& ws = out.workers[static_cast<size_t>(w)];
    ws.batches = (out.batches + config.workers - 1 - w) / config.workers;  // batches w, w + workers, ... below
    ws.source_epoch.assign(sources, 0);
    ws.source_emitted.assign(sources, 0);
    ws.source_position.resize(sources);
  }
  if (rank == 0)  // the run's skip counts stay in its total
    for (const auto& st : saved)
      for (const auto& [reason, n] : st.skipped()) out.workers[0].skipped[reason] += n;
  // Draws seeded by the pull index (mixing, augmentations, resampled shards) go on past every old worker's, so
  // that no new worker replays an old one's.
  int64_t pulls = 0;
  for (const auto& st : saved)
    for (const auto& w : st.workers) pulls = std::max(pulls, w.pulls);
  for (auto& w : out.workers) w.pulls = pulls;

  struct Piece {
    std::string path;
    int64_t offset = 0;
    bool single = false, seekable = false;
  };
  for (size_t i = 0; i < sources; ++i) {
    const std::vector<std::string> all = expand_braces(config.shards[i]);
    std::vector<Piece> samples, shards;  // buffered samples (one each); shards, whole or from an offset
    int64_t latest = 0;
    for (const auto& st : saved)
      for (const auto& w : st.workers)
        if (w.source_epoch.size() == sources) latest = std::max(latest, w.source_epoch[i]);
    if (config.resampled) {  // fresh draws: each new worker's draw index starts past every old worker's
      // and its shuffle buffer's generator past every old worker's draws.
      int64_t draws = 0, emitted = 0;
      for (const auto& st : saved)
        for (const auto& w : st.workers) {
          if (w.source_position.size() == sources) draws = std::max(draws, w.source_position[i].shard + 1);
          if (w.source_emitted.size() == sources) emitted = std::max(emitted, w.source_emitted[i]);
        }
      for (auto& w : out.workers) {
        w.source_position[i].shard = draws;
        w.source_emitted[i] = emitted;
      }
      continue;
    }
    for (const auto& st : saved) {
      const auto old_workers = static_cast<int64_t>(st.workers.size());
      for (int64_t w = 0; w < old_workers; ++w) {
        const LoaderWorkerState& ws = st.workers[static_cast<size_t>(w)];
        // Its whole shares of the epochs from `from` up to the latest any old worker reached: a worker behind
        // the others (near an epoch's end) hands those over too, so nothing of them is lost.
        auto whole_epochs_from = [&](int64_t from) {
          for (int64_t e = from; e <= latest && (config.epochs == 0 || e < config.epochs); ++e)
            for (const auto& path :
                 worker_shards(all, st.seed, static_cast<int64_t>(i), e, st.rank, old_world, w, old_workers))
              shards.push_back({path, 0, false, false});
        };
        if (ws.source_epoch.empty()) {  // it had delivered nothing: all of it is still to come
          whole_epochs_from(0);
          continue;
        }
        if (ws.source_position.size() != sources)
          throw Error(
              "cannot hand the data stream over: the checkpoint's loader state has no reading positions "
              "(written by an older version)");
        const int64_t epoch = ws.source_epoch[i];
        if (config.epochs > 0 && epoch >= config.epochs) continue;
        whole_epochs_from(epoch + 1);
        const SourcePosition& p = ws.source_position[i];
        std::vector<std::string> list;
        std::vector<int64_t> offsets, single, seek;
        if (!p.handover_shards.empty()) {  // it was itself in a hand-over epoch
          list = p.handover_shards;
          offsets = p.handover_offsets;
          single = p.handover_single;
          seek = p.handover_seekable;
        } else {
          list = worker_shards(all, st.seed, static_cast<int64_t>(i), epoch, st.rank, old_world, w, old_workers);
          offsets.assign(list.size(), 0);
          single.assign(list.size(), 0);
          seek.assign(list.size(), 0);
        }
        auto seekable = [&](int64_t k) { return std::binary_search(p.seekable.begin(), p.seekable.end(), k); };
        auto at = [&](int64_t k) -> const std::string& {
          if (k < 0 || static_cast<size_t>(k) >= list.size())
            throw Error("data loader hand-over: a saved position names shard " + std::to_string(k) + " of " +
                        std::to_string(list.size()));
          return list[static_cast<size_t>(k)];
        };
        for (size_t j = 0; j < p.buffer_offsets.size(); ++j)
          samples.push_back({at(p.buffer_shards[j]), p.buffer_offsets[j], true, seekable(p.buffer_shards[j])});
        if (p.input_done) continue;
        int64_t next = std::max<int64_t>(p.shard, 0);
        if (p.offset > 0 && static_cast<size_t>(p.shard) < list.size()) {  // the shard it was reading
          shards.push_back({at(p.shard), p.offset, false, seekable(p.shard)});
          ++next;
        }
        for (auto k = static_cast<size_t>(next); k < list.size(); ++k)
          (single[k] != 0 ? samples : shards).push_back({list[k], offsets[k], single[k] != 0, seek[k] != 0});
      }
    }
    // Dealt over the new ranks' workers: the buffered samples sorted by shard and offset, in blocks, so that a
    // worker reads each shard's share in one pass; the shards round-robin. A worker with no piece starts the
    // next epoch at once.
    std::sort(samples.begin(), samples.end(),
              [](const Piece& a, const Piece& b) { return std::tie(a.path, a.offset) < std::tie(b.path, b.offset); });
    const auto mine = static_cast<size_t>(rank * config.workers);
    for (int64_t w = 0; w < config.workers; ++w) {
      LoaderWorkerState& ws = out.workers[static_cast<size_t>(w)];
      SourcePosition& p = ws.source_position[i];
      auto take = [&](const Piece& piece) {
        p.handover_shards.push_back(piece.path);
        p.handover_offsets.push_back(piece.offset);
        p.handover_single.push_back(piece.single ? 1 : 0);
        p.handover_seekable.push_back(piece.seekable ? 1 : 0);
      };
      const size_t slot = mine + static_cast<size_t>(w);
      // Buffered samples in contiguous blocks of the sorted list (a shard's samples go to few workers), shards
      // round-robin.
      for (size_t j = slot * samples.size() / slots; j < (slot + 1) * samples.size() / slots; ++j) take(samples[j]);
      for (size_t j = slot; j < shards.size(); j += slots) take(shards[j]);
      // The hand-over epoch is numbered as the latest one (within finite epochs: the last), so that the epoch
      // after it is the next to deal.
      const int64_t handover_epoch = config.epochs > 0 ? std::min(latest, config.epochs - 1) : latest;
      ws.source_epoch[i] = config.resampled ? 0 : p.handover_shards.empty() ? handover_epoch + 1 : handover_epoch;
    }
  }
  return out;
}

// Owned jointly by the DataLoader and its threads: a thread blocked in a system call (a shard on a hung mount
// or a pipe without a writer) is left behind at shutdown and may only wake after the loader is gone.
struct DataLoader::Impl {
  Shared shared;
  LoaderState state;
  std::vector<std::unique_ptr<std::deque<QueueItem>>> queues;
  std::mutex mutex;
  std::condition_variable changed;
  bool stopping = false;
  int64_t running = 0;  // threads still inside run()
  std::vector<std::thread> threads;
  std::function<bool(double)> interrupted;

  void run(int64_t w, LoaderWorkerState initial) {
    struct Exit {
      Impl& impl;
      ~Exit() {
        std::lock_guard<std::mutex> lock(impl.mutex);
        --impl.running;
        impl.changed.notify_all();
      }
    } exit{*this};
    std::unique_ptr<Worker> worker;
    for (;;) {
      QueueItem item;
      try {
        if (!worker) worker = std::make_unique<Worker>(shared, w, initial);
        item.batch = worker->produce();
        item.state = worker->state();
      } catch (...) {
        item.error = std::current_exception();
      }
      const bool last = !item.batch;
      std::unique_lock<std::mutex> lock(mutex);
      changed.wait(lock, [&] { return stopping || queues[w]->size() < static_cast<size_t>(shared.config.prefetch); });
      if (stopping) return;
      queues[w]->push_back(std::move(item));
      changed.notify_all();
      if (last) return;
    }
  }
};

DataLoader::DataLoader(const LoaderConfig& config, const ImageConfig& image, const Tokenizer& tokenizer, int64_t rank,
                       int64_t world_size, const LoaderState* resume)
    : DataLoader(config, image, &tokenizer, rank, world_size, resume) {}

DataLoader::DataLoader(const LoaderConfig& config, const ImageConfig& image, const Tokenizer* tokenizer, int64_t rank,
                       int64_t world_size, const LoaderState* resume)
    : impl_(std::make_shared<Impl>()) {
  Shared& s = impl_->shared;
  s.activity.assign(static_cast<size_t>(std::max<int64_t>(config.workers, 0)), "starting");
  s.progress = std::make_unique<std::atomic<int64_t>[]>(s.activity.size());
  for (size_t w = 0; w < s.activity.size(); ++w) s.progress[w].store(Shared::now_ns());
  s.opens.resize(config.shards.size());
  s.config = config;
  s.image = image;
  if (tokenizer) s.tokenizer = std::make_shared<const Tokenizer>(*tokenizer);
  if (!tokenizer && config.locca)
    throw ConfigError("data.locca (train.locca in a training config): LocCa targets need a tokenizer");
  s.pin = torch::cuda::is_available();
  s.rank = rank;
  s.world_size = world_size;
  if (rank < 0 || world_size < 1 || rank >= world_size)
    throw Error("data loader: rank " + std::to_string(rank) + " is not in a world of " + std::to_string(world_size));
  if (config.shards.empty()) throw ConfigError("data.shards is empty: name at least one shard pattern");
  const std::string problem = config.check();
  if (!problem.empty()) throw ConfigError("data: " + problem);
  const int64_t slots = world_size * config.workers;
  for (const auto& pattern : config.shards) {
    s.sources.push_back(expand_braces(pattern));
    for (const auto& path : s.sources.back()) {
      std::error_code ec;
      if (is_local_shard(path) && !std::filesystem::exists(path, ec)) s.missing_at_start.insert(path);
    }
    if (!config.resampled && static_cast<int64_t>(s.sources.back().size()) < slots) {
      throw ConfigError("data source '" + pattern + "' has " + std::to_string(s.sources.back().size()) +
                        " shards, fewer than ranks x workers = " + std::to_string(slots) +
                        "; lower data.workers, write more shards, or set data.resampled: true");
    }
  }
  s.weights = config.weights.empty() ? std::vector<double>(config.shards.size(), 1.0) : config.weights;
  if (config.self_distillation) {
    if (image.naflex)
      throw ConfigError(
          "data.self_distillation (train.self_distillation in a training config): self-distillation views are not used "
          "with NaFlex");
    if (config.self_distillation_views.local_size % image.patch_size != 0)
      throw ConfigError("data.self_distillation_views.local_size " +
                        std::to_string(config.self_distillation_views.local_size) +
                        " must be a multiple of the patch size " + std::to_string(image.patch_size));
  }

  LoaderState& st = impl_->state;
  if (resume) {
    check_state(*resume, config, rank, world_size, s.sources.size());
    st = *resume;
  } else {
    st.seed = config.seed;
    st.rank = rank;
    st.world_size = world_size;
    st.workers.resize(static_cast<size_t>(config.workers));
  }
  for (int64_t w = 0; w < config.workers; ++w) impl_->queues.push_back(std::make_unique<std::deque<QueueItem>>());
  for (int64_t w = 0; w < config.workers; ++w) {
    if (st.workers[w].done) continue;
    {
      std::lock_guard<std::mutex> lock(impl_->mutex);
      ++impl_->running;
    }
    impl_->threads.emplace_back([impl = impl_, w, initial = st.workers[w]] { impl->run(w, initial); });
  }
}

DataLoader::~DataLoader() {
  impl_->shared.stopping.store(true);
  std::unique_lock<std::mutex> lock(impl_->mutex);
  impl_->stopping = true;
  impl_->changed.notify_all();
  // A worker stops after the sample it is decoding; one blocked in a system call is left behind (it holds its
  // own reference to the shared state) rather than hanging the process's exit.
  const bool all = impl_->changed.wait_for(lock, std::chrono::seconds(5), [&] { return impl_->running == 0; });
  lock.unlock();
  for (size_t w = 0; w < impl_->threads.size(); ++w) {
    if (all) {
      impl_->threads[w].join();
    } else {
      impl_->threads[w].detach();
    }
  }
  if (!all) log_warn("data: a loader thread did not stop within 5 s (blocked in a system call); left behind");
}

void DataLoader::set_interrupt(std::function<bool(double)> interrupted) {
  impl_->interrupted = std::move(interrupted);
}

std::optional<Batch> DataLoader::next() {
  LoaderState& st = impl_->state;
  const auto workers = static_cast<int64_t>(st.workers.size());
  for (;;) {
    bool all_done = true;
    for (const auto& w : st.workers) all_done = all_done && w.done;
    if (all_done) return std::nullopt;
    const int64_t w = st.next_worker;
    if (st.workers[w].done) {
      st.next_worker = (w + 1) % workers;
      continue;
    }
    QueueItem item;
    {
      // Waits in slices, to notice a stop signal (LoaderInterrupted) and a stall (data.stall_timeout_s).
      const auto start = std::chrono::steady_clock::now();
      std::unique_lock<std::mutex> lock(impl_->mutex);
      while (
          !impl_->changed.wait_for(lock, std::chrono::milliseconds(200), [&] { return !impl_->queues[w]->empty(); })) {
        const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (impl_->interrupted && impl_->interrupted(waited)) throw LoaderInterrupted();
        // A stall: the worker made no progress (a resumed worker re-reading its epoch does) for the limit.
        const int64_t limit = impl_->shared.config.stall_timeout_s;
        const int64_t idle_ns = Shared::now_ns() - impl_->shared.progress[static_cast<size_t>(w)].load();
        if (limit > 0 && waited >= static_cast<double>(limit) && idle_ns >= limit * 1000000000LL) {
          lock.unlock();
          throw Error("data: no batch from loader worker " + std::to_string(w) + " of rank " +
                      std::to_string(impl_->shared.rank) + " for " + std::to_string(limit) +
                      " s (data.stall_timeout_s); it is " + impl_->shared.activity_of(w));
        }
      }
      item = std::move(impl_->queues[w]->front());
      impl_->queues[w]->pop_front();
    }
    impl_->changed.notify_all();
    if (item.error) std::rethrow_exception(item.error);
    st.workers[w] = std::move(item.state);
    st.next_worker = (w + 1) % workers;
    if (!item.batch) continue;
    ++st.batches;
    return std::move(item.batch);
  }
}

const LoaderState& DataLoader::state() const {
  return impl_->state;
}

}  // namespace siglip2
