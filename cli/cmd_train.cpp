// `supra train --config FILE.toml [--section.key value …] [--stage NAME.section.key=value …]`: a training run, or a
// recipe of stages. Every key of the table in training/train_config.h is a TOML key and a flag (`[optim] lr = 3e-5`
// ⇔ `--optim.lr 3e-5`); the resolved config is written to the run folder. A recipe file adds `[stages.NAME.section]`
// tables, in the order the stages run, each overriding the file's keys for that stage (training/stages.h).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <iostream>
#include <limits>
#include <regex>
#include <type_traits>

#include "cli/commands.h"
#include "cli/flat_toml_config.h"
#include "training/stages.h"
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
  } else if constexpr (std::is_integral_v<T>) {
    // Integers exactly as written: "1e20", "2.5" or out-of-range values are refused, never rounded or clamped.
    cmd.add_option(flag, member, help)
        ->capture_default_str()
        ->check(CLI::Validator(
            [](std::string& text) -> std::string {
              T v{};
              const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
              if (ec == std::errc() && end == text.data() + text.size()) return "";
              return "'" + text + "' is not an integer in [" + std::to_string(std::numeric_limits<T>::min()) + ", " +
                     std::to_string(std::numeric_limits<T>::max()) + "]";
            },
            "INTEGER"));
  } else {
    cmd.add_option(flag, member, help)->capture_default_str();
  }
}

// Every key of the table as a flag of `cmd`, bound to `c` (its current values are the defaults).
void add_keys(CLI::App& cmd, TrainConfig& c, std::vector<std::function<void()>>& finish) {
#define SUPRA_ADD_KEY(type, member, key, def, bounds, on_resume, help) add_key(cmd, c.member, key, help, finish);
  SUPRA_TRAIN_CONFIG_KEYS(SUPRA_ADD_KEY)
#undef SUPRA_ADD_KEY
}

// A recipe's stage settings: `[stages.NAME.section] key = v` items of the file (name "stages.NAME.section.key")
// and `--stage NAME.section.key=value` flags, by stage in the order the file names them.
struct StageSettings {
  std::string name;
  std::vector<CLI::ConfigItem> flags, file;  // the flags win over the file
};

std::vector<StageSettings> split_stage_items(std::vector<CLI::ConfigItem>& items, const std::string& source) {
  static const std::regex stage_key(R"(stages\.([a-z0-9_]+)\.([a-z_]+\.[a-z_0-9]+))");
  std::vector<StageSettings> stages;
  std::vector<CLI::ConfigItem> rest;
  for (auto& item : items) {
    if (item.name.rfind("stages.", 0) != 0) {
      rest.push_back(std::move(item));
      continue;
    }
    std::smatch m;
    if (!std::regex_match(item.name, m, stage_key))
      throw Error(source,
                  "'" + item.name + "': stage settings are [stages.NAME.section] key = value (NAME: a-z 0-9 _)");
    auto it = std::find_if(stages.begin(), stages.end(), [&](const StageSettings& s) { return s.name == m[1].str(); });
    if (it == stages.end()) it = stages.insert(stages.end(), StageSettings{m[1].str(), {}, {}});
    item.name = m[2].str();
    it->file.push_back(std::move(item));
  }
  items = std::move(rest);
  return stages;
}

void add_stage_flags(std::vector<StageSettings>& stages, const std::vector<std::string>& flags) {
  static const std::regex flag(R"(([a-z0-9_]+)\.([a-z_]+\.[a-z_0-9]+)=(.*))");
  for (const std::string& f : flags) {
    std::smatch m;
    if (!std::regex_match(f, m, flag)) throw Error("--stage " + f, "expected NAME.section.key=value");
    auto it = std::find_if(stages.begin(), stages.end(), [&](const StageSettings& s) { return s.name == m[1].str(); });
    if (it == stages.end()) throw Error("--stage " + f, "the recipe has no stage '" + m[1].str() + "'");
    CLI::ConfigItem item;
    item.name = m[2].str();
    item.inputs = {m[3].str()};
    it->flags.push_back(std::move(item));
  }
}

// Each stage's config: the recipe's keys, the stage's own settings over them, and the paths the recipe sets.
std::vector<training::Stage> resolve_stages(const TrainConfig& recipe, const std::vector<StageSettings>& settings,
                                            const std::string& source) {
  std::vector<std::string> names;
  for (const auto& s : settings) names.push_back(s.name);
  std::vector<training::Stage> stages;
  for (size_t i = 0; i < settings.size(); ++i) {
    const StageSettings& st = settings[i];
    for (const auto* list : {&st.flags, &st.file})
      for (const auto& item : *list)
        if (item.name == "model.path" || item.name == "run.out_dir" || item.name == "teacher.path" ||
            item.name == "train.device" || item.name == "run.resume")
          throw Error(source, "stage '" + st.name + "' sets " + item.name +
                                  ", which a recipe sets for all its stages (set it outside [stages.*])");
    training::Stage stage{st.name, recipe, ""};
    CLI::App app("", "train");
    std::vector<std::function<void()>> finish;
    add_keys(app, stage.config, finish);
    const training::StagePaths paths = training::stage_paths(recipe, names, i);
    std::vector<CLI::ConfigItem> fixed(3);
    fixed[0].name = "model.path", fixed[0].inputs = {paths.model_path};
    fixed[1].name = "run.out_dir", fixed[1].inputs = {paths.out_dir};
    fixed[2].name = "teacher.path", fixed[2].inputs = {paths.teacher_path};
    apply_config_items(app, fixed, source);
    apply_config_items(app, st.flags, "--stage " + st.name);
    apply_config_items(app, st.file, source);
    for (const auto& f : finish) f();
    stage.resolved_toml = app.config_to_str(/*default_also=*/true, /*write_description=*/false);
    stages.push_back(std::move(stage));
  }
  return stages;
}

}  // namespace

void add_train(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("train", "Train a SUPRA model: one run, or a recipe of stages (lm / attention / distill)");
  auto c = std::make_shared<TrainConfig>();
  auto config_file = std::make_shared<std::string>();
  cmd->add_option("--config", *config_file, "TOML run config or recipe (see configs/); flags override its settings");
  auto stage_flags = std::make_shared<std::vector<std::string>>();
  cmd->add_option("--stage", *stage_flags, "a recipe stage's setting: NAME.section.key=value (repeatable)")
      ->configurable(false);
  auto print_config = std::make_shared<bool>(false);
  cmd->add_flag("--print-config", *print_config, "print the resolved config (TOML) and exit without training");
  auto print_doc = std::make_shared<bool>(false);
  cmd->add_flag("--print-config-doc", *print_doc, "print the table of config keys (Markdown, as in docs/training.md)")
      ->group("")             // hidden: used to keep the docs in step
      ->configurable(false);  // not a run setting: never in the resolved config
  auto finish = std::make_shared<std::vector<std::function<void()>>>();
  add_keys(*cmd, *c, *finish);
  cmd->callback([c, cmd, config_file, stage_flags, print_config, print_doc, finish] {
    if (*print_doc) {
      std::cout << TrainConfig::doc_table();
      return;
    }
    std::vector<StageSettings> stage_settings;
    if (!config_file->empty()) {
      auto items = read_toml_items(*config_file);
      stage_settings = split_stage_items(items, *config_file);
      apply_config_items(*cmd, items, *config_file);
    }
    add_stage_flags(stage_settings, *stage_flags);
    for (const auto& f : *finish) f();
    const std::string resolved = cmd->config_to_str(/*default_also=*/true, /*write_description=*/false);
    if (stage_settings.empty()) {  // one run
      if (*print_config) {
        std::cout << resolved;
        return;
      }
      training::Trainer trainer(*c, resolved);
      auto r = trainer.run();
      spdlog::info("done at step {}{}; last checkpoint {}", r.final_step,
                   r.stopped_by_signal ? " (stopped by signal)" : "", r.last_checkpoint.string());
      return;
    }
    const auto stages = resolve_stages(*c, stage_settings, config_file->empty() ? "--stage" : *config_file);
    if (*print_config) {
      for (size_t i = 0; i < stages.size(); ++i)
        std::cout << "# stage " << i + 1 << "/" << stages.size() << ": " << stages[i].name << "\n"
                  << stages[i].resolved_toml << "\n";
      return;
    }
    auto r = training::run_stages(*c, stages);
    spdlog::info("recipe {}: done at step {} of its last stage{}; last checkpoint {}", *config_file, r.final_step,
                 r.stopped_by_signal ? " (stopped by signal)" : "", r.last_checkpoint.string());
  });
}

}  // namespace supra::cli
