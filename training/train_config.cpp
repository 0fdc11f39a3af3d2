#include "training/train_config.h"

#include "core/error.h"

namespace supra::training {

#define SUPRA_TRAIN_CONFIG_FIELDS(X)                                                                          \
  X(model_path) X(decay) X(feature_map_seed) X(chunk_size) X(qk_norm) X(data_dir) X(seq_len) X(data_seed)      \
  X(eval_samples) X(eval_fraction) X(lr) X(min_lr) X(warmup_steps) X(beta1) X(beta2) X(eps) X(weight_decay)   \
  X(grad_clip) X(z_loss) X(steps) X(global_batch) X(micro_batch) X(device) X(precision) X(param_dtype)                        \
  X(activation_checkpointing) X(seed) X(max_nonfinite) X(num_threads) X(out_dir) X(log_every) X(eval_every)    \
  X(eval_batches) X(save_every) X(keep_last) X(resume) X(dist_zero) X(dist_bucket_mb) X(dist_timeout_s)

void TrainConfig::validate(int64_t world_size) const {
  auto fail = [](const std::string& why) { throw Error("config", why); };
  if (model_path.empty()) fail("model.path is required");
  if (data_dir.empty()) fail("data.dir is required");
  if (seq_len < 1) fail("data.seq_len must be ≥ 1");
  if (steps < 1) fail("train.steps must be ≥ 1");
  if (global_batch < 1 || micro_batch < 1) fail("train.global_batch and train.micro_batch must be ≥ 1");
  if (global_batch % world_size != 0)
    fail("train.global_batch (" + std::to_string(global_batch) + ") must be divisible by the world size (" +
         std::to_string(world_size) + ")");
  const int64_t local = global_batch / world_size;
  if (local % micro_batch != 0)
    fail("the per-rank batch (" + std::to_string(local) + " rows) must be a multiple of train.micro_batch (" +
         std::to_string(micro_batch) + ")");
  if (lr <= 0 || min_lr < 0 || min_lr > lr) fail("optim: need 0 ≤ min_lr ≤ lr and lr > 0");
  if (warmup_steps < 0) fail("optim.warmup_steps must be ≥ 0");
  if (beta1 < 0 || beta1 >= 1 || beta2 < 0 || beta2 >= 1 || eps <= 0) fail("optim: betas must be in [0, 1), eps > 0");
  if (weight_decay < 0 || z_loss < 0) fail("optim: weight_decay and z_loss must be ≥ 0");
  if (device != "auto" && device != "cpu" && device != "cuda") fail("train.device must be auto, cpu or cuda");
  if (precision != "auto" && precision != "fp32" && precision != "bf16")
    fail("train.precision must be auto, fp32 or bf16");
  if (resume != "none" && resume != "auto") fail("run.resume must be none or auto");
  if (max_nonfinite < 1) fail("train.max_nonfinite must be ≥ 1");
  if (keep_last < 1) fail("run.keep_last must be ≥ 1");
  if (log_every < 1) fail("run.log_every must be ≥ 1");
  if (eval_every < 0 || save_every < 0 || eval_batches < 0) fail("run: eval_every, save_every, eval_batches ≥ 0");
  if (chunk_size < 1) fail("model.chunk_size must be ≥ 1");
  if (dist_zero < 0 || dist_zero > 2) fail("dist.zero must be 0, 1 or 2");
  if (param_dtype != "fp32" && param_dtype != "bf16") fail("train.param_dtype must be fp32 or bf16");
  if (param_dtype == "bf16" && dist_zero < 1)
    fail("train.param_dtype = bf16 needs dist.zero ≥ 1 (the fp32 master weights live in the optimizer's slices)");
  if (param_dtype == "bf16" && precision == "fp32") fail("train.param_dtype = bf16 needs train.precision bf16 or auto");
  if (!(dist_bucket_mb > 0)) fail("dist.bucket_mb must be > 0");
  if (!(dist_timeout_s > 0)) fail("dist.timeout_s must be > 0");
}

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j;
#define X(f) j[#f] = f;
  SUPRA_TRAIN_CONFIG_FIELDS(X)
#undef X
  return j;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  TrainConfig c;
  try {
#define X(f) \
  if (j.contains(#f)) j.at(#f).get_to(c.f);
    SUPRA_TRAIN_CONFIG_FIELDS(X)
#undef X
  } catch (const nlohmann::json::exception& e) {
    throw Error("config", std::string("malformed saved train config: ") + e.what());
  }
  return c;
}

std::string TrainConfig::resume_incompatibility(const TrainConfig& s) const {
  auto differs = [](const char* name, const auto& a, const auto& b) -> std::string {
    if (a == b) return "";
    return std::string(name) + " differs from the checkpoint's";
  };
  for (const std::string& why :
       {differs("data.dir", data_dir, s.data_dir), differs("data.seq_len", seq_len, s.seq_len),
        differs("data.seed", data_seed, s.data_seed), differs("data.eval_samples", eval_samples, s.eval_samples),
        differs("data.eval_fraction", eval_fraction, s.eval_fraction),
        differs("train.global_batch", global_batch, s.global_batch), differs("train.seed", seed, s.seed),
        differs("model.decay", decay, s.decay), differs("model.qk_norm", qk_norm, s.qk_norm),
        differs("model.chunk_size", chunk_size, s.chunk_size)})
    if (!why.empty()) return why;
  return "";
}

}  // namespace supra::training
