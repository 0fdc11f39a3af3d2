// The uptraining loop of `supra train`, read top to bottom in trainer.cpp: run() builds the job (named builders:
// runtime, model, data, optimizer, run folder), evaluates the converted model at step 0, then repeats
// train_step() — forward/backward over the rank's micro-batches, the mean loss over ranks, clip, AdamW update —
// with progress, periodic evaluation and checkpoints, exact resume, preemption handling and non-finite step
// skipping. One process, or one process per GPU/CPU rank under torchrun / Slurm (data parallel, ZeRO-1/2; the
// launcher's environment decides, see training/dist_env.h): the global batch and the data stream do not depend on
// the world size.
#pragma once
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

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
  double loss = 0;                 // the objective (train.objective)
  double ce = std::nan("");        // the student's cross-entropy on the text (lm, distill)
  double kl = std::nan("");        // KL(teacher ‖ student) at the distillation temperature (distill)
  std::vector<double> layer_loss;  // per-layer attention-transfer losses (attention)
  double grad_norm = 0;            // before clipping
  bool skipped = false;            // non-finite loss or gradient: no update
};

class Trainer {
 public:
  // `resolved_config_toml` is written into the run folder and every checkpoint. `comm`: the process group of an
  // earlier run of this process (recipe stages), or null to connect a new one.
  Trainer(TrainConfig config, std::string resolved_config_toml, std::shared_ptr<Communicator> comm = nullptr);
  // Runs to config.steps (or until SIGTERM/SIGINT). Throws supra::Error on bad input, on a run of
  // config.max_nonfinite non-finite steps, or when a checkpoint cannot be written.
  TrainResult run();
  std::shared_ptr<Communicator> communicator() const { return comm_; }

  // Test hook, called after each optimizer step with the step's loss (before any checkpoint of that step).
  std::function<void(int64_t step, double loss)> on_step;
  // Test hook: scales the loss of the given steps by NaN (simulates a diverging step).
  std::function<bool(int64_t step)> inject_nonfinite;

 private:
  // Builders, in the order run() calls them.
  void init_runtime();      // validation, device, process group; every rank runs the same config
  void build_model();       // load (converting a pretrained model on the fly), to device, rank 0's weights everywhere
  void build_teacher();     // the frozen softmax teacher of the attention / distill objectives
  void select_trainable();  // train.trainable: freezes every other parameter
  void build_data();        // token shards, checked against the model; the deterministic loader
  void fit_o_proj();        // attention.o_proj_fit_batches: a fresh attention stage's o_proj by least squares
  void build_optimizer();   // ShardedAdamW (DDP / ZeRO-1/2) over the trainable parameters
  void open_run_folder();   // run folder, checkpoint manager, resume from `latest`
  void use_param_dtype();   // train.param_dtype = bf16: bf16 matrices, fp32 masters in the optimizer

  // One optimizer step on this rank's rows of the global batch, at learning rate `lr`.
  StepResult train_step(const data::Batch& batch, double lr);
  double evaluate();  // held-out mean cross-entropy (NaN when there is no held-out data)
  std::filesystem::path save_checkpoint();
  torch::Tensor forward(const torch::Tensor& inputs, const torch::Tensor& resets);  // logits, under autocast
  // The objective on one micro-batch (tokens [b, T+1]); accumulates its parts, divided by `micro_steps`, into `r`.
  torch::Tensor objective_loss(const torch::Tensor& tokens, const torch::Tensor& resets, int64_t micro_steps,
                               StepResult& r);

  TrainConfig cfg_;
  std::string resolved_toml_;
  torch::Device device_{torch::kCPU};
  bool bf16_autocast_ = false;
  CausalLM model_{nullptr};
  CausalLM teacher_{nullptr};           // attention / distill objectives only
  std::filesystem::path model_source_;  // model.path, or the latest checkpoint of the run folder it names
  bool converted_on_the_fly_ = false;   // model.path was a pretrained (softmax) model
  std::shared_ptr<data::ShardedTokens> tokens_;
  std::unique_ptr<data::TokenLoader> loader_;
  std::shared_ptr<Communicator> comm_;
  std::unique_ptr<ShardedAdamW> optimizer_;
  std::unique_ptr<CheckpointManager> checkpoints_;
  TrainState state_;
  bool resumed_ = false;
  nlohmann::json o_proj_fit_;  // what fit_o_proj did (for metrics.jsonl), null when it did not run
};

}  // namespace supra::training
