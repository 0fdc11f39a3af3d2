// Training checkpoints: one folder per save under <run>/checkpoints/, written to a temporary name, fsynced and
// renamed, then the `latest` pointer file is replaced atomically. A folder holds the model (config.json +
// safetensors: itself a loadable supra model), the optimizer state (one file per rank with ZeRO, see
// sharded_adamw.h; readable at any world size), the step/data-loader/RNG state and the resolved config.
// With several ranks (a shared file system), rank 0 creates and publishes the folder, every rank writes its
// shard, and the folder is published only when all ranks succeeded. A kill at any moment leaves `latest`
// pointing at a complete checkpoint.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <string>

#include "core/model/causal_lm.h"
#include "data/loader.h"
#include "training/communicator.h"
#include "training/sharded_adamw.h"
#include "training/train_config.h"

namespace supra::training {

struct TrainState {
  int64_t step = 0;  // optimizer steps taken (also: global batches consumed)
  uint64_t tokens_seen = 0;
  int64_t nonfinite_streak = 0;
  data::LoaderState loader;
  TrainConfig config;
};

class CheckpointManager {
 public:
  // `comm`: the job's ranks (null: a single process).
  CheckpointManager(std::filesystem::path run_dir, int64_t keep_last, std::shared_ptr<Communicator> comm = nullptr);

  std::filesystem::path dir() const { return run_dir_ / "checkpoints"; }
  // The folder `latest` points to, if any (verified to exist and to be complete).
  std::optional<std::filesystem::path> latest() const;
  // Saves (a collective: every rank calls it) and returns the new folder; prunes to the newest keep_last. Throws
  // supra::Error (disk full on any rank, …) on every rank, leaving the previous checkpoints and `latest` untouched.
  std::filesystem::path save(CausalLM& model, ShardedAdamW& optimizer, const TrainState& state,
                             const std::string& resolved_config_toml);
  // Restores model parameters, this rank's optimizer slices (resharding if the world size changed) and RNG
  // states; returns the train state.
  TrainState load(const std::filesystem::path& folder, CausalLM& model, ShardedAdamW& optimizer) const;
  // Removes folders left by saves that were interrupted (their names contain ".tmp-"). Rank 0 only.
  void remove_partial() const;

 private:
  std::filesystem::path run_dir_;
  int64_t keep_last_;
  std::shared_ptr<Communicator> comm_;
};

// <folder>/trainer_state.json parsed (step, tokens_seen, loader, config, …); supra::Error naming the file when it
// is unreadable or not JSON.
nlohmann::json read_trainer_state(const std::filesystem::path& folder);

// A training run folder or its checkpoints/ folder -> the checkpoint `latest` points to; any other path as is (so
// that model.path / --checkpoint may name a run).
std::filesystem::path resolve_run_checkpoint(const std::filesystem::path& path);

}  // namespace supra::training
