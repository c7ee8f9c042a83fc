#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "cli/commands.hpp"
#include "common/error.hpp"
#include "common/logging.hpp"
#include "siglip2/build_config.hpp"
#include "siglip2/version.hpp"

namespace {

std::string version_text() {
  std::string s = std::string("siglip2 ") + siglip2::kVersion + " (LibTorch " + siglip2::kTorchVersion;
  s += SIGLIP2_CONFIG_CUDA ? ", CUDA" : ", CPU only";
  s += SIGLIP2_CONFIG_GLOO ? ", gloo" : "";
  s += SIGLIP2_CONFIG_NCCL ? ", nccl" : "";
  return s + ")";
}

int fail(const std::string& message, int status) {
  std::fflush(stdout);
  std::cerr << "error: " << message << "\n";
  return status;
}

bool has_subcommand(const CLI::App& app, const std::string& name) {
  for (const auto* sub : app.get_subcommands({}))
    if (sub->check_name(name)) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"siglip2: train, fine-tune and export SigLIP 2 vision-language encoders", "siglip2"};
  app.set_version_flag("--version", version_text());
  app.require_subcommand(1);
  int verbose = 0;
  int quiet = 0;
  app.add_flag("-v,--verbose", verbose, "more log output (repeat for trace)");
  app.add_flag("-q,--quiet", quiet, "less log output (repeat for errors only)");
  app.parse_complete_callback([&] { siglip2::setup_logging(verbose - quiet); });

  siglip2::cli::add_config_command(app);
  siglip2::cli::add_comm_check_command(app);
  siglip2::cli::add_import_command(app);
  siglip2::cli::add_export_command(app);
  siglip2::cli::add_embed_command(app);
  siglip2::cli::add_zero_shot_command(app);
  siglip2::cli::add_model_info_command(app);
  siglip2::cli::add_data_command(app);
  siglip2::cli::add_train_command(app);
  siglip2::cli::add_eval_command(app);
  siglip2::cli::add_caption_command(app);
  siglip2::cli::add_bench_command(app);
  siglip2::cli::add_adapt_command(app);
  siglip2::cli::add_plan_command(app);

  if (argc > 1 && argv[1][0] != '-' && !has_subcommand(app, argv[1])) {
    std::string names;
    for (const auto* sub : app.get_subcommands({})) names += (names.empty() ? "" : ", ") + sub->get_name();
    return fail(std::string("unknown command '") + argv[1] + "' (commands: " + names + ")", 2);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::cout << version_text() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    // Help requested on a subcommand arrives here too, with exit code 0.
    if (e.get_exit_code() == 0) return app.exit(e);
    return fail(std::string(e.what()) + " (see 'siglip2 --help')", 2);
  } catch (const siglip2::ConfigError& e) {
    return fail(e.what(), 2);
  } catch (const siglip2::UsageError& e) {
    return fail(e.what(), 2);
  } catch (const siglip2::Error& e) {
    return fail(e.what(), 1);
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace(), 1);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  }
  return 0;
}
