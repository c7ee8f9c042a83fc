#include "train/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/logging.hpp"
#include "common/safetensors.hpp"
#include "data/tokenizer_files.hpp"

namespace siglip2 {

namespace fs = std::filesystem;

std::string TrainerState::loss_problem(double loss, int64_t at_step, double spike_factor, int64_t spike_warmup) const {
  if (!std::isfinite(loss)) return "loss is not finite";
  if (spike_factor > 0 && at_step >= spike_warmup && loss_slow > 0 && step > 0 && loss > spike_factor * loss_slow)
    return fmt::format("loss {:.4f} spiked above {} x its slow average {:.4f}", loss, spike_factor, loss_slow);
  return "";
}

void TrainerState::track_loss(double loss) {
  if (loss_slow == 0) loss_fast = loss_slow = loss;  // (re)armed
  loss_fast = 0.9 * loss_fast + 0.1 * loss;
  loss_slow = 0.99 * loss_slow + 0.01 * loss;
}

nlohmann::json TrainerState::to_json() const {
  return {{"step", step},
          {"examples_seen", examples_seen},
          {"self_distillation", self_distillation},
          {"keep", keep},
          {"phase", phase},
          {"loss_fast", loss_fast},
          {"loss_slow", loss_slow},
          {"rollbacks", rollbacks},
          {"skipped_steps", skipped_steps},
          {"world_size", world_size},
          {"batch_size", batch_size},
          {"acid_super_batch", acid_super_batch},
          {"acid_reference", acid_reference},
          {"acid_chunks", acid_chunks},
          {"config_hash", config_hash},
          {"data", data}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& what) {
  TrainerState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.examples_seen = j.at("examples_seen").get<int64_t>();
    s.self_distillation = j.at("self_distillation").get<bool>();
    s.keep = j.at("keep").get<bool>();
    s.phase = j.at("phase").get<std::string>();
    s.loss_fast = j.at("loss_fast").get<double>();
    s.loss_slow = j.at("loss_slow").get<double>();
    s.rollbacks = j.at("rollbacks").get<int64_t>();
    s.skipped_steps = j.at("skipped_steps").get<std::vector<int64_t>>();
    s.world_size = j.at("world_size").get<int>();
    s.batch_size = j.value("batch_size", int64_t{0});
    s.acid_super_batch = j.value("acid_super_batch", int64_t{0});
    s.acid_reference = j.value("acid_reference", std::string());
    s.acid_chunks = j.value("acid_chunks", int64_t{0});
    s.config_hash = j.at("config_hash").get<std::string>();
    s.data = j.at("data");
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": " + e.what());
  }
  return s;
}

namespace {

std::string checkpoint_name(int64_t step) {
  std::string digits = std::to_string(step);
  return "ckpt-" + std::string(digits.size() < 8 ? 8 - digits.size() : 0, '0') + digits;
}

int64_t step_of(const std::string& name) {
  if (name.rfind("ckpt-", 0) != 0) return -1;
  try {
    size_t used = 0;
    int64_t s = std::stoll(name.substr(5), &used);
    return used == name.size() - 5 ? s : -1;
  } catch (...) {
    return -1;
  }
}

void write_file_synced(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  out.close();
  if (!out) throw Error("cannot write '" + path + "'");
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// What a killed or failed save leaves behind: its temporary directory, a half-removed old checkpoint,
// the temporary file of the `latest` pointer. None of them is ever read; on a full disk they hold space.
void remove_leftovers(const fs::path& run_dir) {
  std::error_code ec;
  std::vector<fs::path> doomed;
  for (const auto& e : fs::directory_iterator(run_dir, ec)) {
    const std::string n = e.path().filename().string();
    bool partial =
        n.rfind(".ckpt-", 0) == 0 && (n.find(".tmp-") != std::string::npos || n.find(".old-") != std::string::npos);
    if (partial || n.rfind("latest.tmp-", 0) == 0) doomed.push_back(e.path());
  }
  for (const auto& p : doomed) fs::remove_all(p, ec);
}

// Renamed out of the listing first, so that a kill during the removal never leaves a half-deleted ckpt-*.
void remove_checkpoint(const fs::path& dir) {
  const fs::path doomed = dir.parent_path() / ("." + dir.filename().string() + ".old-" + std::to_string(::getpid()));
  fs::rename(dir, doomed);
  fs::remove_all(doomed);
}

}  // namespace

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run_dir, ec)) {
    int64_t s = step_of(e.path().filename().string());
    if (s >= 0 && e.is_directory()) found.emplace_back(s, e.path().string());
  }
  std::sort(found.rbegin(), found.rend());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

static std::string optimizer_shard_name(int rank, int world) {
  auto five = [](int n) {
    std::string d = std::to_string(n);
    return std::string(d.size() < 5 ? 5 - d.size() : 0, '0') + d;
  };
  return "optimizer-" + five(rank) + "-of-" + five(world) + ".safetensors";
}

std::string checkpoint_tmp_dir(const std::string& run_dir, int64_t step, int64_t writer_pid) {
  return (fs::path(run_dir) / ("." + checkpoint_name(step) + ".tmp-" + std::to_string(writer_pid))).string();
}

void begin_checkpoint(const std::string& run_dir, int64_t step) {
  fs::create_directories(run_dir);
  remove_leftovers(run_dir);
  fs::create_directories(checkpoint_tmp_dir(run_dir, step, ::getpid()));
}

void write_optimizer_shard(const std::string& tmp_dir, int rank, int world, const NamedTensors& state) {
  safetensors::save((fs::path(tmp_dir) / optimizer_shard_name(rank, world)).string(), state);
}

std::string save_checkpoint(const std::string& run_dir, const CheckpointContents& c, int64_t keep_last) {
  begin_checkpoint(run_dir, c.state.step);
  return finish_checkpoint(run_dir, c, keep_last);
}

std::string finish_checkpoint(const std::string& run_dir, const CheckpointContents& c, int64_t keep_last) {
  const std::string name = checkpoint_name(c.state.step);
  const fs::path final_dir = fs::path(run_dir) / name;
  const fs::path tmp = checkpoint_tmp_dir(run_dir, c.state.step, ::getpid());
  try {
    safetensors::save((tmp / "model.safetensors").string(), c.model);
    if (c.optimizer_shards > 0) {
      nlohmann::json files = nlohmann::json::array();
      // Each rank has reported its shard written (Checkpointer); on a network filesystem another node's
      // new file may not be visible here yet, so loading is where a missing one is caught.
      for (int r = 0; r < c.optimizer_shards; ++r) files.push_back(optimizer_shard_name(r, c.optimizer_shards));
      const nlohmann::json manifest = {{"format", "siglip2 sharded Adam moments (ZeRO-1)"},
                                       {"world_size", c.optimizer_shards},
                                       {"step", c.state.step},
                                       {"files", files}};
      write_file_synced((tmp / "optimizer.json").string(), manifest.dump(2) + "\n");
    } else {
      safetensors::save((tmp / "optimizer.safetensors").string(), c.optimizer);
    }
    if (!c.teacher.empty()) safetensors::save((tmp / "teacher.safetensors").string(), c.teacher);
    write_file_synced((tmp / "trainer_state.json").string(), c.state.to_json().dump(2) + "\n");
    write_file_synced((tmp / "config.yaml").string(), c.config_yaml);
    if (!c.tokenizer_model.empty()) write_file_synced((tmp / "tokenizer.model").string(), read_file(c.tokenizer_model));
    for (const auto& [name, path] : tokenizer_companions(c.tokenizer_model))
      write_file_synced((tmp / name).string(), read_file(path));
    fsync_directory(tmp.string());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);  // a failed save (disk full) gives its space back; the previous checkpoint stays
    throw;
  }
  // A checkpoint of the same step (a rerun after a rollback) is replaced as a whole.
  if (fs::exists(final_dir)) remove_checkpoint(final_dir);
  fs::rename(tmp, final_dir);
  fsync_directory(run_dir);
  write_file_atomic((fs::path(run_dir) / "latest").string(), name + "\n");

  int64_t kept = 0;
  for (const auto& dir : list_checkpoints(run_dir)) {
    if (dir == final_dir.string()) {
      ++kept;
      continue;
    }
    bool phase = false;
    try {
      phase = nlohmann::json::parse(read_file((fs::path(dir) / "trainer_state.json").string())).value("keep", false);
    } catch (...) {
    }
    if (phase) continue;
    if (++kept > keep_last) remove_checkpoint(dir);
  }
  return final_dir.string();
}

namespace {

// Checkpoints written before the self-distillation tensors were renamed call them "ssl.…" (model and
// teacher) and "exp_avg/ssl.…" (optimizer); they load under today's names.
std::string current_tensor_name(const std::string& name) {
  const size_t slash = name.find('/');
  const size_t at = slash == std::string::npos ? 0 : slash + 1;
  if (name.compare(at, 4, "ssl.") != 0) return name;
  return name.substr(0, at) + "self_distillation." + name.substr(at + 4);
}

// The slices of optimizer.json's shard files, assembled into full tensors shaped as the parameters of
// `model`; every element must come from exactly one slice.
std::map<std::string, at::Tensor> read_sharded_optimizer(const std::string& dir,
                                                         const std::map<std::string, at::Tensor>& model) {
  const std::string manifest_path = (fs::path(dir) / "optimizer.json").string();
  std::vector<std::string> files;
  try {
    const nlohmann::json m = nlohmann::json::parse(read_file(manifest_path));
    files = m.at("files").get<std::vector<std::string>>();
    if (files.empty() || static_cast<int64_t>(files.size()) != m.at("world_size").get<int64_t>())
      throw Error("'files' does not list world_size files");
  } catch (const std::exception& e) {
    throw Error(manifest_path + ": " + e.what());
  }
  std::map<std::string, at::Tensor> out, covered;
  for (const auto& file : files) {
    const std::string path = (fs::path(dir) / fs::path(file).filename()).string();
    if (!fs::exists(path)) throw Error(path + ": missing (listed in optimizer.json)");
    auto f = safetensors::File::open(path);
    for (const auto& t : f.tensors()) {
      if (t.name == "step") {
        const at::Tensor step = f.get(t.name).clone();
        if (out.count("step") && !at::equal(out["step"], step))
          throw Error(path + ": its 'step' differs from the other shards'");
        out["step"] = step;
        continue;
      }
      const size_t at_sign = t.name.rfind('@');
      const size_t slash = t.name.find('/');
      if (at_sign == std::string::npos || slash == std::string::npos || slash > at_sign)
        throw Error(path + ": tensor '" + t.name + "' is not a slice (KIND/NAME@START)");
      const std::string name = current_tensor_name(t.name.substr(0, at_sign));
      const std::string param = name.substr(name.find('/') + 1);
      int64_t start = -1;
      try {
        size_t used = 0;
        start = std::stoll(t.name.substr(at_sign + 1), &used);
        if (used != t.name.size() - at_sign - 1) start = -1;
      } catch (...) {
      }
      auto shape = model.find(param);
      if (shape == model.end()) throw Error(path + ": '" + t.name + "' is the slice of no parameter of the model");
      const at::Tensor slice = f.get(t.name);
      const int64_t numel = shape->second.numel();
      if (start < 0 || slice.dim() != 1 || start + slice.numel() > numel)
        throw Error(path + ": slice '" + t.name + "' does not fit the parameter's " + std::to_string(numel) +
                    " elements");
      if (!out.count(name)) {
        out[name] = at::zeros({numel}, slice.options());
        covered[name] = at::zeros({numel}, at::kByte);
      }
      out[name].narrow(0, start, slice.numel()).copy_(slice);
      covered[name].narrow(0, start, slice.numel()).add_(1);
    }
  }
  if (!out.count("step")) throw Error(manifest_path + ": no shard holds 'step'");
  for (auto& [name, t] : out) {
    if (name == "step") continue;
    if (!covered[name].eq(1).all().item<bool>())
      throw Error(manifest_path + ": the shards do not cover '" + name + "' exactly once");
    t = t.view(model.at(name.substr(name.find('/') + 1)).sizes());
  }
  return out;
}

}  // namespace

LoadedCheckpoint load_checkpoint(const std::string& dir) {
  LoadedCheckpoint out;
  out.path = dir;
  const std::string state_path = (fs::path(dir) / "trainer_state.json").string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(state_path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(state_path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  out.state = TrainerState::from_json(j, state_path);
  auto read_all = [&](const std::string& file, std::map<std::string, at::Tensor>& dst, bool required) {
    fs::path p = fs::path(dir) / file;
    if (!fs::exists(p)) {
      if (required) throw Error(p.string() + ": missing");
      return;
    }
    auto f = safetensors::File::open(p.string());  // validates the whole file
    for (const auto& t : f.tensors()) dst[current_tensor_name(t.name)] = f.get(t.name).clone();
  };
  read_all("model.safetensors", out.model, true);
  if (fs::exists(fs::path(dir) / "optimizer.json"))
    out.optimizer = read_sharded_optimizer(dir, out.model);
  else
    read_all("optimizer.safetensors", out.optimizer, true);
  read_all("teacher.safetensors", out.teacher, out.state.self_distillation);
  return out;
}

std::optional<LoadedCheckpoint> load_latest_checkpoint(const std::string& run_dir) {
  std::vector<std::string> candidates;
  std::error_code ec;
  fs::path latest = fs::path(run_dir) / "latest";
  if (fs::exists(latest, ec)) {
    std::string name = read_file(latest.string());
    name.erase(name.find_last_not_of(" \n\r\t") + 1);
    candidates.push_back((fs::path(run_dir) / name).string());
  }
  for (const auto& d : list_checkpoints(run_dir))
    if (std::find(candidates.begin(), candidates.end(), d) == candidates.end()) candidates.push_back(d);
  for (const auto& dir : candidates) {
    try {
      return load_checkpoint(dir);
    } catch (const std::exception& e) {
      log_error("checkpoint " + dir + " is damaged and is skipped: " + e.what());
    }
  }
  return std::nullopt;
}

void check_resumable(const LoadedCheckpoint& ck, int64_t batch_size, int64_t acid_super_batch, bool allow_batch_change,
                     int world_size) {
  const int64_t drawn = ck.state.acid_super_batch;
  if (drawn != acid_super_batch && !allow_batch_change)
    throw ConfigError(fmt::format(
        "{}: {} was trained with {}, this run asks for {}; the data stream's batches would change meaning (pass "
        "--allow-batch-size-change to continue anyway)",
        drawn > 0 && acid_super_batch > 0 ? "acid.filter_ratio" : "acid.reference", ck.path,
        drawn > 0 ? fmt::format("ACID super-batches of {} (train.batch_size / (1 - acid.filter_ratio))", drawn)
                  : std::string("no ACID stage"),
        acid_super_batch > 0 ? fmt::format("super-batches of {}", acid_super_batch) : std::string("none")));
  if (drawn != acid_super_batch)
    log_warn(
        fmt::format("{} was trained with an ACID super-batch of {}; continuing with {} (--allow-batch-size-change)",
                    ck.path, drawn, acid_super_batch));
  const int64_t trained = ck.state.batch_size;
  if (trained > 0 && trained != batch_size && !allow_batch_change)
    throw ConfigError(
        fmt::format("train.batch_size: {} was trained with a global batch of {}, this run asks for {}; "
                    "the schedule's steps and the data stream would change meaning (pass "
                    "--allow-batch-size-change to continue with the new batch)",
                    ck.path, trained, batch_size));
  if (trained > 0 && trained != batch_size)
    log_warn(fmt::format("{} was trained with a global batch of {}; continuing with {} (--allow-batch-size-change)",
                         ck.path, trained, batch_size));
  if (ck.state.world_size != world_size)
    log_warn(fmt::format("{} was written by {} rank(s), resuming on {}", ck.path, ck.state.world_size, world_size));
}

}  // namespace siglip2
