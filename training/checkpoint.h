// Training checkpoints: one folder per save under <run>/checkpoints/, written to a temporary name, fsynced and
// renamed, then the `latest` pointer file is replaced atomically. A folder holds the model (config.json +
// safetensors: itself a loadable supra model), the optimizer state, the step/data-loader/RNG state and the
// resolved config. A kill at any moment leaves `latest` pointing at a complete checkpoint.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <string>

#include "core/causal_lm.h"
#include "data/loader.h"
#include "training/train_config.h"

namespace supra::training {

struct TrainState {
  int64_t step = 0;                 // optimizer steps taken (also: global batches consumed)
  uint64_t tokens_seen = 0;
  int64_t nonfinite_streak = 0;
  data::LoaderState loader;
  TrainConfig config;
};

class CheckpointManager {
 public:
  CheckpointManager(std::filesystem::path run_dir, int64_t keep_last);

  std::filesystem::path dir() const { return run_dir_ / "checkpoints"; }
  // The folder `latest` points to, if any (verified to exist and to be complete).
  std::optional<std::filesystem::path> latest() const;
  // Saves and returns the new folder; prunes to the newest keep_last. Throws supra::Error (disk full, …) leaving
  // the previous checkpoints and `latest` untouched.
  std::filesystem::path save(CausalLM& model, torch::optim::Optimizer& optimizer, const TrainState& state,
                             const std::string& resolved_config_toml);
  // Restores model parameters, optimizer state and RNG states; returns the train state.
  TrainState load(const std::filesystem::path& folder, CausalLM& model, torch::optim::Optimizer& optimizer) const;
  // Removes folders left by saves that were interrupted (their names contain ".tmp-").
  void remove_partial() const;

 private:
  std::filesystem::path run_dir_;
  int64_t keep_last_;
};

}  // namespace supra::training
