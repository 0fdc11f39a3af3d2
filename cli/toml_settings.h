// TOML run configs as flat settings for CLI11 subcommands whose options are named by section: `[optim] lr = 3e-5`
// sets `--optim.lr`, `[stages.a.train] steps = 5` is the setting "stages.a.train.steps". The file is parsed by
// toml++ (a syntax error names its line and column); the settings come out in file order. Applying them sets every
// option that the command line left unset (flags override the file); a key that names no option is an error (a
// misspelt setting must not be silently ignored).
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace supra::cli {

// The settings of the TOML file `path` as flat items (name "optim.lr", inputs {"3e-05"}), in the order the file
// writes them. Throws supra::Error naming `path` (and the line and column of a syntax error).
std::vector<CLI::ConfigItem> read_toml_items(const std::string& path);

// Fills the options of `cmd` that are still unset from `items` (read from `source`).
void apply_config_items(CLI::App& cmd, const std::vector<CLI::ConfigItem>& items, const std::string& source);

}  // namespace supra::cli
