// TOML run configs as flat settings for CLI11 subcommands whose options are named by section: `[optim] lr = 3e-5`
// sets `--optim.lr`, `[stages.a.train] steps = 5` is the setting "stages.a.train.steps".
//
// supra reads the part of TOML 1.0 that settings need, strictly, with its own small parser (fuzzed: tests/fuzz):
// UTF-8 text of `[dotted.table]` headers and `dotted.key = value` lines, values being basic "…" or literal '…'
// strings, decimal integers, floats (incl. inf/nan) and booleans, `#` comments anywhere a line may end. Arrays, inline
// tables, multi-line strings, dates and arrays of tables are refused by name (no setting takes one). A syntax error
// names its line and column; a key set twice is an error. Applying the settings sets every option that the command
// line left unset (flags override the file); a key that names no option is an error (a misspelt setting must not be
// silently ignored).
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace supra::cli {

// The settings of TOML text as flat items (name "optim.lr", inputs {"3e-5"}: numbers as written, without `_`;
// strings unescaped), in the order the text writes them. Throws supra::Error naming `source` and the line and column.
std::vector<CLI::ConfigItem> parse_toml_items(const std::string& text, const std::string& source);
// The same for the file `path`.
std::vector<CLI::ConfigItem> read_toml_items(const std::string& path);

// Fills the options of `cmd` that are still unset from `items` (read from `source`).
void apply_config_items(CLI::App& cmd, const std::vector<CLI::ConfigItem>& items, const std::string& source);

}  // namespace supra::cli
