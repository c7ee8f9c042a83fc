// `siglip2 train CONFIG`: the SigLIP 2 training loop (src/train/trainer.cpp), resumed from the run
// directory's latest checkpoint unless --no-resume.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/model_source.hpp"
#include "common/config.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "interop/checkpoint_dir.hpp"
#include "train/checkpoint.hpp"
#include "train/config.hpp"
#include "train/trainer.hpp"

namespace siglip2::cli {

namespace {

// The reference model scores the run's own inputs: the run's pixels (resized to the reference's image size
// when it differs) and the run's token ids, so the two must tokenise alike.
void check_acid_reference(const RunConfig& cfg, const ModelBundle& ref) {
  const std::string what = "acid.reference: " + ref.source;
  const ModelConfig& m = ref.config.model;
  check_acid_reference_shape(what, m);
  if (cfg.train.data == "synthetic") {  // random token ids below the run's vocabulary, as long as its positions
    if (m.text.vocab_size < cfg.model.text.vocab_size ||
        m.text.max_position_embeddings != cfg.model.text.max_position_embeddings)
      throw ConfigError(what + ": its text tower (vocabulary " + std::to_string(m.text.vocab_size) + ", " +
                        std::to_string(m.text.max_position_embeddings) +
                        " positions) cannot read the run's synthetic token ids (vocabulary " +
                        std::to_string(cfg.model.text.vocab_size) + ", " +
                        std::to_string(cfg.model.text.max_position_embeddings) + " positions)");
    return;
  }
  const TokenizerConfig &a = cfg.tokenizer, &b = ref.config.tokenizer;
  auto differs = [&](const std::string& key, const std::string& run, const std::string& reference) {
    throw ConfigError(what + ": its tokenizer." + key + " (" + reference + ") differs from the run's (" + run +
                      "); ACID scores both models on the run's token ids");
  };
  if (a.length != b.length) differs("length", std::to_string(a.length), std::to_string(b.length));
  if (a.lowercase != b.lowercase) differs("lowercase", a.lowercase, b.lowercase);
  if (a.siglip1 != b.siglip1) differs("siglip1", a.siglip1 ? "true" : "false", b.siglip1 ? "true" : "false");
  if (a.pad_id != b.pad_id) differs("pad_id", std::to_string(a.pad_id), std::to_string(b.pad_id));
  if (a.eos_id != b.eos_id) differs("eos_id", std::to_string(a.eos_id), std::to_string(b.eos_id));
  if (ref.tokenizer_model.empty()) throw ConfigError(what + " has no sentencepiece model to compare with the run's");
  if (!a.model_file.empty() && read_file(a.model_file) != read_file(ref.tokenizer_model))
    throw ConfigError(what + ": its sentencepiece model (" + ref.tokenizer_model +
                      ") differs from tokenizer.model_file (" + a.model_file +
                      "); ACID scores both models on the run's token ids");
}

}  // namespace

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
      ModelBundle b = load_model_source("train.init_from", cfg.train.init_from);
      o.init_tensors = model_tensors(*b.model);
      o.init_source = b.source;
    }
    if (cfg.acid.on()) {
      ModelBundle b = load_model_source("acid.reference", cfg.acid.reference);
      check_acid_reference(cfg, b);
      o.reference = b.model.ptr();
      o.reference_source = b.source;
    }
    int status = train(cfg, o);
    if (status != 0) throw Error("training stopped with status " + std::to_string(status));
  });
}

}  // namespace siglip2::cli
