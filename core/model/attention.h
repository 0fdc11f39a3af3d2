// The token mixer as the decoder block sees it: an abstract attention module plus the per-forward context every
// kind needs (RoPE tables, padding mask, document resets, generation cache). Kinds: softmax
// (core/model/softmax_attention.h), SUPRA (core/supra/supra_attention.h); the model builds them by name through
// core/model/attention_registry.h.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <optional>

#include "core/model/inference_cache.h"
#include "core/model/layers.h"
#include "core/model/rope.h"

namespace supra {

struct AttentionContext {
  RopeTables rope;            // cos/sin [B, T, head_dim] for the tokens of this forward
  torch::Tensor key_padding;  // optional bool [B, T]: true = real token, false = padding
  torch::Tensor resets;       // optional bool [B, T]: a new document starts here (packed rows: no attention across)
  // Generation only (CausalLM::forward_cached): the positions of this call's tokens [B, T], this layer's cache
  // (read and updated by the attention), and the policy bounding softmax K/V caches.
  torch::Tensor positions;
  LayerCache* cache = nullptr;
  KvCacheOptions kv;
  // Softmax attention's mask for this forward (uncached): built by the first layer, with the one host sync that
  // tells whether any row is packed, and reused by the others. Holds an undefined tensor when plain causal will do.
  mutable std::optional<torch::Tensor> softmax_mask;
};

// One layer's decoding step in the decode fast path (core/model/decoder.h), bound to its LayerCache and to weights
// prepared once (fused projections): x [B, hidden] (normalised) of one token per sequence -> [B, hidden]. `rope`
// holds the rows [B, head_dim] of this token's positions [B]. Runs under NoGradGuard.
class MixerStep {
 public:
  virtual ~MixerStep() = default;
  virtual torch::Tensor run(const torch::Tensor& x, const RopeTables& rope, const torch::Tensor& positions) = 0;
  // True when run() has fixed shapes, allocates nothing that outlives it and never synchronises with the host, so
  // that a CUDA graph can capture it (a growing K/V cache cannot).
  virtual bool capturable() const { return false; }
};

class AttentionImpl : public torch::nn::Module {
 public:
  // x [B, T, hidden] (already normalised) -> [B, T, hidden]
  virtual torch::Tensor forward(const torch::Tensor& x, const AttentionContext& ctx) = 0;
  // This layer's step for the decode fast path, reading and updating `cache` (filled by the prefill). The default
  // runs forward() on a one-token context (the reference path's arithmetic); kinds with a fused recurrent step
  // override it. The step must not outlive this module or the cache.
  virtual std::unique_ptr<MixerStep> decode_step(LayerCache& cache, const KvCacheOptions& kv);
};

}  // namespace supra
