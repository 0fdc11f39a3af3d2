// Training recipes: an ordered list of stages (docs/training.md, "Recovering the teacher"), each a complete run
// with its own objective, schedule, trainable set and budget, in <run.out_dir>/<i>-<name>/. Stage i > 1 starts from
// stage i − 1's final checkpoint; the teacher is always the recipe's pretrained model. `supra train` runs the
// stages in order with one command; after a kill it resumes inside the stage that was running (bitwise, the run's
// own resume) and skips the finished ones. A stage list that no longer matches the run folder is refused.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "training/trainer.h"

namespace supra::training {

struct Stage {
  std::string name;           // [a-z0-9_]+, unique in the recipe
  TrainConfig config;         // fully resolved (model.path, run.out_dir, teacher.path set by stage_paths)
  std::string resolved_toml;  // written into the stage's run folder
};

// Where stage `index` (0-based) of a recipe whose run.out_dir is `out_dir` runs: <out_dir>/<index+1>-<name>.
std::filesystem::path stage_dir(const std::string& out_dir, size_t index, const std::string& name);

// The keys a recipe sets for each stage (a stage may not set them itself): run.out_dir = stage_dir; model.path =
// the recipe's model for the first stage, the previous stage's run folder after; teacher.path = the recipe's
// teacher, or its model.
struct StagePaths {
  std::string model_path, out_dir, teacher_path;
};
StagePaths stage_paths(const TrainConfig& recipe, const std::vector<std::string>& names, size_t index);

// Checks the whole recipe before any step (every stage's config, teachers, the run folder against the stage list),
// then runs the unfinished stages in order. Returns the last stage's result (or the interrupted one's).
TrainResult run_stages(const TrainConfig& recipe, const std::vector<Stage>& stages);

}  // namespace supra::training
