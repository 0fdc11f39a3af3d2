// supra — the command-line entry point: parses flags with CLI11, sets up logging, runs one subcommand, and turns
// every failure into one line on stderr and a non-zero exit (2: bad input or usage, 1: internal error).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "core/base/error.h"

namespace {

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"supra: linearize pretrained transformers into SUPRA RNNs (uptrain, decode, evaluate)", "supra"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str()
      ->each([](const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); });
  app.fallthrough();
  supra::cli::add_info(app);
  supra::cli::add_logits(app);
  supra::cli::add_convert(app);
  supra::cli::add_data(app);
  supra::cli::add_train(app);
  supra::cli::add_export(app);
  supra::cli::add_generate(app);
  supra::cli::add_eval(app);

  // Logs go to stderr so that stdout stays machine-readable.
  spdlog::set_default_logger(spdlog::stderr_color_mt("supra"));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << one_line(e.what()) << " (see --help)" << std::endl;
    return 2;
  } catch (const supra::Error& e) {
    std::cerr << "error: " << one_line(e.what()) << std::endl;
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "internal error: " << one_line(e.what_without_backtrace()) << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "internal error: " << one_line(e.what()) << std::endl;
    return 1;
  }
  return 0;
}
