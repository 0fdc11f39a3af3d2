#include "training/stages.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <regex>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/model_io.h"
#include "training/dist_env.h"

namespace supra::training {
namespace fs = std::filesystem;

namespace {

// The step a run folder's latest checkpoint holds and the config it was saved with (nullopt: not started).
struct SavedStage {
  int64_t step = 0;
  TrainConfig config;
};
std::optional<SavedStage> saved_stage(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir / "checkpoints" / "latest", ec)) return std::nullopt;
  const auto latest = CheckpointManager(dir, 1).latest();
  const auto state = read_trainer_state(*latest);
  try {
    return SavedStage{state.at("step").get<int64_t>(), TrainConfig::from_json(state.at("config"))};
  } catch (const nlohmann::json::exception& e) {
    throw Error((*latest / "trainer_state.json").string(), std::string("malformed trainer state: ") + e.what());
  }
}

// A teacher must be a pretrained softmax model (read from its config alone: no weights are loaded here).
void check_teacher(const Stage& s) {
  const std::string& path = s.config.teacher_path;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path, "teacher of stage '" + s.name + "': no such file or directory");
  if (fs::is_directory(path, ec) && fs::exists(fs::path(path) / "config.json", ec) &&
      read_model_config(fs::path(path) / "config.json").supra)
    throw Error(path, "is a converted SUPRA model: stage '" + s.name +
                          "' (train.objective = " + enum_name(s.config.objective) +
                          ") needs the pretrained softmax teacher; set teacher.path to the pretrained model");
}

}  // namespace

fs::path stage_dir(const std::string& out_dir, size_t index, const std::string& name) {
  return fs::path(out_dir) / (std::to_string(index + 1) + "-" + name);
}

StagePaths stage_paths(const TrainConfig& recipe, const std::vector<std::string>& names, size_t index) {
  StagePaths p;
  p.out_dir = stage_dir(recipe.out_dir, index, names[index]).string();
  p.model_path = index == 0 ? recipe.model_path : stage_dir(recipe.out_dir, index - 1, names[index - 1]).string();
  p.teacher_path = recipe.teacher_path.empty() ? recipe.model_path : recipe.teacher_path;
  return p;
}

TrainResult run_stages(const TrainConfig& recipe, const std::vector<Stage>& stages) {
  const int64_t world = read_dist_env().world_size;
  // 1. Every stage's config and teacher, before any step.
  for (const Stage& s : stages) {
    try {
      s.config.validate(world);
    } catch (const Error& e) {
      throw Error("config", "stage '" + s.name + "': " + e.what());
    }
    if (s.config.objective != Objective::kLm) check_teacher(s);
  }
  // 2. The run folder against the stage list: only this recipe's stage folders, and no finished stage that a later
  //    one started from may change its budget or a key that must match.
  std::error_code ec;
  if (fs::is_directory(recipe.out_dir, ec)) {
    static const std::regex stage_name(R"((\d+)-(.+))");
    for (const auto& e : list_directory(recipe.out_dir)) {
      std::smatch m;
      const std::string name = e.filename().string();
      if (!fs::is_directory(e, ec) || !std::regex_match(name, m, stage_name)) continue;
      const size_t i = std::stoul(m[1]) - 1;
      if (i >= stages.size() || stages[i].name != m[2].str())
        throw Error(e.string(),
                    "holds a stage this recipe does not have at that place (a changed stage list cannot "
                    "resume this run; choose another run.out_dir)");
    }
  }
  std::vector<std::optional<SavedStage>> saved;
  for (const Stage& s : stages) saved.push_back(saved_stage(s.config.out_dir));
  if (recipe.resume == ResumeMode::kNone &&
      std::any_of(saved.begin(), saved.end(), [](auto& s) { return s.has_value(); }))
    throw Error(recipe.out_dir,
                "already holds this recipe's checkpoints; resume with --run.resume auto or choose "
                "another run.out_dir");
  for (size_t i = 0; i + 1 < stages.size(); ++i) {
    if (!saved[i + 1]) continue;
    const Stage& s = stages[i];
    if (!saved[i])
      throw Error(s.config.out_dir, "stage '" + stages[i + 1].name + "' started but stage '" + s.name +
                                        "' has no checkpoint (a changed stage list cannot resume this run)");
    std::string why = s.config.resume_incompatibility(saved[i]->config);
    if (why.empty() && saved[i]->config.steps != s.config.steps)
      why = "train.steps changed (" + std::to_string(saved[i]->config.steps) + " → " + std::to_string(s.config.steps) +
            ")";
    if (!why.empty())
      throw Error(s.config.out_dir, "stage '" + s.name + "' is finished and stage '" + stages[i + 1].name +
                                        "' started from it; it cannot change: " + why);
  }
  // 3. The stages not finished yet, in order.
  TrainResult result;
  std::shared_ptr<Communicator> comm;  // one process group for the whole recipe
  for (size_t i = 0; i < stages.size(); ++i) {
    const Stage& s = stages[i];
    if (saved[i] && saved[i]->step >= s.config.steps) {
      spdlog::info("stage {}/{} '{}' finished earlier ({} steps)", i + 1, stages.size(), s.name, saved[i]->step);
      continue;
    }
    spdlog::info("stage {}/{} '{}': train.objective = {}, {} steps, from {}", i + 1, stages.size(), s.name,
                 enum_name(s.config.objective), s.config.steps, s.config.model_path);
    Trainer trainer(s.config, s.resolved_toml, comm);
    result = trainer.run();
    comm = trainer.communicator();
    if (result.stopped_by_signal) break;
  }
  return result;
}

}  // namespace supra::training
