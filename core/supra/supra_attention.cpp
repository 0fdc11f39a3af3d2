#include "core/supra/supra_attention.h"

#include <cmath>

#include "core/model/attention_registry.h"
#include "core/supra/decay.h"
#include "kernels/linear_attention.h"

namespace supra {

SUPRA_REGISTER_ATTENTION(supra, [](const ModelConfig& c, int64_t) {
  return std::make_shared<SupraAttentionImpl>(c, *c.supra);
});

SupraAttentionImpl::SupraAttentionImpl(const ModelConfig& c, const SupraSettings& s)
    : num_heads(c.num_attention_heads),
      num_kv_heads(c.num_key_value_heads),
      head_dim(c.head_dim),
      chunk_size(s.chunk_size),
      qk_norm(s.qk_norm),
      scale(1.0 / std::sqrt(static_cast<double>(c.head_dim))) {
  q_proj = register_module("q_proj", Dense(c.hidden_size, c.q_dim()));
  k_proj = register_module("k_proj", Dense(c.hidden_size, c.kv_dim()));
  v_proj = register_module("v_proj", Dense(c.hidden_size, c.kv_dim()));
  o_proj = register_module("o_proj", Dense(c.q_dim(), c.hidden_size));
  feature_map_q = register_module("feature_map_q", Dense(c.q_dim(), c.q_dim(), /*bias=*/true));
  if (s.separate_key_map(num_heads, num_kv_heads))
    feature_map_k = register_module("feature_map_k", Dense(c.kv_dim(), c.kv_dim(), /*bias=*/true));
  // Not persistent in checkpoints: always recomputed from the decay kind, and kept fp32 under model->to(bf16).
  log_gamma = decay_log_gamma(s.decay, num_heads);
}

SupraAttentionImpl::Inputs SupraAttentionImpl::attention_inputs(const torch::Tensor& x, const AttentionContext& ctx) {
  const int64_t B = x.size(0), T = x.size(1);
  auto q0 = q_proj(x), k0 = k_proj(x), v = v_proj(x);
  if (qk_norm) {
    q0 = torch::layer_norm(q0, {q0.size(-1)}, {}, {}, 1e-5);
    k0 = torch::layer_norm(k0, {k0.size(-1)}, {}, {}, 1e-5);
  }
  // φ(x) = ReLU(x W_φ + b_φ): shared between q and k without GQA, a separate key map under GQA.
  auto q = torch::relu(feature_map_q(q0)).view({B, T, num_heads, head_dim});
  auto k = torch::relu(feature_map_k ? feature_map_k(k0) : feature_map_q(k0)).view({B, T, num_kv_heads, head_dim});
  v = v.view({B, T, num_kv_heads, head_dim});
  // RoPE after the feature map (apply_rope works head-first).
  q = apply_rope(q.transpose(1, 2), ctx.rope).transpose(1, 2);
  k = apply_rope(k.transpose(1, 2), ctx.rope).transpose(1, 2);
  if (ctx.key_padding.defined()) {
    auto keep = ctx.key_padding.to(k.scalar_type()).view({B, T, 1, 1});
    k = k * keep;
    v = v * keep;
  }
  return {q, k, v};
}

namespace {
// GroupNorm with H groups and no affine = per token, per head: (o − mean) / sqrt(var + 1e-5), biased variance.
// o [B, T, H, d] -> fp32 [B, T, H·d].
torch::Tensor group_norm_heads(const torch::Tensor& o) {
  auto of = o.to(torch::kFloat);
  auto mean = of.mean(-1, /*keepdim=*/true);
  auto var = (of - mean).pow(2).mean(-1, /*keepdim=*/true);
  return ((of - mean) * torch::rsqrt(var + 1e-5)).flatten(2);
}

// The per-head decay on the input's device: moved there once, not copied per step.
const torch::Tensor& on_device(torch::Tensor& log_gamma, const torch::Device& device) {
  if (log_gamma.device() != device) log_gamma = log_gamma.to(device);
  return log_gamma;
}
}  // namespace

torch::Tensor SupraAttentionImpl::output(const torch::Tensor& o, torch::Dtype dtype) {
  return o_proj(group_norm_heads(o).to(dtype));
}

torch::Tensor SupraAttentionImpl::normalized_heads(const torch::Tensor& x, const AttentionContext& ctx) {
  auto in = attention_inputs(x, ctx);
  kernels::LinearAttentionArgs args;
  args.log_gamma = on_device(log_gamma, x.device());
  args.scale = scale;
  args.resets = ctx.resets;
  // Prefill: the parallel form continues from the cached state and hands its final state to the decoder.
  if (ctx.cache != nullptr) args.initial_state = ctx.cache->state;
  auto [o, state] = kernels::linear_attention(in.q, in.k, in.v, args, chunk_size);
  if (ctx.cache != nullptr) ctx.cache->state = state;
  return group_norm_heads(o);
}

torch::Tensor SupraAttentionImpl::forward(const torch::Tensor& x, const AttentionContext& ctx) {
  if (ctx.cache != nullptr && ctx.cache->state.defined() && x.size(1) == 1) {
    // Decoding: one token per sequence; the recurrent step updates the fp32 state in place.
    auto in = attention_inputs(x, ctx);
    auto o = kernels::linear_attention_step_(in.q.squeeze(1).contiguous(), in.k.squeeze(1).contiguous(),
                                             in.v.squeeze(1).contiguous(), ctx.cache->state,
                                             on_device(log_gamma, x.device()), scale);
    return output(o.unsqueeze(1), x.scalar_type());
  }
  return o_proj(normalized_heads(x, ctx).to(x.scalar_type()));
}

}  // namespace supra
