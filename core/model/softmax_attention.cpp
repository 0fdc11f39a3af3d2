#include "core/model/softmax_attention.h"

#include <cmath>
#include <limits>

#include "core/model/attention_registry.h"

namespace supra {

SUPRA_REGISTER_ATTENTION(softmax,
                         [](const ModelConfig& c, int64_t) { return std::make_shared<SoftmaxAttentionImpl>(c); });

SoftmaxAttentionImpl::SoftmaxAttentionImpl(const ModelConfig& c)
    : num_heads(c.num_attention_heads),
      num_kv_heads(c.num_key_value_heads),
      head_dim(c.head_dim),
      sliding_window(c.sliding_window) {
  q_proj = register_module("q_proj", Dense(c.hidden_size, c.q_dim()));
  k_proj = register_module("k_proj", Dense(c.hidden_size, c.kv_dim()));
  v_proj = register_module("v_proj", Dense(c.hidden_size, c.kv_dim()));
  o_proj = register_module("o_proj", Dense(c.q_dim(), c.hidden_size));
}

torch::Tensor causal_attention_mask(int64_t T, std::optional<int64_t> window, const torch::Tensor& key_padding,
                                    torch::Device device, const torch::Tensor& resets) {
  auto i = torch::arange(T, torch::TensorOptions().dtype(torch::kLong).device(device)).view({T, 1});
  auto j = i.view({1, T});
  auto mask = j <= i;
  if (window) mask = mask.logical_and(i - j < *window);
  mask = mask.view({1, 1, T, T});
  if (resets.defined()) {
    auto doc = resets.to(torch::kLong).cumsum(1);  // [B, T]: which packed document each token belongs to
    mask = mask.logical_and(doc.unsqueeze(2).eq(doc.unsqueeze(1)).unsqueeze(1));
  }
  if (key_padding.defined()) {
    mask = mask.logical_and(key_padding.to(torch::kBool).view({key_padding.size(0), 1, 1, T}));
    mask = mask.logical_or(torch::eye(T, torch::TensorOptions().dtype(torch::kBool).device(device)).view({1, 1, T, T}));
  }
  return mask;
}

torch::Tensor SoftmaxAttentionImpl::forward(const torch::Tensor& x, const AttentionContext& ctx) {
  const int64_t B = x.size(0), T = x.size(1);
  auto q = q_proj(x).view({B, T, num_heads, head_dim}).transpose(1, 2);
  auto k = k_proj(x).view({B, T, num_kv_heads, head_dim}).transpose(1, 2);
  auto v = v_proj(x).view({B, T, num_kv_heads, head_dim}).transpose(1, 2);
  q = apply_rope(q, ctx.rope);
  k = apply_rope(k, ctx.rope);
  if (ctx.cache != nullptr)
    return o_proj(attend_cached(q, k, v, ctx).transpose(1, 2).reshape({B, T, num_heads * head_dim}));
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  if (!ctx.softmax_mask) {  // the first layer of this forward
    const bool window_binds = sliding_window && *sliding_window < T;
    // Packed rows (training): documents after the first must not see the ones before them.
    const bool packed = ctx.resets.defined() && T > 1 && ctx.resets.narrow(1, 1, T - 1).any().item<bool>();
    ctx.softmax_mask = (ctx.key_padding.defined() || window_binds || packed)
                           ? causal_attention_mask(T, window_binds ? sliding_window : std::nullopt, ctx.key_padding,
                                                   x.device(), packed ? ctx.resets : torch::Tensor())
                           : torch::Tensor();
  }
  const torch::Tensor& mask = *ctx.softmax_mask;
  auto out = at::scaled_dot_product_attention(q, k, v, mask.defined() ? mask : std::optional<at::Tensor>(), 0.0,
                                              /*is_causal=*/!mask.defined(), scale,
                                              /*enable_gqa=*/num_heads != num_kv_heads);
  out = out.transpose(1, 2).reshape({B, T, num_heads * head_dim});
  return o_proj(out);
}

torch::Tensor SoftmaxAttentionImpl::attend_cached(const torch::Tensor& q, const torch::Tensor& k,
                                                  const torch::Tensor& v, const AttentionContext& ctx) {
  LayerCache& c = *ctx.cache;
  const int64_t T = q.size(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const bool gqa = num_heads != num_kv_heads;
  const bool first_call = !c.k.defined();
  // Padding tokens are cached with position -1: no query ever attends to them, and eviction drops them first.
  auto new_pos = ctx.positions;
  if (ctx.key_padding.defined()) new_pos = new_pos.masked_fill(ctx.key_padding.logical_not(), -1);
  if (c.k.defined()) {
    c.k = torch::cat({c.k, k}, 2);
    c.v = torch::cat({c.v, v}, 2);
    c.pos = torch::cat({c.pos, new_pos}, 1);
  } else {
    c.k = k, c.v = v, c.pos = new_pos;
  }
  const int64_t L = c.pos.size(1);
  const bool plain_causal = first_call && !ctx.key_padding.defined() && !(sliding_window && *sliding_window < T) &&
                            ctx.kv.policy != KvPolicy::kTova;
  torch::Tensor out, mask;
  if (!plain_causal) {
    // May attend: a real cached token at or before the query's position (and inside Mistral's window). A padded
    // query sees its own slot so that no row is empty (its output is never used).
    auto kp = c.pos.unsqueeze(1), qp = ctx.positions.unsqueeze(2);  // [B, 1, L], [B, T, 1]
    mask = kp.ge(0).logical_and(kp.le(qp));
    if (sliding_window) mask = mask.logical_and(kp.gt(qp - *sliding_window));
    auto own = torch::zeros({T, L}, mask.options());
    own.narrow(1, L - T, T).fill_diagonal_(true);
    mask = mask.logical_or(own.unsqueeze(0)).unsqueeze(1);  // [B, 1, T, L]
  }
  if (plain_causal) {
    // A prompt without padding into an empty cache: plain causal attention (flash kernels, no [T, L] mask).
    out = at::scaled_dot_product_attention(q, c.k, c.v, {}, 0.0, /*is_causal=*/true, scale, gqa);
  } else if (ctx.kv.policy != KvPolicy::kTova) {
    out = at::scaled_dot_product_attention(q, c.k, c.v, mask, 0.0, /*is_causal=*/false, scale, gqa);
  } else {  // explicit weights: TOVA scores tokens by them
    const int64_t rep = num_heads / num_kv_heads;
    auto kr = gqa ? c.k.repeat_interleave(rep, 1) : c.k, vr = gqa ? c.v.repeat_interleave(rep, 1) : c.v;
    auto scores = torch::matmul(q.to(torch::kFloat), kr.to(torch::kFloat).transpose(-1, -2)) * scale;
    auto w = torch::softmax(scores.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity()), -1);
    out = torch::matmul(w, vr.to(torch::kFloat)).to(q.scalar_type());
    if (L > ctx.kv.size) {
      // TOVA: the current (last) query's attention, averaged over the layer's heads; empty slots go first.
      auto score = w.select(2, T - 1).mean(1).masked_fill(c.pos.lt(0), -std::numeric_limits<float>::infinity());
      evict_to(c, score, ctx.kv.size);
    }
  }
  if (ctx.kv.policy == KvPolicy::kWindow && L > ctx.kv.size) {
    auto score = c.pos.to(torch::kFloat).masked_fill(c.pos.lt(0), -std::numeric_limits<float>::infinity());
    evict_to(c, score, ctx.kv.size);  // the most recent tokens stay
  }
  return out;
}

}  // namespace supra
