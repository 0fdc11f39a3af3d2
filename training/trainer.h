// The uptraining loop of `supra train`: model (converted, or converted on the fly), data loader, AdamW with the
// reference schedule, gradient accumulation and clipping, CE + z-loss, bf16 autocast on GPU, optional activation
// checkpointing, periodic evaluation and checkpoints, exact resume, preemption handling and non-finite step
// skipping. One process, or one process per GPU/CPU rank under torchrun / Slurm (data parallel, ZeRO-1/2; the
// launcher's environment decides, see training/dist_env.h): the global batch and the data stream do not depend on
// the world size.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "core/causal_lm.h"
#include "data/loader.h"
#include "training/checkpoint.h"
#include "training/communicator.h"
#include "training/sharded_adamw.h"
#include "training/train_config.h"

namespace supra::training {

struct TrainResult {
  int64_t final_step = 0;
  bool stopped_by_signal = false;
  double last_loss = 0;
  std::filesystem::path last_checkpoint;
};

class Trainer {
 public:
  // `resolved_config_toml` is written into the run folder and every checkpoint.
  Trainer(TrainConfig config, std::string resolved_config_toml);
  // Runs to config.steps (or until SIGTERM/SIGINT). Throws supra::Error on bad input, on a run of
  // config.max_nonfinite non-finite steps, or when a checkpoint cannot be written.
  TrainResult run();

  // Test hook, called after each optimizer step with the step's loss (before any checkpoint of that step).
  std::function<void(int64_t step, double loss)> on_step;
  // Test hook: scales the loss of the given steps by NaN (simulates a diverging step).
  std::function<bool(int64_t step)> inject_nonfinite;

 private:
  void setup();
  double evaluate();
  torch::Tensor forward(const torch::Tensor& inputs, const torch::Tensor& resets);

  TrainConfig cfg_;
  std::string resolved_toml_;
  torch::Device device_{torch::kCPU};
  bool bf16_autocast_ = false;
  CausalLM model_{nullptr};
  std::shared_ptr<data::ShardedTokens> tokens_;
  std::unique_ptr<data::TokenLoader> loader_;
  std::shared_ptr<Communicator> comm_;
  std::unique_ptr<ShardedAdamW> optimizer_;
  std::unique_ptr<CheckpointManager> checkpoints_;
  TrainState state_;
  bool resumed_ = false;
};

}  // namespace supra::training
