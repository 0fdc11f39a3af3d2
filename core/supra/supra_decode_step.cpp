// SUPRA's decode step on the fast path: per token and layer, one matmul, one fused op, one matmul.
//   pre = x W_inᵀ + b_in          W_in = [W_φq W_q ; W_φk W_k ; W_v],  b_in = [b_φq ; b_φk ; 0]
// i.e. the feature maps' linear parts are folded into the q/k projections (φ(x W_qᵀ) = ReLU(x (W_φ W_q)ᵀ + b_φ)), so
// the step reads fewer weights than the reference path (which multiplies by W_q, then by W_φ). The product is
// formed in float64 and rounded once. With qk_norm the LayerNorm sits between the two matmuls, so W_in = [W_q; W_k;
// W_v] and the feature maps run as their own matmuls. Then kernels::supra_decode_step_ (ReLU, RoPE, key scale, state
// update, readout, GroupNorm) and o_proj.
#include <ATen/Functions.h>

#include "core/supra/supra_attention.h"
#include "kernels/linear_attention.h"

namespace supra {
namespace {

class SupraStep : public MixerStep {
 public:
  SupraStep(SupraAttentionImpl& attention, LayerCache& cache) : a_(attention), cache_(cache) {
    TORCH_CHECK(cache_.state.defined(), "SUPRA decode step: the layer has no state (run the prefill first)");
    if (!cache_.state.is_contiguous()) cache_.state = cache_.state.contiguous();
    a_.fused_input();  // built now, not in the first step
  }

  torch::Tensor run(const torch::Tensor& x, const RopeTables& rope, const torch::Tensor&) override {
    const auto& in = a_.fused_input();
    torch::Tensor pre;
    if (!a_.qk_norm) {
      pre = torch::addmm(in.bias, x, in.weight.t());
    } else {
      const int64_t nq = a_.num_heads * a_.head_dim, nk = a_.num_kv_heads * a_.head_dim;
      auto qkv = torch::mm(x, in.weight.t());
      auto q0 = torch::layer_norm(qkv.narrow(1, 0, nq), {nq}, {}, {}, 1e-5);
      auto k0 = torch::layer_norm(qkv.narrow(1, nq, nk), {nk}, {}, {}, 1e-5);
      auto k_map = a_.feature_map_k ? a_.feature_map_k : a_.feature_map_q;
      pre = torch::cat({a_.feature_map_q(q0), k_map(k0), qkv.narrow(1, nq + nk, nk)}, 1);
    }
    if (a_.log_gamma.device() != x.device()) a_.log_gamma = a_.log_gamma.to(x.device());
    return a_.o_proj(kernels::supra_decode_step_(pre, rope.cos, rope.sin, cache_.state, a_.log_gamma, a_.scale));
  }
  bool capturable() const override { return true; }  // fixed-size state updated in place

 private:
  SupraAttentionImpl& a_;
  LayerCache& cache_;
};

}  // namespace

const SupraAttentionImpl::FusedInput& SupraAttentionImpl::fused_input() {
  auto k_map = feature_map_k ? feature_map_k : feature_map_q;
  std::vector<torch::Tensor> sources{q_proj->weight, k_proj->weight, v_proj->weight};
  if (!qk_norm) sources.insert(sources.end(), {feature_map_q->weight, feature_map_q->bias, k_map->weight, k_map->bias});
  std::vector<std::pair<const void*, int64_t>> key;
  for (const auto& t : sources) key.emplace_back(t.data_ptr(), t._version());
  if (key == fused_input_.sources && fused_input_.weight.defined()) return fused_input_;
  torch::NoGradGuard no_grad;
  const auto dtype = q_proj->weight.scalar_type();
  auto fold = [&](const Dense& map, const torch::Tensor& w) {  // W_φ W in float64, rounded once
    return torch::mm(map->weight.to(torch::kDouble), w.to(torch::kDouble)).to(dtype);
  };
  FusedInput f;
  if (qk_norm) {
    f.weight = torch::cat({q_proj->weight, k_proj->weight, v_proj->weight}, 0);
  } else {
    f.weight = torch::cat({fold(feature_map_q, q_proj->weight), fold(k_map, k_proj->weight), v_proj->weight}, 0);
    f.bias = torch::cat({feature_map_q->bias, k_map->bias, torch::zeros_like(v_proj->weight.select(1, 0))}, 0);
  }
  f.sources = std::move(key);
  fused_input_ = std::move(f);
  return fused_input_;
}

std::unique_ptr<MixerStep> SupraAttentionImpl::decode_step(LayerCache& cache, const KvCacheOptions&) {
  return std::make_unique<SupraStep>(*this, cache);
}

}  // namespace supra
