// `supra train --config FILE.toml [--section.key value …]`: the uptraining run. Every key of the table in
// training/train_config.h is a TOML key and a flag (`[optim] lr = 3e-5` ⇔ `--optim.lr 3e-5`); the resolved config
// is written to the run folder.
#include <spdlog/spdlog.h>

#include <functional>
#include <iostream>
#include <type_traits>

#include "cli/commands.h"
#include "cli/flat_toml_config.h"
#include "training/trainer.h"

namespace supra::cli {
namespace {

using training::TrainConfig;

// Registers one config key as a flag. Booleans get `--section.key` / `--section.no_key`; enumerated keys are
// parsed by name (their textual value is kept so that --print-config shows names); `finish` collects the
// conversions that run after parsing.
template <typename T>
void add_key(CLI::App& cmd, T& member, const std::string& key, const std::string& help,
             std::vector<std::function<void()>>& finish) {
  const std::string flag = "--" + key;
  if constexpr (std::is_same_v<T, bool>) {
    const auto dot = key.find('.');
    cmd.add_flag(flag + "{true},!--" + key.substr(0, dot + 1) + "no_" + key.substr(dot + 1), member, help);
  } else if constexpr (std::is_enum_v<T>) {
    auto text = std::make_shared<std::string>(training::enum_name(member));
    std::vector<std::string> names;
    for (const auto& [n, v] : training::enum_names<T>()) names.push_back(n);
    cmd.add_option(flag, *text, help)->check(CLI::IsMember(names))->capture_default_str();
    finish.push_back([text, &member] {
      for (const auto& [n, v] : training::enum_names<T>())
        if (n == *text) member = v;
    });
  } else {
    cmd.add_option(flag, member, help)->capture_default_str();
  }
}

}  // namespace

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Uptrain a SUPRA model (converted checkpoint, or converted on the fly)");
  auto c = std::make_shared<TrainConfig>();
  auto config_file = std::make_shared<std::string>();
  cmd->add_option("--config", *config_file, "TOML run config (see configs/); flags override its settings");
  auto print_config = std::make_shared<bool>(false);
  cmd->add_flag("--print-config", *print_config, "print the resolved config (TOML) and exit without training");
  auto print_doc = std::make_shared<bool>(false);
  cmd->add_flag("--print-config-doc", *print_doc, "print the table of config keys (Markdown, as in docs/training.md)")
      ->group("")  // hidden: used to keep the docs in step
      ->configurable(false);  // not a run setting: never in the resolved config
  auto finish = std::make_shared<std::vector<std::function<void()>>>();
#define SUPRA_ADD_KEY(type, member, key, def, bounds, on_resume, help) add_key(*cmd, c->member, key, help, *finish);
  SUPRA_TRAIN_CONFIG_KEYS(SUPRA_ADD_KEY)
#undef SUPRA_ADD_KEY
  cmd->callback([c, cmd, config_file, print_config, print_doc, finish] {
    if (*print_doc) {
      std::cout << TrainConfig::doc_table();
      return;
    }
    if (!config_file->empty()) apply_toml_config(*cmd, *config_file);
    for (const auto& f : *finish) f();
    const std::string resolved = cmd->config_to_str(/*default_also=*/true, /*write_description=*/false);
    if (*print_config) {
      std::cout << resolved;
      return;
    }
    training::Trainer trainer(*c, resolved);
    auto r = trainer.run();
    spdlog::info("done at step {}{}; last checkpoint {}", r.final_step,
                 r.stopped_by_signal ? " (stopped by signal)" : "", r.last_checkpoint.string());
  });
}

}  // namespace supra::cli
