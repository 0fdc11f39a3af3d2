// The pretrained teacher's token mixer: Llama/Mistral softmax attention (attention kind "softmax").
#pragma once
#include <torch/torch.h>

#include <optional>

#include "core/model/attention.h"
#include "core/model/config.h"

namespace supra {

// Llama/Mistral softmax attention with GQA, causal mask and Mistral's sliding window (a query attends to at most
// `sliding_window` most recent positions, itself included — HF's `kv_idx > q_idx - sliding_window`).
class SoftmaxAttentionImpl : public AttentionImpl {
 public:
  explicit SoftmaxAttentionImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& ctx) override;

  Dense q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t num_heads, num_kv_heads, head_dim;

  std::optional<int64_t> sliding_window;

 private:
  // Generation with a K/V cache: appends this call's keys/values, attends over the cache (causal, sliding window,
  // padding by position), then applies the cache policy (window/TOVA eviction). q [B, H, T, d], k/v [B, H_kv, T, d].
  torch::Tensor attend_cached(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const AttentionContext& ctx);
};

// Boolean attention mask [B or 1, 1, T, T] (true = may attend): causal, optional window and key padding, and with
// `resets` (bool [B, T], true where a packed document starts) block-diagonal: a query sees only its own document,
// as if each document were run alone (RoPE depends on relative positions only). A padded query always sees itself so
// that no row is empty (its output is never used).
torch::Tensor causal_attention_mask(int64_t T, std::optional<int64_t> window, const torch::Tensor& key_padding,
                                    torch::Device device, const torch::Tensor& resets = {});

}  // namespace supra
