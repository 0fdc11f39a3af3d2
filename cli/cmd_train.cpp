// `supra train --config FILE.toml [--section.key value …]`: the uptraining run. Every TOML key is a flag
// (`[optim] lr = 3e-5` ⇔ `--optim.lr 3e-5`); the resolved config is written to the run folder.
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/flat_toml_config.h"
#include "training/trainer.h"

namespace supra::cli {

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Uptrain a SUPRA model (converted checkpoint, or converted on the fly)");
  auto c = std::make_shared<training::TrainConfig>();
  auto config_file = std::make_shared<std::string>();
  cmd->add_option("--config", *config_file, "TOML run config (see configs/); flags override its settings");
  auto print_config = std::make_shared<bool>(false);
  cmd->add_flag("--print-config", *print_config, "print the resolved config (TOML) and exit without training");
  cmd->add_option("--model.path", c->model_path, "supra checkpoint, or HF model / llama2.c .bin to convert");
  cmd->add_option("--model.decay", c->decay, "decay for on-the-fly conversion")->capture_default_str()
      ->check(CLI::IsMember({"reference", "retnet", "none"}));
  cmd->add_option("--model.feature_map_seed", c->feature_map_seed, "seed of the new feature maps")->capture_default_str();
  cmd->add_option("--model.chunk_size", c->chunk_size, "chunk length of the parallel form")->capture_default_str();
  cmd->add_flag("--model.qk_norm{true},!--model.no_qk_norm", c->qk_norm, "qk-norm for on-the-fly conversion");
  cmd->add_option("--data.dir", c->data_dir, "prepared token shards (supra data prepare)");
  cmd->add_option("--data.seq_len", c->seq_len, "tokens per row (T)")->capture_default_str();
  cmd->add_option("--data.seed", c->data_seed, "shuffle seed")->capture_default_str();
  cmd->add_option("--data.eval_samples", c->eval_samples, "held-out rows (-1: eval_fraction)")->capture_default_str();
  cmd->add_option("--data.eval_fraction", c->eval_fraction, "held-out fraction")->capture_default_str();
  cmd->add_option("--optim.lr", c->lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--optim.min_lr", c->min_lr, "cosine floor")->capture_default_str();
  cmd->add_option("--optim.warmup_steps", c->warmup_steps, "linear warmup steps")->capture_default_str();
  cmd->add_option("--optim.beta1", c->beta1, "AdamW beta1")->capture_default_str();
  cmd->add_option("--optim.beta2", c->beta2, "AdamW beta2")->capture_default_str();
  cmd->add_option("--optim.eps", c->eps, "AdamW eps")->capture_default_str();
  cmd->add_option("--optim.weight_decay", c->weight_decay, "AdamW weight decay")->capture_default_str();
  cmd->add_option("--optim.grad_clip", c->grad_clip, "gradient-norm clip (≤0: off)")->capture_default_str();
  cmd->add_option("--optim.z_loss", c->z_loss, "z-loss coefficient")->capture_default_str();
  cmd->add_option("--train.steps", c->steps, "optimizer steps")->capture_default_str();
  cmd->add_option("--train.global_batch", c->global_batch, "rows per optimizer step")->capture_default_str();
  cmd->add_option("--train.micro_batch", c->micro_batch, "rows per forward/backward")->capture_default_str();
  cmd->add_option("--train.device", c->device, "auto | cpu | cuda")->capture_default_str();
  cmd->add_option("--train.precision", c->precision, "auto | fp32 | bf16")->capture_default_str();
  cmd->add_option("--train.param_dtype", c->param_dtype,
                  "fp32 | bf16 (bf16 matrices + fp32 master slices; needs dist.zero ≥ 1)")->capture_default_str();
  cmd->add_flag("--train.activation_checkpointing{true},!--train.no_activation_checkpointing",
                c->activation_checkpointing, "recompute each block in the backward pass");
  cmd->add_option("--train.seed", c->seed, "global seed")->capture_default_str();
  cmd->add_option("--train.max_nonfinite", c->max_nonfinite, "consecutive NaN/Inf steps tolerated")->capture_default_str();
  cmd->add_option("--train.num_threads", c->num_threads, "CPU threads (0: default)")->capture_default_str();
  cmd->add_option("--dist.zero", c->dist_zero, "0: DDP | 1: shard optimizer state | 2: also shard gradients")
      ->capture_default_str();
  cmd->add_option("--dist.bucket_mb", c->dist_bucket_mb, "gradient bucket size (MiB)")->capture_default_str();
  cmd->add_option("--dist.timeout_s", c->dist_timeout_s, "collective / rendezvous timeout (s)")->capture_default_str();
  cmd->add_option("--run.out_dir", c->out_dir, "run folder (checkpoints, metrics.jsonl)")->capture_default_str();
  cmd->add_option("--run.log_every", c->log_every, "progress every N steps")->capture_default_str();
  cmd->add_option("--run.eval_every", c->eval_every, "held-out eval every N steps (0: start and end)")->capture_default_str();
  cmd->add_option("--run.eval_batches", c->eval_batches, "held-out batches per eval")->capture_default_str();
  cmd->add_option("--run.save_every", c->save_every, "checkpoint every N steps (0: end only)")->capture_default_str();
  cmd->add_option("--run.keep_last", c->keep_last, "checkpoints kept")->capture_default_str();
  cmd->add_option("--run.resume", c->resume, "none | auto (continue from the run's latest checkpoint)")
      ->capture_default_str();
  cmd->callback([c, cmd, config_file, print_config] {
    if (!config_file->empty()) apply_toml_config(*cmd, *config_file);
    const std::string resolved = cmd->config_to_str(/*default_also=*/true, /*write_description=*/false);
    if (*print_config) {
      std::cout << resolved;
      return;
    }
    training::Trainer trainer(*c, resolved);
    auto r = trainer.run();
    spdlog::info("done at step {}{}; last checkpoint {}", r.final_step, r.stopped_by_signal ? " (stopped by signal)" : "",
                 r.last_checkpoint.string());
  });
}

}  // namespace supra::cli
