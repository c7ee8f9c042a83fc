#include "train/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/logging.hpp"
#include "common/safetensors.hpp"
#include "data/tokenizer_files.hpp"

namespace siglip2 {

namespace fs = std::filesystem;

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

std::string save_checkpoint(const std::string& run_dir, const CheckpointContents& c, int64_t keep_last) {
  fs::create_directories(run_dir);
  const std::string name = checkpoint_name(c.state.step);
  const fs::path final_dir = fs::path(run_dir) / name;
  const fs::path tmp = fs::path(run_dir) / ("." + name + ".tmp-" + std::to_string(::getpid()));
  remove_leftovers(run_dir);
  fs::create_directories(tmp);
  try {
    safetensors::save((tmp / "model.safetensors").string(), c.model);
    safetensors::save((tmp / "optimizer.safetensors").string(), c.optimizer);
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

}  // namespace siglip2
