// `supra train --config FILE.toml [--section.key value …] [--stage NAME.section.key=value …]`: a training run, or a
// recipe of stages. Every key of the table in training/train_config.h is a TOML key and a flag (`[optim] lr = 3e-5`
// ⇔ `--optim.lr 3e-5`); the resolved config is written to the run folder. A recipe file adds `[stages.NAME.section]`
// tables, in the order the stages run, each overriding the file's keys for that stage (training/stages.h).
#include <spdlog/spdlog.h>

#include <functional>
#include <iostream>

#include "cli/commands.h"
#include "core/base/error.h"
#include "cli/toml_settings.h"
#include "cli/train_flags.h"
#include "training/stages.h"
#include "training/trainer.h"

namespace supra::cli {
namespace {

using training::TrainConfig;

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
  cmd->add_option("--config", *config_file, "TOML run config or recipe (see configs/); flags override its settings")
      ->configurable(false);  // not a run setting: never in the resolved config
  auto stage_flags = std::make_shared<std::vector<std::string>>();
  cmd->add_option("--stage", *stage_flags, "a recipe stage's setting: NAME.section.key=value (repeatable)")
      ->configurable(false);
  auto print_config = std::make_shared<bool>(false);
  cmd->add_flag("--print-config", *print_config, "print the resolved config (TOML) and exit without training")
      ->configurable(false);
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
