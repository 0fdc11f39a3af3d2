#include "training/objectives.h"

#include <functional>

#include "core/base/error.h"
#include "core/supra/supra_attention.h"

namespace supra::training {

namespace {
// The teacher's forward, block by block, without gradients: each layer's attention input x (the teacher's own
// normed hidden state) and the teacher's attention output y go to visit(layer, x, y, ctx), then the teacher's
// block goes on from its own output (h + y, then the MLP), whatever visit does with them.
void walk_teacher_attention(
    CausalLM& teacher, const torch::Tensor& inputs, const torch::Tensor& resets,
    const std::function<void(int64_t, const torch::Tensor&, const torch::Tensor&, const AttentionContext&)>& visit) {
  int64_t l = 0;
  teacher->run_blocks(inputs, resets, [&](DecoderLayer block, const torch::Tensor& h, const AttentionContext& ctx) {
    torch::Tensor x, y;
    {
      torch::NoGradGuard no_grad;
      x = block->input_layernorm(h);
      y = block->self_attn->forward(x, ctx);
    }
    visit(l++, x, y, ctx);
    torch::NoGradGuard no_grad;
    auto hh = h + y;
    return hh + block->mlp(block->post_attention_layernorm(hh));
  });
}
}  // namespace

AttentionTransferLoss attention_transfer_loss(CausalLM& teacher, CausalLM& student, const torch::Tensor& inputs,
                                              const torch::Tensor& resets) {
  AttentionTransferLoss out;
  std::vector<torch::Tensor> losses;
  walk_teacher_attention(teacher, inputs, resets,
                         [&](int64_t l, const torch::Tensor& x, const torch::Tensor& y, const AttentionContext& ctx) {
                           // The student's attention of the same block on the teacher's input: the only part
                           // with a gradient.
                           auto s = student->layer(l)->self_attn->forward(x, ctx).to(torch::kFloat);
                           auto yf = y.to(torch::kFloat);
                           losses.push_back((s - yf).pow(2).mean() / yf.pow(2).mean().clamp_min(1e-12));
                         });
  out.total = torch::stack(losses).mean();
  for (const auto& t : losses) out.per_layer.push_back(t.detach());
  return out;
}

void OutputProjectionFit::accumulate(CausalLM& teacher, CausalLM& student, const torch::Tensor& inputs,
                                     const torch::Tensor& resets) {
  torch::NoGradGuard no_grad;
  walk_teacher_attention(
      teacher, inputs, resets,
      [&](int64_t l, const torch::Tensor& x, const torch::Tensor& y, const AttentionContext& ctx) {
        auto* attn = dynamic_cast<SupraAttentionImpl*>(student->layer(l)->self_attn.get());
        if (attn == nullptr)
          throw Error("model", "layer " + std::to_string(l) + " of the student is not a SUPRA layer: no o_proj to fit");
        auto z = attn->normalized_heads(x, ctx).flatten(0, 1).to(torch::kDouble);  // [N, H·d]
        auto yd = y.flatten(0, 1).to(torch::kDouble);                              // [N, hidden]
        const auto i = static_cast<size_t>(l);
        if (gram_.size() == i) {
          gram_.push_back(torch::zeros({z.size(1), z.size(1)}, z.options()));
          cross_.push_back(torch::zeros({z.size(1), yd.size(1)}, z.options()));
          yy_.push_back(torch::zeros({}, z.options()));
        }
        gram_[i].addmm_(z.t(), z);
        cross_[i].addmm_(z.t(), yd);
        yy_[i] += yd.pow(2).sum();
      });
  tokens_ += static_cast<double>(inputs.numel());
}

OutputProjectionFit::Report OutputProjectionFit::solve(CausalLM& student,
                                                       const std::function<void(torch::Tensor&)>& allreduce_sum) {
  torch::NoGradGuard no_grad;
  if (gram_.empty()) throw Error("attention.o_proj_fit_batches", "no tokens to fit o_proj on");
  Report r;
  // One collective for the scalars: Σ‖y‖² per layer, then the token count.
  auto scalars = torch::cat({torch::stack(yy_), torch::full({1}, tokens_, yy_[0].options())});
  allreduce_sum(scalars);
  const auto yy = scalars.cpu();
  r.tokens = yy[static_cast<int64_t>(yy_.size())].item<double>();
  for (size_t l = 0; l < gram_.size(); ++l) {
    allreduce_sum(gram_[l]);
    allreduce_sum(cross_[l]);
    const auto& G = gram_[l];
    const auto& C = cross_[l];
    auto* attn = dynamic_cast<SupraAttentionImpl*>(student->layer(static_cast<int64_t>(l))->self_attn.get());
    torch::Tensor& weight = attn->o_proj->weight;  // [hidden, H·d] (o_proj has no bias: attention_bias is refused)
    const auto w0 = weight.to(torch::kDouble);
    const int64_t n = G.size(0);
    const double lambda = 1e-6 * G.diagonal().sum().item<double>() / static_cast<double>(n);
    auto w = torch::linalg_solve(G + lambda * torch::eye(n, G.options()), C).t();  // [hidden, n]
    // Relative error of a map W: 1 − (2·tr(W C) − tr(W G Wᵀ)) / Σ‖y‖², tr(W C) = Σ W ⊙ Cᵀ.
    const double y2 = std::max(yy[static_cast<int64_t>(l)].item<double>(), 1e-300);
    auto rel = [&](const torch::Tensor& m) {
      return 1.0 - (2.0 * (m * C.t()).sum().item<double>() - (m.mm(G) * m).sum().item<double>()) / y2;
    };
    r.before.push_back(rel(w0));
    r.after.push_back(rel(w));
    weight.copy_(w);
  }
  return r;
}

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// total = τ²·KL(p_t ‖ p_s) + w·CE + ζ·mean(lse²) over N rows of V logits, fused: the forward pass walks the rows
// in chunks and keeps only three log-normalisers per row, the backward pass re-reads the logits and writes the
// gradient directly, so no [N, V] intermediate (log-probabilities, their exp, differences) is ever held or saved.
// With p^τ = softmax(logits/τ), L = logsumexp at τ, ℓ = logsumexp(s) at τ = 1 and N rows:
//   KL_r  = Σ_v p_t^τ (t − s)/τ − L_t + L_s                                       (Σ_v p_t^τ = 1)
//   ∂total/∂s = [ τ (p_s^τ − p_t^τ) + (w + 2ζℓ) softmax(s) − w·onehot(target) ] / N
// Outputs: total (differentiable) and kl, ce, z (means; not differentiable).
class DistillLossFunction : public torch::autograd::Function<DistillLossFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& s, const torch::Tensor& t,
                               const torch::Tensor& targets, double tau, double w, double zeta, int64_t rows) {
    const int64_t N = s.size(0);
    const auto acc = s.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    auto vec = torch::empty({3, N}, s.options().dtype(acc));  // per row: ℓ, L_s, L_t
    auto sums = torch::zeros({3}, s.options().dtype(acc));    // Σ KL, Σ CE, Σ ℓ²
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
      const int64_t n = std::min(rows, N - r0);
      auto sc = s.narrow(0, r0, n).to(acc), tc = t.narrow(0, r0, n).to(acc);
      auto st = tau == 1.0 ? sc : sc / tau, tt = tau == 1.0 ? tc : tc / tau;
      auto l1 = torch::logsumexp(sc, -1);
      auto ls = tau == 1.0 ? l1 : torch::logsumexp(st, -1);
      // p_t^τ from one exp pass: e = exp(tt − max), L_t = max + log Σ e, p_t^τ = e / Σ e.
      auto mt = std::get<0>(tt.max(-1, /*keepdim=*/true));
      auto e = (tt - mt).exp_();
      auto se = e.sum(-1);
      auto lt = mt.squeeze(-1) + se.log();
      auto kl = (e * (tt - st)).sum(-1) / se - lt + ls;
      auto ce = l1 - sc.gather(1, targets.narrow(0, r0, n).unsqueeze(1)).squeeze(1);
      vec[0].narrow(0, r0, n).copy_(l1);
      vec[1].narrow(0, r0, n).copy_(ls);
      vec[2].narrow(0, r0, n).copy_(lt);
      sums += torch::stack({kl.sum(), ce.sum(), l1.pow(2).sum()});
    }
    auto means = sums / static_cast<double>(N);
    auto total = means[0] * (tau * tau) + w * means[1] + zeta * means[2];
    ctx->save_for_backward({s, t, targets, vec});
    ctx->saved_data["tau"] = tau;
    ctx->saved_data["w"] = w;
    ctx->saved_data["zeta"] = zeta;
    ctx->saved_data["rows"] = rows;
    auto kl = means[0].clone(), ce = means[1].clone(), z = means[2].clone();  // own storage, not views
    ctx->mark_non_differentiable({kl, ce, z});
    return {total, kl, ce, z};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    const auto &s = saved[0], &t = saved[1], &targets = saved[2], &vec = saved[3];
    const double tau = ctx->saved_data["tau"].toDouble(), w = ctx->saved_data["w"].toDouble(),
                 zeta = ctx->saved_data["zeta"].toDouble();
    const int64_t N = s.size(0), rows = ctx->saved_data["rows"].toInt();
    const auto acc = vec.scalar_type();
    auto g = grad_out[0].to(acc) / static_cast<double>(N);  // d(loss)/d(total), spread over the mean's rows
    auto grad = torch::empty_like(s);
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
      const int64_t n = std::min(rows, N - r0);
      auto sc = s.narrow(0, r0, n).to(acc), tc = t.narrow(0, r0, n).to(acc);
      auto l1 = vec[0].narrow(0, r0, n).unsqueeze(1), ls = vec[1].narrow(0, r0, n).unsqueeze(1),
           lt = vec[2].narrow(0, r0, n).unsqueeze(1);
      auto ps = tau == 1.0 ? (sc - ls).exp() : (sc / tau - ls).exp();
      auto d = (ps - (tau == 1.0 ? (tc - lt).exp() : (tc / tau - lt).exp())).mul_(tau);  // τ (p_s^τ − p_t^τ)
      if (w != 0.0 || zeta != 0.0) {
        auto p1 = tau == 1.0 ? ps : (sc - l1).exp();
        d.add_(p1 * (2.0 * zeta * l1 + w));
        if (w != 0.0) d.scatter_add_(1, targets.narrow(0, r0, n).unsqueeze(1), torch::full({n, 1}, -w, d.options()));
      }
      grad.narrow(0, r0, n).copy_(d.mul_(g));
    }
    return {grad, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};
}  // namespace

DistillLoss distill_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                         const torch::Tensor& targets, double temperature, double ce_weight, double z_loss,
                         int64_t chunk_rows) {
  const int64_t V = student_logits.size(-1);
  // ~8M logits (32 MB in fp32) of temporaries per chunk unless told.
  const int64_t rows = chunk_rows > 0 ? chunk_rows : std::max<int64_t>(1, (int64_t{1} << 23) / V);
  auto parts = DistillLossFunction::apply(student_logits.reshape({-1, V}), teacher_logits.reshape({-1, V}).detach(),
                                          targets.reshape({-1}), temperature, ce_weight, z_loss, rows);
  return {parts[0], parts[1], parts[2]};
}

}  // namespace supra::training
