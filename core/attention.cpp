#include "core/attention.h"

#include <cmath>

namespace supra {

SoftmaxAttentionImpl::SoftmaxAttentionImpl(const ModelConfig& c)
    : num_heads(c.num_attention_heads), num_kv_heads(c.num_key_value_heads), head_dim(c.head_dim),
      sliding_window(c.sliding_window) {
  q_proj = register_module("q_proj", Dense(c.hidden_size, c.q_dim()));
  k_proj = register_module("k_proj", Dense(c.hidden_size, c.kv_dim()));
  v_proj = register_module("v_proj", Dense(c.hidden_size, c.kv_dim()));
  o_proj = register_module("o_proj", Dense(c.q_dim(), c.hidden_size));
}

torch::Tensor causal_attention_mask(int64_t T, std::optional<int64_t> window, const torch::Tensor& key_padding,
                                    torch::Device device) {
  auto i = torch::arange(T, torch::TensorOptions().dtype(torch::kLong).device(device)).view({T, 1});
  auto j = i.view({1, T});
  auto mask = j <= i;
  if (window) mask = mask.logical_and(i - j < *window);
  mask = mask.view({1, 1, T, T});
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
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const bool window_binds = sliding_window && *sliding_window < T;
  torch::Tensor out;
  if (!ctx.key_padding.defined() && !window_binds) {
    out = at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, 0.0, /*is_causal=*/true, scale,
                                           /*enable_gqa=*/num_heads != num_kv_heads);
  } else {
    auto mask = causal_attention_mask(T, window_binds ? sliding_window : std::nullopt, ctx.key_padding, x.device());
    out = at::scaled_dot_product_attention(q, k, v, mask, 0.0, /*is_causal=*/false, scale,
                                           /*enable_gqa=*/num_heads != num_kv_heads);
  }
  out = out.transpose(1, 2).reshape({B, T, num_heads * head_dim});
  return o_proj(out);
}

}  // namespace supra
