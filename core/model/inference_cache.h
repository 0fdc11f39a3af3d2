// What a causal LM carries between calls while it generates: per layer, SUPRA's fp32 recurrent state (constant
// size) or a softmax layer's K/V cache, which a policy may bound to K tokens (full | sliding window | TOVA), plus
// each sequence's next RoPE position. Sequences of a batch are left-padded; padding never enters a state.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace supra {

// How a softmax layer's K/V cache is bounded (SUPRA layers ignore it).
enum class KvPolicy {
  kFull,    // keep every token
  kWindow,  // keep the K most recent tokens
  kTova,    // keep K tokens; when over, evict the one the current query attends to least (mean over the layer's heads)
};
KvPolicy parse_kv_policy(const std::string& name);  // "full" | "window" | "tova"; supra::Error otherwise
std::string kv_policy_name(KvPolicy policy);

struct KvCacheOptions {
  KvPolicy policy = KvPolicy::kFull;
  int64_t size = 0;  // K, the most tokens kept per layer (window, tova)
  bool bounded() const { return policy != KvPolicy::kFull; }
};

struct LayerCache {
  torch::Tensor state;  // SUPRA: fp32 [B, H, d, d], the stored state (already carrying the next step's decay)
  torch::Tensor k, v;   // softmax: [B, H_kv, L, d], keys with RoPE applied
  torch::Tensor pos;    // softmax: int64 [B, L], the position of each cached token (-1: empty slot / padding)
};

class InferenceCache {
 public:
  InferenceCache(int64_t num_layers, KvCacheOptions kv = {});
  std::vector<LayerCache> layers;
  KvCacheOptions kv;
  torch::Tensor next_position;  // int64 [B]: position of each sequence's next token (undefined before the prompt)
  int64_t bytes() const;        // of all layers' states / caches, for the whole batch
  int64_t batch() const { return next_position.defined() ? next_position.size(0) : 0; }
};

// The eviction step of a bounded policy: keeps, per row, the `keep` entries of `cache` with the highest `score`
// ([B, L]; empty slots must score -inf so they go first), in their original order.
void evict_to(LayerCache& cache, const torch::Tensor& score, int64_t keep);

}  // namespace supra
