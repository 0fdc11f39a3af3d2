// The decayed causal linear attention of SUPRA in its three equivalent CPU forms — the specification every other
// implementation (the CUDA kernels) must match. Per query head h with fixed decay γ_h = exp(log_gamma[h]):
//
//     o_i = Σ_{j ≤ i, same document} γ_h^{i−j} · (q_i · k_j) · s · v_j   (+ γ_h^i · q_i S0 while in the first document)
//
// Layout: q [B, T, H, Dk]; k [B, T, Hkv, Dk]; v [B, T, Hkv, Dv] with H a multiple of Hkv (GQA: kv head j serves
// query heads j·r … j·r+r−1); log_gamma fp32 [H]; state [B, H, Dk, Dv] fp32 (float64 for float64 inputs).
// State convention: the stored state after token t already includes the next step's decay,
// S_t = γ (S_{t−1} + s k_tᵀ v_t), so after T tokens S = Σ_{j<T} γ^{T−j} s k_jᵀ v_j + γ^T S0 — the same tensor from
// every form, which is how a chunked prefill hands its state to the recurrent decoder.
// resets (optional bool [B, T]): true where a new document starts inside a packed row; the state is cleared
// before that token, so nothing crosses a document boundary (S0 only reaches the row's first document).
#pragma once
#include <torch/torch.h>

#include <optional>
#include <tuple>

namespace supra::reference {

struct LinearAttentionArgs {
  torch::Tensor log_gamma;      // fp32 [H]
  double scale = 1.0;           // s, applied to the keys
  torch::Tensor initial_state;  // optional [B, H, Dk, Dv]
  torch::Tensor resets;         // optional bool [B, T]
};

// Returns (o [B, T, H, Dv] in q's dtype, final state [B, H, Dk, Dv] fp32 / fp64).
using LinearAttentionResult = std::tuple<torch::Tensor, torch::Tensor>;

// O(T²): O = ((Q Kᵀ s) ⊙ M) V with M_ij = γ^{i−j} for j ≤ i in the same document.
LinearAttentionResult naive(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const LinearAttentionArgs& args);

// Chunks of C tokens: intra-chunk masked matmuls plus the carried state (differentiable; the CPU training path).
LinearAttentionResult chunked(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const LinearAttentionArgs& args, int64_t chunk_size = 64);

// Token by token with recurrent_step (the decoding form).
LinearAttentionResult recurrent(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const LinearAttentionArgs& args);

// One decoding step for one token per sequence: q [B, H, Dk], k [B, Hkv, Dk], v [B, Hkv, Dv], state
// [B, H, Dk, Dv] (fp32). S' = S + s kᵀv; o = q S'; returns (o [B, H, Dv], γ S'). reset (optional bool [B]) clears
// S first.
std::tuple<torch::Tensor, torch::Tensor> recurrent_step(const torch::Tensor& q, const torch::Tensor& k,
                                                        const torch::Tensor& v, const torch::Tensor& state,
                                                        const torch::Tensor& log_gamma, double scale,
                                                        const torch::Tensor& reset = {});

// Checks shapes/dtypes shared by every form; throws c10::Error (TORCH_CHECK) with the offending argument.
void check_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                  const LinearAttentionArgs& args);

}  // namespace supra::reference
