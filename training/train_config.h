// TrainConfig: everything that defines an uptraining run, declared once in SUPRA_TRAIN_CONFIG_KEYS below. That one
// table is the source of the struct's members, their defaults, the TOML keys and `--section.key` flags
// (cli/cmd_train.cpp), the `--help` text, the per-key range checks, whether a change blocks a resume, the JSON stored
// in checkpoints and the generated key table in docs/training.md (`supra train --print-config-doc`). Adding a key
// is one line here plus its use.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace supra::training {

enum class DeviceChoice { kAuto, kCpu, kCuda };
enum class Precision { kAuto, kFp32, kBf16 };  // auto: bf16 autocast on GPU, fp32 on CPU
enum class ParamDtype { kFp32, kBf16 };        // bf16: matrices stored in bf16, fp32 master slices in the optimizer
enum class ResumeMode { kNone, kAuto };
// What a step minimises (docs/training.md, "Recovering the teacher"): lm = CE + z-loss on the text (SUPRA
// uptraining); attention = each converted attention block fitted to the teacher's softmax attention on the teacher's
// own hidden states (training/objectives.h); distill = KL(teacher ‖ student) on next-token distributions (+ CE).
enum class Objective { kLm, kAttention, kDistill };

// Names of each enumerated value as written in TOML / flags / JSON (the first is never a synonym).
template <typename E>
const std::vector<std::pair<std::string, E>>& enum_names();
template <>
const std::vector<std::pair<std::string, DeviceChoice>>& enum_names<DeviceChoice>();
template <>
const std::vector<std::pair<std::string, Precision>>& enum_names<Precision>();
template <>
const std::vector<std::pair<std::string, ParamDtype>>& enum_names<ParamDtype>();
template <>
const std::vector<std::pair<std::string, ResumeMode>>& enum_names<ResumeMode>();
template <>
const std::vector<std::pair<std::string, Objective>>& enum_names<Objective>();

// A key's allowed range: lo ≤ v ≤ hi (strict where *_open); `required` for strings that must not be empty.
struct Bounds {
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false, required = false;
};
inline constexpr Bounds kAny{};
inline constexpr Bounds kRequired{.required = true};
inline constexpr Bounds at_least(double lo) { return {.lo = lo}; }
inline constexpr Bounds positive() { return {.lo = 0, .lo_open = true}; }
inline constexpr Bounds between(double lo, double hi) { return {.lo = lo, .hi = hi}; }
inline constexpr Bounds unit_open_top() { return {.lo = 0, .hi = 1, .hi_open = true}; }

// Whether changing a key between a checkpoint and its resume is allowed.
enum class OnResume { kMayChange, kMustMatch };

// X(type, member, "section.key", default, bounds, on_resume, "help")
#define SUPRA_TRAIN_CONFIG_KEYS(X)                                                                                    \
  /* [model] */                                                                                                       \
  X(std::string, model_path, "model.path", "", kRequired, OnResume::kMayChange,                                       \
    "supra checkpoint, or a pretrained HF model / llama2.c .bin converted on the fly")                                \
  X(std::string, decay, "model.decay", "reference", kAny, OnResume::kMustMatch,                                       \
    "decay of on-the-fly conversion: reference | retnet | none")                                                      \
  X(uint64_t, feature_map_seed, "model.feature_map_seed", 0, kAny, OnResume::kMayChange,                              \
    "seed of the new feature maps (on-the-fly conversion)")                                                           \
  X(int64_t, chunk_size, "model.chunk_size", 64, at_least(1), OnResume::kMustMatch,                                   \
    "chunk length of the parallel form on CPU (the CUDA kernels tile by their own chunk length)")                     \
  X(bool, qk_norm, "model.qk_norm", false, kAny, OnResume::kMustMatch, "qk-norm for on-the-fly conversion")           \
  /* [teacher] (train.objective attention / distill) */                                                               \
  X(std::string, teacher_path, "teacher.path", "", kAny, OnResume::kMustMatch,                                        \
    "the frozen softmax teacher (HF folder / llama2.c .bin); empty: model.path when that is a pretrained model")      \
  /* [data] */                                                                                                        \
  X(std::string, data_dir, "data.dir", "", kRequired, OnResume::kMustMatch,                                           \
    "prepared token shards (supra data prepare / sample)")                                                            \
  X(int64_t, seq_len, "data.seq_len", 2048, at_least(1), OnResume::kMustMatch, "tokens per row (T)")                  \
  X(uint64_t, data_seed, "data.seed", 0, kAny, OnResume::kMustMatch, "shuffle seed")                                  \
  X(int64_t, eval_samples, "data.eval_samples", -1, at_least(-1), OnResume::kMustMatch,                               \
    "held-out rows (-1: data.eval_fraction of the data)")                                                             \
  X(double, eval_fraction, "data.eval_fraction", 0.01, between(0, 1), OnResume::kMustMatch, "held-out fraction")      \
  /* [optim] */                                                                                                       \
  X(double, lr, "optim.lr", 3e-5, positive(), OnResume::kMayChange, "peak learning rate")                             \
  X(double, min_lr, "optim.min_lr", 1e-5, at_least(0), OnResume::kMayChange, "cosine floor (≤ optim.lr)")             \
  X(int64_t, warmup_steps, "optim.warmup_steps", 1000, at_least(0), OnResume::kMayChange, "linear warmup steps")      \
  X(double, beta1, "optim.beta1", 0.9, unit_open_top(), OnResume::kMayChange, "AdamW beta1")                          \
  X(double, beta2, "optim.beta2", 0.95, unit_open_top(), OnResume::kMayChange, "AdamW beta2")                         \
  X(double, eps, "optim.eps", 1e-8, positive(), OnResume::kMayChange, "AdamW eps")                                    \
  X(double, weight_decay, "optim.weight_decay", 0.1, at_least(0), OnResume::kMayChange,                               \
    "AdamW weight decay (not on norms, biases, embeddings)")                                                          \
  X(double, grad_clip, "optim.grad_clip", 1.0, kAny, OnResume::kMayChange, "gradient-norm clip (≤ 0: off)")           \
  X(double, z_loss, "optim.z_loss", 1e-4, at_least(0), OnResume::kMayChange, "z-loss coefficient")                    \
  /* [attention] (train.objective = attention) */                                                                     \
  X(int64_t, o_proj_fit_batches, "attention.o_proj_fit_batches", 0, at_least(0), OnResume::kMustMatch,               \
    "first global batches that fit o_proj by least squares before step 1 (0: off)")                                  \
  /* [distill] (train.objective = distill) */                                                                         \
  X(double, distill_temperature, "distill.temperature", 1.0, positive(), OnResume::kMustMatch,                        \
    "softmax temperature τ of teacher and student (the KL is scaled by τ²)")                                          \
  X(double, distill_ce_weight, "distill.ce_weight", 0.0, at_least(0), OnResume::kMustMatch,                           \
    "weight of the student's cross-entropy on the text, added to the KL")                                             \
  /* [train] */                                                                                                       \
  X(Objective, objective, "train.objective", Objective::kLm, kAny, OnResume::kMustMatch,                              \
    "lm (CE + z-loss) | attention (fit each attention block to the teacher's) | distill (KL to the teacher)")         \
  X(std::string, trainable, "train.trainable", "", kAny, OnResume::kMustMatch,                                        \
    "parameters that train: \"all\", or comma-separated parts of names (e.g. \"self_attn\"); empty: the objective's " \
    "default (attention: feature_map,o_proj; otherwise all)")                                                         \
  X(int64_t, steps, "train.steps", 1000, at_least(1), OnResume::kMayChange, "optimizer steps")                        \
  X(int64_t, global_batch, "train.global_batch", 8, at_least(1), OnResume::kMustMatch,                                \
    "rows of seq_len tokens per optimizer step (all ranks, all micro-batches)")                                       \
  X(int64_t, micro_batch, "train.micro_batch", 8, at_least(1), OnResume::kMayChange,                                  \
    "rows per forward/backward on one rank")                                                                          \
  X(DeviceChoice, device, "train.device", DeviceChoice::kAuto, kAny, OnResume::kMayChange, "auto | cpu | cuda")       \
  X(Precision, precision, "train.precision", Precision::kAuto, kAny, OnResume::kMayChange,                            \
    "auto (bf16 autocast on GPU, fp32 on CPU) | fp32 | bf16")                                                         \
  X(ParamDtype, param_dtype, "train.param_dtype", ParamDtype::kFp32, kAny, OnResume::kMayChange,                      \
    "fp32 | bf16 (bf16 matrices + fp32 master slices; needs dist.zero ≥ 1 and bf16 precision)")                       \
  X(bool, activation_checkpointing, "train.activation_checkpointing", false, kAny, OnResume::kMayChange,              \
    "recompute each block in the backward pass")                                                                      \
  X(uint64_t, seed, "train.seed", 0, kAny, OnResume::kMustMatch, "global seed")                                       \
  X(int64_t, max_nonfinite, "train.max_nonfinite", 5, at_least(1), OnResume::kMayChange,                              \
    "consecutive NaN/Inf (skipped) steps before the run stops")                                                       \
  X(int, num_threads, "train.num_threads", 0, at_least(0), OnResume::kMayChange, "CPU threads (0: torch's default)")  \
  /* [dist] (multi-process runs; docs/distributed.md) */                                                              \
  X(int64_t, dist_zero, "dist.zero", 0, between(0, 2), OnResume::kMayChange,                                          \
    "0: DDP | 1: shard optimizer state | 2: also shard gradients")                                                    \
  X(double, dist_bucket_mb, "dist.bucket_mb", 25, positive(), OnResume::kMayChange,                                   \
    "gradient bucket size (MiB) for overlapping communication with the backward pass")                                \
  X(double, dist_timeout_s, "dist.timeout_s", 600, positive(), OnResume::kMayChange,                                  \
    "a collective (or the rendezvous) waiting longer than this fails every rank (s)")                                 \
  /* [run] */                                                                                                         \
  X(std::string, out_dir, "run.out_dir", "runs/supra", kAny, OnResume::kMayChange,                                    \
    "run folder (checkpoints, metrics.jsonl)")                                                                        \
  X(int64_t, log_every, "run.log_every", 1, at_least(1), OnResume::kMayChange, "progress every N steps")              \
  X(int64_t, eval_every, "run.eval_every", 0, at_least(0), OnResume::kMayChange,                                      \
    "held-out eval every N steps (0: at the start and the end only)")                                                 \
  X(int64_t, eval_batches, "run.eval_batches", 8, at_least(0), OnResume::kMayChange, "held-out batches per eval")     \
  X(int64_t, save_every, "run.save_every", 0, at_least(0), OnResume::kMayChange,                                      \
    "checkpoint every N steps (0: at the end and on SIGTERM only)")                                                   \
  X(int64_t, keep_last, "run.keep_last", 3, at_least(1), OnResume::kMayChange, "checkpoints kept")                    \
  X(ResumeMode, resume, "run.resume", ResumeMode::kNone, kAny, OnResume::kMayChange,                                  \
    "none | auto (continue from the run's latest checkpoint)")

struct TrainConfig {
#define SUPRA_DECLARE_KEY(type, member, key, def, bounds, on_resume, help) type member = def;
  SUPRA_TRAIN_CONFIG_KEYS(SUPRA_DECLARE_KEY)
#undef SUPRA_DECLARE_KEY

  // Checks every key's range (the table) and the relations between keys (batch divisibility, …); throws
  // supra::Error("config", reason).
  void validate(int64_t world_size = 1) const;
  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j);
  // Why `saved` (from a checkpoint) cannot be continued by `*this` ("" when it can): the first kMustMatch key that
  // differs.
  std::string resume_incompatibility(const TrainConfig& saved) const;
  // The Markdown table of every key (key, default, meaning, on resume) for docs/training.md.
  static std::string doc_table();
};

template <typename E>
std::string enum_name(E value) {
  for (const auto& [name, v] : enum_names<E>())
    if (v == value) return name;
  return "?";
}

}  // namespace supra::training
