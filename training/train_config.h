// TrainConfig: everything that defines an uptraining run. The CLI fills it from a TOML file plus
// `--section.key value` overrides (cli/cmd_train.cpp); checkpoints store it as JSON so a resume can refuse a
// config that would not continue the same run.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace supra::training {

struct TrainConfig {
  // [model]
  std::string model_path;            // a supra (converted) checkpoint, or an HF/llama2.c model converted on the fly
  std::string decay = "reference";   // on-the-fly conversion settings
  uint64_t feature_map_seed = 0;
  int64_t chunk_size = 64;
  bool qk_norm = false;
  // [data]
  std::string data_dir;
  int64_t seq_len = 2048;
  uint64_t data_seed = 0;
  int64_t eval_samples = -1;         // held-out samples; -1: eval_fraction of the data
  double eval_fraction = 0.01;
  // [optim]
  double lr = 3e-5;
  double min_lr = 1e-5;
  int64_t warmup_steps = 1000;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
  double grad_clip = 1.0;            // ≤ 0: no clipping
  double z_loss = 1e-4;
  // [train]
  int64_t steps = 1000;
  int64_t global_batch = 8;          // rows of seq_len tokens per optimizer step (all ranks, all micro-batches)
  int64_t micro_batch = 8;           // rows per forward/backward on one rank
  std::string device = "auto";       // auto | cpu | cuda
  std::string precision = "auto";    // auto (bf16 autocast on GPU, fp32 on CPU) | fp32 | bf16
  std::string param_dtype = "fp32";  // fp32 | bf16: matrices stored in bf16, fp32 master slices in the optimizer
                                     //   (needs dist.zero ≥ 1 and bf16 precision; saves 4 bytes per parameter)
  bool activation_checkpointing = false;
  uint64_t seed = 0;
  int64_t max_nonfinite = 5;         // consecutive skipped (NaN/Inf) steps before the run stops
  int num_threads = 0;               // CPU threads (0: torch's default)
  // [dist] (multi-process runs; see docs/distributed.md)
  int64_t dist_zero = 0;             // 0: DDP (replicated AdamW) | 1: optimizer state sharded | 2: + gradients sharded
  double dist_bucket_mb = 25;        // gradient bucket size for overlapping communication with the backward pass
  double dist_timeout_s = 600;       // a collective (or the rendezvous) waiting longer than this fails every rank
  // [run]
  std::string out_dir = "runs/supra";
  int64_t log_every = 1;
  int64_t eval_every = 0;            // 0: only at the end
  int64_t eval_batches = 8;
  int64_t save_every = 0;            // 0: only at the end (and on SIGTERM)
  int64_t keep_last = 3;
  std::string resume = "none";       // none | auto

  // Checks ranges and relations (batch divisibility, …); throws supra::Error("config", reason).
  void validate(int64_t world_size = 1) const;
  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j);
  // Why `saved` (from a checkpoint) cannot be continued by `*this` ("" when it can). Schedule length, logging and
  // output settings may change; the model, data, batch geometry and seeds may not.
  std::string resume_incompatibility(const TrainConfig& saved) const;
};

}  // namespace supra::training
