// TOML run configs for CLI11 subcommands whose options are named by section: `[optim] lr = 3e-5` sets `--optim.lr`.
// CLI11 (2.1 as packaged by Debian) maps a TOML section to a *subcommand* and does not read config files given to a
// subcommand at all, so supra applies the file itself after parsing: every `section.key` becomes the option
// `--section.key` unless that option was given on the command line (flags override the file). A key that names no
// option is an error (a misspelt setting must not be silently ignored).
#pragma once
#include <CLI/CLI.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "core/base/error.h"

namespace supra::cli {

class FlatTomlConfig : public CLI::ConfigTOML {
 public:
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::vector<CLI::ConfigItem> out;
    for (CLI::ConfigItem item : CLI::ConfigTOML::from_config(input)) {
      if (item.name == "++" || item.name == "--") continue;  // section open/close markers (subcommands only)
      std::string name;
      for (const auto& p : item.parents) name += p + ".";
      item.name = name + item.name;
      item.parents.clear();
      out.push_back(std::move(item));
    }
    return out;
  }
};

// The settings of the TOML file `path` as flat items (`[optim] lr = 3e-5` -> name "optim.lr").
inline std::vector<CLI::ConfigItem> read_toml_items(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path, "cannot open the config file");
  try {
    return FlatTomlConfig().from_config(in);
  } catch (const std::exception& e) {
    throw Error(path, std::string("malformed TOML: ") + e.what());
  }
}

// Fills the options of `cmd` that are still unset from `items` (read from `source`).
inline void apply_config_items(CLI::App& cmd, const std::vector<CLI::ConfigItem>& items, const std::string& source) {
  for (const auto& item : items) {
    CLI::Option* op = cmd.get_option_no_throw("--" + item.name);
    if (op == nullptr)
      throw Error(source, "unknown setting '" + item.name + "' (see `supra " + cmd.get_name() + " --help`)");
    if (op->count() > 0) continue;  // given on the command line (or by an earlier source): it wins
    try {
      op->add_result(item.inputs);
      op->run_callback();
    } catch (const CLI::Error& e) {
      throw Error(source, "bad value for '" + item.name + "': " + e.what());
    }
  }
}

// Fills the options of `cmd` that the command line left unset from the TOML file `path`.
inline void apply_toml_config(CLI::App& cmd, const std::string& path) {
  apply_config_items(cmd, read_toml_items(path), path);
}

}  // namespace supra::cli
