// The training data loader: packs the token stream of a prepared data folder into samples of T+1 tokens
// (inputs [:T], targets [1:]), shuffles them globally and deterministically, splits every global batch across
// ranks, and marks where documents begin inside each row (the linear-attention state is reset there).
//
// Semantics (docs/data.md has the full story):
//   * samples: the stream (all shards, manifest order) cut into N = floor(tokens / (T+1)) non-overlapping pieces
//     of T+1 tokens; the incomplete tail is dropped.
//   * held-out split: the last E samples (eval_samples, or floor(N · eval_fraction)); training uses [0, N−E).
//   * order: epoch e visits the training samples in the order of a keyed pseudo-random permutation π(seed, e)
//     (a Feistel bijection with cycle walking — portable integer arithmetic, O(1) memory, O(1) random access).
//     The training sequence is π_0, π_1, π_2, … concatenated; an epoch is exactly N−E consecutive entries, so
//     every training sample is seen exactly once per epoch.
//   * batches: global batch b is entries [bG, (b+1)G) of that sequence — it may straddle two epochs, nothing is
//     dropped or padded. Rank r of W takes rows [rG/W, (r+1)G/W) (G % W == 0). The global batch sequence does not
//     depend on W, so a run can be resumed with a different world size.
//   * state: {seed, epoch, position} — position = entries of epoch `epoch` already consumed by the whole job (the
//     same on every rank) — plus the sample count and T as a fingerprint of the data it belongs to.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <vector>

#include "data/shards.h"

namespace supra::data {

// The keyed permutation of [0, n) used for epoch `epoch` of seed `seed`: a 6-round balanced Feistel network on
// the smallest even-bit power of two ≥ n, cycle-walked into [0, n). Deterministic across platforms/compilers.
class SamplePermutation {
 public:
  SamplePermutation(uint64_t n, uint64_t seed, uint64_t epoch);
  uint64_t operator()(uint64_t i) const;  // i < n
  uint64_t size() const { return n_; }

 private:
  uint64_t encrypt(uint64_t x) const;
  uint64_t n_;
  int half_bits_;
  uint64_t mask_;
  uint64_t keys_[6];
};

struct LoaderOptions {
  int64_t seq_len = 2048;    // T: rows hold T+1 tokens
  int64_t global_batch = 1;  // G: rows per step over all ranks
  int64_t world_size = 1;    // W
  int64_t rank = 0;          // r in [0, W)
  uint64_t seed = 0;
  int64_t eval_samples = -1;  // held-out samples at the end of the stream; -1: floor(N · eval_fraction)
  double eval_fraction = 0.0;
};

struct LoaderState {
  uint64_t seed = 0;
  uint64_t epoch = 0;
  uint64_t position = 0;           // entries of this epoch's order already consumed (all ranks together)
  uint64_t num_train_samples = 0;  // fingerprint: the data and T the state belongs to
  int64_t seq_len = 0;

  nlohmann::json to_json() const;
  // Throws supra::Error(source, ...) on missing or malformed fields.
  static LoaderState from_json(const nlohmann::json& j, const std::string& source = "loader state");
  bool operator==(const LoaderState&) const = default;
};

struct Batch {
  torch::Tensor tokens;           // [B, T+1] int64: inputs tokens[:, :T], targets tokens[:, 1:]
  torch::Tensor doc_start;        // [B, T] bool: true where a document begins at that input position
  std::vector<uint64_t> samples;  // the sample index of each row (position in the stream / (T+1))
  uint64_t epoch = 0;             // epoch of the global batch's first entry
};

class TokenLoader {
 public:
  // Throws supra::Error on bad options (G % W != 0, rank out of range, T < 1, no training sample, ...).
  TokenLoader(std::shared_ptr<const ShardedTokens> data, const LoaderOptions& options);

  int64_t seq_len() const { return options_.seq_len; }
  int64_t local_batch() const { return options_.global_batch / options_.world_size; }
  uint64_t num_samples() const { return num_samples_; }
  uint64_t num_train_samples() const { return num_train_; }
  uint64_t num_eval_samples() const { return num_samples_ - num_train_; }
  const ShardedTokens& data() const { return *data_; }

  // This rank's rows of the next global batch; advances the (global) position by G.
  Batch next_batch();
  // The same into preallocated CPU tensors: tokens int64 [B, T+1], doc_start bool [B, T] (contiguous).
  void next_batch_into(torch::Tensor& tokens, torch::Tensor& doc_start, std::vector<uint64_t>* samples = nullptr,
                       uint64_t* epoch = nullptr);
  // The sample indices of this rank's rows of the next global batch, without reading tokens or advancing.
  std::vector<uint64_t> peek_samples() const;

  LoaderState state() const;
  // Restores a state saved by state(): throws supra::Error when it belongs to other data, T or seed.
  void restore(const LoaderState& state);

  // Held-out split, in stream order: eval global batch s holds eval samples [sG, min((s+1)G, E)); this rank gets
  // rows [rB, (r+1)B) of it (fewer, possibly none, in the last batch). Independent of the training state.
  uint64_t eval_steps() const;
  Batch eval_batch(uint64_t step) const;

  // One sample's T+1 tokens and T document-start flags.
  void read_sample(uint64_t sample, int64_t* tokens, bool* doc_start) const;

 private:
  uint64_t entry(uint64_t epoch, uint64_t position) const;  // sample index of an entry of the training sequence
  std::shared_ptr<const ShardedTokens> data_;
  LoaderOptions options_;
  uint64_t num_samples_ = 0, num_train_ = 0;
  uint64_t epoch_ = 0, position_ = 0;
  mutable std::unique_ptr<SamplePermutation> perm_;  // cached for the epoch last used
  mutable uint64_t perm_epoch_ = 0;
};

}  // namespace supra::data
