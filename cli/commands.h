// The `supra` subcommands. Each cli/cmd_*.cpp adds one subcommand to the app; its callback does the work and
// throws supra::Error on bad input (reported once, as one line, by main).
#pragma once
#include <CLI/CLI.hpp>

namespace supra::cli {

void add_info(CLI::App& app);
void add_logits(CLI::App& app);
void add_convert(CLI::App& app);
void add_data(CLI::App& app);
void add_train(CLI::App& app);
void add_export(CLI::App& app);
void add_generate(CLI::App& app);
void add_eval(CLI::App& app);

// "f32" | "bf16" -> torch dtype (CLI11 validates the spelling).
inline torch::Dtype parse_dtype(const std::string& s) { return s == "bf16" ? torch::kBFloat16 : torch::kFloat; }

}  // namespace supra::cli
