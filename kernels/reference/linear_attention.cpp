#include "kernels/reference/linear_attention.h"

namespace supra::reference {
namespace {

torch::ScalarType accumulate_type(const torch::Tensor& q) {
  return q.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

// [B, T, Hkv, D] -> [B, H, T, D] in the accumulation dtype, kv heads repeated for GQA.
torch::Tensor heads_first(const torch::Tensor& x, int64_t heads, torch::ScalarType acc) {
  auto y = x.to(acc);
  if (y.size(2) != heads) y = y.repeat_interleave(heads / y.size(2), /*dim=*/2);
  return y.permute({0, 2, 1, 3});
}

// Document index of every token: number of resets up to and including it. [B, T] int64 (zeros without resets).
torch::Tensor segments(const torch::Tensor& resets, int64_t B, int64_t T, torch::Device device) {
  if (!resets.defined()) return torch::zeros({B, T}, torch::TensorOptions().dtype(torch::kLong).device(device));
  return resets.to(torch::kLong).cumsum(1);
}

}  // namespace

void check_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                  const LinearAttentionArgs& args) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "q, k, v must be [B, T, H, D]");
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), Hkv = k.size(2);
  TORCH_CHECK(T > 0, "linear attention needs at least one token");
  TORCH_CHECK(k.size(0) == B && v.size(0) == B && k.size(1) == T && v.size(1) == T, "q, k, v disagree on B or T");
  TORCH_CHECK(v.size(2) == Hkv, "k and v must have the same number of heads");
  TORCH_CHECK(Hkv > 0 && H % Hkv == 0, "query heads (", H, ") must be a multiple of kv heads (", Hkv, ")");
  TORCH_CHECK(k.size(3) == q.size(3), "q and k head dims differ");
  TORCH_CHECK(args.log_gamma.defined() && args.log_gamma.dim() == 1 && args.log_gamma.size(0) == H,
              "log_gamma must be [H] = [", H, "]");
  TORCH_CHECK(args.log_gamma.scalar_type() == torch::kFloat || args.log_gamma.scalar_type() == torch::kDouble,
              "log_gamma must be fp32 (or fp64)");
  if (args.initial_state.defined())
    TORCH_CHECK(args.initial_state.sizes() == torch::IntArrayRef({B, H, q.size(3), v.size(3)}),
                "initial_state must be [B, H, Dk, Dv], got ", args.initial_state.sizes());
  if (args.resets.defined())
    TORCH_CHECK(args.resets.dim() == 2 && args.resets.size(0) == B && args.resets.size(1) == T,
                "resets must be [B, T]");
}

LinearAttentionResult naive(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const LinearAttentionArgs& args) {
  check_inputs(q, k, v, args);
  const auto acc = accumulate_type(q);
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2);
  auto Q = heads_first(q, H, acc), K = heads_first(k, H, acc), V = heads_first(v, H, acc);  // [B, H, T, D]
  auto opts = torch::TensorOptions().dtype(acc).device(q.device());
  auto lg = args.log_gamma.to(acc).view({1, H, 1, 1});
  auto idx = torch::arange(T, opts);
  auto diff = idx.view({T, 1}) - idx.view({1, T});  // i − j
  auto seg = segments(args.resets, B, T, q.device());
  auto same_doc = (seg.unsqueeze(2) == seg.unsqueeze(1)).unsqueeze(1);  // [B, 1, T, T]
  // M_ij = γ^{i−j} for j ≤ i in the same document, else 0.
  auto M = torch::exp(lg * diff.clamp_min(0)) * (diff >= 0).to(acc) * same_doc.to(acc);
  auto O = torch::matmul(torch::matmul(Q, K.transpose(-1, -2)) * args.scale * M, V);

  // Final state: Σ_{j in the last document} γ^{T−j} s k_jᵀ v_j (+ γ^T S0 when the row has no reset).
  auto last_doc = (seg == seg.select(1, T - 1).unsqueeze(1)).to(acc).view({B, 1, T, 1});
  auto w = torch::exp(lg * (T - idx).view({1, 1, T, 1})) * last_doc * args.scale;
  auto S = torch::matmul((K * w).transpose(-1, -2), V);  // [B, H, Dk, Dv]
  if (args.initial_state.defined()) {
    auto S0 = args.initial_state.to(acc);
    auto first_doc = (seg == 0).to(acc).view({B, 1, T, 1});
    O = O + first_doc * torch::exp(lg * idx.view({1, 1, T, 1})) * torch::matmul(Q, S0);
    auto untouched = (seg.select(1, T - 1) == 0).to(acc).view({B, 1, 1, 1});
    S = S + untouched * torch::exp(lg * T) * S0;
  }
  return {O.permute({0, 2, 1, 3}).to(q.scalar_type()), S};
}

LinearAttentionResult chunked(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const LinearAttentionArgs& args, int64_t chunk_size) {
  check_inputs(q, k, v, args);
  TORCH_CHECK(chunk_size > 0, "chunk_size must be positive");
  const auto acc = accumulate_type(q);
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), Dk = q.size(3), Dv = v.size(3);
  auto Q = heads_first(q, H, acc), K = heads_first(k, H, acc), V = heads_first(v, H, acc);
  auto opts = torch::TensorOptions().dtype(acc).device(q.device());
  auto lg = args.log_gamma.to(acc).view({1, H, 1, 1});
  auto seg = segments(args.resets, B, T, q.device());
  auto S = args.initial_state.defined() ? args.initial_state.to(acc) : torch::zeros({B, H, Dk, Dv}, opts);
  // The document the carried state belongs to (before the first token: document 0).
  auto state_doc = torch::zeros({B}, torch::TensorOptions().dtype(torch::kLong).device(q.device()));
  std::vector<torch::Tensor> outs;
  for (int64_t c0 = 0; c0 < T; c0 += chunk_size) {
    const int64_t L = std::min(chunk_size, T - c0);  // a short last chunk uses its real length
    auto Qc = Q.narrow(2, c0, L), Kc = K.narrow(2, c0, L), Vc = V.narrow(2, c0, L);
    auto segc = seg.narrow(1, c0, L);  // [B, L]
    auto i = torch::arange(L, opts);
    auto diff = i.view({L, 1}) - i.view({1, L});
    auto same_doc = (segc.unsqueeze(2) == segc.unsqueeze(1)).unsqueeze(1).to(acc);
    // Intra-chunk: ((Q_c K_cᵀ s) ⊙ D) V_c with D_ij = γ^{i−j} (j ≤ i, same document).
    auto D = torch::exp(lg * diff.clamp_min(0)) * (diff >= 0).to(acc) * same_doc;
    auto Oc = torch::matmul(torch::matmul(Qc, Kc.transpose(-1, -2)) * args.scale * D, Vc);
    // Inter-chunk: (Q_c ⊙ γ^i) S_c for tokens still in the state's document.
    auto alive = (segc == state_doc.unsqueeze(1)).to(acc).view({B, 1, L, 1});
    Oc = Oc + alive * torch::exp(lg * i.view({1, 1, L, 1})) * torch::matmul(Qc, S);
    outs.push_back(Oc);
    // S_{c+1} = γ^L S_c (if no reset in the chunk) + Σ_{j in the chunk's last document} γ^{L−j} s k_jᵀ v_j.
    auto last = segc.select(1, L - 1);
    auto keep = (last == state_doc).to(acc).view({B, 1, 1, 1});
    auto in_last = (segc == last.unsqueeze(1)).to(acc).view({B, 1, L, 1});
    auto w = torch::exp(lg * (L - i).view({1, 1, L, 1})) * in_last * args.scale;
    S = keep * torch::exp(lg * L) * S + torch::matmul((Kc * w).transpose(-1, -2), Vc);
    state_doc = last;
  }
  auto O = torch::cat(outs, 2);
  return {O.permute({0, 2, 1, 3}).to(q.scalar_type()), S};
}

std::tuple<torch::Tensor, torch::Tensor> recurrent_step(const torch::Tensor& q, const torch::Tensor& k,
                                                        const torch::Tensor& v, const torch::Tensor& state,
                                                        const torch::Tensor& log_gamma, double scale,
                                                        const torch::Tensor& reset) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, "recurrent_step: q, k, v must be [B, H, D]");
  const int64_t H = q.size(1);
  TORCH_CHECK(H % k.size(1) == 0 && v.size(1) == k.size(1), "recurrent_step: bad head counts");
  TORCH_CHECK(state.dim() == 4 && state.size(1) == H && state.size(2) == q.size(2) && state.size(3) == v.size(2),
              "recurrent_step: state must be [B, H, Dk, Dv]");
  const auto acc = state.scalar_type();
  auto qf = q.to(acc), kf = k.to(acc), vf = v.to(acc);
  if (kf.size(1) != H) {
    kf = kf.repeat_interleave(H / kf.size(1), 1);
    vf = vf.repeat_interleave(H / vf.size(1), 1);
  }
  auto S = state;
  if (reset.defined()) S = S * (~reset.to(torch::kBool)).to(acc).view({-1, 1, 1, 1});
  // S' = S + s·kᵀv ; o = q S' ; stored state γ S'.
  auto S_prime = S + scale * kf.unsqueeze(-1) * vf.unsqueeze(-2);
  auto o = torch::matmul(qf.unsqueeze(-2), S_prime).squeeze(-2);
  auto gamma = torch::exp(log_gamma.to(acc)).view({1, H, 1, 1});
  return {o.to(q.scalar_type()), gamma * S_prime};
}

LinearAttentionResult recurrent(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const LinearAttentionArgs& args) {
  check_inputs(q, k, v, args);
  const auto acc = accumulate_type(q);
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), Dk = q.size(3), Dv = v.size(3);
  auto S = args.initial_state.defined()
               ? args.initial_state.to(acc)
               : torch::zeros({B, H, Dk, Dv}, torch::TensorOptions().dtype(acc).device(q.device()));
  std::vector<torch::Tensor> outs;
  for (int64_t t = 0; t < T; ++t) {
    torch::Tensor reset;
    if (args.resets.defined()) reset = args.resets.select(1, t);
    auto [o, S_next] =
        recurrent_step(q.select(1, t), k.select(1, t), v.select(1, t), S, args.log_gamma, args.scale, reset);
    outs.push_back(o);
    S = S_next;
  }
  return {torch::stack(outs, 1).to(q.scalar_type()), S};
}

}  // namespace supra::reference
