// `siglip2 export MODEL_DIR --format hf --out DIR`: a checkpoint that Hugging Face transformers loads
// with AutoModel.from_pretrained (SiglipModel / Siglip2Model, or the vision tower alone).
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "interop/hf_export.hpp"

namespace siglip2::cli {

void add_export_command(CLI::App& app) {
  struct ExportArgs {
    std::string model_dir;
    std::string format = "hf";
    std::string out;
    HfExportOptions options;
  };
  auto args = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand("export", "export a model directory as a Hugging Face transformers checkpoint");
  cmd->add_option("model", args->model_dir, "model directory (or training checkpoint) to export")->required();
  cmd->add_option("--format", args->format, "output format")->check(CLI::IsMember({"hf"}))->capture_default_str();
  cmd->add_option("--out", args->out, "output directory")->required();
  cmd->add_option("--dtype", args->options.dtype, "stored weight type")
      ->check(CLI::IsMember({"float32", "bfloat16"}))
      ->capture_default_str();
  cmd->add_flag("--vision-only", args->options.vision_only,
                "export the image tower alone (SiglipVisionModel / Siglip2VisionModel)");
  cmd->add_flag("--no-tokenizer", args->options.no_tokenizer,
                "write the weights and processor files without the tokenizer files");
  cmd->add_flag("--regenerate-tokenizer", args->options.regenerate_tokenizer,
                "generate tokenizer.json from tokenizer.model even for an imported model whose original tokenizer.json "
                "still applies (transformers' own conversion matches user-defined pieces such as '<h1>' before "
                "lowercasing, training after)");
  cmd->add_flag("--overwrite", args->options.overwrite, "replace an existing output directory");
  cmd->callback([args] { export_hf(args->model_dir, args->out, args->options); });
}

}  // namespace siglip2::cli
