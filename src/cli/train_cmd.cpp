// `siglip2 train CONFIG`: the SigLIP 2 training loop (src/train/trainer.cpp), resumed from the run
// directory's latest checkpoint unless --no-resume.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "common/config.hpp"
#include "common/error.hpp"
#include "interop/checkpoint_dir.hpp"
#include "train/checkpoint.hpp"
#include "train/config.hpp"
#include "train/trainer.hpp"

namespace siglip2::cli {

void add_train_command(CLI::App& app) {
  struct Args {
    std::string file;
    std::vector<std::string> overrides;
    bool no_resume = false;
    bool allow_batch_size_change = false;
    int64_t nan_step = -1;
    int64_t kill_step = -1;
    int64_t kill_save_step = -1;
    std::string init_from;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("train", "train a model from a run config (launch with torchrun or srun for ranks)");
  cmd->add_option("config", args->file, "run config (YAML)")->required();
  cmd->add_option("--set", args->overrides, "override a key: --set train.total_steps=100 (repeatable)")
      ->allow_extra_args(false);
  cmd->add_flag("--no-resume", args->no_resume, "start from scratch even if the run directory has checkpoints");
  cmd->add_flag("--allow-batch-size-change", args->allow_batch_size_change,
                "resume a checkpoint trained with another train.batch_size (refused otherwise)");
  cmd->add_option("--init-from", args->init_from,
                  "fine-tune: start the towers from hf:DIR, a model directory or a checkpoint (sets train.init_from)");
  cmd->add_option("--debug-nan-at-step", args->nan_step,
                  "testing: make the loss of this step NaN once, to exercise the rollback");
  cmd->add_option("--debug-sigkill-in-step", args->kill_step,
                  "testing: SIGKILL this process after the first micro-batch's backward of this step");
  cmd->add_option("--debug-sigkill-in-save", args->kill_save_step,
                  "testing: SIGKILL rank 0 inside the save of the checkpoint of this step");
  cmd->callback([args] {
    RunConfig cfg = config::load<RunConfig>(args->file, args->overrides);
    if (!args->init_from.empty()) cfg.train.init_from = args->init_from;
    TrainOptions o;
    o.resume = !args->no_resume;
    o.allow_batch_size_change = args->allow_batch_size_change;
    // Checkpoints carry their own copy of the tokenizer model, and their config points at it.
    RunConfig saved = cfg;
    if (!cfg.tokenizer.model_file.empty()) {
      o.tokenizer_model = cfg.tokenizer.model_file;
      saved.tokenizer.model_file = "tokenizer.model";
    }
    o.config_yaml = config::dump(saved);
    o.inject_nan_at_step = args->nan_step;
    o.sigkill_in_step = args->kill_step;
    o.sigkill_in_save_at_step = args->kill_save_step;
    if (!cfg.train.init_from.empty()) {
      std::string dir = cfg.train.init_from;
      const bool hf = dir.rfind("hf:", 0) == 0;
      if (hf) dir = dir.substr(3);
      if (!std::filesystem::is_directory(dir)) throw ConfigError("train.init_from: " + dir + " is not a directory");
      if (hf && !is_hf_dir(dir)) throw ConfigError("train.init_from: " + dir + " has no Hugging Face config.json");
      if (std::filesystem::exists(std::filesystem::path(dir) / "latest")) {
        auto ck = load_latest_checkpoint(dir);
        if (!ck) throw ConfigError("train.init_from: " + dir + " has no readable checkpoint");
        dir = ck->path;
      }
      ModelBundle b = load_any_model(dir);
      o.init_tensors = model_tensors(*b.model);
      o.init_source = dir;
    }
    int status = train(cfg, o);
    if (status != 0) throw Error("training stopped with status " + std::to_string(status));
  });
}

}  // namespace siglip2::cli
