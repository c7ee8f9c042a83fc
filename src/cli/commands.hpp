#pragma once
// Each subcommand registers itself on the root CLI11 app; its callback throws siglip2::Error
// (runtime, exit 1) or ConfigError/UsageError (exit 2), which main() turns into one line.
namespace CLI {
class App;
}

namespace siglip2::cli {

void add_config_command(CLI::App& app);
void add_comm_check_command(CLI::App& app);
void add_import_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_embed_command(CLI::App& app);
void add_zero_shot_command(CLI::App& app);
void add_model_info_command(CLI::App& app);
void add_data_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_caption_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_adapt_command(CLI::App& app);
void add_plan_command(CLI::App& app);

}  // namespace siglip2::cli
