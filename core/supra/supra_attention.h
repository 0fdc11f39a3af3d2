// SUPRA attention: the linear-attention layer that replaces softmax attention after conversion
// (docs/method.md §2). Pretrained q/k/v/o projections are kept; new feature maps φ
// (Linear + bias, ReLU) are learned; RoPE is applied after φ; keys are scaled by 1/√d; decayed causal linear
// attention without denominator; GroupNorm per head (fp32, eps 1e-5, no affine); output projection.
#pragma once
#include <torch/torch.h>

#include <utility>
#include <vector>

#include "core/model/attention.h"
#include "core/model/config.h"
#include "core/model/layers.h"

namespace supra {

class SupraAttentionImpl : public AttentionImpl {
 public:
  SupraAttentionImpl(const ModelConfig& config, const SupraSettings& settings);
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& ctx) override;
  // The fused decode step (core/supra/supra_decode_step.cpp): one matmul for the feature-map pre-activations of q
  // and k and for v, kernels::supra_decode_step_, o_proj.
  std::unique_ptr<MixerStep> decode_step(LayerCache& cache, const KvCacheOptions& kv) override;

  // The feature-mapped, rotated inputs of the attention op: q [B, T, H, d], k and v [B, T, H_kv, d]. Padding
  // tokens get k = v = 0, so they never enter the state.
  struct Inputs {
    torch::Tensor q, k, v;
  };
  Inputs attention_inputs(const torch::Tensor& x, const AttentionContext& ctx);
  // GroupNorm over each head's d values (fp32), then o_proj: o [B, T, H, d] -> [B, T, hidden] in `dtype`.
  torch::Tensor output(const torch::Tensor& o, torch::Dtype dtype);
  // The parallel form up to o_proj's input: every head's GroupNorm-ed output, fp32 [B, T, H·d]; forward() without
  // a single-token decode is o_proj of this (continuing from and updating ctx.cache's state when there is one).
  torch::Tensor normalized_heads(const torch::Tensor& x, const AttentionContext& ctx);

  Dense q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  Dense feature_map_q{nullptr}, feature_map_k{nullptr};  // feature_map_k only under GQA
  torch::Tensor log_gamma;                               // fp32 [H] buffer, fixed
  int64_t num_heads, num_kv_heads, head_dim, chunk_size;
  bool qk_norm;
  double scale;

  // The decode step's fused input projection, built on first use and rebuilt when a weight it is made from
  // changes (another tensor, device, dtype, or an in-place update: each source's data pointer and version).
  struct FusedInput {
    std::vector<std::pair<const void*, int64_t>> sources;
    torch::Tensor weight, bias;  // [(H + 2·H_kv)·d, hidden], [(H + 2·H_kv)·d] (undefined with qk_norm)
  };
  const FusedInput& fused_input();

 private:
  FusedInput fused_input_;
};

}  // namespace supra
