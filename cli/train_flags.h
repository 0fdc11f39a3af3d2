// The training config's keys as flags of a CLI11 command (`--optim.lr 3e-5`, `--train.no_compile`), and a recipe's
// stage settings (`[stages.NAME.section] key = v` in the file, `--stage NAME.section.key=value` on the command line).
// cli/cmd_train.cpp and the TOML fuzz harness (tests/fuzz) share them.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "training/train_config.h"

namespace supra::cli {

// Every key of training/train_config.h's table as a flag of `cmd`, bound to `c` (its current values are the
// defaults). Booleans get `--section.key` / `--section.no_key`; enumerated keys are parsed by name; integers exactly
// as written. `finish` collects the conversions to run after parsing (enum names -> values).
void add_keys(CLI::App& cmd, training::TrainConfig& c, std::vector<std::function<void()>>& finish);

// A recipe's stage settings, by stage in the order the file names them.
struct StageSettings {
  std::string name;
  std::vector<CLI::ConfigItem> flags, file;  // the flags win over the file
};

// Moves the "stages.NAME.section.key" items of `items` (read from `source`) into their stages.
std::vector<StageSettings> split_stage_items(std::vector<CLI::ConfigItem>& items, const std::string& source);
// Adds `--stage NAME.section.key=value` flags to the stages they name (a stage the recipe lacks is an error).
void add_stage_flags(std::vector<StageSettings>& stages, const std::vector<std::string>& flags);

}  // namespace supra::cli
