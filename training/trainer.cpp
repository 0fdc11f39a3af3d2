#include "training/trainer.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/model_io.h"
#include "core/supra/convert.h"
#include "training/activation_checkpoint.h"
#include "training/autocast.h"
#include "training/dist_env.h"
#include "training/loss.h"
#include "training/metrics.h"
#include "training/objectives.h"
#include "training/schedule.h"
#include "training/signals.h"

#ifdef SUPRA_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace supra::training {
namespace fs = std::filesystem;

namespace {

// AdamW groups as in the reference: no weight decay on norms, biases and embeddings.
std::vector<NamedParam> named_params(CausalLM& model) {
  std::vector<NamedParam> out;
  for (const auto& p : model->named_parameters()) {
    const std::string& n = p.key();
    if (!p.value().requires_grad()) continue;
    const bool exempt = p.value().dim() < 2 || n.find("norm") != std::string::npos ||
                        n.find("bias") != std::string::npos || n.find("embed") != std::string::npos;
    out.push_back(NamedParam{n, p.value(), !exempt});
  }
  return out;
}

bool is_finite(double x) { return std::isfinite(x); }

// The parameter sets train.trainable names: "all", or comma-separated parts of parameter names.
std::vector<std::string> trainable_patterns(const std::string& spec) {
  std::vector<std::string> out;
  std::stringstream in(spec);
  for (std::string part; std::getline(in, part, ',');) {
    part.erase(0, part.find_first_not_of(' '));
    part.erase(part.find_last_not_of(' ') + 1);
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

// Architecture fields a teacher and its student must share.
std::string shape_mismatch(const ModelConfig& t, const ModelConfig& s) {
  auto field = [](const char* name, int64_t a, int64_t b) {
    return a == b ? std::string()
                  : std::string(name) + " " + std::to_string(a) + " vs the student's " + std::to_string(b);
  };
  for (auto why : {field("vocab_size", t.vocab_size, s.vocab_size), field("hidden_size", t.hidden_size, s.hidden_size),
                   field("num_hidden_layers", t.num_hidden_layers, s.num_hidden_layers),
                   field("num_attention_heads", t.num_attention_heads, s.num_attention_heads),
                   field("num_key_value_heads", t.num_key_value_heads, s.num_key_value_heads),
                   field("head_dim", t.head_dim, s.head_dim)})
    if (!why.empty()) return why;
  return "";
}

void set_current_cuda_device(torch::Device d) {
#ifdef SUPRA_WITH_CUDA
  c10::cuda::set_device(d.index());
#else
  (void)d;
#endif
}

// Rows [r0, r0 + rows) of a batch on the device: tokens [rows, T+1] and where documents start [rows, T].
std::pair<torch::Tensor, torch::Tensor> rows_on(const data::Batch& batch, int64_t r0, int64_t rows,
                                                const torch::Device& device) {
  return {batch.tokens.narrow(0, r0, rows).to(device), batch.doc_start.narrow(0, r0, rows).to(device)};
}
}  // namespace

Trainer::Trainer(TrainConfig config, std::string resolved_config_toml, std::shared_ptr<Communicator> comm)
    : cfg_(std::move(config)), resolved_toml_(std::move(resolved_config_toml)), comm_(std::move(comm)) {}

// ------------------------------------------------------------------------------------------------ builders

void Trainer::init_runtime() {
  const DistEnv env = read_dist_env();
  cfg_.validate(env.world_size);
  if (env.rank != 0) spdlog::set_level(spdlog::level::warn);  // one rank reports progress
  if (cfg_.num_threads > 0) torch::set_num_threads(cfg_.num_threads);
  torch::manual_seed(cfg_.seed);
  if (cfg_.device == DeviceChoice::kCuda && !torch::cuda::is_available())
    throw Error("config", "train.device = cuda, but no CUDA device is available");
  device_ = torch::Device(torch::kCPU);
  if (cfg_.device == DeviceChoice::kCuda || (cfg_.device == DeviceChoice::kAuto && torch::cuda::is_available())) {
    // One GPU per process, picked by the local rank.
    const int64_t n = static_cast<int64_t>(torch::cuda::device_count());
    if (env.distributed() && env.local_rank >= n)
      throw Error("environment", "LOCAL_RANK " + std::to_string(env.local_rank) + " but only " + std::to_string(n) +
                                     " GPU(s) visible");
    device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank % std::max<int64_t>(n, 1)));
    set_current_cuda_device(device_);
  }
  if (comm_ == nullptr)
    comm_ = std::make_shared<Communicator>(env, device_,
                                           std::chrono::milliseconds(static_cast<int64_t>(cfg_.dist_timeout_s * 1000)));
  if (comm_->size() > 1) {
    // Every rank must run the same job: a rank started with other flags would compute garbage or hang.
    const int64_t mine = static_cast<int64_t>(std::hash<std::string>{}(cfg_.to_json().dump()) >> 1);
    const int64_t lead = comm_->broadcast(mine, 0);
    if (!comm_->all_ok(mine == lead))
      throw Error("rank " + std::to_string(comm_->rank()),
                  mine == lead
                      ? "another rank was started with a different train config"
                      : "this rank's train config differs from rank 0's (start every rank with the same flags)");
  }
  bf16_autocast_ = cfg_.precision == Precision::kBf16 || (cfg_.precision == Precision::kAuto && device_.is_cuda());
}

void Trainer::build_model() {
  // A supra checkpoint, or a pretrained model converted now (fp32 master weights either way).
  model_source_ = resolve_run_checkpoint(cfg_.model_path);  // a run folder (a recipe's previous stage): its latest
  StoredModel stored = read_stored_model(model_source_);
  model_ = supra::build_model(stored, model_source_.string(), torch::kFloat, torch::kCPU);
  converted_on_the_fly_ = !stored.config.supra;
  if (converted_on_the_fly_) {
    SupraSettings s;
    s.decay = parse_decay(cfg_.decay);
    s.chunk_size = cfg_.chunk_size;
    s.qk_norm = cfg_.qk_norm;
    convert_to_supra(model_, s, cfg_.feature_map_seed);
    spdlog::info("converted {} to SUPRA on the fly (decay {}, feature-map seed {})", cfg_.model_path, cfg_.decay,
                 cfg_.feature_map_seed);
  }
  model_->to(device_);
  model_->train();
  if (comm_->size() > 1) {  // as DDP does: every rank starts from rank 0's weights
    torch::NoGradGuard no_grad;
    for (auto& p : model_->parameters()) comm_->broadcast(p, 0);
  }
}

void Trainer::build_teacher() {
  if (cfg_.objective == Objective::kLm) return;
  const std::string objective = enum_name(cfg_.objective);
  std::string path = cfg_.teacher_path;
  if (path.empty()) {
    if (!converted_on_the_fly_)
      throw Error(cfg_.model_path, "is a converted SUPRA model: train.objective = " + objective +
                                       " needs its softmax teacher; set teacher.path to the pretrained model");
    path = cfg_.model_path;
  }
  StoredModel stored = read_stored_model(path);
  if (stored.config.supra)
    throw Error(path, "teacher.path must be the pretrained softmax model, not a converted SUPRA model");
  if (const std::string why = shape_mismatch(stored.config, model_->config()); !why.empty())
    throw Error(path, "teacher does not match the student: " + why);
  // Frozen; bf16 on GPU under bf16 autocast (half the memory), fp32 otherwise.
  const bool bf16 = bf16_autocast_ && device_.is_cuda();
  teacher_ = supra::build_model(stored, path, bf16 ? torch::kBFloat16 : torch::kFloat, device_);
  for (auto& p : teacher_->parameters()) p.requires_grad_(false);
  spdlog::info("teacher {} ({} parameters, {}, frozen)", path, teacher_->parameter_count(), bf16 ? "bf16" : "fp32");
}

void Trainer::select_trainable() {
  std::vector<std::string> patterns = trainable_patterns(cfg_.trainable);
  if (patterns.empty() && cfg_.objective == Objective::kAttention) patterns = {"feature_map", "o_proj"};
  const bool all = patterns.size() == 1 && patterns[0] == "all";
  if (all && cfg_.objective == Objective::kAttention)
    throw Error("config",
                "train.trainable = all with train.objective = attention: only self_attn parameters get "
                "gradients from that objective (name them, e.g. \"self_attn\")");
  if (patterns.empty() || all) return;
  int64_t trained = 0, total = 0;
  std::vector<bool> used(patterns.size(), false);
  for (auto& item : model_->named_parameters()) {
    bool train = false;
    for (size_t i = 0; i < patterns.size(); ++i)
      if (item.key().find(patterns[i]) != std::string::npos) train = used[i] = true;
    if (train && cfg_.objective == Objective::kAttention && item.key().find(".self_attn.") == std::string::npos)
      throw Error("config", "train.trainable selects '" + item.key() +
                                "', outside the attention blocks: train.objective = attention trains only "
                                "self_attn parameters");
    item.value().requires_grad_(train);
    total += item.value().numel();
    if (train) trained += item.value().numel();
  }
  for (size_t i = 0; i < patterns.size(); ++i)
    if (!used[i]) throw Error("config", "train.trainable: no parameter name contains '" + patterns[i] + "'");
  spdlog::info("training {} of {} parameters (train.trainable = {})", trained, total,
               cfg_.trainable.empty() ? "feature_map,o_proj" : cfg_.trainable);
}

void Trainer::build_data() {
  tokens_ = std::make_shared<data::ShardedTokens>(cfg_.data_dir);
  data::check_compatible(tokens_->manifest(), model_->config(), model_source_.string(),
                         fs::is_directory(model_source_) ? model_source_ : fs::path());
  data::LoaderOptions lo;
  lo.seq_len = cfg_.seq_len;
  lo.global_batch = cfg_.global_batch;
  lo.seed = cfg_.data_seed;
  lo.eval_samples = cfg_.eval_samples;
  lo.eval_fraction = cfg_.eval_fraction;
  lo.rank = comm_->rank();
  lo.world_size = comm_->size();
  loader_ = std::make_unique<data::TokenLoader>(tokens_, lo);
}

void Trainer::fit_o_proj() {
  if (cfg_.o_proj_fit_batches == 0) return;
  // Only before the first step: a resumed run has its checkpoint's (fitted, then trained) weights.
  if (CheckpointManager(cfg_.out_dir, 1).latest()) return;
  for (const auto& item : model_->named_parameters())
    if (item.key().find(".o_proj.") != std::string::npos && !item.value().requires_grad())
      throw Error("config", "attention.o_proj_fit_batches sets o_proj, but train.trainable leaves '" + item.key() +
                                "' frozen (add o_proj, or set attention.o_proj_fit_batches = 0)");
  // The run's first batches, read ahead: the loader is put back, so step 1 still starts with batch 1.
  const data::LoaderState start = loader_->state();
  const int64_t T = cfg_.seq_len;
  OutputProjectionFit fit;
  {
    AutocastGuard autocast(device_.type(), bf16_autocast_);
    for (int64_t b = 0; b < cfg_.o_proj_fit_batches; ++b) {
      const data::Batch batch = loader_->next_batch();
      for (int64_t m = 0; m * cfg_.micro_batch < batch.tokens.size(0); ++m) {
        auto [tok, resets] = rows_on(batch, m * cfg_.micro_batch, cfg_.micro_batch, device_);
        fit.accumulate(teacher_, model_, tok.narrow(1, 0, T), resets);
      }
    }
  }
  loader_->restore(start);
  const auto r = fit.solve(model_, [&](torch::Tensor& t) { comm_->allreduce_sum(t); });
  auto mean = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); };
  spdlog::info(
      "o_proj of {} layers fitted by least squares on {:.0f} tokens: relative error {:.4f} (pretrained o_proj: "
      "{:.4f}; layers {:.4f}-{:.4f})",
      r.after.size(), r.tokens, mean(r.after), mean(r.before), *std::min_element(r.after.begin(), r.after.end()),
      *std::max_element(r.after.begin(), r.after.end()));
  o_proj_fit_ = {
      {"step", 0}, {"o_proj_fit_tokens", r.tokens}, {"layer_loss_before_fit", r.before}, {"layer_loss", r.after}};
}

void Trainer::build_optimizer() {
  ShardedAdamWOptions oo;
  oo.zero = static_cast<int>(cfg_.dist_zero);
  oo.bucket_mb = cfg_.dist_bucket_mb;
  oo.lr = cfg_.lr;
  oo.beta1 = cfg_.beta1;
  oo.beta2 = cfg_.beta2;
  oo.eps = cfg_.eps;
  oo.weight_decay = cfg_.weight_decay;
  optimizer_ = std::make_unique<ShardedAdamW>(named_params(model_), comm_, oo);
}

void Trainer::open_run_folder() {
  std::error_code ec;
  fs::create_directories(cfg_.out_dir, ec);
  if (ec) throw Error(cfg_.out_dir, "cannot create run folder: " + ec.message());
  checkpoints_ = std::make_unique<CheckpointManager>(cfg_.out_dir, cfg_.keep_last, comm_);
  if (comm_->rank() == 0) checkpoints_->remove_partial();
  comm_->barrier();
  auto latest = checkpoints_->latest();
  state_ = TrainState{};
  state_.config = cfg_;
  if (latest && cfg_.resume == ResumeMode::kNone)
    throw Error(cfg_.out_dir, "already holds checkpoints; resume with --run.resume auto or choose another run.out_dir");
  if (latest) {
    const nlohmann::json saved = read_trainer_state(*latest);
    if (!saved.is_object() || !saved.contains("config"))
      throw Error((*latest / "trainer_state.json").string(), "malformed trainer state: no \"config\"");
    const std::string why = cfg_.resume_incompatibility(TrainConfig::from_json(saved.at("config")));
    if (!why.empty()) throw Error((*latest).string(), "cannot resume with this config: " + why);
    state_ = checkpoints_->load(*latest, model_, *optimizer_);
    state_.config = cfg_;
    loader_->restore(state_.loader);
    resumed_ = true;
    spdlog::info("resumed from {} at step {}", latest->string(), state_.step);
  }
  if (comm_->rank() == 0) write_file_atomic(fs::path(cfg_.out_dir) / "train_config.toml", resolved_toml_);
}

void Trainer::use_param_dtype() {
  if (cfg_.param_dtype != ParamDtype::kBf16) return;
  // After the optimizer took its fp32 master slices (and a resume restored them): the model keeps bf16 matrices,
  // which the optimizer overwrites with the rounded masters after every step. Vectors (norms, decay) stay fp32.
  if (!bf16_autocast_) throw Error("config", "train.param_dtype = bf16 needs bf16 autocast (train.precision bf16)");
  torch::NoGradGuard no_grad;
  for (auto& p : model_->parameters())  // frozen parameters (train.trainable) keep their exact values
    if (p.dim() >= 2 && p.requires_grad()) p.set_data(p.detach().to(torch::kBFloat16));
}

// ------------------------------------------------------------------------------------------------ the step

torch::Tensor Trainer::forward(const torch::Tensor& inputs, const torch::Tensor& resets) {
  AutocastGuard autocast(device_.type(), bf16_autocast_);
  return cfg_.activation_checkpointing ? forward_checkpointed(model_, inputs, resets)
                                       : model_->forward(inputs, {}, {}, resets);
}

torch::Tensor Trainer::objective_loss(const torch::Tensor& tok, const torch::Tensor& resets, int64_t micro_steps,
                                      StepResult& r) {
  const int64_t T = cfg_.seq_len;
  const auto inputs = tok.narrow(1, 0, T), targets = tok.narrow(1, 1, T);
  switch (cfg_.objective) {
    case Objective::kLm: {
      auto parts = lm_loss(forward(inputs, resets), targets, cfg_.z_loss);
      r.ce += parts.ce.item<double>() / micro_steps;
      return parts.total;
    }
    case Objective::kAttention: {
      AutocastGuard autocast(device_.type(), bf16_autocast_);
      auto parts = attention_transfer_loss(teacher_, model_, inputs, resets);
      // One device -> host copy for all layers (not one sync per layer).
      const auto per_layer = torch::stack(parts.per_layer).to(torch::kCPU, torch::kDouble);
      const double* v = per_layer.data_ptr<double>();
      r.layer_loss.resize(parts.per_layer.size());
      for (size_t l = 0; l < parts.per_layer.size(); ++l) r.layer_loss[l] += v[l] / micro_steps;
      return parts.total;
    }
    case Objective::kDistill: {
      torch::Tensor teacher_logits;
      {
        torch::NoGradGuard no_grad;
        AutocastGuard autocast(device_.type(), bf16_autocast_);
        teacher_logits = teacher_->forward(inputs, {}, {}, resets);
      }
      auto parts = distill_loss(forward(inputs, resets), teacher_logits, targets, cfg_.distill_temperature,
                                cfg_.distill_ce_weight, cfg_.z_loss);
      r.ce += parts.ce.item<double>() / micro_steps;
      r.kl += parts.kl.item<double>() / micro_steps;
      return parts.total;
    }
  }
  throw Error("config", "unknown train.objective");
}

StepResult Trainer::train_step(const data::Batch& batch, double lr) {
  const int64_t T = cfg_.seq_len;
  const int64_t micro_steps = cfg_.global_batch / comm_->size() / cfg_.micro_batch;  // per rank
  StepResult r;
  // Parts this objective computes start at 0 (the others stay NaN: not measured).
  if (cfg_.objective != Objective::kAttention) r.ce = 0;
  if (cfg_.objective == Objective::kDistill) r.kl = 0;
  // 1. Forward/backward over the micro-batches: gradients accumulate; full gradient buckets start their
  //    reduction (allreduce / reduce-scatter) while the backward pass goes on.
  optimizer_->begin_step();
  for (int64_t m = 0; m < micro_steps; ++m) {
    auto [tok, resets] = rows_on(batch, m * cfg_.micro_batch, cfg_.micro_batch, device_);
    optimizer_->begin_micro(m + 1 == micro_steps);
    auto loss = objective_loss(tok, resets, micro_steps, r) / static_cast<double>(micro_steps);
    if (inject_nonfinite && inject_nonfinite(state_.step)) loss = loss * std::nan("");
    loss.backward();
    optimizer_->end_micro();
    r.loss += loss.item<double>();
  }
  // 2. The global batch's mean loss and its parts (each rank holds the mean of its equal share).
  if (comm_->size() > 1) {
    std::vector<double> parts = {r.loss, r.ce, r.kl};
    parts.insert(parts.end(), r.layer_loss.begin(), r.layer_loss.end());
    auto sums = torch::tensor(parts, torch::TensorOptions().dtype(torch::kDouble).device(device_));
    comm_->allreduce_sum(sums);
    sums = (sums.cpu() / static_cast<double>(comm_->size())).contiguous();
    const double* v = sums.data_ptr<double>();
    r.loss = v[0], r.ce = v[1], r.kl = v[2];
    for (size_t l = 0; l < r.layer_loss.size(); ++l) r.layer_loss[l] = v[3 + l];
  }
  // 3. Global gradient norm; a non-finite step changes nothing, a finite one clips and updates.
  r.grad_norm = optimizer_->grad_norm();
  r.skipped = !is_finite(r.loss) || !is_finite(r.grad_norm);
  if (r.skipped) {
    optimizer_->discard();
    ++state_.nonfinite_streak;
    spdlog::warn("step {}: non-finite loss or gradient (loss {}, grad norm {}); step skipped ({} in a row)",
                 state_.step, r.loss, r.grad_norm, state_.nonfinite_streak);
    if (state_.nonfinite_streak >= cfg_.max_nonfinite)
      throw Error(cfg_.out_dir, std::to_string(state_.nonfinite_streak) +
                                    " consecutive non-finite steps; stopping (the last checkpoint is untouched)");
  } else {
    optimizer_->step(lr, r.grad_norm, cfg_.grad_clip);
    state_.nonfinite_streak = 0;
  }
  ++state_.step;
  state_.tokens_seen += static_cast<uint64_t>(cfg_.global_batch * T);
  return r;
}

double Trainer::evaluate() {
  const uint64_t steps = std::min<uint64_t>(loader_->eval_steps(), static_cast<uint64_t>(cfg_.eval_batches));
  if (steps == 0) return std::nan("");
  torch::NoGradGuard no_grad;
  double sum = 0, count = 0;
  for (uint64_t s = 0; s < steps; ++s) {
    auto batch = loader_->eval_batch(s);
    if (batch.tokens.size(0) == 0) continue;
    for (int64_t r0 = 0; r0 < batch.tokens.size(0); r0 += cfg_.micro_batch) {
      const int64_t rows = std::min<int64_t>(cfg_.micro_batch, batch.tokens.size(0) - r0);
      auto [tok, resets] = rows_on(batch, r0, rows, device_);
      const int64_t T = cfg_.seq_len;
      auto logits = forward(tok.narrow(1, 0, T), resets);
      auto parts = lm_loss(logits, tok.narrow(1, 1, T), 0.0);
      sum += parts.ce.item<double>() * rows * T;
      count += rows * T;
    }
  }
  sum = comm_->sum(sum);
  count = comm_->sum(count);
  return count > 0 ? sum / count : std::nan("");
}

fs::path Trainer::save_checkpoint() {
  state_.loader = loader_->state();
  const fs::path folder = checkpoints_->save(model_, *optimizer_, state_, resolved_toml_);
  spdlog::info("checkpoint {}", folder.string());
  return folder;
}

// ------------------------------------------------------------------------------------------------ the loop

TrainResult Trainer::run() {
  init_runtime();
  build_model();
  build_teacher();
  select_trainable();
  build_data();
  fit_o_proj();
  build_optimizer();
  open_run_folder();
  use_param_dtype();
  spdlog::info("model {} ({} parameters) on {}{}; data {} ({} tokens, {} train / {} held-out samples of {}+1)",
               cfg_.model_path, model_->parameter_count(), device_.str(), bf16_autocast_ ? " with bf16 autocast" : "",
               cfg_.data_dir, tokens_->num_tokens(), loader_->num_train_samples(), loader_->num_eval_samples(),
               cfg_.seq_len);
  if (comm_->size() > 1)
    spdlog::info(
        "{} ranks ({}), ZeRO stage {}, {} gradient buckets; optimizer state + gradient buffers on rank 0: "
        "{:.1f} MiB",
        comm_->size(), comm_->backend_name(), cfg_.dist_zero, optimizer_->num_buckets(),
        optimizer_->state_bytes() / 1048576.0);
  install_stop_handlers();
  const bool lead = comm_->rank() == 0;
  std::optional<MetricsLog> metrics_log;
  if (lead)
    // A resumed run keeps the rows up to its checkpoint's step; a fresh one owns the file (rows a killed attempt
    // wrote before its first checkpoint are dropped).
    metrics_log.emplace(fs::path(cfg_.out_dir) / "metrics.jsonl", resumed_ ? state_.step : int64_t{-1});
  auto write_metrics = [&](const nlohmann::json& j) {
    if (metrics_log) metrics_log->write(j);
  };
  if (!o_proj_fit_.is_null()) write_metrics(o_proj_fit_);
  const Schedule schedule{cfg_.lr, cfg_.min_lr, cfg_.warmup_steps, cfg_.steps};
  const bool tty = lead && ::isatty(STDERR_FILENO);
  TrainResult result;
  auto run_eval = [&] {
    const double ce = evaluate();
    if (std::isnan(ce)) return;
    spdlog::info("eval at step {}: loss {:.4f}, ppl {:.3f}", state_.step, ce, std::exp(ce));
    write_metrics(
        {{"step", state_.step}, {"eval_loss", ce}, {"eval_ppl", std::exp(ce)}, {"tokens", state_.tokens_seen}});
  };

  if (state_.step == 0 && cfg_.eval_batches > 0) run_eval();  // the converted-at-step-0 value
  const auto t_start = std::chrono::steady_clock::now();
  const int64_t first_step = state_.step;
  int64_t updated = 0;  // steps of this process that changed the weights
  while (state_.step < cfg_.steps) {
    const double lr = schedule.at(state_.step);
    const StepResult r = train_step(loader_->next_batch(), lr);  // this rank's rows of the global batch
    result.last_loss = r.loss;
    updated += !r.skipped;
    if (on_step) on_step(state_.step, r.loss);

    // Progress and metrics.
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    StepStats st;
    st.step = state_.step;
    st.total_steps = cfg_.steps;
    st.loss = r.loss;
    st.ce = r.ce;
    st.lr = lr;
    st.grad_norm = r.grad_norm;
    st.skipped = r.skipped;
    st.tokens_per_s = (state_.step - first_step) * cfg_.global_batch * cfg_.seq_len / std::max(elapsed, 1e-9);
    st.eta_s = (cfg_.steps - state_.step) * elapsed / std::max<int64_t>(1, state_.step - first_step);
    if (device_.is_cuda())
      st.mfu = 6.0 * model_->parameter_count() * st.tokens_per_s / 989e12;  // 6N FLOPs/token vs H100 bf16 peak
    nlohmann::json record = {{"step", state_.step}, {"loss", r.loss}};
    if (!std::isnan(r.ce)) record["ce"] = r.ce, record["ppl"] = std::exp(r.ce);
    if (!std::isnan(r.kl)) record["kl"] = r.kl;
    if (!r.layer_loss.empty()) record["layer_loss"] = r.layer_loss;
    record.update({{"lr", lr},
                   {"grad_norm", r.grad_norm},
                   {"tokens", state_.tokens_seen},
                   {"tokens_per_s", st.tokens_per_s},
                   {"skipped", r.skipped}});
    write_metrics(record);
    if (state_.step % cfg_.log_every == 0 || state_.step == cfg_.steps) {
      if (tty)
        std::fprintf(stderr, "\r%s", progress_line(st).c_str());
      else
        spdlog::info("{}", progress_line(st));
      if (tty && state_.step == cfg_.steps) std::fprintf(stderr, "\n");
    }

    // Evaluation and checkpoints. A signal may reach the ranks at different steps: they stop together, after the
    // same step, with a checkpoint.
    if (cfg_.eval_every > 0 && state_.step % cfg_.eval_every == 0 && state_.step < cfg_.steps) {
      if (tty) std::fprintf(stderr, "\n");
      run_eval();
    }
    const bool stop = comm_->max(stop_requested() ? 1.0 : 0.0) > 0;
    if (stop || state_.step == cfg_.steps ||
        (cfg_.save_every > 0 && state_.step % cfg_.save_every == 0 && !r.skipped)) {
      if (tty && state_.step != cfg_.steps) std::fprintf(stderr, "\n");
      result.last_checkpoint = save_checkpoint();
    }
    if (stop) {
      spdlog::info("stopped by signal {} after step {} (checkpoint written)", stop_signal(), state_.step);
      result.stopped_by_signal = true;
      break;
    }
  }
  if (state_.step > first_step && updated == 0)
    throw Error(cfg_.out_dir, "every step of this run (" + std::to_string(state_.step - first_step) +
                                  ") was non-finite and skipped: nothing was trained");
  if (!result.stopped_by_signal && cfg_.eval_batches > 0) run_eval();
  if (comm_->size() > 1)
    spdlog::info(
        "rank 0 holds {} bytes of optimizer state, master slices and gradient buffers (ZeRO stage {}, {} ranks); "
        "{} of {} gradient collectives started inside the backward pass",
        optimizer_->state_bytes(), cfg_.dist_zero, comm_->size(), optimizer_->launched_in_backward(),
        optimizer_->launched_total());
  result.final_step = state_.step;
  return result;
}

}  // namespace supra::training
