// The uptraining loop of `supra train`, read top to bottom in trainer.cpp: run() builds the job (named builders:
// runtime, model, data, optimizer, run folder), evaluates the converted model at step 0, then repeats
// train_step() — forward/backward over the rank's micro-batches, the mean loss over ranks, clip, AdamW update —
// with progress, periodic evaluation and checkpoints, exact resume, preemption handling and non-finite step
// skipping. One process, or one process per GPU/CPU rank under torchrun / Slurm (data parallel, ZeRO-1/2; the
// launcher's environment decides, see training/dist_env.h): the global batch and the data stream do not depend on
// the world size.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "core/model/causal_lm.h"
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

// What one optimizer step did (the mean over the global batch).
struct StepResult {
  double loss = 0;       // the objective (CE + z-loss)
  double ce = 0;         // cross-entropy alone
  double grad_norm = 0;  // before clipping
  bool skipped = false;  // non-finite loss or gradient: no update
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
  // Builders, in the order run() calls them.
  void init_runtime();     // validation, device, process group; every rank runs the same config
  void build_model();      // load (converting a pretrained model on the fly), to device, rank 0's weights everywhere
  void build_data();       // token shards, checked against the model; the deterministic loader
  void build_optimizer();  // ShardedAdamW (DDP / ZeRO-1/2) over the trainable parameters
  void open_run_folder();  // run folder, checkpoint manager, resume from `latest`
  void use_param_dtype();  // train.param_dtype = bf16: bf16 matrices, fp32 masters in the optimizer

  // One optimizer step on this rank's rows of the global batch, at learning rate `lr`.
  StepResult train_step(const data::Batch& batch, double lr);
  double evaluate();  // held-out mean cross-entropy (NaN when there is no held-out data)
  std::filesystem::path save_checkpoint();
  torch::Tensor forward(const torch::Tensor& inputs, const torch::Tensor& resets);  // logits, under autocast

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
