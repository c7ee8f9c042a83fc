// `siglip2 adapt-resolution CKPT --out RUN [--image-size R] [--patch-size P] [--naflex]`: the branch
// points of the SigLIP 2 recipe (spec: recipe.md §5). Reads a training checkpoint, resizes the image
// tower's position (and, for a new patch size, patch) embedding, and writes a new run directory whose
// latest checkpoint continues at the same step: `siglip2 train` with the branch's config resumes it.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <filesystem>
#include <map>
#include <string>

#include "cli/commands.hpp"
#include "cli/validators.hpp"
#include "common/config.hpp"
#include "common/error.hpp"
#include "common/logging.hpp"
#include "models/resize.hpp"
#include "train/checkpoint.hpp"
#include "train/config.hpp"

namespace siglip2::cli {
namespace {

namespace fs = std::filesystem;

NamedTensors sorted(const std::map<std::string, at::Tensor>& m) {
  return NamedTensors(m.begin(), m.end());
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

// Adam's moments of a resized tensor mean nothing for the new shape: they restart from zero (the step
// count, and so the bias correction, stays the run's). Moments of dropped tensors go too.
void drop_stale_moments(std::map<std::string, at::Tensor>& optimizer, const std::vector<std::string>& changed,
                        const std::map<std::string, at::Tensor>& model) {
  for (auto it = optimizer.begin(); it != optimizer.end();) {
    const std::string& key = it->first;
    const size_t slash = key.find('/');
    const std::string param = slash == std::string::npos ? "" : key.substr(slash + 1);
    bool drop = !param.empty() &&
                (std::find(changed.begin(), changed.end(), param) != changed.end() || model.find(param) == model.end());
    it = drop ? optimizer.erase(it) : std::next(it);
  }
}

struct AdaptArgs {
  std::string checkpoint, out;
  int64_t image_size = 0, patch_size = 0, num_patches = 256;
  bool naflex = false, overwrite = false;
};

void run_adapt(const AdaptArgs& a) {
  if (!a.naflex && a.image_size == 0 && a.patch_size == 0)
    throw UsageError("adapt-resolution needs --image-size, --patch-size or --naflex");
  if (a.naflex && a.image_size != 0)
    throw UsageError("--naflex takes --num-patches, not --image-size (NaFlex images keep their own size)");
  std::string source = a.checkpoint;
  if (fs::exists(fs::path(source) / "latest")) {
    auto ck = load_latest_checkpoint(source);
    if (!ck) throw Error(source + ": no readable checkpoint");
    source = ck->path;
  }
  LoadedCheckpoint ck = load_checkpoint(source);
  const fs::path config_path = fs::path(source) / "config.yaml";
  RunConfig cfg = load_checkpoint_config(config_path.string());
  if (fs::exists(a.out) && !fs::is_empty(a.out)) {
    if (!a.overwrite) throw UsageError("--out " + a.out + " exists and is not empty (--overwrite replaces it)");
    fs::remove_all(a.out);
  }

  VisionConfig from = cfg.model.vision, to = from;
  if (a.patch_size) to.patch_size = a.patch_size;
  if (a.naflex) {
    to.naflex = true;
    to.num_patches = a.num_patches;
    if (ck.state.self_distillation)
      log_warn(
          fmt::format("{} is from the self-distillation phase; SigLIP 2 branches NaFlex from a run without it. "
                      "The teacher and heads are dropped.",
                      source));
  } else if (a.image_size) {
    to.image_size = a.image_size;
  }
  if (std::string why = to.check(); !why.empty()) throw UsageError("the adapted model: " + why);

  std::vector<std::string> changed = adapt_vision_tensors(ck.model, "vision_model.", from, to);
  if (!ck.teacher.empty() && !a.naflex) adapt_vision_tensors(ck.teacher, "vision_model.", from, to);
  std::map<std::string, at::Tensor> optimizer = ck.optimizer;
  if (a.naflex) {
    ck.teacher.clear();
    for (auto it = ck.model.begin(); it != ck.model.end();)
      it = starts_with(it->first, "self_distillation.") ? ck.model.erase(it) : std::next(it);
    ck.state.self_distillation = false;
    cfg.train.self_distillation = false;
  }
  drop_stale_moments(optimizer, changed, ck.model);

  cfg.model.vision = to;
  if (a.naflex) {
    cfg.image.naflex = true;
    cfg.image.patch_size = to.patch_size;
    cfg.image.max_num_patches = to.num_patches;
  } else {
    cfg.image.image_size = to.image_size;
  }
  cfg.train.out_dir = a.out;
  ck.state.keep = true;
  ck.state.phase = a.naflex ? "naflex" : fmt::format("adapted-{}px-p{}", to.image_size, to.patch_size);
  ck.state.loss_fast = ck.state.loss_slow = 0;  // new inputs: the spike detector starts again

  CheckpointContents c;
  c.model = sorted(ck.model);
  c.teacher = sorted(ck.teacher);
  c.optimizer = sorted(optimizer);
  c.state = ck.state;
  const fs::path tokenizer = fs::path(source) / "tokenizer.model";
  if (fs::exists(tokenizer)) c.tokenizer_model = tokenizer.string();
  c.config_yaml = config::dump(cfg);
  std::string path = save_checkpoint(a.out, c, 1);
  std::string what;
  for (const auto& n : changed) what += (what.empty() ? "" : ", ") + n;
  log_info(fmt::format("{} -> {} at step {}: {}", source, path, ck.state.step,
                       what.empty() ? "no tensor changed shape" : "resized " + what));
  log_info(fmt::format("continue with: siglip2 train CONFIG --set train.out_dir={} (a config whose model matches {})",
                       a.out, (fs::path(path) / "config.yaml").string()));
}

}  // namespace

void add_adapt_command(CLI::App& app) {
  auto args = std::make_shared<AdaptArgs>();
  auto* cmd = app.add_subcommand(
      "adapt-resolution",
      "branch a training checkpoint to another resolution or patch size (position embedding resized, patch "
      "embedding PI-resized), or to a NaFlex tower; writes a run directory that 'siglip2 train' continues");
  cmd->add_option("checkpoint", args->checkpoint, "a checkpoint directory (RUN/ckpt-N) or a run directory (its latest)")
      ->required();
  cmd->add_option("--out", args->out, "the new run directory")->required();
  cmd->add_option("--image-size", args->image_size, "fixed resolution: the new image side in pixels")
      ->check(positive);
  cmd->add_option("--patch-size", args->patch_size, "a new patch size (e.g. 14 from 16)")->check(positive);
  auto* naflex = cmd->add_flag("--naflex", args->naflex,
                               "convert to a NaFlex tower (Linear patch embedding, learned position grid); the "
                               "self-distillation parts are dropped");
  cmd->add_option("--num-patches", args->num_patches, "NaFlex: positions in the learned grid (a square)")
      ->check(positive)
      ->needs(naflex);
  cmd->add_flag("--overwrite", args->overwrite, "replace a non-empty --out");
  cmd->callback([args] { run_adapt(*args); });
}

}  // namespace siglip2::cli
